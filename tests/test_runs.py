"""Run folders: atomic files, status, history, locks, and safe run names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from melanet import config, runs, training


def test_create_writes_config_and_pending_status(tmp_path: Path) -> None:
    chosen = config.load_config(None, ["gan.epochs=3"])
    run = runs.Run.create(tmp_path / "run", chosen, "train-gan")
    assert run.config() == chosen
    status = run.status()
    assert status["stage"] == "train-gan" and status["state"] == "pending"
    assert runs.Run.open(run.path).config().gan.epochs == 3


def test_open_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match="run folder not found"):
        runs.Run.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(runs.RunError, match="config.yaml missing"):
        runs.Run.open(tmp_path / "plain")


def test_history_appends_and_truncates(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    for epoch in range(1, 5):
        run.append_history({"epoch": epoch, "loss": 1.0 / epoch})
    assert [row["epoch"] for row in run.history()] == ["1", "2", "3", "4"]
    run.truncate_history(2)
    assert [row["epoch"] for row in run.history()] == ["1", "2"]
    run.append_history({"epoch": 3, "loss": 0.3, "extra": 1})
    assert run.history()[-1]["extra"] == "1"


def test_atomic_write_leaves_no_partial_file_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    runs.atomic_write_json(target, {"auc": 0.5})

    class Exploding:
        def tolist(self) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        runs.atomic_write_json(target, {"auc": Exploding()})
    assert runs.read_json(target) == {"auc": 0.5}
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from melanet import runs
    run = runs.Run(sys.argv[1])
    with run.lock("test"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_lock_refuses_second_process_and_is_released_on_sigkill(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run.is_locked()
        with pytest.raises(runs.RunBusyError, match="already in use"):
            with run.lock("second"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert not run.is_locked()
    with run.lock("after kill"):
        assert run.is_locked()


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/../../b", "~/x", "C:/x", "", "a/./b", "bad name"])
def test_run_names_cannot_leave_the_runs_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(runs.RunError):
        runs.resolve_run_name(tmp_path, name)


def test_run_names_inside_the_runs_dir_resolve(tmp_path: Path) -> None:
    assert runs.resolve_run_name(tmp_path, "gan-1") == (tmp_path / "gan-1").resolve()
    assert runs.resolve_run_name(tmp_path, "demo/melanet") == (tmp_path / "demo" / "melanet").resolve()


def test_stage_session_records_done_failed_and_stopped(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "ok", config.Config(), "train-gan")
    with training.stage_session(run, "train-gan"):
        assert run.status()["state"] == "running"
        assert run.status()["pid"] == os.getpid()
    assert run.status()["state"] == "done"

    failing = runs.Run.create(tmp_path / "bad", config.Config(), "train-gan")
    with pytest.raises(ZeroDivisionError):
        with training.stage_session(failing, "train-gan"):
            1 / 0
    assert failing.status()["state"] == "failed"
    assert "ZeroDivisionError" in failing.status()["message"]

    stopped = runs.Run.create(tmp_path / "stop", config.Config(), "train-gan")
    with pytest.raises(training.StopRequested):
        with training.stage_session(stopped, "train-gan"):
            raise training.StopRequested()
    assert stopped.status()["state"] == "stopped"


def test_epoch_reporter_writes_history_status_and_eta(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    calls: list[tuple[int, int]] = []
    reporter = training.EpochReporter(run, epochs=2, steps_per_epoch=4, progress=lambda d, t, m: calls.append((d, t)),
                                      min_interval_seconds=0.0)
    for epoch in (1, 2):
        reporter.start_epoch(epoch)
        for step in range(1, 5):
            time.sleep(0.001)
            reporter.step(epoch, step)
        reporter.end_epoch(epoch, {"loss": 0.5})
    status = run.status()
    assert (status["epoch"], status["epochs"], status["progress"]) == (2, 2, 1.0)
    assert status["eta_seconds"] == 0
    assert [row["epoch"] for row in run.history()] == ["1", "2"]
    assert calls[-1] == (8, 8)


def test_checkpoints_are_atomic_and_only_the_newest_is_kept(tmp_path: Path) -> None:
    import tensorflow as tf

    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    variable = tf.Variable(1.0)
    state = tf.train.Checkpoint(variable=variable)
    assert training.restore_checkpoint(state, run) == 0
    for epoch in (1, 2, 3):
        variable.assign(float(epoch))
        training.save_checkpoint(state, run, epoch)
    assert sorted(path.name for path in run.checkpoint_dir.iterdir()) == ["epoch-0003", "latest.json"]
    variable.assign(0.0)
    assert training.restore_checkpoint(state, run) == 3
    assert float(variable.numpy()) == 3.0


def test_atomic_files_are_readable_like_ordinary_new_files(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    runs.atomic_write_json(target, {"state": "done"})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
