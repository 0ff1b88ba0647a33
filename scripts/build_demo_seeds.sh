#!/usr/bin/env bash
# Rebuild the shipped repeated reproduction (models/demo-seeds): the demo preset with five seeds, 42-46,
# each seed its own validation split, CycleGAN and four classifiers. Seed 42 is the shipped demo itself
# (models/demo, built by scripts/build_demo.sh; run that first): its results are copied here, so the five
# seeds hold the shipped run. Seeds 43-46 are built here (about 10 minutes each on 2 CPU cores).
# Only each run's results ship (configs, histories, metrics, predictions, model cards), no weights.
# Re-running it continues an interrupted reproduction (finished seeds are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/demo-seeds}
work=${2:-runs/demo-seeds}
demo=${DEMO:-models/demo}
melanet() { python -m melanet -q "$@"; }

melanet reproduce --config configs/demo.yaml --set seed=43 --seeds 4 --out "$work"
copy_results() {  # copy_results FROM TO: every file but weights, checkpoints, images and job files
  mkdir -p "$2"
  (cd "$1" && find . -type f \( -name '*.keras' -o -name '*.npz' -o -path '*/checkpoints/*' \
      -o -path '*/synthetic/*' -o -path '*/explain/*' -o -path '*/embedding/*' -o -path '*/figures/*' \
      -o -path '*/audit/*' -o -path '*/studies/*' -o -path '*/retrieval/*' -o -path '*/shortcuts/*' \
      -o -name '.lock' -o -name 'job.log' -o -name 'job.json' \) -prune -o -type f -print \
    | tar -cf - -T -) | tar -xf - -C "$2"
}
rm -rf "$out"
copy_results "$work" "$out"
copy_results "$demo" "$out/seed-42"
melanet reproduce --summarize "$out"
du -sh --apparent-size "$out"
cat "$out/seeds.md"
