"""The lifecycle every stage and step shares: folder check, lock, status transitions, checkpoints.

- ``check_folder`` refuses, before anything is written, a folder that belongs to another stage, a
  finished run that a fresh start would overwrite, or a resume of something that is not this stage.
- ``stage_session`` (training stages and ``synthesize``): check, hold the run lock, mark the status
  running/done/failed/stopped, and turn SIGTERM (the dashboard's Stop) into ``StopRequested``, a
  clean stop that keeps the last checkpoint (the CLI exits ``stages.STOPPED_EXIT_CODE``).
- ``step_session`` (evaluate, explain, embed): check, hold the lock, and keep the step's own entry
  in ``status.json`` (running/done/failed), leaving the run's stage and state alone.
- ``error_message`` is how a failure is written into a status (type, message, truncated).
- ``EpochReporter`` writes per-epoch history rows and throttled status updates (epoch, step, ETA).
- ``save_checkpoint`` / ``restore_checkpoint`` write ``tf.train.Checkpoint`` objects atomically:
  a complete checkpoint folder is renamed into place, then ``checkpoints/latest.json`` names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from melanet.runs import layout, runs, stages
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

LATEST_FILE = layout.LATEST_CHECKPOINT_FILE
ERROR_MESSAGE_LIMIT = 500  # characters of an error kept in status.json


class StopRequested(Exception):
    """Raised inside a stage when SIGTERM arrives; the stage ends as 'stopped', resumable."""


class ForeignFolderError(runs.RunError):
    """The folder holds something this stage must not write over (another stage's run, a finished run)."""


def error_message(error: BaseException) -> str:
    """``"TypeName: message"`` cut to ``ERROR_MESSAGE_LIMIT`` characters, as status.json keeps it."""
    return f"{type(error).__name__}: {error}"[:ERROR_MESSAGE_LIMIT]


# -------------------------------------------------------------------------------------------------
# whose folder is it?


def folder_stage(run: runs.Run) -> str | None:
    """The stage whose folder ``run`` is (a ``stages.STAGES`` ``folder_stage``), or None when unknown.

    From ``status.json``'s ``stage`` when there is one, else from the files (generators: stage 1,
    a model or metrics: stage 2, a comparison table: reproduce). Reads only.
    """
    recorded = stages.folder_stage_of(run.status().get("stage"))
    if recorded is not None:
        return recorded
    files = run.files
    if files.table_markdown.is_file():
        return "reproduce"
    if any(files.generator(name).is_file() for name in layout.GENERATOR_NAMES) or files.synthetic_manifest.is_file():
        return "train-gan"
    if runs.model_file(run.path) is not None or files.metrics.is_file():
        return "train-classifier"
    return None


def describe_folder(run: runs.Run) -> str:
    """What the folder holds, for a refusal: ``"a train-gan run (state done)"``."""
    status = run.status()
    owner = folder_stage(run) or "unknown"
    recorded = status.get("stage")
    last = f"last {recorded}, " if recorded and recorded != owner else ""
    return f"a {owner} run ({last}state {status.get('state', 'unknown')})"


def check_folder(run: runs.Run, stage_name: str, *, resume: bool = False, holding_lock: bool = False) -> None:
    """Refuse, before anything is written, to run ``stage_name`` on a folder it must not touch.

    Raises ``ForeignFolderError`` (a ``RunError``, so the CLI prints one line and exits 2) when the
    folder belongs to another stage; for a fresh start of a training stage, when it already holds a
    finished run or checkpoints of this stage (continue those with ``--resume``); for ``resume``,
    when it holds no run of this stage. ``RunBusyError`` when a process is working on it.
    A folder that does not exist yet, or holds no run, is fine for a fresh start. ``holding_lock``:
    the caller holds the run's lock (then no other process can be working on it).
    """
    stage = stages.get(stage_name)
    owner = folder_stage(run)
    holds = describe_folder(run)
    if owner is not None and owner != stage.folder_stage:
        raise ForeignFolderError(
            f"{run.path}: holds {holds}, not a {stage.folder_stage} run; {stage.verb} leaves it untouched, "
            "choose another folder"
        )
    if not holding_lock and run.status().get("state") == "running" and run.is_locked():
        raise runs.RunBusyError(f"{run.path}: {holds} is in progress in another process; wait for it or stop it")
    if stage.kind != "training" or stage.continues_own_folder:
        return
    if owner is None:
        if resume:
            raise ForeignFolderError(f"{run.path}: holds no {stage.name} run to resume")
        return
    status = run.status()
    has_checkpoint = run.files.latest_checkpoint.is_file()
    # done, or a later step of the same folder ran on it (synthesize on a train-gan run)
    finished = status.get("state") == "done" or status.get("stage", stage.name) != stage.name
    if resume:
        if finished and not has_checkpoint:
            raise ForeignFolderError(f"{run.path}: holds {holds} without checkpoints; there is nothing to resume")
        return
    if has_checkpoint or finished:
        hint = f"continue it with --resume {run.path} or " if has_checkpoint and stage.resumable else ""
        raise ForeignFolderError(f"{run.path}: already holds {holds}; {hint}choose another folder")


# -------------------------------------------------------------------------------------------------
# sessions


@contextlib.contextmanager
def stage_session(run: runs.Run, stage: str, *, resume: bool = False) -> Iterator[None]:
    """Check the folder, lock ``run``, mark it running, and record how the stage ended.

    A refused folder (``check_folder``) or a second process on the same run (``RunBusyError``) is
    refused before anything is written, so a refused start never changes the run's state.
    """
    check_folder(run, stage, resume=resume)
    with run.lock(stage):
        check_folder(run, stage, resume=resume, holding_lock=True)  # again: nothing changes it now
        # holding the lock, no live process writes here: temp files are leftovers of a killed one
        for folder in (run.path, run.checkpoint_dir):
            runs.remove_stale_temporaries(folder)
        previous = signal.getsignal(signal.SIGTERM)

        def on_terminate(signum: int, frame: Any) -> None:
            raise StopRequested()

        signal.signal(signal.SIGTERM, on_terminate)
        run.update_status(stage=stage, state="running", pid=os.getpid(), started_at=runs.now_iso(),
                          message="starting", finished_at=None)
        try:
            yield
        except (StopRequested, KeyboardInterrupt):
            run.update_status(state="stopped", message="stopped; resume with --resume", finished_at=runs.now_iso())
            raise
        except BaseException as error:
            run.update_status(state="failed", message=error_message(error), finished_at=runs.now_iso())
            raise
        else:
            status = run.status()
            if status.get("state") == "running":
                run.update_status(state="done", progress=1.0, eta_seconds=0, message="done",
                                  finished_at=runs.now_iso())
        finally:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def step_session(run: runs.Run, step: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Check the folder, lock ``run`` and keep the step's entry in ``status.json`` (e.g. ``evaluation``).

    The entry starts as ``{"state": "running", **fields, "started_at"}``. The body may add to the
    yielded mapping; ``update(...)`` writes progress while it runs. On success the entry becomes
    ``done`` with everything added; on an exception ``failed`` with ``error_message``; the run's own
    stage and state stay as they were.
    """
    key = stages.get(step).status_key
    if key is None:
        raise ValueError(f"stage {step!r} keeps no entry of its own in status.json")
    check_folder(run, step)
    with run.lock(step):
        check_folder(run, step, holding_lock=True)
        entry = StepEntry(run, key, {"state": "running", **fields, "started_at": runs.now_iso()})
        try:
            yield entry
        except BaseException as error:
            entry.finish(state="failed", message=error_message(error))
            raise
        entry.finish(state="done")


class StepEntry(dict):
    """A step's entry in ``status.json`` (a dict); ``update`` rewrites it at once."""

    def __init__(self, run: runs.Run, key: str, fields: Mapping[str, Any]):
        super().__init__(fields)
        self.run = run
        self.key = key
        self.write()

    def write(self) -> None:
        self.run.update_status(**{self.key: dict(self)})

    def update(self, *args: Any, **fields: Any) -> None:  # type: ignore[override]
        super().update(*args, **fields)
        self.write()

    def finish(self, **fields: Any) -> None:
        self.update(**fields, finished_at=runs.now_iso())


class EpochReporter:
    """Progress of an epoch-based stage into ``status.json``, ``history.csv`` and a callback."""

    def __init__(
        self,
        run: runs.Run,
        epochs: int,
        steps_per_epoch: int,
        *,
        first_epoch: int = 1,
        progress: Progress | None = None,
        min_interval_seconds: float = 1.0,
    ):
        self.run = run
        self.epochs = epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.first_epoch = first_epoch
        self.progress = progress
        self.min_interval_seconds = min_interval_seconds
        self._started = time.monotonic()
        self._last_write = 0.0
        self._epoch_started = time.monotonic()

    def _eta(self, epoch: int, batch: int) -> float | None:
        done = (epoch - self.first_epoch) * self.steps_per_epoch + batch
        remaining = (self.epochs - epoch + 1) * self.steps_per_epoch - batch
        if done <= 0:
            return None
        return (time.monotonic() - self._started) / done * remaining

    def start_epoch(self, epoch: int) -> None:
        self._epoch_started = time.monotonic()
        self.batch_done(epoch, 0, force=True)

    def batch_done(self, epoch: int, batch: int, message: str = "", force: bool = False) -> None:
        """Called after batch ``batch`` (1-based) of ``epoch``; cheap: writes at most every
        ``min_interval_seconds``. ``status.json`` calls the batch ``step`` of ``steps``."""
        total_steps = self.epochs * self.steps_per_epoch
        done_steps = (epoch - 1) * self.steps_per_epoch + batch
        if self.progress is not None:
            self.progress(done_steps, total_steps, message or f"epoch {epoch}/{self.epochs}")
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_seconds:
            return
        self._last_write = now
        eta = self._eta(epoch, batch)
        self.run.update_status(
            epoch=epoch, epochs=self.epochs, step=batch, steps=self.steps_per_epoch,
            progress=round(done_steps / total_steps, 4),
            eta_seconds=None if eta is None else round(eta, 1),
            message=message or f"epoch {epoch}/{self.epochs}",
        )

    def end_epoch(self, epoch: int, values: Mapping[str, Any]) -> dict[str, Any]:
        row = {"epoch": epoch, **values, "seconds": round(time.monotonic() - self._epoch_started, 2)}
        self.run.append_history(row)
        self.batch_done(epoch, self.steps_per_epoch, message=_summary(epoch, self.epochs, values), force=True)
        logger.info(_summary(epoch, self.epochs, values))
        return row


def _summary(epoch: int, epochs: int, values: Mapping[str, Any]) -> str:
    parts = [f"{key} {float(value):.4f}" for key, value in values.items() if _is_number(value)]
    return f"epoch {epoch}/{epochs}: " + ", ".join(parts)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# -------------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(checkpoint: Any, run: runs.Run, epoch: int, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``checkpoint`` (a ``tf.train.Checkpoint``) for ``epoch`` atomically; keep only the newest."""
    directory = run.checkpoint_dir
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"epoch-{epoch:04d}"
    staging = directory / f".staging-epoch-{epoch:04d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    checkpoint.write(str(staging / "state"))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    stage = run.status().get("stage")
    runs.atomic_write_json(directory / LATEST_FILE,
                           {"epoch": epoch, "folder": final.name, "stage": stage, **(extra or {})})
    for old in directory.iterdir():
        if old.is_dir() and old != final and (old.name.startswith("epoch-") or old.name.startswith(".staging-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: runs.Run) -> dict[str, Any] | None:
    """``{"epoch": N, "folder": ..., ...}`` of the newest complete checkpoint, or None."""
    path = run.checkpoint_dir / LATEST_FILE
    if not path.is_file():
        return None
    info = runs.read_json(path)
    if not (run.checkpoint_dir / info["folder"]).is_dir():
        return None
    return info


def _read_checkpoint(checkpoint: Any, folder: Path) -> Any:
    """``checkpoint.read`` of ``folder``; ``RunError`` naming it when its files are cut short or corrupt."""
    import tensorflow as tf  # only stages that hold TensorFlow objects get here

    try:
        return checkpoint.read(str(folder / "state"))
    except (tf.errors.OpError, IndexError, ValueError) as error:  # IndexError: "Read less bytes than requested"
        reason = (getattr(error, "message", None) or str(error) or type(error).__name__).splitlines()[0][:200]
        raise runs.RunError(f"{folder}: the checkpoint is damaged ({reason}); delete this folder's checkpoints/ "
                            "and start again, or restore it from a copy") from None


def restore_checkpoint(checkpoint: Any, run: runs.Run) -> int:
    """Restore the newest checkpoint into ``checkpoint``; returns its epoch (0 when there is none).

    Refuses (``RunError``) a checkpoint written by another stage (``latest.json`` names it) or one
    that does not hold every variable of ``checkpoint``: restoring a part would go on silently
    with untrained weights.
    """
    info = latest_checkpoint(run)
    if info is None:
        return 0
    stage = run.status().get("stage")
    written_by = info.get("stage")
    if written_by and stage and stages.folder_stage_of(written_by) != stages.folder_stage_of(stage):
        raise runs.RunError(f"{run.checkpoint_dir}: holds a {written_by} checkpoint, not one of {stage}")
    restored = _read_checkpoint(checkpoint, run.checkpoint_dir / info["folder"])
    try:
        restored.assert_existing_objects_matched()
    except AssertionError as error:
        raise runs.RunError(
            f"{run.checkpoint_dir / info['folder']}: does not match this stage's model "
            f"({str(error).splitlines()[0][:200]})"
        ) from None
    restored.expect_partial()  # the optimizer's bookkeeping need not all be consumed
    return int(info["epoch"])
