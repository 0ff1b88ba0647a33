"""How much a classifier's answer moves under flips and 90-degree rotations, and what that is worth.

A dermoscopy image has no up, down, left or right: the 8 symmetries of the square
(``melanet.classifier.predict.DIHEDRAL_VIEWS``) show the same lesion. Per image:

- ``prob_sd``: the standard deviation (population, ddof 0) of the 8 views' malignant probabilities;
- ``prob_range``: their largest minus their smallest, the **spread** this module flags and ranks by;
- ``uncertain``: ``prob_range > evaluation.uncertain_spread`` (one rule, :func:`is_uncertain`).

``summary`` is ``metrics.json``'s ``uncertainty`` block: how many images are flagged, the AUC of the
flagged and of the other images, and the risk-coverage curve: the AUC on the most confident x % of the
test images (the lowest spread first). A model whose answers do not move under the views has spread 0
everywhere; its curve is then the AUC of ever larger arbitrary subsets and says nothing.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs import runs
from melanet.data.errors import DataError
from melanet.evaluation import metrics

# predictions.csv columns written beside image, label, prob_malignant (when the views were predicted)
SD_COLUMN = "prob_sd"
RANGE_COLUMN = "prob_range"
FLAG_COLUMN = "uncertain"
COLUMNS = (SD_COLUMN, RANGE_COLUMN, FLAG_COLUMN)
VIEWS = 8
COVERAGES = tuple(round(0.1 * step, 1) for step in range(1, 11))  # 10 %, 20 %, ..., 100 % of the images
MEASURE = "max - min of the malignant probability over the 8 flips and 90-degree rotations of the image"


def spread(view_probabilities: Any) -> dict[str, np.ndarray]:
    """(N, V) probabilities in [0, 1] of V views -> {"sd": (N,), "range": (N,)} float64 in [0, 1]."""
    views = np.asarray(view_probabilities, dtype=np.float64)
    if views.ndim != 2 or views.shape[1] < 2:
        raise ValueError(f"view probabilities must be (N, V) with V >= 2 views, got shape {views.shape}")
    if views.size and not (np.isfinite(views).all() and views.min() >= 0 and views.max() <= 1):
        raise ValueError("view probabilities must be finite and lie in [0, 1]")
    return {"sd": views.std(axis=1), "range": views.max(axis=1) - views.min(axis=1)}


def is_uncertain(prob_range: Any, threshold: float) -> Any:
    """The one flag rule: uncertain when the spread (``prob_range``) is strictly above ``threshold``.

    A float or an (N,) array -> a bool or an (N,) bool array.
    """
    if np.ndim(prob_range) == 0:
        return bool(float(prob_range) > threshold)
    return np.asarray(prob_range, dtype=np.float64) > threshold


def columns(view_probabilities: Any, threshold: float) -> dict[str, np.ndarray]:
    """The predictions.csv columns ``prob_sd``, ``prob_range``, ``uncertain`` for (N, V) view probabilities."""
    values = spread(view_probabilities)
    return {SD_COLUMN: values["sd"], RANGE_COLUMN: values["range"], FLAG_COLUMN: is_uncertain(values["range"], threshold)}


def risk_coverage(labels: Any, probabilities: Any, prob_range: Any,
                  coverages: tuple[float, ...] = COVERAGES) -> list[dict[str, Any]]:
    """The AUC on the most confident ``coverage`` share of the images, for each coverage in (0, 1].

    Images are ranked by ``prob_range`` (lowest first; equal spreads keep their file order, so the
    curve is deterministic); the first ``ceil(coverage * N)`` are scored. ``auc`` is None where that
    subset has only one class. Returns [{coverage, n, n_malignant, max_spread, auc}, ...].
    """
    labels_array = np.asarray(labels, dtype=np.int64)
    probabilities_array = np.asarray(probabilities, dtype=np.float64)
    ranges = np.asarray(prob_range, dtype=np.float64)
    if not labels_array.shape == probabilities_array.shape == ranges.shape:
        raise ValueError(f"labels {labels_array.shape}, probabilities {probabilities_array.shape} and spreads "
                         f"{ranges.shape} differ in shape")
    order = np.argsort(ranges, kind="stable")
    points = []
    for coverage in coverages:
        if not 0 < coverage <= 1:
            raise ValueError(f"coverage must be in (0, 1], got {coverage}")
        kept = order[:max(1, math.ceil(coverage * len(order) - 1e-9))] if len(order) else order
        area = metrics.auc(labels_array[kept], probabilities_array[kept]) if kept.size else math.nan
        points.append({"coverage": float(coverage), "n": int(kept.size), "n_malignant": int(labels_array[kept].sum()),
                       "max_spread": float(ranges[kept].max()) if kept.size else None,
                       "auc": None if not math.isfinite(area) else float(area)})
    return points


def summary(labels: Any, probabilities: Any, prob_range: Any, prob_sd: Any, threshold: float) -> dict[str, Any]:
    """``metrics.json``'s ``uncertainty`` block for the test images (all arrays (N,))."""
    labels_array = np.asarray(labels, dtype=np.int64)
    probabilities_array = np.asarray(probabilities, dtype=np.float64)
    ranges = np.asarray(prob_range, dtype=np.float64)
    flagged = is_uncertain(ranges, threshold)
    return metrics._json_safe({
        "available": True,
        "views": VIEWS,
        "measure": MEASURE,
        "threshold": float(threshold),
        "rule": "uncertain when prob_range > evaluation.uncertain_spread",
        "n": int(labels_array.size),
        "n_uncertain": int(flagged.sum()),
        "n_uncertain_malignant": int(labels_array[flagged].sum()),
        "mean_range": float(ranges.mean()) if ranges.size else None,
        "max_range": float(ranges.max()) if ranges.size else None,
        "mean_sd": float(np.mean(prob_sd)) if ranges.size else None,
        "auc_uncertain": metrics.auc(labels_array[flagged], probabilities_array[flagged]) if flagged.any() else None,
        "auc_confident": metrics.auc(labels_array[~flagged], probabilities_array[~flagged]) if (~flagged).any() else None,
        "risk_coverage": risk_coverage(labels_array, probabilities_array, ranges),
        "ranking": "most confident first: lowest prob_range; equal spreads in predictions.csv order",
    })


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def read_columns(path: str | Path) -> dict[str, np.ndarray] | None:
    """``prob_sd`` and ``prob_range`` (N,) float64 of a predictions.csv, or None when it has no such columns
    (written before the views were predicted). DataError naming the file and line of a bad value."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if not {SD_COLUMN, RANGE_COLUMN} <= set(reader.fieldnames or ()):
            return None
        values: dict[str, list[float]] = {SD_COLUMN: [], RANGE_COLUMN: []}
        for line, row in enumerate(reader, start=2):
            for column in (SD_COLUMN, RANGE_COLUMN):
                try:
                    number = float(row[column])
                except (TypeError, ValueError):
                    raise DataError(f"{path}: line {line}: {column} must be a number in [0, 1], got {row[column]!r}") from None
                if not 0.0 <= number <= 1.0:
                    raise DataError(f"{path}: line {line}: {column} must be a number in [0, 1], got {row[column]!r}")
                values[column].append(number)
    return {column: np.asarray(numbers, dtype=np.float64) for column, numbers in values.items()}


def refresh_flags(path: str | Path, threshold: float) -> bool:
    """Rewrite the ``uncertain`` column of a predictions.csv for ``threshold`` when it says otherwise
    (``evaluate --from-predictions --set evaluation.uncertain_spread=...``); every other cell is kept as
    written. Returns whether the file changed; a file without the spread columns is left alone."""
    path = Path(path)
    spreads = read_columns(path)
    if spreads is None:
        return False
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        fields, rows = list(reader.fieldnames or ()), list(reader)
    flags = is_uncertain(spreads[RANGE_COLUMN], threshold)
    wanted = [str(int(flag)) for flag in flags]
    if FLAG_COLUMN in fields and [row.get(FLAG_COLUMN) for row in rows] == wanted:
        return False
    for row, flag in zip(rows, wanted):
        row[FLAG_COLUMN] = flag
    runs.atomic_write_csv(path, rows, fields if FLAG_COLUMN in fields else fields + [FLAG_COLUMN])
    return True
