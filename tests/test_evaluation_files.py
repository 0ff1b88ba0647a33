"""Prediction files: round trip, ISIC format scored by the official package, clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore

from melanet import config as config_module
from melanet.data.errors import DataError
from melanet.evaluation import evaluate, predictions

IDS = [f"ISIC_{number:07d}" for number in range(12)]
LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
PROBABILITIES = np.array([0.1, 0.2, 0.3, 0.5, 0.55, 0.05, 0.4, 0.35, 0.6, 0.7, 0.95, 0.5])


def test_predictions_round_trip(tmp_path: Path) -> None:
    predictions.write_predictions(tmp_path, IDS, LABELS, PROBABILITIES)
    ids, labels, probabilities = predictions.read_predictions(tmp_path / evaluate.PREDICTIONS_FILE)
    assert ids == IDS
    np.testing.assert_array_equal(labels, LABELS)
    np.testing.assert_allclose(probabilities, PROBABILITIES, atol=1e-8)
    assert (tmp_path / evaluate.PREDICTIONS_FILE).read_text().splitlines()[0] == "image,label,prob_malignant"


def test_isic_file_scored_by_official_package_matches_our_report(tmp_path: Path) -> None:
    predictions.write_predictions(tmp_path, IDS, LABELS, PROBABILITIES)
    isic = pd.read_csv(tmp_path / evaluate.ISIC_PREDICTIONS_FILE, index_col="image")
    assert list(isic.columns) == ["benign", "malignant"]
    truth = pd.DataFrame({"benign": 1.0 - LABELS, "malignant": LABELS.astype(float)}, index=isic.index)
    weights = pd.DataFrame({"score_weight": 1.0, "validation_weight": 1.0}, index=isic.index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = ClassificationScore(truth, isic, weights, ClassificationMetric.AUC).per_category.loc["malignant"]
    report = evaluate.report_for_predictions(LABELS, PROBABILITIES, config_module.EvaluationConfig(bootstrap_samples=50),
                                             seed=0, validation_path=None)
    for name in ("auc", "sensitivity", "specificity", "ppv", "npv"):
        assert report[name] == pytest.approx(float(official[name]), abs=1e-9), name


def test_operating_point_uses_the_validation_file(tmp_path: Path) -> None:
    validation_labels = np.array([0, 0, 0, 1, 1])
    validation_probabilities = np.array([0.1, 0.2, 0.3, 0.25, 0.9])
    predictions.write_predictions(tmp_path, ["a", "b", "c", "d", "e"], validation_labels, validation_probabilities)
    validation_path = tmp_path / evaluate.VALIDATION_PREDICTIONS_FILE
    (tmp_path / evaluate.PREDICTIONS_FILE).rename(validation_path)
    report = evaluate.report_for_predictions(LABELS, PROBABILITIES, config_module.EvaluationConfig(bootstrap_samples=50),
                                             seed=0, validation_path=validation_path)
    operating = report["operating_point"]
    # both validation melanomas must be caught: highest threshold below 0.25 is halfway to 0.2
    assert operating["threshold"] == pytest.approx(0.225)
    assert operating["validation"]["file"] == evaluate.VALIDATION_PREDICTIONS_FILE
    assert operating["fn"] == 0 and operating["fp"] == 4  # test benign above 0.225: .3 .5 .55 .4
    missing = evaluate.report_for_predictions(LABELS, PROBABILITIES, config_module.EvaluationConfig(bootstrap_samples=50),
                                              seed=0, validation_path=tmp_path / "absent.csv")
    assert missing["operating_point"]["available"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,label\nx,0\n", "line 1: missing column"),
        ("image,label,prob_malignant\nx,0,0.2\ny,benign,0.3\n", "line 3"),
        ("image,label,prob_malignant\nx,0,1.7\n", "line 2"),
    ],
)
def test_bad_prediction_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "validation_predictions.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        predictions.read_predictions(path)
    assert str(path) in str(caught.value)
