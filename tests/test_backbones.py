"""The backbone registry: every backbone builds, cuts, explains and runs the CLI chain the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from melanet.common import choices, training_sets
from melanet import config as config_module
from melanet.runs import lifecycle, runs
from melanet.classifier import backbones, compact
from melanet.classifier import model as model_module

REPOSITORY = Path(__file__).resolve().parents[1]
LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def test_the_registry_and_the_config_choices_agree() -> None:
    assert set(backbones.BACKBONES) == set(choices.BACKBONES) == {"vgg16", "vgg16-narrow", *LITE}
    assert training_sets.method_name("original", "vgg16") == "VGG-GAP"
    assert training_sets.method_name("original", "efficientnet-lite0") == "GAP baseline (EfficientNet-Lite0)"
    assert training_sets.method_name("augment5x", "efficientnet-lite2") == "GAP baseline (EfficientNet-Lite2) + Augment-5x"
    assert training_sets.method_name("synthetic", "efficientnet-lite0") == "MelaNet"
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        backbones.get("resnet50")


@pytest.mark.parametrize("weights", ["hed", "model.h5"])
def test_weights_that_belong_to_another_backbone_are_named(weights: str) -> None:
    with pytest.raises(config_module.ConfigError, match="efficientnet-lite0"):
        model_module.build_classifier(64, "efficientnet-lite0", weights=weights)


@pytest.mark.parametrize("size", [128, 224])
def test_the_gradcam_layer_of_lite0_is_the_deepest_map_of_at_least_7x7(size: int) -> None:
    model = model_module.build_classifier(size, "efficientnet-lite0", weights="none")
    chosen = backbones.gradcam_layer("efficientnet-lite0", size)
    side = model.get_layer(chosen).output.shape[1]
    # 128 px: the top is 4x4, so the output of stage 5 (stride 16), 8x8; 224 px: the top itself, 7x7
    assert (chosen, side) == {128: ("block5c_add", 8), 224: ("top_activation", 7)}[size]


def test_every_trainable_from_name_of_lite0_cuts_the_model_exactly() -> None:
    model = model_module.build_classifier(64, "efficientnet-lite0", weights="none")
    images = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    whole = model.predict(images, verbose=0)
    for name in model_module.valid_trainable_from("efficientnet-lite0"):
        prefix, suffix = model_module.split_at(model, name)
        np.testing.assert_allclose(suffix.predict(prefix.predict(images, verbose=0), verbose=0), whole, atol=1e-5,
                                   err_msg=name)


def test_a_cut_that_a_residual_connection_crosses_is_refused() -> None:
    model = model_module.build_classifier(64, "efficientnet-lite0", weights="none")
    # block2b is a residual block: block2b_add needs the block input, which lies before block2b_dwconv
    with pytest.raises(ValueError, match="crosses"):
        model_module.split_at(model, "block2b_dwconv")


def test_an_unknown_trainable_from_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match="block6a_expand_conv"):
        model_module.build_classifier(64, "efficientnet-lite0", weights="none", trainable_from="block2b_expand_conv")


def test_lite_batch_norms_keep_their_statistics_in_training() -> None:
    model = model_module.build_classifier(32, "efficientnet-lite0", weights="none")
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    before = [weight.copy() for layer in norms for weight in layer.get_weights()]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(1).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    model.fit(images, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    after = [weight for layer in norms for weight in layer.get_weights()]
    assert all(np.array_equal(first, second) for first, second in zip(before, after))


def test_preprocessing_maps_0_1_to_the_lite_scaling_or_mean_std() -> None:
    pixel = np.array([[[[0.0, 0.5, 1.0]]]], dtype="float32")
    for preprocessing, expected in (("", [(0 - 127) / 128, (127.5 - 127) / 128, (255 - 127) / 128]),
                                    ("mean-std", [(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225])):
        model = model_module.build_classifier(32, "efficientnet-lite0", weights="none", preprocessing=preprocessing)
        scaled = keras.Model(model.input, model.get_layer("input_normalisation").output)
        np.testing.assert_allclose(scaled.predict(np.tile(pixel, (1, 32, 32, 1)), verbose=0)[0, 0, 0], expected,
                                   rtol=1e-6)


def _melanet(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "melanet", "-q", *arguments]


def _settings(backbone: str, root: Path, epochs: int) -> list[str]:
    settings = ["data.image_size=32", f"data.root={root}", f"classifier.backbone={backbone}",
                "classifier.weights=imagenet", "classifier.trainable_from=top_conv", "classifier.optimizer=adam",
                "classifier.batch_size=4", f"classifier.epochs={epochs}", "classifier.early_stopping_patience=100",
                "evaluation.bootstrap_samples=50"]
    return [part for setting in settings for part in ("--set", setting)]


def _run(arguments: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(arguments, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("backbone", LITE)
def test_a_lite_classifier_trains_resumes_compacts_explains_and_evaluates(backbone: str, tiny_isic: Path,
                                                                          tmp_path: Path) -> None:
    """Every Lite backbone through the CLI: train, compact, evaluate, explain. Kill and resume (backbone-
    independent checkpointing, also tested on VGG in test_classifier_training) is done on Lite0 only."""
    run_dir = tmp_path / "classifier"
    run = runs.Run(run_dir)
    if backbone == "efficientnet-lite0":
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        process = subprocess.Popen(_melanet("train-classifier", "--run", str(run_dir),
                                            *_settings(backbone, tiny_isic, 40)),
                                   cwd=REPOSITORY, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while len(run.history()) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_after = lifecycle.latest_checkpoint(run)["epoch"]
        assert 1 <= killed_after < 40, "the run was not killed in the middle"
        _run(_melanet("train-classifier", "--resume", str(run_dir)))
        epochs = 40
    else:
        epochs = 2
        _run(_melanet("train-classifier", "--run", str(run_dir), *_settings(backbone, tiny_isic, epochs)))
    assert [int(row["epoch"]) for row in run.history()] == list(range(1, epochs + 1))
    full = keras.models.load_model(run_dir / "model.keras", compile=False)
    images = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype("float32")
    expected = full.predict(images, verbose=0)

    _run(_melanet("compact", "--run", str(run_dir)))
    assert not (run_dir / "model.keras").exists() and (run_dir / compact.COMPACT_FILE).is_file()
    np.testing.assert_allclose(compact.load_compact(run_dir).predict(images, verbose=0), expected, atol=1e-4)

    _run(_melanet("evaluate", "--run", str(run_dir)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n"] == 6 and 0.0 <= metrics["auc"] <= 1.0

    _run(_melanet("explain", "--run", str(run_dir), "--method", "gradcam"))
    assert list((run_dir / "explain").rglob("*.png")), "no Grad-CAM overlay written"
    assert run.status()["explain"]["layer"] == backbones.gradcam_layer(backbone, 32)
