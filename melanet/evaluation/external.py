"""External validation: a classifier run evaluated on another data folder, filed inside the run.

``melanet evaluate --run RUN --data DIR`` writes its files (``metrics.json``, ``predictions.csv``,
``predictions_isic.csv``) to ``RUN/external/<data set name>/``, never over the run's own metrics. The
name is the data folder's name (``isic2019``), made safe for a path; a different folder of the same
name gets the name plus a short hash of its path. A folder with a labelled test split is evaluated on
that split; one with a single labelled split (ISIC 2019 and 2020 label only their training images) on
all its labelled images, and ``metrics.json`` ``data.split`` says ``train`` with
``data.all_labelled_images`` true.

The dashboard launches the same command through :mod:`melanet.runs.jobs`, with the results folder as the
job's folder, so its ``job.json`` / ``job.log`` sit beside the results and the run's own job files are
left alone.

A run that must stay untouched (a shipped run in ``models/``) files its external evaluations elsewhere:
every function here takes ``base``, the folder that holds the ``<name>/`` results folders in place of
``RUN/external/``. The dashboard passes ``runs/external/<the run's label, '/' as '-'>/`` (e.g.
``runs/external/models-demo-melanet/isic2019/``), which is ``melanet evaluate --run models/demo/melanet
--data data/isic2019 --out runs/external/models-demo-melanet/isic2019`` in a terminal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet.runs import jobs, layout, runs


@dataclasses.dataclass(frozen=True)
class ExternalResult:
    """One external evaluation of a run: its folder, state and (when done) its ``metrics.json`` mapping.

    ``state`` is 'running' (the launched process is alive), 'done' (metrics.json exists), 'failed'
    (the process ended without metrics; ``log`` holds the end of its log) or 'none'.
    """

    name: str
    folder: Path
    state: str
    metrics: dict[str, Any] | None
    log: str = ""


def same_data(first: str | Path, second: str | Path) -> bool:
    """Whether two data roots name the same folder."""
    return Path(first).expanduser().resolve() == Path(second).expanduser().resolve()


def dataset_name(data_root: str | Path) -> str:
    """The data folder's name with anything but letters, digits, '.', '_' and '-' replaced by '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(data_root).expanduser().resolve().name).strip("-.")
    return name or "data"


def results_base(run_path: str | Path, base: str | Path | None = None) -> Path:
    """The folder holding the run's external results folders: ``base``, else ``<run>/external/``."""
    return Path(run_path) / layout.EXTERNAL_FOLDER if base is None else Path(base)


def results_folder(run_path: str | Path, data_root: str | Path, base: str | Path | None = None) -> Path:
    """``<run>/external/<name>/`` (or ``<base>/<name>/``) for ``data_root``; a different folder already filed
    under that name (its ``metrics.json`` or ``job.json`` says so) makes the name ``<name>-<8 hex digits of
    the path>``."""
    base = results_base(run_path, base)
    name = dataset_name(data_root)
    recorded = _recorded_root(base / name)
    if recorded is not None and not same_data(recorded, data_root):
        digest = hashlib.sha256(str(Path(data_root).expanduser().resolve()).encode()).hexdigest()[:8]
        name = f"{name}-{digest}"
    return base / name


def _recorded_root(folder: Path) -> str | None:
    """The data root an existing results folder belongs to (from metrics.json, else from job.json)."""
    try:
        return json.loads((folder / layout.METRICS_FILE).read_text(encoding="utf-8"))["data"]["root"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    command = jobs.job_info(folder).get("command") or []
    return command[command.index("--data") + 1] if "--data" in command[:-1] else None


def evaluate_arguments(run_path: str | Path, data_root: str | Path, base: str | Path | None = None) -> list[str]:
    """``evaluate --run RUN --data DIR --out RUN/external/<name>`` (or ``--out BASE/<name>``; absolute paths)."""
    run_path = Path(run_path).resolve()
    data_root = Path(data_root).expanduser().resolve()
    base = None if base is None else Path(base).resolve()
    return ["evaluate", "--run", str(run_path), "--data", str(data_root),
            "--out", str(results_folder(run_path, data_root, base))]


def launch(run_path: str | Path, data_root: str | Path, *, base: str | Path | None = None,
           program: Sequence[str] | None = None, cwd: str | Path | None = None,
           env: dict[str, str] | None = None) -> tuple[Path, int]:
    """Start ``melanet evaluate --run RUN --data DIR`` as a background job; returns (results folder, pid).

    Raises ``RunError`` when the run has no trained model or ``data_root`` is the run's own data
    (its own test row comes from ``melanet evaluate --run RUN``), ``DataError`` when ``data_root`` is not a
    data folder, ``RunBusyError`` while an evaluation of the same data set is still running. ``base``: file the
    results in ``<base>/<name>/``, leaving the run folder untouched (see the module's docstring).
    """
    from melanet.data import sources  # the layout check reads the folder; keep imports of this module light

    run = runs.Run.open(run_path)
    if runs.model_file(run.path) is None:
        raise runs.RunError(f"{run.path}: no trained model; pick a finished train-classifier run")
    if same_data(data_root, run.config().data.root):
        raise runs.RunError(f"{data_root} is the data this run was trained on; pick another data folder")
    sources.detect_layout(Path(data_root).expanduser())
    arguments = evaluate_arguments(run.path, data_root, base)
    folder = Path(arguments[-1])
    return folder, jobs.launch(folder, arguments, stage="evaluate", program=program, cwd=cwd, env=env)


def results(run_path: str | Path, base: str | Path | None = None) -> list[ExternalResult]:
    """Every external evaluation filed in the run (or in ``base``), by name."""
    base = results_base(run_path, base)
    if not base.is_dir():
        return []
    return [result(folder) for folder in sorted(base.iterdir()) if folder.is_dir() and not folder.name.startswith(".")]


def result(folder: str | Path) -> ExternalResult:
    """The state and metrics of one results folder (see :class:`ExternalResult`)."""
    folder = Path(folder)
    metrics_path = folder / layout.METRICS_FILE
    running = jobs.is_busy(folder)
    metrics = None
    if metrics_path.is_file():
        try:
            metrics = runs.read_json(metrics_path)
        except runs.RunError:
            metrics = None
    if running:
        state = "running"
    elif metrics is not None and _newer_than_job(metrics_path, folder):
        state = "done"
    elif jobs.job_info(folder):
        state = "failed"
    else:
        state = "done" if metrics is not None else "none"
    log = "" if state in ("running", "done") else jobs.log_tail(folder)
    return ExternalResult(folder.name, folder, state, metrics if state == "done" else None, log)


def _newer_than_job(metrics_path: Path, folder: Path) -> bool:
    """metrics.json was written by the last launched job (a failed re-run leaves an older one behind)."""
    job_path = folder / layout.JOB_FILE
    return not job_path.is_file() or metrics_path.stat().st_mtime >= job_path.stat().st_mtime
