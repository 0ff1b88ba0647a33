"""Compare classifier settings for the demo preset on the VALIDATION split only.

Each arm is a list of ``--set`` overrides on top of ``configs/demo.yaml``; each arm runs
``melanet train-classifier`` (training set ``original``: the GAP baseline) once per seed and scores the
run's ``validation_predictions.csv`` (the split carved from training). No test image is read: nothing
here calls ``evaluate``.

    python scripts/demo_arms.py --out runs/arms --seeds 42 43 44 \
        --arm base= --arm crop=data.resize=crop --arm mean-std=classifier.preprocessing=mean-std

An arm is ``NAME=KEY=VALUE,KEY=VALUE`` (``NAME=`` for no overrides). Finished runs are skipped, so an
interrupted comparison continues where it stopped. Writes ``OUT/arms.csv`` (arm, seed, validation AUC,
validation n, malignant n, seconds) and prints the mean per arm.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score

CONFIG = "configs/demo.yaml"


def parse_arm(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    if not name:
        raise SystemExit(f"--arm {text!r}: expected NAME=KEY=VALUE[,KEY=VALUE...]")
    return name, [item for item in overrides.split(",") if item]


def validation_auc(run: Path) -> tuple[float, int, int]:
    with open(run / "validation_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = [int(row["label"]) for row in rows]
    scores = [float(row["prob_malignant"]) for row in rows]
    return float(roc_auc_score(labels, scores)), len(labels), sum(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--arm", action="append", required=True)
    parser.add_argument("--common", default="", help="overrides for every arm (KEY=VALUE,KEY=VALUE)")
    args = parser.parse_args()
    common = [item for item in args.common.split(",") if item]
    results = []
    for name, overrides in map(parse_arm, args.arm):
        for seed in args.seeds:
            run = args.out / name / f"seed-{seed}"
            seconds = 0.0
            if not (run / "validation_predictions.csv").is_file():
                command = [sys.executable, "-m", "melanet", "-q", "train-classifier", "--config", CONFIG,
                           "--run", str(run), "--set", f"seed={seed}",
                           *[part for item in [*common, *overrides] for part in ("--set", item)]]
                started = time.monotonic()
                subprocess.run(command, check=True)
                seconds = time.monotonic() - started
            auc, n, malignant = validation_auc(run)
            results.append({"arm": name, "seed": seed, "val_auc": round(auc, 4), "n": n, "malignant": malignant,
                            "seconds": round(seconds, 1)})
            print(f"{name:24s} seed {seed}: validation AUC {auc:.3f} (n {n}, {malignant} malignant)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "arms.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    for name in dict.fromkeys(row["arm"] for row in results):
        values = [row["val_auc"] for row in results if row["arm"] == name]
        print(f"{name:24s} mean validation AUC {sum(values) / len(values):.3f} over {len(values)} seeds")


if __name__ == "__main__":
    main()
