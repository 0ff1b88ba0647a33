"""Start, stop, resume and watch pipeline stages as separate OS processes.

The dashboard never trains inside its own process: it launches the same command a person would type
(``python -m melanet train-gan --run DIR --config FILE --set ...``) as a detached child in a new
session, with stdout and stderr going to ``<run>/job.log``. Everything the child does flows back
through the run folder (``status.json``, ``history.csv``, figures), so a job survives a browser
refresh and shows in every tab.

``<run>/job.json`` records the launched process (pid, stage, command, start time): it covers the
seconds between the launch and the moment the stage takes the run lock (importing TensorFlow takes a
while), so a second launch in that window is refused too.

Stop sends SIGTERM to the child's process group; ``melanet.runs.lifecycle.stage_session`` turns it into the
state ``stopped`` and keeps the last checkpoint, which ``resume`` continues from.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet.runs import layout, lifecycle, runs, stages

logger = logging.getLogger(__name__)

JOB_FILE = layout.JOB_FILE
LOG_FILE = layout.JOB_LOG_FILE

# The stages the dashboard may launch (melanet.runs.stages: verb, --config/--set, --resume).
STAGES: dict[str, stages.Stage] = {name: stages.STAGES[name] for name in stages.LAUNCHABLE_STAGES}


def melanet_program() -> list[str]:
    """The command prefix that runs the CLI with this interpreter: ``[python, -m, melanet]``."""
    return [sys.executable, "-m", "melanet"]


def stage_arguments(
    stage: str,
    run_dir: str | Path,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    extra_arguments: Sequence[str] = (),
) -> list[str]:
    """CLI arguments for one stage, e.g. ``["train-gan", "--run", DIR, "--config", F, "--set", "gan.epochs=2"]``.

    A resumed stage uses the run's saved config, so ``config`` and ``overrides`` are refused with it.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    options = STAGES[stage]
    arguments = [options.verb]
    if resume:
        if not options.resumable:
            raise ValueError(f"stage {stage!r} cannot be resumed; launch it again instead")
        if config is not None or overrides:
            raise ValueError("a resumed stage uses the run's saved config; do not pass config or overrides")
        arguments += ["--resume", str(run_dir)]
    else:
        arguments += ["--run", str(run_dir)]
        if (config is not None or overrides) and not options.configurable:
            raise ValueError(f"stage {stage!r} takes its settings from the run folder, not from a config")
        if config is not None:
            arguments += ["--config", str(config)]
        for override in overrides:
            arguments += ["--set", override]
    return arguments + list(extra_arguments)


# -------------------------------------------------------------------------------------------------
# processes


def _process_alive(pid: int | None) -> bool:
    """True when ``pid`` is a live (not zombie) process."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # field 3 of /proc/PID/stat is the state; 'Z' (zombie) and 'X' (dead) are not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


def job_info(run_dir: str | Path) -> dict[str, Any]:
    """The contents of ``<run>/job.json`` ({} when the run was not launched by this module)."""
    path = Path(run_dir) / JOB_FILE
    if not path.is_file():
        return {}
    try:
        return runs.read_json(path)
    except runs.RunError:
        return {}


def is_busy(run_dir: str | Path) -> bool:
    """A stage holds the run lock, or a process launched on the run is still alive."""
    run = runs.Run(run_dir)
    return run.is_locked() or _process_alive(job_info(run_dir).get("pid"))


def _refuse_if_busy(run_dir: Path, what: str) -> None:
    if is_busy(run_dir):
        pid = job_info(run_dir).get("pid") or runs.Run(run_dir).status().get("pid", "?")
        raise runs.RunBusyError(
            f"{run_dir}: already in use by another process (pid {pid}); "
            f"wait for it to finish or stop it before starting {what}"
        )


def launch(
    run_dir: str | Path,
    arguments: Sequence[str],
    *,
    stage: str,
    program: Sequence[str] | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``program + arguments`` detached, logging to ``<run>/job.log``; returns its pid.

    ``program`` defaults to ``[python, -m, melanet]``. Raises ``RunBusyError`` when the run is busy.
    """
    run_dir = Path(run_dir)
    _refuse_if_busy(run_dir, stage)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = list(program or melanet_program()) + [str(argument) for argument in arguments]
    log_path = run_dir / LOG_FILE
    with open(log_path, "ab") as log:
        log.write(f"\n=== {runs.now_iso()} $ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=None if cwd is None else str(cwd),
            env=env,
            start_new_session=True,
        )
    # reap the child when it ends so it does not linger as a zombie of a long-lived dashboard
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    runs.atomic_write_json(
        run_dir / JOB_FILE,
        {"pid": process.pid, "stage": stage, "command": command, "started_at": runs.now_iso()},
    )
    logger.info("launched %s on %s (pid %d)", stage, run_dir, process.pid)
    return process.pid


def start(
    stage: str,
    run_dir: str | Path,
    *,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    extra_arguments: Sequence[str] = (),
    program: Sequence[str] | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Launch ``melanet <stage> --run run_dir [--config F] [--set K=V ...]``; returns the pid.

    The folder is checked first (``melanet.runs.lifecycle.check_folder``): another stage's folder or a
    finished run is refused before ``job.json`` or ``job.log`` is written into it.
    """
    arguments = stage_arguments(stage, run_dir, config=config, overrides=overrides,
                                extra_arguments=extra_arguments)
    lifecycle.check_folder(runs.Run(run_dir), stage)
    return launch(run_dir, arguments, stage=stage, program=program, cwd=cwd, env=env)


def resume(
    run_dir: str | Path,
    *,
    program: Sequence[str] | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Continue the run's stage from its last checkpoint (``melanet <stage> --resume run_dir``)."""
    run_dir = Path(run_dir)
    stage = runs.Run(run_dir).status().get("stage") or job_info(run_dir).get("stage")
    if not stage:
        raise runs.RunError(f"{run_dir}: no status.json or job.json says which stage to resume")
    if stage not in STAGES or not STAGES[stage].resumable:
        raise runs.RunError(f"{run_dir}: stage {stage!r} cannot be resumed; launch it again instead")
    state = runs.Run(run_dir).status().get("state")
    if state == "done":
        raise runs.RunError(f"{run_dir}: {stage} already finished; nothing to resume")
    lifecycle.check_folder(runs.Run(run_dir), stage, resume=True)
    return launch(run_dir, stage_arguments(stage, run_dir, resume=True), stage=stage, program=program,
                  cwd=cwd, env=env)


def stop(run_dir: str | Path, *, wait_seconds: float = 0.0) -> bool:
    """Send SIGTERM to the run's process group; the stage ends as 'stopped' with its checkpoint kept.

    Waits up to ``wait_seconds`` for the process to end and returns whether it has ended.
    Raises ``RunError`` when nothing is running on the run.
    """
    run_dir = Path(run_dir)
    candidates = [job_info(run_dir).get("pid"), runs.Run(run_dir).status().get("pid")]
    pid = next((candidate for candidate in candidates if _process_alive(candidate)), None)
    if pid is None:
        raise runs.RunError(f"{run_dir}: nothing is running on this run")
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    logger.info("sent SIGTERM to %s (pid %d)", run_dir, pid)
    deadline = time.monotonic() + wait_seconds
    while _process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


# launched steps that run on a finished run and keep their own entry in its status.json
STEP_STATUS_KEYS = stages.STEP_STATUS_KEYS


def step_state(status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """For a run whose last launched job is evaluate / explain / embed: (its state, its status entry).

    ``status`` is what :func:`read_status` returns. The state is the entry's own (``running``,
    ``done``, ``failed``), ``starting`` while the process lives but has not written its entry yet,
    and ``interrupted`` when the entry says running but no process is behind it. None for the
    training stages, whose state is the run's own.
    """
    key = STEP_STATUS_KEYS.get(str(status.get("job_stage")))
    if key is None:
        return None
    entry = status.get(key) if isinstance(status.get(key), dict) else {}
    state = str(entry.get("state") or ("starting" if status.get("alive") else "unknown"))
    if state == "running" and not status.get("alive"):
        state = "interrupted"
    elif state != "running" and status.get("alive"):
        state = "starting"  # a relaunch: the old entry is still there until the new process writes its own
    return state, entry


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``status.json`` plus what the job knows.

    Keys added: ``alive`` (a stage holds the lock or the launched process lives), ``job_pid``,
    ``job_stage``, ``launching`` (process alive but no stage status yet), ``interrupted`` (the status
    says running but no process is behind it: killed; resume it).
    """
    run = runs.Run(run_dir)
    status = run.status()
    job = job_info(run_dir)
    job_alive = _process_alive(job.get("pid"))
    locked = run.is_locked()
    status["alive"] = locked or job_alive
    status["job_pid"] = job.get("pid")
    status["job_stage"] = job.get("stage")
    status["launching"] = job_alive and not locked and status.get("state") != "running"
    status["interrupted"] = status.get("state") == "running" and not status["alive"]
    if "stage" not in status and job.get("stage"):
        status["stage"] = job["stage"]
    return status


def display_state(status: dict[str, Any]) -> str:
    """The one state to show for a run, from :func:`read_status`'s mapping.

    A launched step's own state (see :func:`step_state`); ``starting`` while a launched process has
    not taken the run yet; ``interrupted`` when the status says running but no process is behind it
    (killed: resume it); else the run's own ``state``.
    """
    step = step_state(status)
    if step is not None:
        return step[0]
    if status.get("launching"):
        return "starting"
    if status.get("interrupted"):
        return "interrupted"
    return str(status.get("state") or "unknown")


def can_resume(status: dict[str, Any]) -> bool:
    """Whether :func:`resume` may continue this run (``status`` from :func:`read_status`): a resumable
    stage (``melanet.runs.stages``) that stopped, failed or was interrupted, with no process on it."""
    return (step_state(status) is None and display_state(status) in ("stopped", "failed", "interrupted")
            and not status.get("alive") and status.get("stage") in stages.RESUMABLE_STAGES)


def log_tail(run_dir: str | Path, lines: int = 20, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of ``<run>/job.log`` (progress-bar carriage returns folded)."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return ""
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - max_bytes))
        text = stream.read().decode("utf-8", errors="replace")
    folded = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join([line for line in folded if line.strip()][-lines:])
