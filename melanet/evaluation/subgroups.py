"""Performance by subgroup (sex, age band, anatomic site) where a data folder records them: ``subgroups.json``.

For each variable the layout records (:func:`melanet.data.metadata.variables_of`) and each of its groups
(``unknown`` where the metadata is missing): n, malignant and benign counts, the AUC with its DeLong
interval (null with a ``auc_reason`` when the group holds one class), and sensitivity and specificity at
the run's threshold with Wilson intervals. A group with fewer than ``MIN_PER_CLASS`` images of either class
is kept and flagged ``small``: its figures are shown, not trusted.

Whether the AUC differs across the groups of a variable: a chi-square test of the independent groups' AUCs
with their DeLong variances (Cochran's Q: Q = sum_g (AUC_g - AUC_w)^2 / var_g, AUC_w the inverse-variance
weighted mean, df = G - 1), over the known groups (not ``unknown``) that have an AUC and a positive
variance (a perfectly separated group has variance 0 and no weight to give). Images of one patient are
treated as independent.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from melanet.runs import layout, runs
from melanet.data import metadata as metadata_module
from melanet.evaluation import delong, metrics

MIN_PER_CLASS = 10
UNKNOWN = "unknown"
AGE_BANDS = ("< 30", "30-59", ">= 60", UNKNOWN)
SEX_ORDER = ("female", "male")
SUBGROUPS_FILE = layout.SUBGROUPS_FILE


def age_band(age: float | None) -> str:
    """Years -> '< 30', '30-59', '>= 60'; None -> 'unknown'."""
    if age is None:
        return UNKNOWN
    return "< 30" if age < 30 else "30-59" if age < 60 else ">= 60"


def group_name(variable: str, entry: metadata_module.ImageMetadata | None) -> str:
    """The group of one image for ``variable`` ('sex', 'age' or 'site')."""
    if variable == "age":
        return age_band(entry.age if entry else None)
    if variable not in ("sex", "site"):
        raise ValueError(f"unknown subgroup variable {variable!r}; expected one of {', '.join(metadata_module.VARIABLES)}")
    value = getattr(entry, variable) if entry else None
    return value if value else UNKNOWN


def _order(variable: str, names: set[str]) -> list[str]:
    if variable == "age":
        return [band for band in AGE_BANDS if band in names]
    known = [name for name in SEX_ORDER if name in names] if variable == "sex" else []
    rest = sorted(name for name in names if name not in known and name != UNKNOWN)
    return known + rest + ([UNKNOWN] if UNKNOWN in names else [])


def _proportion(successes: int, trials: int, confidence: float) -> dict[str, Any]:
    low, high = metrics.wilson_interval(successes, trials, confidence)
    return {"value": successes / trials if trials else None, "ci_low": low, "ci_high": high,
            "successes": successes, "trials": trials}


def group_figures(labels: np.ndarray, probabilities: np.ndarray, threshold: float,
                  confidence: float = 0.95) -> dict[str, Any]:
    """Figures of one group: labels (n,) in {0, 1}, probabilities (n,) in [0, 1]."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    malignant, benign = int(labels.sum()), int(len(labels) - labels.sum())
    counts = metrics.confusion_counts(labels, probabilities, threshold) if len(labels) else {"tp": 0, "fn": 0, "tn": 0, "fp": 0}
    figures: dict[str, Any] = {
        "n": int(len(labels)), "n_malignant": malignant, "n_benign": benign,
        "auc": None, "ci_low": None, "ci_high": None, "variance": None,
        "sensitivity": _proportion(counts["tp"], counts["tp"] + counts["fn"], confidence),
        "specificity": _proportion(counts["tn"], counts["tn"] + counts["fp"], confidence),
        "small": min(malignant, benign) < MIN_PER_CLASS,
    }
    if malignant == 0 or benign == 0:
        figures["auc_reason"] = f"only {'benign' if malignant == 0 else 'malignant'} images: no AUC"
        return figures
    aucs, covariance = delong.auc_covariance(labels, probabilities[None, :])
    variance = max(float(covariance[0, 0]), 0.0)
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(variance)
    figures.update(auc=float(aucs[0]), variance=variance, ci_low=max(0.0, float(aucs[0]) - half),
                   ci_high=min(1.0, float(aucs[0]) + half))
    return figures


def heterogeneity(groups: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Chi-square test that the AUCs of independent groups are equal (see the module docstring).

    ``groups``: name -> figures with ``auc`` and ``variance`` (``group_figures``). Returns ``chi_square``,
    ``df``, ``p``, ``pooled_auc`` and the ``groups`` used, or a ``reason`` (and null figures) with under 2.
    """
    used = {name: figures for name, figures in groups.items() if name != UNKNOWN
            and figures.get("auc") is not None and (figures.get("variance") or 0.0) > 0.0}
    left_out = sorted(name for name in groups if name not in used)
    result: dict[str, Any] = {"method": "chi-square (Cochran's Q) of independent AUCs with DeLong variances",
                              "groups": list(used), "left_out": left_out,
                              "chi_square": None, "df": None, "p": None, "pooled_auc": None}
    if len(used) < 2:
        result["reason"] = (f"{len(used)} group(s) with an AUC and a positive variance (unknown, one-class and "
                            "perfectly separated groups are left out); the test needs 2")
        return result
    aucs = np.array([figures["auc"] for figures in used.values()])
    weights = 1.0 / np.array([figures["variance"] for figures in used.values()])
    pooled = float(np.sum(weights * aucs) / np.sum(weights))
    chi_square = float(np.sum(weights * (aucs - pooled) ** 2))
    result.update(chi_square=chi_square, df=len(used) - 1, p=float(stats.chi2.sf(chi_square, len(used) - 1)),
                  pooled_auc=pooled)
    return result


def subgroup_report(ids: Sequence[str], labels: np.ndarray, probabilities: np.ndarray,
                    metadata: Mapping[str, metadata_module.ImageMetadata], variables: Sequence[str], *,
                    threshold: float, confidence: float = 0.95) -> dict[str, Any]:
    """``subgroups.json``'s ``variables``: per variable its ordered ``groups`` (each with ``name``) and ``test``."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    report: dict[str, Any] = {}
    for variable in variables:
        names = np.array([group_name(variable, metadata.get(image_id)) for image_id in ids], dtype=object)
        groups = {name: group_figures(labels[names == name], probabilities[names == name], threshold, confidence)
                  for name in _order(variable, set(names))}
        report[variable] = {"groups": [{"name": name, **figures} for name, figures in groups.items()],
                            "test": heterogeneity(groups)}
    return report


def write(target: str | Path, data_root: str | Path, split: str, ids: Sequence[str], labels: np.ndarray,
          probabilities: np.ndarray, *, threshold: float, confidence: float = 0.95) -> Path | None:
    """Write ``target/subgroups.json`` when the data folder records subgroup variables; else remove an
    earlier one and return None."""
    path = Path(target) / SUBGROUPS_FILE
    data_layout, found = metadata_module.read_metadata(data_root, split)
    variables = metadata_module.variables_of(data_layout)
    if not variables or not found:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    summary = {
        "data_root": str(data_root), "split": split, "layout": data_layout, "n": len(ids),
        "n_with_metadata": sum(image_id in found for image_id in ids),
        "threshold": float(threshold), "confidence": confidence, "min_per_class": MIN_PER_CLASS,
        "reading": f"a group with fewer than {MIN_PER_CLASS} images of either class is flagged small: shown, not trusted",
        "variables": subgroup_report(ids, labels, probabilities, found, variables, threshold=threshold,
                                     confidence=confidence),
        "created_at": runs.now_iso(),
    }
    runs.atomic_write_json(path, metrics._json_safe(summary))
    return path


def read(path: str | Path) -> dict[str, Any] | str | None:
    """A ``subgroups.json`` as a dict; None when there is none; a one-line problem when it is unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        summary = runs.read_json(path)
    except (OSError, runs.RunError) as error:
        return str(error)
    if not isinstance(summary, dict) or not isinstance(summary.get("variables"), dict):
        return f"{path}: not a subgroups file (no 'variables')"
    return summary
