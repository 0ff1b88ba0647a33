"""`melanet evaluate --from-predictions` keeps the duplicate check it cannot redo (image hashes) and
recomputes the figures without the duplicates from the saved predictions."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from melanet.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "demo" / "melanet"


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positives, negatives = scores[labels == 1], scores[labels == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in positives for n in negatives]))


def test_rescoring_keeps_the_duplicate_check_and_recomputes_the_figures_without_them(tmp_path: Path) -> None:
    run = tmp_path / "melanet"
    shutil.copytree(SHIPPED, run, ignore=shutil.ignore_patterns("explain", "embedding", "retrieval", "*.npz"))
    before = json.loads((run / "metrics.json").read_text())
    leaked = before["duplicates_of_training"]
    assert leaked, "the shipped demo's test part holds a copy of a training image (data/sample/README.md)"

    assert main(["-q", "evaluate", "--run", str(run), "--from-predictions", "--set", "evaluation.threshold=0.3"]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert after["duplicates_of_training"] == leaked and after["duplicates_check"] == before["duplicates_check"]

    with (run / "predictions.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["image"] not in {entry["image"] for entry in leaked}]
    labels = np.array([int(row["label"]) for row in rows])
    scores = np.array([float(row["prob_malignant"]) for row in rows])
    without = after["without_duplicates"]
    assert without["n"] == len(rows) and without["n_removed"] == len(leaked)
    assert abs(without["auc"] - _pairwise_auc(labels, scores)) < 1e-9
    caught = int(np.sum((scores >= 0.3) & (labels == 1)))
    assert abs(without["sensitivity"] - caught / int(labels.sum())) < 1e-9  # at the new threshold, not 0.5
