"""Triage operating points: three thresholds set on the validation predictions, reported on the test images.

- ``rule_out``: the highest threshold whose validation sensitivity reaches ``evaluation.rule_out_sensitivity``
  (0.95): an image at or below it is "ruled out" (:func:`melanet.evaluation.metrics.select_threshold`, the
  rule of the single ``operating_point`` too);
- ``balanced``: the threshold that maximises Youden's J = sensitivity + specificity - 1 on validation
  (the lowest one where several tie: a missed melanoma costs more than a false alarm);
- ``rule_in``: the lowest threshold whose validation specificity reaches ``evaluation.rule_in_specificity``
  (0.95): an image above it is "ruled in".

Candidate thresholds lie halfway between consecutive distinct validation scores (and between the lowest
and 0, the highest and 1), so no threshold sits on a validation image. The test predictions are never
looked at to choose a threshold: they only receive the figures. Decisions follow the package's one rule,
malignant when ``prob_malignant > threshold``; :mod:`melanet.evaluation.decision` puts one image's
probability into words.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from melanet.evaluation import metrics, prevalence

NAMES = ("rule_out", "balanced", "rule_in")
CHOSEN_ON = "validation split (carved from the training set), never the test set"


def candidate_thresholds(probabilities: Any) -> np.ndarray:
    """Sorted (K,) thresholds halfway between the distinct scores of (N,) ``probabilities``, plus 0-side and 1-side."""
    distinct = np.unique(np.asarray(probabilities, dtype=np.float64))
    if distinct.size == 0:
        return np.zeros(0)
    return np.concatenate([[distinct[0] / 2], (distinct[:-1] + distinct[1:]) / 2, [(distinct[-1] + 1) / 2]])


def _rates_at(labels: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K,) sensitivities and (K,) specificities at each threshold (malignant when p > threshold)."""
    predicted = metrics.predicted_malignant(probabilities[None, :], thresholds[:, None]) \
        if thresholds.size else np.zeros((0, probabilities.size), bool)
    positives, negatives = labels == 1, labels == 0

    def share(called: np.ndarray) -> np.ndarray:  # nan, not a warning, for a class with no image
        return called.mean(axis=1) if called.shape[1] else np.full(called.shape[0], np.nan)

    return share(predicted[:, positives]), share(~predicted[:, negatives])


def select_rule_in(labels: Any, probabilities: Any, target_specificity: float) -> dict[str, Any]:
    """The lowest threshold whose specificity on (validation) ``labels`` reaches ``target_specificity``.

    Specificity rises with the threshold, so the lowest qualifying one keeps the most sensitivity.
    Raises ValueError when there is no benign image.
    """
    labels_array, probabilities_array = metrics._as_arrays(labels, probabilities)
    if not 0 < target_specificity <= 1:
        raise ValueError(f"target_specificity must be in (0, 1], got {target_specificity}")
    if labels_array.size == labels_array.sum():
        raise ValueError("cannot choose a threshold for a target specificity: no benign image")
    candidates = candidate_thresholds(probabilities_array)
    sensitivities, specificities = _rates_at(labels_array, probabilities_array, candidates)
    chosen = int(np.flatnonzero(specificities >= target_specificity - 1e-12)[0])  # the top candidate has 1.0
    return {"threshold": float(candidates[chosen]), "target_specificity": float(target_specificity),
            "sensitivity": float(sensitivities[chosen]), "specificity": float(specificities[chosen]),
            "n": int(labels_array.size), "n_malignant": int(labels_array.sum())}


def select_youden(labels: Any, probabilities: Any) -> dict[str, Any]:
    """The threshold maximising sensitivity + specificity - 1 on (validation) ``labels`` (lowest among ties).

    Raises ValueError unless both classes are present.
    """
    labels_array, probabilities_array = metrics._as_arrays(labels, probabilities)
    if labels_array.sum() in (0, labels_array.size):
        raise ValueError("cannot choose a Youden threshold: the validation predictions hold one class only")
    candidates = candidate_thresholds(probabilities_array)
    sensitivities, specificities = _rates_at(labels_array, probabilities_array, candidates)
    youden = sensitivities + specificities - 1
    chosen = int(np.flatnonzero(youden >= youden.max() - 1e-12)[0])
    return {"threshold": float(candidates[chosen]), "youden_j": float(youden[chosen]),
            "sensitivity": float(sensitivities[chosen]), "specificity": float(specificities[chosen]),
            "n": int(labels_array.size), "n_malignant": int(labels_array.sum())}


def _selections(validation_labels: Any, validation_probabilities: Any, rule_out_sensitivity: float,
                rule_in_specificity: float) -> dict[str, tuple[str, Any]]:
    """Each point's (rule, selection or ValueError) on the validation predictions."""
    choosers = {
        "rule_out": (f"highest threshold whose validation sensitivity reaches {rule_out_sensitivity:g}",
                     lambda: metrics.select_threshold(validation_labels, validation_probabilities, rule_out_sensitivity)),
        "balanced": ("threshold of the largest Youden J (sensitivity + specificity - 1) on validation; lowest among ties",
                     lambda: select_youden(validation_labels, validation_probabilities)),
        "rule_in": (f"lowest threshold whose validation specificity reaches {rule_in_specificity:g}",
                    lambda: select_rule_in(validation_labels, validation_probabilities, rule_in_specificity)),
    }
    chosen = {}
    for name, (rule, choose) in choosers.items():
        try:
            chosen[name] = (rule, choose())
        except ValueError as error:
            chosen[name] = (rule, error)
    return chosen


def report(
    labels: Any,
    probabilities: Any,
    validation_labels: Any,
    validation_probabilities: Any,
    *,
    rule_out_sensitivity: float = 0.95,
    rule_in_specificity: float = 0.95,
    confidence: float = 0.95,
    stated_prevalence: float = prevalence.ISIC_2016_TEST_PREVALENCE,
    validation_file: str | None = None,
) -> dict[str, Any]:
    """``metrics.json``'s ``operating_points``: {rule_out, balanced, rule_in}, each chosen on the validation
    arrays (M,) and scored on the test ``labels`` / ``probabilities`` (N,) in [0, 1].

    An entry holds the test figures at its threshold (as ``operating_point``: sensitivity, specificity,
    PPV, NPV, counts, Wilson ``confidence_intervals``), ``prevalence_adjusted`` (PPV/NPV at
    ``stated_prevalence``), ``validation`` (what it reached there), ``rule`` and ``chosen_on``; or
    ``available: false`` with the ``reason`` (no validation predictions, one class there).
    """
    labels_array, probabilities_array = metrics._as_arrays(labels, probabilities)
    if validation_labels is None or validation_probabilities is None:
        reason = "no validation predictions (validation_predictions.csv) to choose a threshold on; never chosen on test"
        return {name: {"available": False, "reason": reason} for name in NAMES}
    block = {}
    for name, (rule, selection) in _selections(validation_labels, validation_probabilities, rule_out_sensitivity,
                                               rule_in_specificity).items():
        if isinstance(selection, ValueError):
            block[name] = {"available": False, "rule": rule, "reason": f"{selection}; never chosen on test"}
            continue
        if validation_file is not None:
            selection["file"] = validation_file
        figures = metrics.figures_at(labels_array, probabilities_array, selection["threshold"], confidence)
        block[name] = {"available": True, **figures, "prevalence_adjusted": prevalence.adjusted(figures, stated_prevalence),
                       "rule": rule, "chosen_on": CHOSEN_ON, "validation": selection}
    return metrics._json_safe(block)
