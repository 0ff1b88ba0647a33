"""`melanet evaluate` on real JPEG folders with a real (tiny, hand-weighted) Keras model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from PIL import Image

from melanet import config as config_module
from melanet.runs import runs
from melanet.cli import main
from melanet.reports import evaluate_stage

# brightness levels: benign images are darker than malignant ones, with one overlap each way
TEST_LEVELS = {"benign": [30, 60, 90, 140, 170], "malignant": [120, 180, 200, 230]}


def write_folder_dataset(root: Path, levels: dict[str, list[int]], seed: int) -> None:
    """Plain layout root/{train,test}/{benign,malignant}/*.jpg; brightness encodes the class."""
    generator = np.random.default_rng(seed)
    for split in ("train", "test"):
        for label, values in levels.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for number, level in enumerate(values):
                pixels = np.clip(generator.normal(level, 5, (30, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{label}_{split}{seed}_{number}.jpg", quality=95)


def brightness_model(image_size: int) -> keras.Model:
    """Flat functional model: mean brightness -> softmax [benign, malignant], malignant above ~0.5."""
    inputs = keras.Input((image_size, image_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    # logit(malignant) - logit(benign) = 2 * 10 * (mean - 0.5) summed over channels / 3 channels
    model.layers[-1].set_weights([np.array([[-10.0 / 3, 10.0 / 3]] * 3, np.float32), np.array([5.0, -5.0], np.float32)])
    return model


@pytest.fixture
def classifier_run(tmp_path: Path) -> Path:
    data_root = tmp_path / "data"
    write_folder_dataset(data_root, TEST_LEVELS, seed=0)
    config = config_module.load_config(overrides=[
        f"data.root={data_root}", "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}",
        "data.workers=1", "evaluation.bootstrap_samples=100", "evaluation.target_sensitivity=1.0",
    ])
    run = runs.Run.create(tmp_path / "run", config, "train-classifier")
    run.update_status(state="done")
    brightness_model(32).save(run.file("model.keras"))
    run.file("validation_predictions.csv").write_text(
        "image,label,prob_malignant\nv0,0,0.20\nv1,0,0.45\nv2,1,0.40\nv3,1,0.90\n")
    return run.path


def test_evaluate_writes_metrics_and_predictions(classifier_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "evaluate", "--run", str(classifier_run)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"run folder: {classifier_run}") and "AUC" in printed and "NPV" in printed

    report = json.loads((classifier_run / "metrics.json").read_text())
    predictions = pd.read_csv(classifier_run / "predictions.csv")
    assert list(predictions.columns) == ["image", "label", "prob_malignant", "prob_sd", "prob_range", "uncertain"]
    assert predictions["prob_range"].max() < 1e-5 and not predictions["uncertain"].any()  # brightness ignores turns
    assert report["uncertainty"]["available"] and report["uncertainty"]["n_uncertain"] == 0
    assert report["operating_points"]["rule_out"]["validation"]["file"] == "validation_predictions.csv"
    assert report["n"] == len(predictions) == 9 and report["n_malignant"] == 4
    # brightness separates the classes except the two overlapping images
    by_image = predictions.set_index("image")
    assert by_image.loc["malignant_test0_0", "prob_malignant"] < by_image.loc["benign_test0_4", "prob_malignant"]
    assert 0.8 < report["auc"] < 1.0
    assert report["threshold"] == 0.5 and report["tp"] + report["fn"] == 4
    assert report["data"]["root"].endswith("data") and report["data"]["same_as_training_data"] is True
    operating = report["operating_point"]
    assert operating["available"] and operating["threshold"] == pytest.approx(0.30)  # halfway between validation .20 and .40
    assert report["paper_compatibility"]["paper_sensitivity_is_npv"] == report["npv"]
    status = runs.Run(classifier_run).status()
    assert status["state"] == "done" and status["stage"] == "train-classifier"  # training status untouched
    assert status["evaluation"]["state"] == "done" and status["evaluation"]["data"] == report["data"]["root"]

    isic = pd.read_csv(classifier_run / "predictions_isic.csv", index_col="image")
    truth = pd.DataFrame({"benign": 1.0 - by_image["label"], "malignant": by_image["label"].astype(float)})
    truth = truth.loc[isic.index]
    weights = pd.DataFrame({"score_weight": 1.0, "validation_weight": 1.0}, index=isic.index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = ClassificationScore(truth, isic, weights, ClassificationMetric.AUC).per_category.loc["malignant"]
    for name in ("auc", "sensitivity", "specificity"):
        assert report[name] == pytest.approx(float(official[name]), abs=1e-6), name


def test_evaluate_other_data_into_other_folder(classifier_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_folder_dataset(other, {"benign": [20, 40], "malignant": [220, 240]}, seed=1)
    out = tmp_path / "external"
    assert main(["-q", "evaluate", "--run", str(classifier_run), "--data", str(other), "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["n"] == 4 and report["auc"] == 1.0 and report["fn"] == 0
    assert report["data"]["root"] == str(other) and report["data"]["same_as_training_data"] is False
    assert (out / "predictions.csv").is_file() and (out / "predictions_isic.csv").is_file()
    assert not (classifier_run / "metrics.json").exists()
    assert "evaluation" not in runs.Run(classifier_run).status()


def test_evaluate_refuses_a_run_without_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs.Run.create(tmp_path / "untrained", config_module.Config(), "train-classifier")
    assert main(["evaluate", "--run", str(tmp_path / "untrained")]) == 2
    assert "no trained model" in capsys.readouterr().err
    with pytest.raises(runs.RunError, match="run folder not found"):
        evaluate_stage.evaluate_run(tmp_path / "absent")


@pytest.mark.parametrize("damage", ["empty", "cut short"])
def test_a_damaged_model_file_is_one_line_not_a_traceback(classifier_run: Path, damage: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    model_path = classifier_run / "model.keras"
    model_path.write_bytes(b"" if damage == "empty" else model_path.read_bytes()[:4000])
    assert main(["-q", "evaluate", "--run", str(classifier_run)]) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(error_lines) == 1, error_lines
    assert str(model_path) in error_lines[0] and "cannot load the trained model" in error_lines[0]
    assert "File not found" not in error_lines[0]  # what Keras says about any unreadable file
    assert not (classifier_run / "metrics.json").exists()
