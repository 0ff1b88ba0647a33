"""Calibration figures and maps, and predictive values at a stated prevalence, against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from melanet import config as config_module
from melanet.evaluation import calibration, evidence, metrics, prevalence


def test_brier_equals_scikit_learn() -> None:
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 2, 200)
    probabilities = generator.uniform(size=200)
    assert calibration.brier(labels, probabilities) == pytest.approx(
        sklearn_metrics.brier_score_loss(labels, probabilities), abs=1e-15)


def test_ece_and_reliability_bins_on_a_hand_computed_case() -> None:
    """Bins [0.1, 0.2): 0.15, 0.15 with labels 0, 1 (gap |0.5 - 0.15| = 0.35);
    [0.8, 0.9): 0.85 x 3 with labels 1, 1, 1 (gap 0.15); 1.0 sits in the last bin with label 1 (gap 0).
    ECE = (2 * 0.35 + 3 * 0.15 + 1 * 0) / 6 = 1.15 / 6."""
    labels = [0, 1, 1, 1, 1, 1]
    probabilities = [0.15, 0.15, 0.85, 0.85, 0.85, 1.0]
    assert calibration.expected_calibration_error(labels, probabilities) == pytest.approx(1.15 / 6)
    bins = calibration.reliability_bins(labels, probabilities)
    assert len(bins) == 10 and sum(entry["count"] for entry in bins) == 6
    assert bins[1] == {"low": 0.1, "high": 0.2, "count": 2, "mean_probability": pytest.approx(0.15), "observed": 0.5}
    assert bins[8]["count"] == 3 and bins[8]["observed"] == 1.0
    assert bins[9]["count"] == 1 and bins[9]["mean_probability"] == 1.0
    assert bins[0]["count"] == 0 and bins[0]["observed"] is None
    # a perfectly calibrated bin contributes nothing
    assert calibration.expected_calibration_error([0, 1], [0.5, 0.5]) == 0.0


def test_bootstrap_intervals_hold_the_estimate_and_their_level() -> None:
    generator = np.random.default_rng(1)
    probabilities = generator.uniform(size=400)
    labels = (generator.uniform(size=400) < probabilities).astype(int)  # calibrated by construction
    intervals = calibration.bootstrap_intervals(labels, probabilities, samples=1000, seed=3)
    brier = calibration.brier(labels, probabilities)
    assert intervals["brier"]["low"] < brier < intervals["brier"]["high"]
    # the interval width is about 2 * 1.96 standard errors of a mean of (p - y)^2
    standard_error = np.std((probabilities - labels) ** 2, ddof=1) / math.sqrt(labels.size)
    assert intervals["brier"]["high"] - intervals["brier"]["low"] == pytest.approx(2 * 1.96 * standard_error, rel=0.15)
    narrow = calibration.bootstrap_intervals(labels, probabilities, samples=1000, seed=3, confidence=0.5)
    assert narrow["brier"]["high"] - narrow["brier"]["low"] < 0.5 * (intervals["brier"]["high"] - intervals["brier"]["low"])


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    """Labels drawn from sigmoid(z); a model that reports sigmoid(2.5 z) is overconfident by T = 2.5."""
    generator = np.random.default_rng(2)
    true_logits = generator.normal(scale=2.0, size=20000)
    labels = (generator.uniform(size=true_logits.size) < 1 / (1 + np.exp(-true_logits))).astype(int)
    reported = 1 / (1 + np.exp(-2.5 * true_logits))
    assert calibration.fit_temperature(labels, reported) == pytest.approx(2.5, rel=0.05)
    slope, intercept = calibration.fit_platt(labels, reported)
    assert slope == pytest.approx(1 / 2.5, rel=0.05) and abs(intercept) < 0.05
    calibrated = calibration.apply({"method": "temperature", "temperature": 2.5}, reported)
    assert calibration.expected_calibration_error(labels, calibrated) < 0.5 * calibration.expected_calibration_error(labels, reported)


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_calibration_keeps_the_auc_and_fits_on_validation_only(method: str) -> None:
    generator = np.random.default_rng(4)
    labels = generator.integers(0, 2, 300)
    probabilities = np.clip(generator.beta(2, 5, 300) + 0.3 * labels, 0, 1)
    validation_labels = generator.integers(0, 2, 120)
    validation_probabilities = np.clip(generator.beta(2, 5, 120) + 0.3 * validation_labels, 0, 1)
    report = calibration.calibration_report(labels, probabilities, method=method, validation_labels=validation_labels,
                                            validation_probabilities=validation_probabilities, samples=200)
    calibrated = calibration.apply(report["parameters"], probabilities)
    assert metrics.auc(labels, calibrated) == pytest.approx(metrics.auc(labels, probabilities), abs=1e-12)
    assert report["parameters"] == calibration.fit(method, validation_labels, validation_probabilities)
    assert report["parameters"] != calibration.fit(method, labels, probabilities)  # the test set never fits it
    assert report["calibrated"]["brier"] == pytest.approx(calibration.brier(labels, calibrated))
    none = calibration.calibration_report(labels, probabilities, method="none", samples=50)
    assert none["calibrated"] is None and none["raw"]["brier"] == pytest.approx(calibration.brier(labels, probabilities))


def test_predictive_values_at_a_stated_prevalence_against_hand_values() -> None:
    """Sensitivity 0.8, specificity 0.9 at prevalence 0.2: PPV = 0.16 / (0.16 + 0.08) = 2/3,
    NPV = 0.72 / (0.72 + 0.04) = 18/19."""
    ppv, npv = prevalence.predictive_values(0.8, 0.9, 0.2)
    assert ppv == pytest.approx(2 / 3) and npv == pytest.approx(18 / 19)
    # at the observed prevalence Bayes' rule gives back the observed PPV and NPV
    counts = {"tp": 30, "fn": 10, "tn": 45, "fp": 15}
    observed = metrics.rates(counts)
    ppv, npv = prevalence.predictive_values(observed["sensitivity"], observed["specificity"], 40 / 100)
    assert ppv == pytest.approx(observed["ppv"]) and npv == pytest.approx(observed["npv"])
    assert math.isnan(prevalence.predictive_values(0.0, 1.0, 0.3)[0])  # nothing called malignant: PPV undefined
    with pytest.raises(ValueError, match="prevalence"):
        prevalence.predictive_values(0.8, 0.9, 1.0)


def test_metrics_json_carries_calibration_and_prevalence_keys() -> None:
    generator = np.random.default_rng(5)
    labels = np.array([0] * 40 + [1] * 35)
    probabilities = np.clip(0.3 + 0.3 * labels + generator.normal(scale=0.2, size=75), 0, 1)
    settings = config_module.EvaluationConfig(bootstrap_samples=200, prevalence=0.198)
    report = metrics.full_report(labels, probabilities, bootstrap_samples=200)
    report = evidence.add_to_report(report, labels, probabilities, settings, 0, labels[::2], probabilities[::2])
    assert report["brier"] == pytest.approx(calibration.brier(labels, probabilities))
    assert report["ece"] == pytest.approx(calibration.expected_calibration_error(labels, probabilities))
    assert report["calibration"]["method"] == "temperature"
    assert report["calibration"]["calibrated"]["auc"] == pytest.approx(report["auc"])
    adjusted = report["prevalence_adjusted"]["at_threshold"]
    expected = prevalence.predictive_values(report["sensitivity"], report["specificity"], 0.198)
    assert (adjusted["ppv"], adjusted["npv"]) == (pytest.approx(expected[0]), pytest.approx(expected[1]))
    assert adjusted["observed_ppv"] == report["ppv"] and adjusted["observed_prevalence"] == pytest.approx(35 / 75)


def test_the_ece_of_a_perfect_model_matches_a_slow_simulation_and_covers_calibrated_data() -> None:
    import numpy as np

    from melanet.evaluation import calibration as calibration_module

    generator = np.random.default_rng(3)
    probabilities = generator.uniform(0, 1, 73)
    reference = calibration_module.perfect_calibration_ece(probabilities, draws=4000, seed=1)
    # slow reference: one label set at a time, the ECE written out per bin (10 equal-width bins)
    slow = []
    for _ in range(1500):
        labels = (generator.random(73) < probabilities).astype(float)
        bins = np.minimum((probabilities * 10).astype(int), 9)
        slow.append(sum(abs(labels[bins == k].sum() - probabilities[bins == k].sum()) for k in range(10)) / 73)
    assert abs(reference["mean"] - np.mean(slow)) < 0.006
    assert abs(reference["p95"] - np.quantile(slow, 0.95)) < 0.015
    assert 0.07 < reference["mean"] < 0.14  # the figure for n = 73: about 0.10-0.12
    # data that IS calibrated falls within the 95th percentile about 95 % of the time
    within = 0
    for trial in range(200):
        labels = (generator.random(73) < probabilities).astype(int)
        within += calibration_module.expected_calibration_error(labels, probabilities) <= reference["p95"]
    assert 0.9 <= within / 200 <= 0.99
    # a badly miscalibrated model (true rate p, predictions pushed to the extremes) is flagged
    pushed = np.clip((probabilities - 0.5) * 3 + 0.5, 0.01, 0.99)
    labels = (generator.random(73) < probabilities).astype(int)
    figures = calibration_module.figures(labels, pushed, samples=200, confidence=0.95, seed=0)
    assert figures["ece_if_calibrated"]["ece_within"] is False
