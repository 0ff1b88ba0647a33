"""Paired comparison of classifier runs evaluated on the same test images.

For every pair of runs: the AUC difference with its 95 % CI and two-sided p-value from DeLong's
test (:mod:`melanet.evaluation.delong`), Holm-adjusted p-values over all pairs shown, and exact
McNemar tests on the paired decisions at each run's threshold, among malignant images
(sensitivity) and among benign images (specificity) separately.

Runs scored on different images (other ids or labels) are refused: a paired test on them means
nothing. ``comparison.json`` layout::

    {"runs": [{"run", "method", "auc", "threshold"}, ...], "n_images", "n_malignant", "confidence",
     "holm": "...", "pairs": [{"a", "b", "method_a", "method_b", "auc_a", "auc_b", "delta_auc",
     "ci_low", "ci_high", "p", "p_holm", "mcnemar": {"sensitivity": {...}, "specificity": {...}}}, ...]}
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from melanet.common import formatting
from melanet.runs import layout, runs
from melanet.evaluation import compare, delong, metrics, predictions


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given), each in [0, 1].

    The k-th smallest p (k = 0-based) is multiplied by (m - k); adjusted values are made
    non-decreasing in that order and capped at 1.
    """
    values = np.asarray(p_values, dtype=np.float64)
    if values.ndim != 1 or ((values < 0) | (values > 1)).any():
        raise ValueError(f"p-values must be a 1-D list in [0, 1], got {p_values!r}")
    order = np.argsort(values, kind="stable")
    count = len(values)
    scaled = values[order] * (count - np.arange(count))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty_like(values)
    adjusted[order] = adjusted_sorted
    return [float(value) for value in adjusted]


def mcnemar(correct_a: Any, correct_b: Any) -> dict[str, Any]:
    """Exact two-sided McNemar test on paired 0/1 outcomes (N,) of two classifiers.

    Only the discordant pairs count: ``a_only`` (a right, b wrong) and ``b_only``. Under the null
    each discordant pair is a fair coin, so p = P(Binomial(a_only + b_only, 1/2) as extreme), capped at 1.
    """
    first = np.asarray(correct_a, dtype=bool)
    second = np.asarray(correct_b, dtype=bool)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"paired outcomes must be 1-D of one length, got {first.shape} and {second.shape}")
    a_only = int(np.sum(first & ~second))
    b_only = int(np.sum(~first & second))
    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else min(1.0, 2 * float(stats.binom.cdf(min(a_only, b_only), discordant, 0.5)))
    return {
        "both_right": int(np.sum(first & second)),
        "a_only": a_only,
        "b_only": b_only,
        "both_wrong": int(np.sum(~first & ~second)),
        "p": p_value,
        "test": "exact McNemar (binomial on discordant pairs), two-sided",
    }


@dataclasses.dataclass
class ScoredRun:
    """One evaluated run's test predictions, aligned to a common image order."""

    run: str  # the folder as given
    method: str  # e.g. "MelaNet"
    ids: list[str]
    labels: np.ndarray  # (N,) int64 in {0, 1}
    probabilities: np.ndarray  # (N,) float64 in [0, 1]
    threshold: float  # malignant when prob_malignant > threshold


def load_scored_run(run_path: str | Path) -> ScoredRun:
    """Read ``predictions.csv`` and the threshold of ``metrics.json`` of an evaluated run."""
    path = Path(run_path)
    predictions_path = path / layout.PREDICTIONS_FILE
    if not predictions_path.is_file():
        raise runs.RunError(f"{path}: no {layout.PREDICTIONS_FILE}; evaluate it first with "
                            f"`melanet evaluate --run {path}`")
    ids, labels, probabilities = predictions.read_predictions(predictions_path)
    row = compare.load_row(path)
    return ScoredRun(str(run_path), str(row["method"]), ids, labels, probabilities,
                     float(row["threshold"] if row["threshold"] is not None else 0.5))


def align(scored: Sequence[ScoredRun]) -> list[ScoredRun]:
    """The runs with predictions in the first run's image order; refuses runs scored on other images."""
    reference = scored[0]
    reference_labels = dict(zip(reference.ids, reference.labels.tolist()))
    aligned = [reference]
    for other in scored[1:]:
        if set(other.ids) != set(reference.ids) or len(other.ids) != len(reference.ids):
            common = len(set(other.ids) & set(reference.ids))
            raise runs.RunError(
                f"{other.run} and {reference.run} were scored on different images ({len(other.ids)} and "
                f"{len(reference.ids)} test images, {common} in common); a paired comparison needs the same test images")
        position = {image_id: index for index, image_id in enumerate(other.ids)}
        order = np.array([position[image_id] for image_id in reference.ids], dtype=np.int64)
        labels = other.labels[order]
        mismatched = [image_id for image_id, label in zip(reference.ids, labels.tolist()) if reference_labels[image_id] != label]
        if mismatched:
            raise runs.RunError(f"{other.run} and {reference.run} give different labels to {len(mismatched)} test "
                                f"image(s), e.g. {mismatched[0]}; they were scored on different data")
        aligned.append(dataclasses.replace(other, ids=list(reference.ids), labels=labels,
                                           probabilities=other.probabilities[order]))
    return aligned


def compare_scored(
    scored: Sequence[ScoredRun], *, reference: int | None = None, confidence: float = 0.95
) -> dict[str, Any]:
    """The ``comparison.json`` mapping for two or more aligned runs.

    ``reference``: compare only that run against each other one (Holm over those pairs);
    default every pair.
    """
    if len(scored) < 2:
        raise runs.RunError("a paired comparison needs at least two evaluated runs")
    aligned = align(scored)
    labels = aligned[0].labels
    aucs, covariance = delong.auc_covariance(labels, np.vstack([item.probabilities for item in aligned]))
    if reference is None:
        index_pairs = list(itertools.combinations(range(len(aligned)), 2))
    else:
        index_pairs = [(reference, other) for other in range(len(aligned)) if other != reference]
    pairs = []
    for first, second in index_pairs:
        pair = {"a": aligned[first].run, "b": aligned[second].run,
                "method_a": aligned[first].method, "method_b": aligned[second].method}
        pair.update(delong.paired_difference(aucs, covariance, first, second, confidence))
        pair["mcnemar"] = _mcnemar_pair(aligned[first], aligned[second])
        pairs.append(pair)
    for pair, adjusted in zip(pairs, holm([pair["p"] for pair in pairs])):
        pair["p_holm"] = adjusted
    return {
        "runs": [{"run": item.run, "method": item.method, "auc": float(auc), "threshold": item.threshold}
                 for item, auc in zip(aligned, aucs)],
        "n_images": int(labels.size),
        "n_malignant": int(labels.sum()),
        "confidence": confidence,
        "test": "DeLong et al. (1988) for correlated ROC curves, fast algorithm of Sun & Xu (2014); delta = a - b",
        "holm": f"Holm step-down adjustment over the {len(pairs)} pair(s) shown",
        # the family the Holm correction runs over, named wherever a p-value is shown
        "family": "all pairs" if reference is None else "vs reference",
        "reference": None if reference is None else aligned[reference].run,
        "tests": len(pairs),
        "pairs": pairs,
    }


def _mcnemar_pair(first: ScoredRun, second: ScoredRun) -> dict[str, Any]:
    malignant = first.labels == 1
    correct_first = metrics.predicted_malignant(first.probabilities, first.threshold) == malignant
    correct_second = metrics.predicted_malignant(second.probabilities, second.threshold) == malignant
    return {
        "thresholds": [first.threshold, second.threshold],
        "sensitivity": mcnemar(correct_first[malignant], correct_second[malignant]),
        "specificity": mcnemar(correct_first[~malignant], correct_second[~malignant]),
    }


def without_predictions(paths: Sequence[str | Path]) -> list[Path]:
    """The runs among ``paths`` (results folders expanded) that have no ``predictions.csv`` to pair."""
    return [path for path in compare.expand_runs(paths) if not (Path(path) / layout.PREDICTIONS_FILE).is_file()]


def compare_runs(
    paths: Sequence[str | Path], *, reference: str | None = None, confidence: float = 0.95
) -> dict[str, Any]:
    """Load evaluated runs (a reproduce results folder stands for its four) and compare them in pairs.

    ``reference`` names one run (its folder path or folder name, or its method name) to compare
    against every other instead of all pairs.
    """
    scored = [load_scored_run(path) for path in compare.expand_runs(paths)]
    reference_index = None
    if reference is not None:
        matches = [index for index, item in enumerate(scored)
                   if reference in (item.run, Path(item.run).name, item.method)]
        if not matches:
            raise runs.RunError(f"--reference {reference!r} is none of the compared runs "
                                f"({', '.join(Path(item.run).name for item in scored)})")
        reference_index = matches[0]
    return compare_scored(scored, reference=reference_index, confidence=confidence)


def write_comparison(comparison: dict[str, Any], folder: str | Path) -> Path:
    """Write ``comparison.json`` (and ``comparison.md``) atomically into ``folder``."""
    folder = Path(folder)
    runs.atomic_write_json(folder / layout.COMPARISON_FILE, comparison)
    runs.atomic_write_text(folder / layout.COMPARISON_MARKDOWN_FILE, to_markdown(comparison))
    return folder / layout.COMPARISON_FILE


def family_text(comparison: dict[str, Any]) -> str:
    """"Holm over the 3 tests of the family 'vs reference'" (older files without a family: the pair count)."""
    family = comparison.get("family") or ("vs reference" if len(comparison["pairs"]) < 3 else "all pairs")
    tests = comparison.get("tests", len(comparison["pairs"]))
    return f"Holm over the {tests} tests of the family '{family}'"


def discordant_text(pair: dict[str, Any], part: str) -> str:
    """McNemar's direction: "A right, B wrong: 12; the reverse: 0" among malignant or benign images."""
    test = pair["mcnemar"][part]
    return f"{pair['method_a']} right, {pair['method_b']} wrong: {test['a_only']}; the reverse: {test['b_only']}"


def to_markdown(comparison: dict[str, Any]) -> str:
    """The pairs as a Markdown table: delta AUC [CI], DeLong p, Holm p, McNemar p for sens/spec with the
    discordant counts beside each McNemar p."""
    lines = ["| A | B | AUC A | AUC B | ΔAUC (A−B) [95% CI] | p (DeLong) | p (Holm) | McNemar sens: p (A only / B only) "
             "| McNemar spec: p (A only / B only) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for pair in comparison["pairs"]:
        sens, spec = pair["mcnemar"]["sensitivity"], pair["mcnemar"]["specificity"]
        lines.append(
            f"| {pair['method_a']} | {pair['method_b']} | {pair['auc_a']:.3f} | {pair['auc_b']:.3f} | "
            f"{pair['delta_auc']:+.3f} [{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}] | {formatting.p_cell(pair['p'])} | "
            f"{formatting.p_cell(pair['p_holm'])} | {formatting.p_cell(sens['p'])} ({sens['a_only']} / {sens['b_only']}) | "
            f"{formatting.p_cell(spec['p'])} ({spec['a_only']} / {spec['b_only']}) |")
    lines += ["", f"{comparison['n_images']} test images ({comparison['n_malignant']} malignant), the same for every "
              f"run. {comparison['test']}. {family_text(comparison)}. McNemar: exact, on the decisions at each run's "
              "threshold, among malignant (sensitivity) and benign (specificity) images; 'A only' counts the images "
              "A classified right and B wrong, 'B only' the reverse."]
    for pair in comparison["pairs"]:
        lines.append(f"- {pair['method_a']} vs {pair['method_b']}: melanomas: {discordant_text(pair, 'sensitivity')} "
                     f"(McNemar p {formatting.p_cell(pair['mcnemar']['sensitivity']['p'])}); benign: "
                     f"{discordant_text(pair, 'specificity')} (p {formatting.p_cell(pair['mcnemar']['specificity']['p'])})")
    return "\n".join(lines) + "\n"
