"""How much a classifier's answer moves under flips and 90-degree rotations, and what that is worth.

A dermoscopy image has no up, down, left or right: the 8 symmetries of the square
(``melanet.classifier.predict.DIHEDRAL_VIEWS``) show the same lesion. Per image:

- ``prob_sd``: the standard deviation (population, ddof 0) of the 8 views' malignant probabilities;
- ``prob_range``: their largest minus their smallest, the **spread** this module flags and ranks by;
- ``uncertain``: ``prob_range > evaluation.uncertain_spread`` (one rule, :func:`is_uncertain`).

``summary`` is ``metrics.json``'s ``uncertainty`` block: how many images are flagged, the AUC of the
flagged and of the other images (each with its Newcombe 2006 interval), the test of whether the unflagged
images are the easier ones (``unflagged_minus_flagged``: the difference of the two AUCs on these disjoint
sets with its 95 % interval and two-sided p, :func:`melanet.evaluation.auc_interval.independent_difference`),
and the risk-coverage curve: the AUC on the most confident x % of the
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
from melanet.evaluation import auc_interval, metrics

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
    flagged_auc = auc_interval.auc_figures(labels_array[flagged], probabilities_array[flagged])
    unflagged_auc = auc_interval.auc_figures(labels_array[~flagged], probabilities_array[~flagged])
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
        "auc_uncertain_ci": [flagged_auc["ci_low"], flagged_auc["ci_high"]],
        "auc_confident_ci": [unflagged_auc["ci_low"], unflagged_auc["ci_high"]],
        "unflagged_minus_flagged": auc_interval.independent_difference(unflagged_auc, flagged_auc),
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


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC of (N,) 0/1 ``labels`` and (N,) ``scores`` (ties one half); nan with one class."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if positives.size == 0 or negatives.size == 0:
        return math.nan
    greater = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return float(greater / (positives.size * negatives.size))


def _subset_aucs(labels: np.ndarray, scores: np.ndarray, ranges: np.ndarray, threshold: float,
                 coverages: tuple[float, ...]) -> tuple[list[float], float, float]:
    """AUC at each coverage (most confident first, ties in the given order), of the flagged and of the others."""
    order = np.argsort(ranges, kind="stable")
    at_coverage = []
    for coverage in coverages:
        kept = order[:max(1, math.ceil(coverage * len(order) - 1e-9))]
        at_coverage.append(_pairwise_auc(labels[kept], scores[kept]))
    flagged = is_uncertain(ranges, threshold)
    return at_coverage, _pairwise_auc(labels[flagged], scores[flagged]), _pairwise_auc(labels[~flagged], scores[~flagged])


def _verdict(difference: dict[str, Any]) -> str:
    if difference["low"] is None:
        return "No test: too few flagged or unflagged images of both classes."
    figure = f"AUC(flagged) - AUC(unflagged) = {difference['estimate']:+.3f} [{difference['low']:+.3f}, {difference['high']:+.3f}]"
    if difference["high"] < 0:
        return f"{figure}: the flagged images are the harder ones, as the flag means."
    if difference["low"] > 0:
        return f"{figure}: the flagged images score a higher AUC than the others; the flag does not pick out harder images."
    return f"{figure}: the interval holds 0, so there is no evidence that the flagged images are the harder ones."


def bootstrap_risk_coverage(labels: Any, probabilities: Any, prob_range: Any, threshold: float, *,
                            coverages: tuple[float, ...] = COVERAGES, resamples: int = 1000, seed: int = 0,
                            confidence: float = 0.95) -> dict[str, Any]:
    """Percentile-bootstrap intervals of the risk-coverage curve and of AUC(flagged) - AUC(unflagged).

    (N,) ``labels`` 0/1, ``probabilities`` and ``prob_range`` in [0, 1]; ``threshold`` the flag's
    ``uncertain_spread``. Each resample draws the malignant and then the benign images with replacement
    (stratified: ``rng.choice`` over the positions of each class, ``rng = np.random.default_rng(seed)``),
    in that order, and recomputes everything on it, the ranking by spread included (equal spreads keep the
    resample's order). A resample where a subset holds one class gives that figure no value; the interval
    is taken over the rest (``n`` says how many), and is None below 10 valid resamples.

    Returns {"coverage": [{coverage, auc, low, high, n}], "flagged_minus_unflagged": {estimate, low, high, n},
    "all_minus_half": {...} (AUC on all images minus on the most confident half: > 0 when confidence does not
    help), "resamples", "confidence", "method", "verdict"}.
    """
    labels_array = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(probabilities, dtype=np.float64)
    ranges = np.asarray(prob_range, dtype=np.float64)
    if not labels_array.shape == scores.shape == ranges.shape or labels_array.ndim != 1:
        raise ValueError(f"labels {labels_array.shape}, probabilities {scores.shape} and spreads {ranges.shape} "
                         "must be (N,) arrays of one length")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 1 and confidence in (0, 1), got {resamples} and {confidence}")
    coverages = tuple(coverages)
    half = coverages.index(0.5) if 0.5 in coverages else None
    positives, negatives = np.flatnonzero(labels_array == 1), np.flatnonzero(labels_array == 0)
    estimate_curve, estimate_flagged, estimate_other = _subset_aucs(labels_array, scores, ranges, threshold, coverages)
    rng = np.random.default_rng(seed)
    draws = np.full((resamples, len(coverages) + 1), np.nan)
    for number in range(resamples):
        rows = np.concatenate([rng.choice(positives, positives.size, replace=True),
                               rng.choice(negatives, negatives.size, replace=True)])
        curve, flagged, other = _subset_aucs(labels_array[rows], scores[rows], ranges[rows], threshold, coverages)
        draws[number] = [*curve, flagged - other]
    tail = 100 * (1 - confidence) / 2

    def interval(estimate: float, column: np.ndarray) -> dict[str, Any]:
        valid = column[np.isfinite(column)]
        enough = valid.size >= 10 and math.isfinite(estimate)
        return {"estimate": None if not math.isfinite(estimate) else estimate,
                "low": float(np.percentile(valid, tail)) if enough else None,
                "high": float(np.percentile(valid, 100 - tail)) if enough else None, "n": int(valid.size)}

    curve_rows = []
    for column, coverage in enumerate(coverages):
        figures = interval(estimate_curve[column], draws[:, column])
        curve_rows.append({"coverage": float(coverage), "auc": figures["estimate"], "low": figures["low"],
                           "high": figures["high"], "n": figures["n"]})
    difference = interval(estimate_flagged - estimate_other, draws[:, -1])
    result = {"coverage": curve_rows, "flagged_minus_unflagged": difference, "resamples": int(resamples),
              "confidence": float(confidence), "seed": int(seed),
              "method": f"stratified percentile bootstrap, {resamples} resamples, seed {seed}",
              "verdict": _verdict(difference)}
    if half is not None and 1.0 in coverages:
        full = coverages.index(1.0)
        result["all_minus_half"] = interval(estimate_curve[full] - estimate_curve[half], draws[:, full] - draws[:, half])
    return result
