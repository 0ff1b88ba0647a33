"""Calibration: does a predicted 0.8 mean 8 in 10 lesions are melanoma?

- ``brier``: mean squared error of the malignant probability, in [0, 1] (lower is better);
- ``expected_calibration_error``: the count-weighted mean |observed fraction - mean probability| over
  ``RELIABILITY_BINS`` equal-width bins of the probability (the last bin includes 1.0);
- ``reliability_bins``: the reliability diagram's points, with the count per bin;
- ``fit_temperature`` / ``fit_platt``: a monotone map fitted on the *validation* predictions only
  (temperature: p' = sigmoid(logit(p) / T), T > 0; Platt: p' = sigmoid(a logit(p) + b), a > 0),
  then applied to the test probabilities. Both keep the order of the images, so the AUC is unchanged.

``calibration_report`` gathers all of it, with percentile bootstrap intervals for Brier and ECE.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize

from melanet.common import choices

RELIABILITY_BINS = 10
CALIBRATION_METHODS = choices.CALIBRATIONS  # none | temperature | platt (evaluation.calibration)
# probabilities are clipped to [EPSILON, 1 - EPSILON] before the logit; saved predictions carry 8 decimals
EPSILON = 1e-12


def _arrays(labels: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    labels_array = np.asarray(labels, dtype=np.float64).reshape(-1)
    probabilities_array = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if labels_array.shape != probabilities_array.shape:
        raise ValueError(f"labels ({labels_array.size}) and probabilities ({probabilities_array.size}) differ in length")
    if probabilities_array.size and (probabilities_array.min() < 0 or probabilities_array.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    return labels_array, probabilities_array


def brier(labels: Any, probabilities: Any) -> float:
    """Mean of (p - y)^2 for labels (N,) in {0, 1} and probabilities (N,) in [0, 1]; nan for N = 0."""
    labels_array, probabilities_array = _arrays(labels, probabilities)
    return float(np.mean((probabilities_array - labels_array) ** 2)) if labels_array.size else math.nan


def _bin_index(probabilities: np.ndarray, bins: int) -> np.ndarray:
    """Bin k holds [k / bins, (k + 1) / bins); 1.0 goes to the last bin."""
    return np.minimum((probabilities * bins).astype(np.int64), bins - 1)


def reliability_bins(labels: Any, probabilities: Any, bins: int = RELIABILITY_BINS) -> list[dict[str, Any]]:
    """One entry per equal-width bin: ``low``, ``high``, ``count``, ``mean_probability``, ``observed``
    (fraction malignant); the last two are None for an empty bin."""
    labels_array, probabilities_array = _arrays(labels, probabilities)
    index = _bin_index(probabilities_array, bins)
    counts = np.bincount(index, minlength=bins)
    probability_sums = np.bincount(index, weights=probabilities_array, minlength=bins)
    label_sums = np.bincount(index, weights=labels_array, minlength=bins)
    return [{
        "low": round(k / bins, 6),
        "high": round((k + 1) / bins, 6),
        "count": int(counts[k]),
        "mean_probability": float(probability_sums[k] / counts[k]) if counts[k] else None,
        "observed": float(label_sums[k] / counts[k]) if counts[k] else None,
    } for k in range(bins)]


def expected_calibration_error(labels: Any, probabilities: Any, bins: int = RELIABILITY_BINS) -> float:
    """Sum over bins of (count / N) * |observed - mean probability|, in [0, 1]; nan for N = 0."""
    labels_array, probabilities_array = _arrays(labels, probabilities)
    if not labels_array.size:
        return math.nan
    return float(_ece_rows(labels_array[None, :], probabilities_array[None, :], bins)[0])


def _ece_rows(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> np.ndarray:
    """ECE of each row of (B, N) arrays, vectorised for the bootstrap."""
    rows, count = labels.shape
    # one bincount over all rows: row r's bin k becomes slot r * bins + k
    index = _bin_index(probabilities, bins) + bins * np.arange(rows)[:, None]
    gaps = np.bincount(index.ravel(), weights=(labels - probabilities).ravel(), minlength=rows * bins)
    return np.abs(gaps.reshape(rows, bins)).sum(axis=1) / count


def bootstrap_intervals(
    labels: Any, probabilities: Any, *, samples: int = 2000, confidence: float = 0.95, seed: int = 0,
    bins: int = RELIABILITY_BINS, chunk: int = 250,
) -> dict[str, dict[str, Any]]:
    """Percentile bootstrap intervals of Brier and ECE, resampling images with replacement (seeded)."""
    labels_array, probabilities_array = _arrays(labels, probabilities)
    if not 0 < confidence < 1 or samples < 1:
        raise ValueError(f"need confidence in (0, 1) and samples >= 1, got {confidence}, {samples}")
    if not labels_array.size:
        return {name: {"low": None, "high": None} for name in ("brier", "ece")}
    generator = np.random.default_rng(seed)
    brier_values, ece_values = [], []
    for start in range(0, samples, chunk):
        draw = generator.integers(0, labels_array.size, (min(chunk, samples - start), labels_array.size))
        drawn_labels, drawn_probabilities = labels_array[draw], probabilities_array[draw]
        brier_values.append(np.mean((drawn_probabilities - drawn_labels) ** 2, axis=1))
        ece_values.append(_ece_rows(drawn_labels, drawn_probabilities, bins))
    tail = (1 - confidence) / 2 * 100
    method = f"percentile bootstrap over images, {samples} resamples, seed {seed}"
    intervals = {}
    for name, values in (("brier", brier_values), ("ece", ece_values)):
        low, high = np.percentile(np.concatenate(values), [tail, 100 - tail])
        intervals[name] = {"low": float(low), "high": float(high), "method": method}
    return intervals


def logit(probabilities: Any) -> np.ndarray:
    """log(p / (1 - p)) of probabilities clipped to [EPSILON, 1 - EPSILON]."""
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))  # overflow-free


def _negative_log_likelihood(labels: np.ndarray, logits: np.ndarray) -> float:
    # log(1 + e^z) - y z, stable for large |z|
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def fit_temperature(labels: Any, probabilities: Any) -> float:
    """The temperature T > 0 minimising the log-loss of sigmoid(logit(p) / T) on (validation) data."""
    labels_array, probabilities_array = _arrays(labels, probabilities)
    logits = logit(probabilities_array)
    result = optimize.minimize_scalar(
        lambda log_temperature: _negative_log_likelihood(labels_array, logits / math.exp(log_temperature)),
        bounds=(math.log(1e-2), math.log(1e2)), method="bounded", options={"xatol": 1e-8})
    return float(math.exp(result.x))


def fit_platt(labels: Any, probabilities: Any) -> tuple[float, float]:
    """(a > 0, b) minimising the log-loss of sigmoid(a logit(p) + b); a is kept positive so order is kept."""
    labels_array, probabilities_array = _arrays(labels, probabilities)
    logits = logit(probabilities_array)
    result = optimize.minimize(
        lambda parameters: _negative_log_likelihood(labels_array, parameters[0] * logits + parameters[1]),
        x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(1e-3, 1e3), (-50.0, 50.0)])
    return float(result.x[0]), float(result.x[1])


def fit(method: str, labels: Any, probabilities: Any) -> dict[str, Any]:
    """The fitted parameters of ``method`` (one of ``CALIBRATION_METHODS``) as a JSON-ready mapping."""
    if method == "temperature":
        return {"method": method, "temperature": fit_temperature(labels, probabilities)}
    if method == "platt":
        slope, intercept = fit_platt(labels, probabilities)
        return {"method": method, "slope": slope, "intercept": intercept}
    if method == "none":
        return {"method": method}
    raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")


def apply(parameters: dict[str, Any], probabilities: Any) -> np.ndarray:
    """Map probabilities (N,) in [0, 1] through fitted ``parameters`` (from ``fit``); strictly monotone."""
    logits = logit(probabilities)
    if parameters["method"] == "temperature":
        return _sigmoid(logits / parameters["temperature"])
    if parameters["method"] == "platt":
        return _sigmoid(parameters["slope"] * logits + parameters["intercept"])
    return np.asarray(probabilities, dtype=np.float64)


def perfect_calibration_ece(probabilities: Any, *, draws: int = 2000, seed: int = 0,
                            bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """The ECE a perfectly calibrated model would get on these images: labels drawn as Bernoulli(p)
    from the run's own probabilities, binned the same way, ``draws`` times.

    Returns ``{"mean", "p95", "draws"}`` (nan for no images). At n = 73 a perfect model's ECE is about
    0.10, so an observed ECE below ``p95`` is no evidence of miscalibration.
    """
    probabilities_array = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if not probabilities_array.size:
        return {"mean": math.nan, "p95": math.nan, "draws": 0}
    generator = np.random.default_rng(seed)
    tiled = np.broadcast_to(probabilities_array, (draws, probabilities_array.size))
    drawn = (generator.random(tiled.shape) < tiled).astype(np.float64)
    values = _ece_rows(drawn, np.ascontiguousarray(tiled), bins)
    return {"mean": float(values.mean()), "p95": float(np.quantile(values, 0.95)), "draws": draws}


def figures(labels: Any, probabilities: Any, *, samples: int, confidence: float, seed: int) -> dict[str, Any]:
    """``brier``, ``ece``, their ``confidence_intervals``, the ``reliability`` bins and ``ece_if_calibrated``
    (``perfect_calibration_ece`` with ``ece_within`` = observed ECE <= its 95th percentile)."""
    ece = expected_calibration_error(labels, probabilities)
    reference = perfect_calibration_ece(probabilities, draws=max(200, samples), seed=seed)
    return {
        "brier": brier(labels, probabilities),
        "ece": ece,
        "ece_if_calibrated": {**reference, "ece_within": bool(ece <= reference["p95"]) if ece == ece else None},
        "confidence_intervals": {"level": confidence, **bootstrap_intervals(
            labels, probabilities, samples=samples, confidence=confidence, seed=seed)},
        "reliability": reliability_bins(labels, probabilities),
    }


def calibration_report(
    labels: Any,
    probabilities: Any,
    *,
    method: str,
    validation_labels: Any = None,
    validation_probabilities: Any = None,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``calibration`` block of ``metrics.json`` for test ``labels``/``probabilities`` (N,).

    ``raw``: figures of the probabilities as predicted. ``calibrated``: figures after ``method``
    fitted on the validation predictions only (None with method ``none``, or without validation
    predictions, with the reason in ``calibrated_reason``).
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    report: dict[str, Any] = {
        "bins": RELIABILITY_BINS,
        "raw": figures(labels, probabilities, samples=samples, confidence=confidence, seed=seed),
        "method": method,
        "calibrated": None,
    }
    if method == "none":
        report["calibrated_reason"] = "evaluation.calibration is none"
        return report
    if validation_labels is None or validation_probabilities is None or len(np.unique(validation_labels)) < 2:
        report["calibrated_reason"] = "no validation predictions with both classes to fit the calibration on"
        return report
    parameters = fit(method, validation_labels, validation_probabilities)
    calibrated = apply(parameters, probabilities)
    report["parameters"] = parameters
    report["fitted_on"] = f"validation predictions ({len(validation_labels)} images), never the test set"
    report["calibrated"] = figures(labels, calibrated, samples=samples, confidence=confidence, seed=seed)
    return report
