"""A stage never writes into a folder that is not its own (issue 14, reliability holes 1 and 2).

Every stage and step, started or resumed on another stage's folder, on a finished run, or on a run
another process is working on, is refused with one line naming the folder and what it holds, and
leaves every file of that folder byte-identical: no config, status, history, lock or job file
written, and a finished run is never marked failed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.runs import jobs, layout, lifecycle, runs
from melanet.cli import main

REPOSITORY = Path(__file__).resolve().parents[1]
DEMO = REPOSITORY / "models" / "demo"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) below ``folder``, by relative path."""
    return {path.relative_to(folder).as_posix(): (path.read_bytes() if path.is_file() else None)
            for path in sorted(folder.rglob("*"))}


def _checkpoint(run: runs.Run, epoch: int = 1) -> None:
    """A checkpoint as ``lifecycle.save_checkpoint`` leaves it (the contents do not matter here)."""
    folder = run.files.checkpoints / f"{layout.CHECKPOINT_FOLDER_PREFIX}{epoch:04d}"
    folder.mkdir(parents=True)
    (folder / "state.index").write_bytes(b"index")
    runs.atomic_write_json(run.files.latest_checkpoint, {"epoch": epoch, "folder": folder.name})


@pytest.fixture
def shipped_gan(tmp_path: Path) -> Path:
    """The shipped demo's stage-1 run: finished, synthesized, no checkpoints."""
    return Path(shutil.copytree(DEMO / "gan", tmp_path / "shipped-gan"))


@pytest.fixture
def stopped_gan(tmp_path: Path) -> Path:
    """A stage-1 run stopped after epoch 1: checkpoint, history, status 'stopped'."""
    run = runs.Run.create(tmp_path / "gan", config_module.load_config("configs/smoke.yaml"), "train-gan")
    run.update_status(state="stopped", epoch=1)
    run.append_history({"epoch": 1, "cycle": 0.5})
    _checkpoint(run)
    return run.path


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    """A finished, evaluated stage-2 run with a checkpoint (the shipped MelaNet run plus one)."""
    path = Path(shutil.copytree(DEMO / "melanet", tmp_path / "classifier"))
    _checkpoint(runs.Run(path))
    return path


def refused(arguments: list[str], folder: Path, capsys: pytest.CaptureFixture[str], holds: str) -> None:
    """Run the CLI; it must exit 2 with one line naming ``folder`` and ``holds``, and change nothing."""
    before = snapshot(folder)
    capsys.readouterr()
    assert main(["-q", *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert str(folder) in error and holds in error, error
    assert snapshot(folder) == before


@pytest.mark.parametrize("arguments", [
    ["train-classifier", "--config", "configs/smoke.yaml", "--run"],
    ["train-classifier", "--resume"],
    ["compact", "--run"],
    ["evaluate", "--run"],
    ["evaluate", "--from-predictions", "--run"],
    ["explain", "--run"],
    ["embed", "--run"],
    ["reader-study", "create", "--name", "study", "--root", "studies-of-the-test", "--run"],
    ["compare", str(DEMO / "vgg_gap"), str(DEMO / "melanet"), "--out"],
])
def test_classifier_stages_leave_a_gan_run_alone(arguments, shipped_gan, stopped_gan, capsys) -> None:
    for gan in (shipped_gan, stopped_gan):
        refused([*arguments, str(gan)], gan, capsys, "holds a train-gan run")


@pytest.mark.parametrize("arguments", [
    ["train-gan", "--config", "configs/smoke.yaml", "--run"],
    ["train-gan", "--resume"],
    ["synthesize", "--run"],
    ["audit-synthesis", "--run"],
    ["compare", str(DEMO / "vgg_gap"), str(DEMO / "melanet"), "--out"],
])
def test_gan_stages_leave_a_classifier_run_alone(arguments, classifier, capsys) -> None:
    refused([*arguments, str(classifier)], classifier, capsys, "holds a train-classifier run")


def test_a_fresh_start_never_overwrites_a_finished_run(shipped_gan, stopped_gan, classifier, capsys) -> None:
    # the shipped GAN has no checkpoints; the old guard looked only at checkpoints and let this through
    refused(["train-gan", "--config", "configs/smoke.yaml", "--run", str(shipped_gan)], shipped_gan, capsys,
            "already holds a train-gan run (last synthesize, state done)")
    refused(["train-gan", "--config", "configs/smoke.yaml", "--run", str(stopped_gan)], stopped_gan, capsys,
            f"continue it with --resume {stopped_gan}")
    refused(["train-classifier", "--config", "configs/smoke.yaml", "--run", str(classifier)], classifier, capsys,
            "already holds a train-classifier run (state done)")
    # nothing to resume in a finished run without checkpoints
    refused(["train-gan", "--resume", str(shipped_gan)], shipped_gan, capsys, "nothing to resume")


LOCK_HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from melanet.runs import runs
    run = runs.Run(sys.argv[1])
    with run.lock("train-gan"):
        run.update_status(stage="train-gan", state="running", pid=os.getpid())
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_a_running_gan_run_is_refused_before_anything_is_written(stopped_gan, capsys) -> None:
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(stopped_gan)], cwd=REPOSITORY,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused(["train-classifier", "--config", "configs/smoke.yaml", "--run", str(stopped_gan)], stopped_gan,
                capsys, "holds a train-gan run (state running)")
        # its own stage is refused as busy, again without a write (the status stays 'running')
        refused(["train-gan", "--resume", str(stopped_gan)], stopped_gan, capsys, "in progress in another process")
    finally:
        holder.kill()
        holder.wait()


def test_a_refused_start_does_not_mark_a_finished_run_failed(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "done", config_module.Config(), "train-gan")
    with lifecycle.stage_session(run, "train-gan"):
        _checkpoint(run)
    assert run.status()["state"] == "done"
    before = snapshot(run.path)
    with pytest.raises(lifecycle.ForeignFolderError, match="already holds a train-gan run"):
        with lifecycle.stage_session(run, "train-gan"):
            pytest.fail("the body of a refused session must not run")
    assert run.status()["state"] == "done"
    assert snapshot(run.path) == before


def test_jobs_refuse_a_foreign_folder_before_writing_job_files(shipped_gan, classifier) -> None:
    before = snapshot(shipped_gan)
    with pytest.raises(lifecycle.ForeignFolderError, match="holds a train-gan run"):
        jobs.start("train-classifier", shipped_gan, config=REPOSITORY / "configs" / "smoke.yaml")
    with pytest.raises(lifecycle.ForeignFolderError, match="holds a train-gan run"):
        jobs.start("evaluate", shipped_gan)
    assert snapshot(shipped_gan) == before
    runs.Run(classifier).update_status(state="stopped")
    before = snapshot(classifier)
    with pytest.raises(lifecycle.ForeignFolderError, match="holds a train-classifier run"):
        jobs.start("synthesize", classifier)
    assert snapshot(classifier) == before


@pytest.mark.parametrize("stage", ["train-gan", "train-classifier"])
def test_new_and_reusable_folders_are_accepted(tmp_path: Path, stage: str) -> None:
    lifecycle.check_folder(runs.Run(tmp_path / "new"), stage)
    launched = tmp_path / "launched"  # jobs.launch wrote its job files; the stage has not started yet
    launched.mkdir()
    (launched / layout.JOB_FILE).write_text("{}")
    lifecycle.check_folder(runs.Run(launched), stage)
    failed = runs.Run.create(tmp_path / "failed", config_module.Config(), stage)
    failed.update_status(state="failed")  # failed before its first checkpoint: start it afresh
    lifecycle.check_folder(runs.Run(failed.path), stage)
    _checkpoint(failed)
    lifecycle.check_folder(runs.Run(failed.path), stage, resume=True)


def test_a_checkpoint_of_another_stage_or_model_is_not_restored(tmp_path: Path) -> None:
    import tensorflow as tf

    run = runs.Run.create(tmp_path / "run", config_module.Config(), "train-classifier")
    with lifecycle.stage_session(run, "train-classifier"):
        lifecycle.save_checkpoint(tf.train.Checkpoint(model_weight=tf.Variable([1.0, 2.0])), run, 1)
        restored = tf.Variable([0.0, 0.0])
        assert lifecycle.restore_checkpoint(tf.train.Checkpoint(model_weight=restored), run) == 1
        assert restored.numpy().tolist() == [1.0, 2.0]
        # a model whose variables the checkpoint does not hold: refused, not silently left untrained
        with pytest.raises(runs.RunError, match="does not match"):
            lifecycle.restore_checkpoint(tf.train.Checkpoint(generator=tf.Variable([0.0])), run)
    run.update_status(stage="train-gan")  # as if the folder now said stage 1
    with pytest.raises(runs.RunError, match="holds a train-classifier checkpoint"):
        lifecycle.restore_checkpoint(tf.train.Checkpoint(model_weight=tf.Variable([0.0, 0.0])), run)
