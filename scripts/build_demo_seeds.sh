#!/usr/bin/env bash
# Rebuild the shipped repeated reproduction (models/demo-seeds): the demo preset with seeds 42, 43, 44,
# each seed its own CycleGAN and four classifiers; about 16 minutes per seed on 2 CPU cores at 128 px.
# Only each run's results ship (configs, histories, metrics, predictions, model cards), no weights.
# Re-running it continues an interrupted reproduction (finished seeds are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/demo-seeds}
work=${2:-runs/demo-seeds}
melanet() { python -m melanet -q "$@"; }

melanet reproduce --config configs/demo.yaml --seeds 3 --out "$work"
mkdir -p "$out"
(cd "$work" && find . -type f \( -name '*.keras' -o -name '*.npz' -o -path '*/checkpoints/*' \
    -o -path '*/synthetic/*' -o -path '*/explain/*' -o -path '*/embedding/*' -o -path '*/figures/*' \
    -o -path '*/audit/*' -o -path '*/studies/*' -o -name '.lock' -o -name 'job.log' -o -name 'job.json' \) -prune -o -type f -print \
  | tar -cf - -T -) | tar -xf - -C "$out"
melanet reproduce --summarize "$out"
du -sh --apparent-size "$out"
cat "$out/seeds.md"
