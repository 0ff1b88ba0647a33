"""`melanet explain` and `melanet embed` end to end: real JPEGs, a real VGG-GAP run folder, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import model as model_module
from melanet.cli import main
from melanet.data import splits
from melanet.audits import separability


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture
def classifier_run(tmp_path: Path, tiny_isic: Path) -> Path:
    """A finished stage-2 run (narrow VGG-GAP, random weights, 32 px) naming a stage-1 run whose
    synthetic folder holds one image per benign training image."""
    gan_run = tmp_path / "gan"
    (gan_run / "synthetic" / "images").mkdir(parents=True)
    benign_ids = [line.split(",")[0] for line in (tiny_isic / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv")
                  .read_text().splitlines() if line.endswith("benign")]
    rng = np.random.default_rng(0)
    manifest = ["synthetic_id,source_id,path,reconstruction_path"]
    for image_id in benign_ids:
        path = f"synthetic/images/syn_{image_id}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(gan_run / path)
        manifest.append(f"syn_{image_id},{image_id},{path},")
    (gan_run / "synthetic" / "manifest.csv").write_text("\n".join(manifest) + "\n")

    config = config_module.load_config(overrides=[
        f"data.root={tiny_isic}", "data.image_size=32", f"data.cache_dir={tmp_path / 'cache'}", "data.workers=1",
        "classifier.backbone=vgg16-narrow", "classifier.width=0.0625", "classifier.weights=none",
        f"classifier.gan_run={gan_run}", "explain.umap_neighbors=5",
    ])
    run = runs.Run.create(tmp_path / "run", config, "train-classifier")
    run.update_status(state="done")
    model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none").save(run.file("model.keras"))
    return run.path


@pytest.mark.slow
def test_explain_and_embed_on_a_classifier_run(classifier_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "explain", "--run", str(classifier_run), "--threshold", "0.5"]) == 0
    assert f"run folder: {classifier_run}" in capsys.readouterr().out
    rows = _read_csv(classifier_run / "explain" / "index.csv")
    assert len(rows) == 6 and sorted(row["label"] for row in rows) == ["0"] * 3 + ["1"] * 3
    ranks = ["FN", "FP", "TP", "TN"]
    assert [ranks.index(row["outcome"]) for row in rows] == sorted(ranks.index(row["outcome"]) for row in rows)
    for row in rows:
        predicted_malignant = float(row["prob_malignant"]) > 0.5
        assert row["outcome"] == {(1, True): "TP", (1, False): "FN", (0, True): "FP", (0, False): "TN"}[
            (int(row["label"]), predicted_malignant)]
        assert np.load(classifier_run / row["map_path"]).shape == (32, 32)
        assert Image.open(classifier_run / row["overlay_path"]).size == (32, 32)
        assert (classifier_run / row["input_path"]).is_file()
    assert runs.Run(classifier_run).status()["explain"]["state"] == "done"

    assert main(["-q", "explain", "--run", str(classifier_run), "--data", str(classifier_run.parent / "isic"),
                 "--which", "tp,tn", "--limit", "2", "--method", "gradcam++"]) == 0
    other = _read_csv(classifier_run / "explain" / "isic" / "index.csv")
    assert len(other) <= 2 and all(row["map_path"].startswith("explain/isic/maps/") for row in other)

    assert main(["-q", "embed", "--run", str(classifier_run)]) == 0
    points = _read_csv(classifier_run / "embedding" / "umap.csv")
    config = runs.Run(classifier_run).config()
    training, _ = splits.training_and_validation(config.data, config.seed)
    original = [row for row in points if row["panel"] == "original"]
    balanced = [row for row in points if row["panel"] == "balanced"]
    assert [row["image"] for row in original] == training.ids
    benign_in_training = [image_id for image_id, label in zip(training.ids, training.labels) if label == 0]
    assert [row["image"] for row in balanced if row["tag"] == "synthetic"] == [f"syn_{i}" for i in benign_in_training]
    assert {row["tag"] for row in original} == {"benign", "malignant"}
    assert Image.open(classifier_run / "embedding" / "umap.png").size[0] == 2 * 520
    gap = json.loads((classifier_run / "embedding" / "separability.json").read_text())
    benign, malignant = len(benign_in_training), len(training.ids) - len(benign_in_training)
    assert (gap["synthetic_vs_real_malignant"]["n_first"], gap["synthetic_vs_real_malignant"]["n_second"]) == (benign, malignant)
    assert (gap["real_malignant_vs_real_benign"]["n_first"], gap["real_malignant_vs_real_benign"]["n_second"]) == (malignant, benign)
    assert all(0.0 <= gap[name]["auc"] <= 1.0 for name in separability.PAIRS)
    assert runs.Run(classifier_run).status()["embedding"]["synthetic_vs_real_malignant_auc"] == pytest.approx(
        gap["synthetic_vs_real_malignant"]["auc"], abs=1e-4)
    assert "synthetic vs real malignant:" in capsys.readouterr().out


def test_missing_layer_is_a_one_line_error(classifier_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "explain", "--run", str(classifier_run), "--layer", "block6_conv1"]) == 2
    error = capsys.readouterr().err
    assert "block6_conv1" in error and "block5_conv3" in error and "Traceback" not in error


def test_explain_needs_a_trained_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs.Run.create(tmp_path / "empty", config_module.Config(), "train-classifier")
    assert main(["-q", "explain", "--run", str(tmp_path / "empty")]) == 2
    assert main(["-q", "embed", "--run", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.count("model.keras") == 2
