"""Binary classification metrics with confidence intervals (pure numpy / scipy / scikit-learn).

Conventions used everywhere in MelaNet:

- label 1 = malignant (the positive class), 0 = benign;
- an image is predicted malignant when ``prob_malignant > threshold``. At 0.5 this is what the
  argmax of a two-way softmax and the official ``isic-challenge-scoring`` package (``> 0.5``) do;
- sensitivity = TP / (TP + FN) (recall of melanoma), specificity = TN / (TN + FP),
  PPV = TP / (TP + FP), NPV = TN / (TN + FN). The paper's "sensitivity" is the NPV (see
  ``paper_compatibility``); it is never reported here under the name "sensitivity".

A ratio whose denominator is zero is ``nan`` (written as JSON ``null``), never a made-up 0 or 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as sklearn_metrics

PAPER_NOTE = (
    "The MelaNet paper's Table 1 'sensitivity' is TN/(TN+FN), the negative predictive value, and its "
    "'specificity' is the positive predictive value: the authors' code computes "
    "cm[0,0]/(cm[0,0]+cm[1,0]) on sklearn's confusion matrix. These two fields reproduce those figures "
    "for comparison with the paper only; the true sensitivity and specificity are the top-level "
    "'sensitivity' and 'specificity'."
)


def _as_arrays(labels: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to ((N,) int64 in {0, 1}, (N,) float64 in [0, 1])."""
    labels_array = np.asarray(labels)
    probabilities_array = np.asarray(probabilities, dtype=np.float64)
    if labels_array.ndim != 1 or probabilities_array.ndim != 1:
        raise ValueError(
            f"labels and probabilities must be 1-D, got shapes {labels_array.shape} and {probabilities_array.shape}"
        )
    if labels_array.shape != probabilities_array.shape:
        raise ValueError(
            f"labels ({labels_array.shape[0]}) and probabilities ({probabilities_array.shape[0]}) differ in length"
        )
    if labels_array.size and not np.isin(labels_array, (0, 1)).all():
        raise ValueError(f"labels must be 0 (benign) or 1 (malignant), got values {np.unique(labels_array)[:5]}")
    if not np.isfinite(probabilities_array).all():
        raise ValueError("probabilities contain NaN or infinity")
    if probabilities_array.size and (probabilities_array.min() < 0 or probabilities_array.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    return labels_array.astype(np.int64), probabilities_array


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else math.nan


def predicted_malignant(probabilities: Any, threshold: float = 0.5) -> Any:
    """MelaNet's one decision rule: malignant when ``prob_malignant > threshold`` (strictly).

    ``probabilities`` a float or an (N,) array in [0, 1] -> a bool or an (N,) bool array. Every place
    that turns a probability into a decision (metrics, Grad-CAM outcomes, the Predict page) calls this.
    """
    if np.ndim(probabilities) == 0:
        return bool(float(probabilities) > threshold)
    return np.asarray(probabilities, dtype=np.float64) > threshold


def outcomes(labels: Any, probabilities: Any, threshold: float = 0.5) -> np.ndarray:
    """Outcome per image: (N,) labels 0/1 and (N,) malignant probabilities -> (N,) 'TP'/'FP'/'TN'/'FN'."""
    actual = np.asarray(labels).astype(int) == 1
    predicted = predicted_malignant(np.asarray(probabilities, dtype=np.float64).reshape(-1), threshold)
    result = np.where(actual, np.where(predicted, "TP", "FN"), np.where(predicted, "FP", "TN"))
    return result.astype(object)


def confusion_counts(labels: Any, probabilities: Any, threshold: float = 0.5) -> dict[str, int]:
    """TP, FP, TN, FN for ``labels`` (N,) in {0, 1} and ``probabilities`` (N,) in [0, 1].

    An image counts as predicted malignant when its probability is strictly above ``threshold``.
    """
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    predicted = predicted_malignant(probabilities_array, threshold)
    actual = labels_array == 1
    return {
        "tp": int(np.sum(predicted & actual)),
        "fp": int(np.sum(predicted & ~actual)),
        "tn": int(np.sum(~predicted & ~actual)),
        "fn": int(np.sum(~predicted & actual)),
    }


def rates(counts: dict[str, int]) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV, F1, accuracy, balanced accuracy from confusion counts."""
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    return {
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": (sensitivity + specificity) / 2,
    }


def auc(labels: Any, probabilities: Any) -> float:
    """Area under the ROC curve (ties count one half); ``nan`` when only one class is present."""
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    if labels_array.min(initial=0) == labels_array.max(initial=0):
        return math.nan
    return float(sklearn_metrics.roc_auc_score(labels_array, probabilities_array))


def roc_points(labels: Any, probabilities: Any) -> dict[str, list]:
    """ROC curve as lists ``fpr``, ``tpr``, ``thresholds`` (scikit-learn ``roc_curve``).

    Point k counts ``prob_malignant >= thresholds[k]`` as malignant (scikit-learn's rule).
    ``thresholds[0]`` is ``None``: nothing predicted malignant, the (0, 0) corner.
    """
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    if labels_array.min(initial=0) == labels_array.max(initial=0):
        return {"fpr": [], "tpr": [], "thresholds": []}
    fpr, tpr, thresholds = sklearn_metrics.roc_curve(labels_array, probabilities_array, drop_intermediate=True)
    return {
        "fpr": [round(float(value), 6) for value in fpr],
        "tpr": [round(float(value), 6) for value in tpr],
        "thresholds": [None if not np.isfinite(value) else round(float(value), 6) for value in thresholds],
        "rule": "point k counts prob_malignant >= thresholds[k] as malignant; thresholds[0] = null predicts none",
    }


def _z_value(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / trials``.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is sensible at 0 or ``trials``
    successes. Returns (nan, nan) for zero trials.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return math.nan, math.nan
    z = _z_value(confidence)
    proportion = successes / trials
    denominator = 1 + z * z / trials
    centre = (proportion + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(proportion * (1 - proportion) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def _rank_auc(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """AUC of each row of ``probabilities`` (B, N) with row labels (B, N) (Mann-Whitney U with mid-ranks)."""
    ranks = stats.rankdata(probabilities, axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sum = np.where(labels == 1, ranks, 0.0).sum(axis=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def bootstrap_auc_interval(
    labels: Any,
    probabilities: Any,
    *,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling within each class (stratified).

    Resampling benign and malignant images separately keeps both classes in every resample, so no
    resample is dropped and the interval is a deterministic function of ``seed``.
    Returns (nan, nan) when a class is missing.
    """
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    if samples < 1:
        raise ValueError(f"bootstrap samples must be >= 1, got {samples}")
    _z_value(confidence)
    positive_scores = probabilities_array[labels_array == 1]
    negative_scores = probabilities_array[labels_array == 0]
    if positive_scores.size == 0 or negative_scores.size == 0:
        return math.nan, math.nan
    generator = np.random.default_rng(seed)
    row_labels = np.concatenate([np.ones(positive_scores.size), np.zeros(negative_scores.size)])
    aucs = []
    for start in range(0, samples, chunk):
        count = min(chunk, samples - start)
        positive_draw = positive_scores[generator.integers(0, positive_scores.size, (count, positive_scores.size))]
        negative_draw = negative_scores[generator.integers(0, negative_scores.size, (count, negative_scores.size))]
        scores = np.concatenate([positive_draw, negative_draw], axis=1)
        aucs.append(_rank_auc(np.broadcast_to(row_labels, scores.shape), scores))
    all_aucs = np.concatenate(aucs)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(all_aucs, [tail, 100 - tail])
    return float(low), float(high)


def classification_metrics(labels: Any, probabilities: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Every figure at one threshold: auc, rates, counts, n, threshold (flat mapping)."""
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    counts = confusion_counts(labels_array, probabilities_array, threshold)
    return {
        "auc": auc(labels_array, probabilities_array),
        **rates(counts),
        **counts,
        "n": int(labels_array.size),
        "n_malignant": int(labels_array.sum()),
        "n_benign": int(labels_array.size - labels_array.sum()),
        "threshold": float(threshold),
    }


def proportion_intervals(counts: dict[str, int], confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    """Wilson intervals for sensitivity, specificity, PPV, NPV and accuracy."""
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    fractions = {
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
        "accuracy": (tp + tn, tp + tn + fp + fn),
    }
    intervals = {}
    for name, (successes, trials) in fractions.items():
        low, high = wilson_interval(successes, trials, confidence)
        intervals[name] = {"low": low, "high": high, "method": "wilson"}
    return intervals


def select_threshold(labels: Any, probabilities: Any, target_sensitivity: float) -> dict[str, Any]:
    """The highest threshold whose sensitivity on (validation) ``labels`` reaches ``target_sensitivity``.

    Candidate thresholds lie halfway between consecutive distinct scores (and halfway between the
    lowest score and 0), so the chosen one does not sit exactly on a validation image. Sensitivity
    falls as the threshold rises, so the highest qualifying threshold gives the best specificity
    at the required sensitivity. Raises ValueError when there is no malignant image.
    """
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    if labels_array.sum() == 0:
        raise ValueError("cannot choose a threshold for a target sensitivity: no malignant image")
    distinct = np.unique(probabilities_array)
    lower_neighbours = np.concatenate([[0.0], distinct[:-1]])
    candidates = (distinct + lower_neighbours) / 2
    positive_scores = probabilities_array[labels_array == 1]
    # sensitivity at each candidate, highest candidate first
    candidates = candidates[::-1]
    sensitivities = (positive_scores[None, :] > candidates[:, None]).mean(axis=1)
    reaching = np.flatnonzero(sensitivities >= target_sensitivity - 1e-12)
    if reaching.size == 0:
        # only possible when a malignant image scores exactly 0: every image is then predicted malignant
        chosen = 0.0
        achieved = float((positive_scores > 0).mean())
    else:
        chosen = float(candidates[reaching[0]])
        achieved = float(sensitivities[reaching[0]])
    counts = confusion_counts(labels_array, probabilities_array, chosen)
    return {
        "threshold": chosen,
        "target_sensitivity": float(target_sensitivity),
        "sensitivity": achieved,
        "specificity": rates(counts)["specificity"],
        "n": int(labels_array.size),
        "n_malignant": int(labels_array.sum()),
    }


def paper_compatibility(counts: dict[str, int]) -> dict[str, Any]:
    """The paper's mislabelled figures, under names that say what they are."""
    values = rates(counts)
    return {
        "paper_sensitivity_is_npv": values["npv"],
        "paper_specificity_is_ppv": values["ppv"],
        "note": PAPER_NOTE,
    }


def full_report(
    labels: Any,
    probabilities: Any,
    *,
    threshold: float = 0.5,
    confidence: float = 0.95,
    bootstrap_samples: int = 2000,
    seed: int = 0,
    validation_labels: Any = None,
    validation_probabilities: Any = None,
    target_sensitivity: float = 0.8,
) -> dict[str, Any]:
    """The whole ``metrics.json`` body for test ``labels`` (N,) and ``probabilities`` (N,) in [0, 1].

    Top level: the figures at ``threshold``; then ``confidence_intervals``, ``roc``,
    ``operating_point`` (figures at the threshold chosen on the validation predictions, or a
    reason why there is none) and ``paper_compatibility``.
    """
    labels_array, probabilities_array = _as_arrays(labels, probabilities)
    report = classification_metrics(labels_array, probabilities_array, threshold)
    report["decision_rule"] = "malignant when prob_malignant > threshold"
    report["confidence_intervals"] = _intervals(
        labels_array, probabilities_array, report, confidence, bootstrap_samples, seed
    )
    report["roc"] = roc_points(labels_array, probabilities_array)
    report["operating_point"] = _operating_point(
        labels_array, probabilities_array, validation_labels, validation_probabilities,
        target_sensitivity=target_sensitivity, confidence=confidence,
    )
    report["paper_compatibility"] = paper_compatibility(report)
    return _json_safe(report)


def _intervals(
    labels: np.ndarray,
    probabilities: np.ndarray,
    figures: dict[str, Any],
    confidence: float,
    bootstrap_samples: int,
    seed: int,
) -> dict[str, Any]:
    low, high = bootstrap_auc_interval(labels, probabilities, samples=bootstrap_samples, confidence=confidence, seed=seed)
    intervals: dict[str, Any] = {
        "level": confidence,
        "auc": {"low": low, "high": high, "method": f"stratified percentile bootstrap, {bootstrap_samples} resamples, seed {seed}"},
    }
    intervals.update(proportion_intervals(figures, confidence))
    return intervals


def _operating_point(
    labels: np.ndarray,
    probabilities: np.ndarray,
    validation_labels: Any,
    validation_probabilities: Any,
    *,
    target_sensitivity: float,
    confidence: float,
) -> dict[str, Any]:
    if validation_labels is None or validation_probabilities is None:
        return {"available": False, "reason": "no validation predictions (validation_predictions.csv) to choose a threshold on"}
    try:
        selection = select_threshold(validation_labels, validation_probabilities, target_sensitivity)
    except ValueError as error:
        return {"available": False, "reason": str(error)}
    return {
        "available": True,
        **figures_at(labels, probabilities, selection["threshold"], confidence),
        "chosen_on": "validation split (carved from the training set), never the test set",
        "rule": f"highest threshold whose validation sensitivity reaches {target_sensitivity:g}",
        "validation": selection,
    }


def figures_at(labels: Any, probabilities: Any, threshold: float, confidence: float = 0.95) -> dict[str, Any]:
    """The test figures at one chosen threshold: rates, counts and their Wilson ``confidence_intervals``
    (no AUC: it does not depend on the threshold). Shared by ``operating_point`` and ``operating_points``."""
    figures = classification_metrics(labels, probabilities, threshold)
    figures["confidence_intervals"] = {"level": confidence, **proportion_intervals(figures, confidence)}
    figures.pop("auc")
    return figures


def _json_safe(value: Any) -> Any:
    """Replace nan/inf with None and numpy scalars with Python numbers, recursively."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value

