"""Stage-2 training: it learns, it selects on validation only, it resumes after a kill, it distributes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from melanet import config as config_module
from melanet.runs import lifecycle, runs
from melanet.data import disk_images
from melanet.classifier import model as model_module
from melanet.classifier import predict, train
from melanet.classifier.selection import SelectionState
from melanet.data.prepare import ImageSet

REPOSITORY = Path(__file__).resolve().parents[1]
TINY = ["data.image_size=32", "classifier.backbone=vgg16-narrow", "classifier.width=0.0625",
        "classifier.weights=none", "classifier.optimizer=adam", "classifier.batch_size=4"]


def test_tiny_classifier_overfits_one_small_batch() -> None:
    keras.utils.set_random_seed(0)
    # 3e-4: at 2e-3 (and 1e-3) Adam sent some seeds into a saturated constant output (loss 2.01)
    # on one CI CPU; at 3e-4 every seed of 0-7 tried reached a loss below 1e-4 within 150 steps.
    model = model_module.build_classifier(32, "vgg16-narrow", 0.125, "none")
    model_module.compile_classifier(model, "adam", 3e-4, 0.25, 2.0)
    images = np.random.default_rng(0).random((8, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    first = model.evaluate(images, labels, verbose=0)[0]
    for _ in range(150):
        model.train_on_batch(images, labels)
    loss, auc = model.evaluate(images, labels, verbose=0)
    probabilities = model.predict(images, verbose=0)[:, 1]
    assert loss < first / 5
    assert auc == pytest.approx(1.0)
    assert np.all((probabilities > 0.5) == (labels == 1))


def test_selection_state_follows_reduce_on_plateau_and_early_stopping() -> None:
    state = SelectionState(monitor="val_auc")
    decisions = [state.update(epoch, value, reduce_lr_patience=2, early_stopping_patience=3)
                 for epoch, value in enumerate([0.6, 0.7, 0.65, 0.7, 0.69], start=1)]
    assert [d["improved"] for d in decisions] == [True, True, False, False, False]
    assert [d["reduce_lr"] for d in decisions] == [False, False, False, True, False]
    assert [d["stop"] for d in decisions] == [False, False, False, False, True]
    assert (state.best_value, state.best_epoch, state.stopped_early) == (0.7, 2, True)
    assert SelectionState.from_dict(state.to_dict()) == state
    assert SelectionState(monitor="val_loss").is_improvement(0.1)
    losses = SelectionState(monitor="val_loss", best_value=0.5)
    assert losses.is_improvement(0.4) and not losses.is_improvement(0.6) and not losses.is_improvement(float("nan"))


def test_an_improvement_resets_both_patience_counters() -> None:
    state = SelectionState(monitor="val_auc")
    decisions = [state.update(epoch, value, reduce_lr_patience=2, early_stopping_patience=2)
                 for epoch, value in enumerate([0.6, 0.5, 0.7, 0.65, 0.66], start=1)]
    # epoch 2 is one epoch on a plateau; epoch 3 improves, so epoch 4 starts counting again from one
    assert [d["reduce_lr"] for d in decisions] == [False, False, False, False, True]
    assert [d["stop"] for d in decisions] == [False, False, False, False, True]
    assert (state.best_epoch, state.epochs_without_improvement) == (3, 2)


def test_checkpoint_restores_weights_optimizer_and_learning_rate(tmp_path: Path) -> None:
    config = config_module.load_config(overrides=TINY)
    run = runs.Run.create(tmp_path / "run", config, train.STAGE)
    keras.utils.set_random_seed(0)
    model = train.build_compiled_model(config)
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    model.train_on_batch(images, np.array([0, 1, 0, 1]))
    model.optimizer.learning_rate = 1e-5
    lifecycle.save_checkpoint(tf.train.Checkpoint(model=model, optimizer=model.optimizer), run, 1)

    keras.utils.set_random_seed(1)
    fresh = train.build_compiled_model(config)
    assert lifecycle.restore_checkpoint(tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer), run) == 1
    for restored, saved in zip(fresh.weights, model.weights):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    assert int(fresh.optimizer.iterations.numpy()) == 1
    assert train.current_learning_rate(fresh) == pytest.approx(1e-5)
    for restored, saved in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(saved))


def test_validation_split_never_holds_test_images(tiny_isic: Path) -> None:
    from melanet.data import sources, splits

    config = config_module.load_config(overrides=[f"data.root={tiny_isic}", "data.image_size=32"])
    training_part, validation = splits.training_and_validation(config.data, config.seed)
    index = sources.read_index(tiny_isic)
    test_ids = {sample.image_id for sample in index.test}
    train_ids = {sample.image_id for sample in index.train}
    assert set(validation.ids) and not set(validation.ids) & test_ids
    assert not set(validation.ids) & set(training_part.ids)
    assert set(validation.ids) | set(training_part.ids) == train_ids


def _melanet(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "melanet", "-q", "train-classifier", *arguments]


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_history(tiny_isic: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "classifier"
    settings = [*TINY, f"data.root={tiny_isic}", "classifier.epochs=12", "classifier.early_stopping_patience=100"]
    arguments = [argument for setting in settings for argument in ("--set", setting)]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(_melanet("--run", str(run_dir), *arguments), cwd=REPOSITORY, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = runs.Run(run_dir)
    deadline = time.monotonic() + 120
    while len(run.history()) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = lifecycle.latest_checkpoint(run)["epoch"]
    assert killed_after < 12, "the run was killed before it finished"
    assert run.status()["state"] == "running" and not run.status()["alive"]
    rows_before_kill = run.history()[:killed_after]

    finished = subprocess.run(_melanet("--resume", str(run_dir)), cwd=REPOSITORY, env=environment,
                              capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr[-2000:]
    epochs = [int(row["epoch"]) for row in run.history()]
    assert epochs == list(range(1, 13))
    assert run.history()[:killed_after] == rows_before_kill  # kept, not trained again
    assert list(run.history()[0]) == ["epoch", "loss", "auc", "val_loss", "val_auc", "learning_rate", "seconds"]
    assert run.status()["state"] == "done"
    predictions = (run_dir / train.VALIDATION_PREDICTIONS_FILE).read_text().splitlines()
    assert predictions[0] == "image,label,prob_malignant" and len(predictions) > 1
    test_ids = {line.split(",")[0] for line in (tiny_isic / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv").read_text().split()}
    assert not {line.split(",")[0] for line in predictions[1:]} & test_ids
    model = predict.load_model(run_dir)
    assert model.get_layer("block5_conv3") is not None


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from melanet.runs import distribute
        distribute.split_cpu(2)
        import numpy as np
        from melanet import config as config_module; from melanet.runs import lifecycle, runs
        from melanet.classifier import train
        from melanet.data.prepare import ImageSet
        config = config_module.load_config(overrides={TINY + ["distribute=mirrored", "classifier.epochs=2"]!r})
        assert distribute.strategy_for("mirrored").num_replicas_in_sync == 2
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
        labels = np.array([0, 1] * 6)
        run = runs.Run.create({str(tmp_path / 'run')!r}, config, train.STAGE)
        with lifecycle.stage_session(run, train.STAGE):
            summary = train.fit_classifier(config, run, ImageSet(images, labels, [str(i) for i in range(12)]),
                                           ImageSet(images[:6], labels[:6], [str(i) for i in range(6)]))
        print("EPOCHS", summary["epochs_run"])
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "EPOCHS 2" in result.stdout


def test_frozen_features_on_disk_train_the_same_as_in_memory_and_leave_no_file(
        tiny_isic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``FEATURE_MEMORY_LIMIT_BYTES`` the frozen features are streamed from a temporary file in the
    data cache folder: the same losses as in memory, and the file is gone afterwards."""
    cache = tmp_path / "cache"
    overrides = [f"data.root={tiny_isic}", f"data.cache_dir={cache}", "data.image_size=32",
                 "classifier.backbone=vgg16-narrow", "classifier.width=0.0625", "classifier.weights=none",
                 "classifier.epochs=2", "classifier.trainable_from=block4_conv1", "classifier.optimizer=adam",
                 "seed=5"]
    histories = []
    outputs: list[type] = []
    original_features = train.frozen_features

    def recording_features(prefix, images, batch_size, folder=None):
        features = original_features(prefix, images, batch_size, folder)
        outputs.append(type(features))
        if folder is not None:  # the training set's features are written while training runs
            assert any(Path(folder).glob("features-*.npy"))
        return features

    monkeypatch.setattr(train, "frozen_features", recording_features)
    for limit in (train.FEATURE_MEMORY_LIMIT_BYTES, 0):
        monkeypatch.setattr(train, "FEATURE_MEMORY_LIMIT_BYTES", limit)
        outputs.clear()
        run = runs.Run.create(tmp_path / f"limit-{limit}", config_module.load_config(None, overrides), "train-classifier")
        train.train_classifier(run)
        histories.append([float(row["loss"]) for row in run.history()])
        expected = np.ndarray if limit else disk_images.DiskImages
        assert outputs == [expected, expected]  # the training and the validation set's features
        assert (run.path / "model.keras").is_file()
    assert not list(cache.glob("features-*"))  # the temporary folder was removed
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-4)


def test_a_fresh_training_in_a_used_folder_replaces_its_history(tiny_isic: Path, tmp_path: Path) -> None:
    overrides = [f"data.root={tiny_isic}", "data.image_size=32", "classifier.backbone=vgg16-narrow",
                 "classifier.width=0.0625", "classifier.weights=none", "classifier.epochs=2", "seed=2"]
    run = runs.Run.create(tmp_path / "run", config_module.load_config(None, overrides), "train-classifier")
    train.train_classifier(run)
    # a finished run is never overwritten by a fresh start (melanet.runs.lifecycle.check_folder) ...
    with pytest.raises(runs.RunError, match="already holds a train-classifier run"):
        train.train_classifier(run)
    # ... but one that failed without a checkpoint to resume from is started afresh, its old rows dropped
    shutil.rmtree(run.checkpoint_dir)
    run.update_status(state="failed")
    train.train_classifier(run)
    assert [row["epoch"] for row in run.history()] == ["1", "2"]


class SimulatedKill(Exception):
    """Stands for a SIGKILL right after a checkpoint was written."""


def _fit_in_process(run: runs.Run, config: config_module.Config, *, resume: bool = False,
                    kill_after: int | None = None, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """fit_classifier on 12 random images; returns the epochs it checkpointed (kill_after: stop there)."""
    generator = np.random.default_rng(3)
    images = generator.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0] * 4)
    ids = [str(index) for index in range(12)]
    saved: list[int] = []
    original = lifecycle.save_checkpoint

    def recording_save(checkpoint, run_, epoch, extra=None):
        path = original(checkpoint, run_, epoch, extra=extra)
        saved.append(epoch)
        if epoch == kill_after:
            raise SimulatedKill()
        return path

    monkeypatch.setattr(lifecycle, "save_checkpoint", recording_save)
    with pytest.raises(SimulatedKill) if kill_after else contextlib.nullcontext():
        train.fit_classifier(config, run, ImageSet(images, labels, ids), ImageSet(images[:6], labels[:6], ids[:6]),
                             resume=resume)
    monkeypatch.setattr(lifecycle, "save_checkpoint", original)
    return saved


def _checkpoint_weights(run: runs.Run, config: config_module.Config) -> list[np.ndarray]:
    model = train.build_compiled_model(config)
    lifecycle.restore_checkpoint(tf.train.Checkpoint(model=model, optimizer=model.optimizer), run)
    return [variable.numpy() for variable in model.weights]


def test_killed_and_resumed_training_equals_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    config = config_module.load_config(overrides=[*TINY, "classifier.epochs=3", "classifier.early_stopping_patience=9",
                                                   "seed=4"])
    whole = runs.Run.create(tmp_path / "whole", config, train.STAGE)
    assert _fit_in_process(whole, config, monkeypatch=monkeypatch) == [1, 2, 3]

    resumed = runs.Run.create(tmp_path / "resumed", config, train.STAGE)
    assert _fit_in_process(resumed, config, kill_after=1, monkeypatch=monkeypatch) == [1]
    rows_before_kill = resumed.history()
    weights_before_kill = _checkpoint_weights(resumed, config)
    assert _fit_in_process(resumed, config, resume=True, monkeypatch=monkeypatch) == [2, 3]

    # the epoch trained before the kill is kept as it was, not trained again
    assert resumed.history()[:1] == rows_before_kill
    assert [row["epoch"] for row in resumed.history()] == ["1", "2", "3"]
    # the same run as without the kill: the per-epoch order depends on (seed, epoch) only
    columns = ("loss", "auc", "val_loss", "val_auc", "learning_rate")
    for whole_row, resumed_row in zip(whole.history(), resumed.history()):
        np.testing.assert_allclose([float(whole_row[name]) for name in columns],
                                   [float(resumed_row[name]) for name in columns], rtol=1e-4, atol=1e-6)
    final_whole, final_resumed = _checkpoint_weights(whole, config), _checkpoint_weights(resumed, config)
    for expected, actual in zip(final_whole, final_resumed):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(before, after) for before, after in zip(weights_before_kill, final_resumed))


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    whole = train.epoch_orders(10, seed=3, first_epoch=0, epochs=4)
    resumed = train.epoch_orders(10, seed=3, first_epoch=2, epochs=4)
    assert whole.shape == (4, 10) and resumed.shape == (2, 10)
    np.testing.assert_array_equal(whole[2:], resumed)
    assert all(sorted(order) == list(range(10)) for order in whole)
    assert not np.array_equal(whole[0], whole[1])
    assert not np.array_equal(whole, train.epoch_orders(10, seed=4, first_epoch=0, epochs=4))


def test_a_model_save_cut_short_leaves_only_a_temp_file_the_next_start_removes(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    target.write_bytes(b"the previous best model")

    class DyingSave:
        def save(self, path) -> None:
            Path(path).write_bytes(b"half a model")
            raise KeyboardInterrupt  # the process is stopped in the middle of model.save

    with pytest.raises(KeyboardInterrupt):
        train.save_model_atomically(DyingSave(), target)
    assert target.read_bytes() == b"the previous best model"
    (leftover,) = [path for path in tmp_path.iterdir() if path != target]
    # the temp name carries this process's pid, so a later stage start can tell it is stale once we are gone
    assert runs.remove_stale_temporaries(tmp_path) == []  # this (live) process still owns it
    stale = leftover.with_name(leftover.name.replace(f".{os.getpid()}.", ".999999999."))
    leftover.rename(stale)
    assert runs.remove_stale_temporaries(tmp_path) == [stale]
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]
