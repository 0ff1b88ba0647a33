"""End to end: `melanet train-gan` killed and resumed, a busy run refused, `melanet synthesize`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from melanet.runs import lifecycle, runs
from melanet.cli import main
from melanet.data import splits
from melanet.gan import synthesis, train

REPOSITORY = Path(__file__).resolve().parents[1]
EPOCHS = 15


def _start_training(run_dir: Path, data_root: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "melanet", "-q", "train-gan", "--config", "configs/smoke.yaml",
        "--set", f"data.root={data_root}", "--set", f"gan.epochs={EPOCHS}", "--set", "gan.batch_size=1",
        "--set", "distribute=mirrored", "--run", str(run_dir),
    ]
    return subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"training ended early ({process.returncode}): {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


@pytest.mark.slow
def test_killed_training_resumes_to_the_configured_epochs_then_synthesizes(tmp_path, tiny_isic, capsys):
    run_dir = tmp_path / "gan"
    process = _start_training(run_dir, tiny_isic)
    try:
        _wait_for(run_dir / "checkpoints" / lifecycle.LATEST_FILE, process)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        _, stderr = process.communicate()
    run = runs.Run.open(run_dir)
    killed_at = lifecycle.latest_checkpoint(run)["epoch"]
    assert 1 <= killed_at < EPOCHS, f"the kill must land mid-training: {stderr[-2000:]}"
    assert run.status()["state"] == "running" and run.status()["alive"] is False
    assert not train.generator_path(run, "generator_benign_to_malignant").exists()
    rows_before_kill = run.history()[:killed_at]
    grids_before_kill = [train.sample_path(run, epoch).read_bytes() for epoch in range(1, killed_at + 1)]

    # a stopped run can still be looked at: its generators come from the last checkpoint
    to_malignant, to_benign = synthesis.load_generators(run, run.config())
    assert to_benign(to_malignant(np.zeros((1, 32, 32, 3), np.float32))).shape == (1, 32, 32, 3)

    # while another process holds the run (here: this one), a second training is refused untouched
    with run.lock("test"):
        assert main(["-q", "train-gan", "--resume", str(run_dir)]) == 2
        assert "in another process" in capsys.readouterr().err  # refused as busy, before any write
    assert lifecycle.latest_checkpoint(run)["epoch"] == killed_at

    # a fresh start on the half-trained folder is refused: it would mix two trainings
    assert main(["-q", "train-gan", "--config", "configs/smoke.yaml", "--run", str(run_dir)]) == 2
    assert "--resume" in capsys.readouterr().err

    assert main(["-q", "train-gan", "--resume", str(run_dir)]) == 0
    history = run.history()
    assert [int(row["epoch"]) for row in history] == list(range(1, EPOCHS + 1))
    # the epochs finished before the kill are kept as they were, not trained again
    assert history[:killed_at] == rows_before_kill
    assert [train.sample_path(run, epoch).read_bytes() for epoch in range(1, killed_at + 1)] == grids_before_kill
    assert list(history[0]) == list(train.HISTORY_COLUMNS)
    assert all(np.isfinite(float(row["cycle"])) for row in history)
    status = run.status()
    assert status["state"] == "done" and status["epoch"] == EPOCHS and status["progress"] == 1.0
    assert lifecycle.latest_checkpoint(run)["epoch"] == EPOCHS
    grids = sorted(path.name for path in run.figures_dir.glob("samples_epoch_*.png"))
    assert grids == [f"samples_epoch_{epoch:03d}.png" for epoch in range(1, EPOCHS + 1)]
    with Image.open(run.figures_dir / "samples_epoch_001.png") as grid:
        assert grid.width > grid.height / 2  # three columns, sample_count rows
    for name in train.GENERATOR_NAMES:
        assert train.generator_path(run, name).is_file()

    # synthesis: one image per benign training image (training part only), a matching manifest
    config = run.config()
    training_set, validation_set = splits.training_and_validation(config.data, config.seed)
    benign_ids = [image_id for image_id, label in zip(training_set.ids, training_set.labels) if label == 0]
    assert main(["-q", "synthesize", "--run", str(run_dir), "--batch-size", "3"]) == 0
    rows = synthesis.read_manifest(run_dir)
    assert [row["source_id"] for row in rows] == benign_ids
    assert not set(benign_ids) & set(validation_set.ids)
    images = sorted((run_dir / "synthetic" / "images").iterdir())
    assert [path.stem for path in images] == sorted(f"syn_{image_id}" for image_id in benign_ids)
    for row in rows:
        assert row["synthetic_id"] == f"syn_{row['source_id']}"
        for key in ("path", "reconstruction_path"):
            with Image.open(run_dir / row[key]) as image:
                assert image.size == (config.data.image_size, config.data.image_size) and image.mode == "RGB"
    assert run.status()["stage"] == "synthesize" and run.status()["state"] == "done"

    # per image and resumable: existing images are kept, a missing one is made again
    kept = run_dir / rows[0]["path"]
    missing = run_dir / rows[1]["path"]
    kept_time = kept.stat().st_mtime_ns
    missing.unlink()
    assert main(["-q", "synthesize", "--run", str(run_dir)]) == 0
    assert missing.is_file() and kept.stat().st_mtime_ns == kept_time

    # the package API that stage 2 uses
    synthetic = synthesis.load_synthetic(run_dir, 16)
    assert synthetic.images.shape == (len(benign_ids), 16, 16, 3) and synthetic.images.dtype == np.uint8
    assert synthetic.labels.tolist() == [1] * len(benign_ids)
    assert synthetic.ids == [f"syn_{image_id}" for image_id in benign_ids]
    full_size = synthesis.load_synthetic(run_dir, config.data.image_size)
    with Image.open(run_dir / rows[0]["path"]) as first:
        np.testing.assert_array_equal(full_size.images[0], np.asarray(first))


def test_resume_keeps_the_saved_config(tmp_path):
    from melanet import config as config_module

    run = runs.Run.create(tmp_path / "run", config_module.load_config("configs/smoke.yaml"), "train-gan")
    assert main(["-q", "train-gan", "--resume", str(run.path), "--set", "gan.generator_filters=8"]) == 2
    assert main(["-q", "train-gan", "--resume", str(run.path), "--config", "configs/demo.yaml"]) == 2
    assert main(["-q", "synthesize", "--run", str(run.path)]) == 2  # no generators yet
    assert main(["-q", "synthesize", "--run", str(tmp_path / "nowhere")]) == 2
    with pytest.raises(runs.RunError, match="melanet synthesize"):
        synthesis.load_synthetic(run.path, 32)


def test_one_line_errors_for_a_file_as_run_folder_and_a_bad_config(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a run")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("data:\n  root: /données\n".encode("latin-1"))
    cases = [
        (["train-gan", "--config", "configs/smoke.yaml", "--run", str(notes)], "is a file, not a run folder"),
        (["train-classifier", "--config", "configs/smoke.yaml", "--run", str(notes)], "is a file, not a run folder"),
        (["train-gan", "--resume", str(notes)], "is a file, not a run folder"),
        (["train-gan", "--config", str(latin1), "--run", str(tmp_path / "a")], "not a UTF-8 text file"),
        (["train-gan", "--config", "configs/smoke.yaml", "--set", "data.image_size=17", "--run", str(tmp_path / "b")],
         "divisible by"),
        (["train-gan", "--config", "configs/smoke.yaml", "--set", "gan.learning_rate=nan", "--run", str(tmp_path / "c")],
         "gan.learning_rate"),
    ]
    for arguments, fragment in cases:
        assert main(["-q", *arguments]) == 2, arguments
        error_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(error_lines) == 1 and fragment in error_lines[0], (arguments, error_lines)
        assert "Traceback" not in error_lines[0]
    assert notes.read_text() == "not a run" and not any((tmp_path / name).exists() for name in "abc")


def test_a_truncated_checkpoint_is_one_line_not_a_traceback(tmp_path, tiny_isic, capsys):
    import tensorflow as tf

    from melanet import config as config_module
    from melanet.gan import model

    config = config_module.load_config("configs/smoke.yaml", [f"data.root={tiny_isic}", "gan.batch_size=1"])
    run = runs.Run.create(tmp_path / "gan", config, train.STAGE)
    cyclegan = model.from_config(config.gan, config.data.image_size)
    saved = lifecycle.save_checkpoint(cyclegan.checkpoint(epoch=tf.Variable(1, dtype=tf.int64)), run, 1)
    run.update_status(state="stopped", epoch=1)
    data_file = next(saved.glob("state.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:1000])  # a disk that filled up, a copy cut short
    assert main(["-q", "train-gan", "--resume", str(run.path)]) == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(error_lines) == 1 and "the checkpoint is damaged" in error_lines[0] and str(saved) in error_lines[0]
