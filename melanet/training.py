"""What every training stage shares: the stage lifecycle, progress reporting, checkpoints.

- ``stage_session`` holds the run lock, marks the status running/done/failed/stopped, and turns
  SIGTERM (the dashboard's Stop) into a clean stop that keeps the last checkpoint.
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from melanet import runs

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]
LATEST_FILE = "latest.json"


class StopRequested(Exception):
    """Raised inside a stage when SIGTERM arrives; the stage ends as 'stopped', resumable."""


@contextlib.contextmanager
def stage_session(run: runs.Run, stage: str) -> Iterator[None]:
    """Lock ``run``, mark it running, and record how the stage ended.

    A second process on the same run gets ``RunBusyError`` before anything is written.
    """
    with run.lock(stage):
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
            run.update_status(state="failed", message=f"{type(error).__name__}: {error}"[:500],
                              finished_at=runs.now_iso())
            raise
        else:
            status = run.status()
            if status.get("state") == "running":
                run.update_status(state="done", progress=1.0, eta_seconds=0, message="done",
                                  finished_at=runs.now_iso())
        finally:
            signal.signal(signal.SIGTERM, previous)


class EpochReporter:
    """Progress of an epoch-based stage into ``status.json``, ``history.csv`` and a callback."""

    def __init__(
        self,
        run: runs.Run,
        epochs: int,
        steps_per_epoch: int,
        *,
        first_epoch: int = 1,
        progress: ProgressCallback | None = None,
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

    def _eta(self, epoch: int, step: int) -> float | None:
        done = (epoch - self.first_epoch) * self.steps_per_epoch + step
        remaining = (self.epochs - epoch + 1) * self.steps_per_epoch - step
        if done <= 0:
            return None
        return (time.monotonic() - self._started) / done * remaining

    def start_epoch(self, epoch: int) -> None:
        self._epoch_started = time.monotonic()
        self.step(epoch, 0, force=True)

    def step(self, epoch: int, step: int, message: str = "", force: bool = False) -> None:
        """Called after each step (cheap: writes at most every ``min_interval_seconds``)."""
        total_steps = self.epochs * self.steps_per_epoch
        done_steps = (epoch - 1) * self.steps_per_epoch + step
        if self.progress is not None:
            self.progress(done_steps, total_steps, message or f"epoch {epoch}/{self.epochs}")
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_seconds:
            return
        self._last_write = now
        eta = self._eta(epoch, step)
        self.run.update_status(
            epoch=epoch, epochs=self.epochs, step=step, steps=self.steps_per_epoch,
            progress=round(done_steps / total_steps, 4),
            eta_seconds=None if eta is None else round(eta, 1),
            message=message or f"epoch {epoch}/{self.epochs}",
        )

    def end_epoch(self, epoch: int, values: Mapping[str, Any]) -> dict[str, Any]:
        row = {"epoch": epoch, **values, "seconds": round(time.monotonic() - self._epoch_started, 2)}
        self.run.append_history(row)
        self.step(epoch, self.steps_per_epoch, message=_summary(epoch, self.epochs, values), force=True)
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
    runs.atomic_write_json(directory / LATEST_FILE, {"epoch": epoch, "folder": final.name, **(extra or {})})
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


def restore_checkpoint(checkpoint: Any, run: runs.Run) -> int:
    """Restore the newest checkpoint into ``checkpoint``; returns its epoch (0 when there is none)."""
    info = latest_checkpoint(run)
    if info is None:
        return 0
    checkpoint.read(str(run.checkpoint_dir / info["folder"] / "state")).expect_partial()
    return int(info["epoch"])
