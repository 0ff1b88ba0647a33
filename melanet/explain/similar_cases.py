"""The similar-cases vote as a score: its AUC beside the classifier's, ``metrics.json``'s ``similar_cases``.

``melanet similar --build`` (:mod:`melanet.explain.retrieval_stage`) writes ``retrieval/votes.csv``: for
each validation and test image, the share of malignant images among its k nearest training images, k =
1..15. Here k is chosen on the validation rows alone (``choose_k``: the highest AUC, the smallest such k)
and read once on the test rows (``vote_report``): AUC with a DeLong interval and the paired DeLong
difference from the classifier's probabilities on the same images. ``add_to_metrics`` puts that block
into an evaluated run's ``metrics.json``; ``evaluate`` and ``evaluate --from-predictions`` call it, so
a re-evaluation keeps it. Needs only the CSV files: no model, no images.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from melanet.runs import layout, runs
from melanet.data.errors import DataError
from melanet.evaluation import delong, metrics, predictions

MAX_K = 15
VOTE_COLUMNS = tuple(f"vote_k{k}" for k in range(1, MAX_K + 1))
VOTES_COLUMNS = ("split", "image", "label", *VOTE_COLUMNS)
BLOCK = "similar_cases"


def choose_k(validation_labels: np.ndarray, validation_votes: np.ndarray) -> tuple[int, list[float | None]]:
    """(k with the highest validation AUC, the smallest such k; the validation AUC of every k = 1..K).

    ``validation_votes`` (M, K) from ``votes``. ValueError when the validation labels hold one class.
    """
    labels = np.asarray(validation_labels, dtype=np.int64)
    if labels.min(initial=0) == labels.max(initial=0):
        raise ValueError("choosing k needs validation images of both classes")
    aucs = [metrics.auc(labels, validation_votes[:, column]) for column in range(validation_votes.shape[1])]
    best = int(np.argmax(aucs))  # the first maximum: the smallest k
    return best + 1, [float(value) for value in aucs]


def auc_interval(labels: np.ndarray, scores: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """AUC with its DeLong normal-theory interval, clipped to [0, 1]."""
    aucs, covariance = delong.auc_covariance(labels, np.asarray(scores, dtype=np.float64)[None, :])
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(float(covariance[0, 0]), 0.0))
    value = float(aucs[0])
    return {"auc": value, "ci_low": max(0.0, value - half), "ci_high": min(1.0, value + half)}


def vote_report(validation_labels: np.ndarray, validation_votes: np.ndarray, test_labels: np.ndarray,
                test_votes: np.ndarray, *, classifier_probabilities: np.ndarray | None = None,
                confidence: float = 0.95) -> dict[str, Any]:
    """``metrics.json``'s ``similar_cases`` block.

    k is chosen on the validation votes alone; the test votes (N, K) are read only at that k: its AUC
    with a DeLong interval (``ci_low``, ``ci_high``) and, given the classifier's test probabilities
    (N,) on the same images, the paired DeLong difference vote - classifier.
    """
    k, validation_aucs = choose_k(validation_labels, validation_votes)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    chosen = test_votes[:, k - 1]
    block: dict[str, Any] = {
        "k": k,
        "validation_auc": validation_aucs[k - 1],
        "validation_auc_by_k": validation_aucs,
        "n_validation": int(len(validation_labels)),
        "n_test": int(len(test_labels)),
        "confidence": confidence,
        "rule": "vote = share of malignant images among the k most similar training images (cosine of GAP "
                "features); k in 1..15 with the highest validation AUC (the smallest such k), read once on test",
    }
    if test_labels.min(initial=0) == test_labels.max(initial=0):
        block.update(test_auc=None, ci_low=None, ci_high=None, reason="the test images hold one class")
        return block
    interval = auc_interval(test_labels, chosen, confidence)
    block.update(test_auc=interval["auc"], ci_low=interval["ci_low"], ci_high=interval["ci_high"])
    if classifier_probabilities is not None:
        test = delong.delong_test(test_labels, chosen, np.asarray(classifier_probabilities, dtype=np.float64), confidence)
        block["versus_classifier"] = {"classifier_auc": test["auc_b"], "delta_auc": test["delta_auc"],
                                      "ci_low": test["ci_low"], "ci_high": test["ci_high"], "p": test["p"]}
    return block


def write_votes(path: str | Path, split_rows: dict[str, tuple[list[str], np.ndarray, np.ndarray]]) -> None:
    """``votes.csv`` from split -> (ids (N,), labels (N,), votes (N, K)); a K below MAX_K leaves columns empty."""
    rows = []
    for split, (ids, labels, votes) in split_rows.items():
        for image_id, label, row in zip(ids, labels, votes):
            values = [f"{value:.6f}" for value in row] + [""] * (MAX_K - len(row))
            rows.append({"split": split, "image": image_id, "label": int(label), **dict(zip(VOTE_COLUMNS, values))})
    runs.atomic_write_csv(path, rows, VOTES_COLUMNS)


def read_votes(path: str | Path) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """split -> (ids, labels (N,) int64, votes (N, K) float64) of a ``votes.csv``; DataError naming the file."""
    path = Path(path)
    found: dict[str, tuple[list[str], list[int], list[list[float]]]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            if tuple(reader.fieldnames or ()) != VOTES_COLUMNS:
                raise DataError(f"{path}: line 1: expected the header {','.join(VOTES_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                try:
                    values = [float(row[name]) for name in VOTE_COLUMNS if row[name] != ""]
                    label = int(row["label"])
                except (TypeError, ValueError):
                    raise DataError(f"{path}: line {line}: expected a 0/1 label and vote shares, got {row}") from None
                ids, labels, votes = found.setdefault(row["split"], ([], [], []))
                ids.append(row["image"])
                labels.append(label)
                votes.append(values)
    except OSError as error:
        raise DataError(f"{path}: cannot read the similar-cases votes ({error.strerror or error})") from None
    return {split: (ids, np.asarray(labels, dtype=np.int64), np.asarray(votes, dtype=np.float64))
            for split, (ids, labels, votes) in found.items()}


def run_block(run_path: str | Path, confidence: float = 0.95) -> dict[str, Any] | None:
    """The ``similar_cases`` block of a run from its ``retrieval/votes.csv`` (and ``predictions.csv`` for the
    paired comparison, when it scored the same images); None without votes."""
    files = layout.RunLayout(Path(run_path))
    if not files.retrieval_votes.is_file():
        return None
    votes = read_votes(files.retrieval_votes)
    if "validation" not in votes or "test" not in votes:
        return {"k": None, "test_auc": None, "ci_low": None, "ci_high": None,
                "reason": f"{files.retrieval_votes}: needs validation and test rows (has {', '.join(votes) or 'none'})"}
    validation_ids, validation_labels, validation_votes = votes["validation"]
    test_ids, test_labels, test_votes = votes["test"]
    classifier = None
    if files.predictions.is_file():
        ids, labels, probabilities = predictions.read_predictions(files.predictions)
        if list(ids) == list(test_ids) and np.array_equal(labels, test_labels):
            classifier = probabilities
    block = vote_report(validation_labels, validation_votes, test_labels, test_votes,
                        classifier_probabilities=classifier, confidence=confidence)
    block["votes_file"] = layout.RETRIEVAL_VOTES_FILE
    return metrics._json_safe(block)


def add_to_metrics(run_path: str | Path) -> dict[str, Any] | None:
    """Put the run's ``similar_cases`` block into its ``metrics.json`` (nothing without both files)."""
    files = layout.RunLayout(Path(run_path))
    if not files.metrics.is_file() or not files.retrieval_votes.is_file():
        return None
    report = runs.read_json(files.metrics)
    confidence = float((report.get("evaluation_settings") or {}).get("confidence", 0.95))
    block = run_block(run_path, confidence)
    report[BLOCK] = block
    runs.atomic_write_json(files.metrics, report)
    return block
