"""Run folders: atomic files, status, history, locks, and safe run names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from melanet import config
from melanet.runs import lifecycle, runs


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


def test_atomic_write_keeps_the_old_file_when_the_writer_fails_midway(tmp_path: Path) -> None:
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old" * 1000)

    def half_then_fail(stream) -> None:
        stream.write(b"new" * 500)  # half of the new content is already on disk
        stream.flush()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runs.atomic_write_with(target, half_then_fail)
    assert target.read_bytes() == b"old" * 1000
    assert [path.name for path in tmp_path.iterdir()] == ["weights.bin"]


SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from melanet.runs import runs

    def write(stream):
        stream.write(b"n" * 4_000_000)  # the first half of a large file
        stream.flush()
        print("half written", flush=True)
        time.sleep(60)
        stream.write(b"n" * 4_000_000)

    runs.atomic_write_with(sys.argv[1], write)
    """
)


def test_atomic_write_survives_a_writer_killed_mid_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old model")
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "half written"
        leftovers = [path for path in tmp_path.iterdir() if path != target]
        assert len(leftovers) == 1 and leftovers[0].stat().st_size == 4_000_000  # killed mid-file
    finally:
        writer.kill()
        writer.wait()
    assert target.read_bytes() == b"old model"
    # the killed writer's temp file is recognised by its pid and removed by the next cleanup
    assert runs.remove_stale_temporaries(tmp_path) == leftovers
    assert [path.name for path in tmp_path.iterdir()] == ["model.bin"]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stage_start_removes_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-classifier")
    dead, alive = _dead_pid(), os.getpid()
    run.checkpoint_dir.mkdir()
    stale = [run.path / f".model.{dead}.tmp.keras", run.path / f".history.csv.{dead}.k2j_x9a1.tmp",
             run.path / f".generator_benign_to_malignant.{dead}.keras"]
    for path in stale:
        path.write_bytes(b"partial")
    (run.checkpoint_dir / f".staging-epoch-0002-{dead}").mkdir()
    live = run.path / f".model.{alive}.tmp.keras"
    live.write_bytes(b"being written")
    keep = [run.path / "model.keras", run.path / ".model.keras.notes"]
    for path in keep:
        path.write_bytes(b"kept")
    with lifecycle.stage_session(run, "train-classifier"):
        assert not any(path.exists() for path in stale)
        assert not (run.checkpoint_dir / f".staging-epoch-0002-{dead}").exists()
        assert live.exists() and all(path.exists() for path in keep)


def test_a_deleted_run_folder_is_not_recreated_by_status_or_history(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    shutil.rmtree(run.path)
    with pytest.raises(runs.RunError, match="deleted"):
        run.update_status(state="running", epoch=2)
    with pytest.raises(runs.RunError, match="deleted"):
        run.append_history({"epoch": 2, "loss": 0.1})
    assert not run.path.exists()


def test_a_stage_whose_folder_is_deleted_fails_clearly(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    reporter = lifecycle.EpochReporter(run, epochs=2, steps_per_epoch=1, min_interval_seconds=0.0)
    with pytest.raises(runs.RunError, match="deleted"):
        with lifecycle.stage_session(run, "train-gan"):
            reporter.start_epoch(1)
            shutil.rmtree(run.path)
            reporter.end_epoch(1, {"loss": 0.5})
    assert not run.path.exists()


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from melanet.runs import runs
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


def test_a_symlink_inside_the_runs_dir_cannot_lead_out(tmp_path: Path) -> None:
    runs_dir, outside = tmp_path / "runs", tmp_path / "outside"
    runs_dir.mkdir()
    outside.mkdir()
    (runs_dir / "link").symlink_to(outside, target_is_directory=True)
    for name in ("link", "link/run-1"):
        with pytest.raises(runs.RunError, match="resolves outside"):
            runs.resolve_run_name(runs_dir, name)
    (runs_dir / "inner").symlink_to(runs_dir / "real", target_is_directory=True)
    assert runs.resolve_run_name(runs_dir, "inner/run-1") == (runs_dir / "real" / "run-1").resolve()


def test_run_names_inside_the_runs_dir_resolve(tmp_path: Path) -> None:
    assert runs.resolve_run_name(tmp_path, "gan-1") == (tmp_path / "gan-1").resolve()
    assert runs.resolve_run_name(tmp_path, "demo/melanet") == (tmp_path / "demo" / "melanet").resolve()


def test_stage_session_records_done_failed_and_stopped(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "ok", config.Config(), "train-gan")
    with lifecycle.stage_session(run, "train-gan"):
        assert run.status()["state"] == "running"
        assert run.status()["pid"] == os.getpid()
    assert run.status()["state"] == "done"

    failing = runs.Run.create(tmp_path / "bad", config.Config(), "train-gan")
    with pytest.raises(ZeroDivisionError):
        with lifecycle.stage_session(failing, "train-gan"):
            1 / 0
    assert failing.status()["state"] == "failed"
    assert "ZeroDivisionError" in failing.status()["message"]

    stopped = runs.Run.create(tmp_path / "stop", config.Config(), "train-gan")
    with pytest.raises(lifecycle.StopRequested):
        with lifecycle.stage_session(stopped, "train-gan"):
            raise lifecycle.StopRequested()
    assert stopped.status()["state"] == "stopped"


def test_epoch_reporter_writes_history_status_and_eta(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config.Config(), "train-gan")
    calls: list[tuple[int, int]] = []
    reporter = lifecycle.EpochReporter(run, epochs=2, steps_per_epoch=4, progress=lambda d, t, m: calls.append((d, t)),
                                      min_interval_seconds=0.0)
    for epoch in (1, 2):
        reporter.start_epoch(epoch)
        for step in range(1, 5):
            time.sleep(0.001)
            reporter.batch_done(epoch, step)
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
    assert lifecycle.restore_checkpoint(state, run) == 0
    for epoch in (1, 2, 3):
        variable.assign(float(epoch))
        lifecycle.save_checkpoint(state, run, epoch)
    assert sorted(path.name for path in run.checkpoint_dir.iterdir()) == ["epoch-0003", "latest.json"]
    variable.assign(0.0)
    assert lifecycle.restore_checkpoint(state, run) == 3
    assert float(variable.numpy()) == 3.0


def test_atomic_files_are_readable_like_ordinary_new_files(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    runs.atomic_write_json(target, {"state": "done"})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_a_file_is_refused_as_a_run_folder(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a run")
    with pytest.raises(runs.RunError, match="is a file, not a run folder"):
        runs.Run(notes)
    assert notes.read_text() == "not a run"


def test_run_names_longer_than_a_folder_name_may_be_are_refused(tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match="300 characters"):
        runs.resolve_run_name(tmp_path, "a" * 300)
    longest = "b" * runs.MAX_RUN_NAME_LENGTH
    assert runs.resolve_run_name(tmp_path, f"group/{longest}") == (tmp_path / "group" / longest).resolve()
    runs.Run.create(tmp_path / longest, config.Config(), "train-gan")  # the file system takes it
