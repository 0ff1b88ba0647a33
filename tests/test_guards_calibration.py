"""Calibration is fitted on the validation predictions, never the test ones (issue 21 item 15).

The expected temperature and Platt parameters come from fits written here (a grid search of the
log-loss, scikit-learn's unpenalised logistic regression), never from ``melanet``'s own fit. The
validation and test sets are built so that the two fits disagree by far: the model is overconfident
on validation (T about 3) and underconfident on test (T about 0.5), so a map fitted on the wrong set
cannot pass for the right one.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from melanet import config as config_module
from melanet.runs import runs
from melanet.evaluation import calibration, evaluate, evidence, metrics
from melanet.reports import rescore


def _scores(size: int, sharpness: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z); the model reports sigmoid(sharpness * z) (overconfident above 1)."""
    generator = np.random.default_rng(seed)
    true_logits = generator.normal(scale=1.5, size=size)
    labels = (generator.uniform(size=size) < 1 / (1 + np.exp(-true_logits))).astype(np.int64)
    reported = 1 / (1 + np.exp(-sharpness * true_logits))
    return labels, np.round(np.clip(reported, 1e-6, 1 - 1e-6), 8)  # as predictions.csv keeps them


VALIDATION = _scores(400, 3.0, seed=1)
TEST = _scores(300, 0.5, seed=2)


def _logits(probabilities: np.ndarray) -> np.ndarray:
    return np.log(probabilities / (1 - probabilities))


def hand_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The log-loss minimiser over a fine grid of T in [0.01, 100] (step 0.05 % in log T)."""
    logits = _logits(probabilities)
    temperatures = np.exp(np.linspace(np.log(0.01), np.log(100.0), 20001))
    scaled = logits[None, :] / temperatures[:, None]
    losses = np.mean(np.logaddexp(0, scaled) - labels[None, :] * scaled, axis=1)
    return float(temperatures[np.argmin(losses)])


def hand_platt(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10000).fit(_logits(probabilities)[:, None], labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def hand_ece(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """10 equal-width bins, 1.0 in the last, written out one bin at a time."""
    total = 0.0
    for k in range(10):
        inside = [(p, y) for p, y in zip(probabilities, labels) if k / 10 <= p < (k + 1) / 10 or (k == 9 and p == 1.0)]
        if inside:
            total += abs(sum(y for _, y in inside) - sum(p for p, _ in inside))
    return total / len(labels)


def test_the_two_sets_really_need_different_maps() -> None:
    assert hand_temperature(*VALIDATION) == pytest.approx(3.0, rel=0.25)
    assert hand_temperature(*TEST) == pytest.approx(0.5, rel=0.25)


def test_the_temperature_is_fitted_on_the_validation_predictions() -> None:
    labels, probabilities = TEST
    report = calibration.calibration_report(labels, probabilities, method="temperature", validation_labels=VALIDATION[0],
                                            validation_probabilities=VALIDATION[1], samples=50)
    expected = hand_temperature(*VALIDATION)
    assert report["parameters"]["temperature"] == pytest.approx(expected, rel=2e-3)
    calibrated = 1 / (1 + np.exp(-_logits(probabilities) / expected))
    assert report["calibrated"]["brier"] == pytest.approx(np.mean((calibrated - labels) ** 2), rel=1e-3)
    assert report["calibrated"]["ece"] == pytest.approx(hand_ece(labels, calibrated), abs=2e-3)
    assert "400 images" in report["fitted_on"]


def test_platt_scaling_is_fitted_on_the_validation_predictions() -> None:
    labels, probabilities = TEST
    report = calibration.calibration_report(labels, probabilities, method="platt", validation_labels=VALIDATION[0],
                                            validation_probabilities=VALIDATION[1], samples=50)
    slope, intercept = hand_platt(*VALIDATION)
    assert report["parameters"]["slope"] == pytest.approx(slope, rel=1e-3)
    assert report["parameters"]["intercept"] == pytest.approx(intercept, abs=1e-3)
    calibrated = 1 / (1 + np.exp(-(slope * _logits(probabilities) + intercept)))
    assert report["calibrated"]["brier"] == pytest.approx(np.mean((calibrated - labels) ** 2), rel=1e-3)


def test_metrics_json_fits_on_validation_and_scores_the_test_images() -> None:
    """``evidence.add_to_report`` is what both ``evaluate`` and ``--from-predictions`` call."""
    labels, probabilities = TEST
    settings = config_module.EvaluationConfig(bootstrap_samples=50)
    report = evidence.add_to_report(metrics.full_report(labels, probabilities, bootstrap_samples=50), labels,
                                    probabilities, settings, 0, *VALIDATION)
    temperature = hand_temperature(*VALIDATION)
    assert report["calibration"]["parameters"]["temperature"] == pytest.approx(temperature, rel=2e-3)
    assert report["brier"] == pytest.approx(np.mean((probabilities - labels) ** 2))  # raw, of the test images
    calibrated = 1 / (1 + np.exp(-_logits(probabilities) / temperature))
    assert report["calibration"]["calibrated"]["brier"] == pytest.approx(np.mean((calibrated - labels) ** 2), rel=1e-3)


def _write_predictions(path: Path, labels: np.ndarray, probabilities: np.ndarray, prefix: str) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "label", "prob_malignant"])
        for index, (label, probability) in enumerate(zip(labels, probabilities)):
            writer.writerow([f"{prefix}_{index:04d}", int(label), f"{probability:.8f}"])


def test_from_predictions_fits_on_the_runs_validation_file(tmp_path: Path) -> None:
    """A real run folder: ``validation_predictions.csv`` fits the map, ``predictions.csv`` is scored."""
    config = config_module.load_config(None, ["evaluation.bootstrap_samples=50", "classifier.weights=hed",
                                              f"data.root={tmp_path / 'no-data'}"])
    run = runs.Run.create(tmp_path / "run", config, "train-classifier")
    run.update_status(state="done")
    _write_predictions(run.path / "validation_predictions.csv", *VALIDATION, prefix="val")
    _write_predictions(run.path / "predictions.csv", *TEST, prefix="ISIC")
    rescore.rescore_run(run.path)
    report = json.loads((run.path / "metrics.json").read_text())
    assert report["n"] == 300
    assert report["calibration"]["parameters"]["temperature"] == pytest.approx(hand_temperature(*VALIDATION), rel=2e-3)
    assert report["calibration"]["fitted_on"].startswith("validation predictions (400 images)")
    # the test file's own fit (about 0.5) is what a map fitted on the wrong file would give
    assert abs(report["calibration"]["parameters"]["temperature"] - hand_temperature(*TEST)) > 1.0


def test_report_for_predictions_reads_the_validation_file_it_is_given(tmp_path: Path) -> None:
    _write_predictions(tmp_path / "validation_predictions.csv", *VALIDATION, prefix="val")
    report = evaluate.report_for_predictions(*TEST, config_module.EvaluationConfig(bootstrap_samples=50), 0,
                                             tmp_path / "validation_predictions.csv")
    assert report["calibration"]["parameters"]["temperature"] == pytest.approx(hand_temperature(*VALIDATION), rel=2e-3)
    absent = evaluate.report_for_predictions(*TEST, config_module.EvaluationConfig(bootstrap_samples=50), 0,
                                             tmp_path / "absent.csv")
    assert absent["calibration"]["calibrated"] is None and "no validation predictions" in absent["calibration"]["calibrated_reason"]
