"""Run folders: the unit of reproducibility.

A run folder holds everything one stage produced::

    config.yaml     resolved configuration (seed included), enough to resume or re-evaluate
    status.json     stage, state, epoch/epochs, step/steps, progress, eta_seconds, message, pid, timestamps
    history.csv     one row per finished epoch
    metrics.json    evaluation figures
    checkpoints/    weights + optimizer state, written atomically every epoch
    figures/        sample grids, plots
    skipped.csv     inputs skipped with --skip-bad (file, reason)

Every file is written atomically (temp file + ``os.replace``), so a killed process never leaves a
half-written file that a reader would take as complete. A stage holds an ``fcntl`` lock on
``<run>/.lock`` while it works; the kernel releases it when the process dies, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import fcntl
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from melanet import config as config_module
from melanet.runs import layout, stages

# File names live in melanet.runs.layout (the run-folder contract); these aliases keep old imports working.
CONFIG_FILE = layout.CONFIG_FILE
STATUS_FILE = layout.STATUS_FILE
HISTORY_FILE = layout.HISTORY_FILE
METRICS_FILE = layout.METRICS_FILE
SKIPPED_FILE = layout.SKIPPED_FILE
LOCK_FILE = layout.LOCK_FILE
# A classifier run's trained model: the full Keras file, or its compact form (melanet.classifier.compact).
MODEL_FILES = layout.MODEL_FILES
DEFAULT_RUNS_DIR = Path("runs")
# Longest folder name a person may type (file systems allow 255 bytes; leave room for suffixes).
MAX_RUN_NAME_LENGTH = 100

STATES = ("pending", "running", "done", "failed", "stopped")
# Temp files of atomic writes (``.<name>.<pid>.<random>.tmp``), of ``model.save``
# (``.<stem>.<pid>[.tmp].keras``) and checkpoint staging folders (``.staging-epoch-NNNN-<pid>``).
TEMPORARY_SUFFIX = ".tmp"
_TEMPORARY_NAMES = (
    re.compile(r"\..+\.(\d+)\.[^.]*\.tmp"),
    re.compile(r"\..+\.(\d+)(?:\.tmp)?\.keras"),
    re.compile(r"\.staging-epoch-\d+-(\d+)"),
)


class RunError(ValueError):
    """A run folder is missing, malformed or cannot be used as asked."""


class RunBusyError(RunError):
    """Another process is already working on this run folder."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# atomic writes


def _file_mode() -> int:
    """Mode of a newly created file under the process umask (mkstemp alone would give 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def temporary_prefix(path: str | Path) -> str:
    """Prefix of the temp files written for ``path`` by this process: ``.<name>.<pid>.``.

    The writer's pid in the name lets ``remove_stale_temporaries`` tell a file left by a killed
    writer from one a live process is still writing.
    """
    return f".{Path(path).name}.{os.getpid()}."


def atomic_write_with(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(stream)`` on a temp file in ``path``'s folder, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        os.fchmod(handle, _FILE_MODE)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temp files and folders in ``folder`` left by writers that were killed.

    Matches this module's ``.<name>.<pid>.*.tmp``, the models' ``.<stem>.<pid>[.tmp].keras`` and the
    checkpoints' ``.staging-epoch-NNNN-<pid>``; a name whose pid is still alive is kept.
    Returns what was removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        pid = _writer_pid(entry.name)
        if pid is None or _process_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def _writer_pid(name: str) -> int | None:
    """The writer's pid in a temp name (see ``remove_stale_temporaries``), or None for other names."""
    for pattern in _TEMPORARY_NAMES:
        match = pattern.fullmatch(name)
        if match:
            return int(match.group(1))
    return None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    atomic_write_with(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays without importing numpy here
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: row.get(name, "") for name in fieldnames})
    atomic_write_text(path, buffer.getvalue())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: invalid JSON at line {error.lineno} ({error.msg})") from None


# ---------------------------------------------------------------------------------------------
# run names typed by people (dashboard): must stay inside the runs directory


def resolve_run_name(runs_dir: str | Path, name: str) -> Path:
    """Map a run *name* to ``runs_dir/name``, refusing anything that could leave ``runs_dir``."""
    cleaned = name.strip()
    if not cleaned:
        raise RunError("run name is empty")
    if cleaned.startswith(("/", "\\", "~")) or ":" in cleaned:
        raise RunError(f"run name {name!r}: absolute paths are not allowed, give a name inside {runs_dir}")
    parts = cleaned.replace("\\", "/").split("/")
    longest = max(len(part) for part in parts)
    if longest > MAX_RUN_NAME_LENGTH:
        raise RunError(f"run name of {longest} characters: a folder name may have at most {MAX_RUN_NAME_LENGTH}")
    if any(part in ("", ".", "..") for part in parts):
        raise RunError(f"run name {name!r}: '..', '.' and empty parts are not allowed")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    if any(set(part) - allowed for part in parts):
        raise RunError(f"run name {name!r}: use letters, digits, '-', '_', '.' and '/' only")
    base = Path(runs_dir).resolve()
    target = (base / cleaned).resolve()
    if base != target and base not in target.parents:
        raise RunError(f"run name {name!r} resolves outside {runs_dir}")
    return target


def default_run_dir(stage: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """A new timestamped folder name under ``runs_dir``, e.g. ``runs/20261125-231500-train-gan``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = Path(runs_dir) / f"{stamp}-{stage}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = Path(runs_dir) / f"{stamp}-{stage}-{suffix}"
    return candidate


# ---------------------------------------------------------------------------------------------


class Run:
    """A run folder. Cheap to construct; every accessor reads the disk afresh."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path}: is a file, not a run folder; give a folder (new or an existing run)")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # paths ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def files(self) -> layout.RunLayout:
        """Every file of the run folder as a path (``melanet.runs.layout.RunLayout``)."""
        return layout.RunLayout(self.path)

    @property
    def checkpoint_dir(self) -> Path:
        return self.files.checkpoints

    @property
    def figures_dir(self) -> Path:
        return self.files.figures

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    def require_folder(self) -> None:
        """``RunError`` when the folder is gone (deleted while a stage ran): never recreate it half-empty."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: the run folder was deleted while this stage was using it; "
                           "nothing more is written there")

    # creation / config --------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: config_module.Config, stage: str) -> "Run":
        """Make (or reuse) the folder, save the resolved config and a 'pending' status."""
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        if not (run.path / STATUS_FILE).exists():
            run.update_status(stage=stage, state="pending", message="created", created_at=now_iso())
        return run

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        run = cls(path)
        if not run.path.is_dir():
            raise RunError(f"{run.path}: run folder not found")
        if not run.exists():
            raise RunError(f"{run.path}: not a run folder ({CONFIG_FILE} missing)")
        return run

    def write_config(self, config: config_module.Config) -> None:
        atomic_write_text(self.path / CONFIG_FILE, config_module.dump_yaml(config))

    def config(self) -> config_module.Config:
        path = self.path / CONFIG_FILE
        if not path.is_file():
            raise RunError(f"{self.path}: not a run folder ({CONFIG_FILE} missing)")
        return config_module.from_saved(config_module.read_yaml(path), where=str(path))

    # status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The status mapping, or {} when there is none. Adds ``alive`` for 'running' states."""
        path = self.path / STATUS_FILE
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        if status.get("state") == "running":
            status["alive"] = self.is_locked()
        return status

    def update_status(self, **fields: Any) -> dict[str, Any]:
        self.require_folder()
        path = self.path / STATUS_FILE
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            status = {}
        status.pop("alive", None)
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown state {fields['state']!r}; expected one of {STATES}")
        status.update(fields)
        status["updated_at"] = now_iso()
        atomic_write_json(path, status)
        return status

    # history --------------------------------------------------------------------------------------
    def history(self) -> list[dict[str, str]]:
        path = self.path / HISTORY_FILE
        if not path.is_file():
            return []
        with path.open(newline="", encoding="utf-8") as stream:
            return list(csv.DictReader(stream))

    def append_history(self, row: Mapping[str, Any]) -> None:
        """Append one epoch row; the whole file is rewritten atomically (histories are small)."""
        self.require_folder()
        rows: list[Mapping[str, Any]] = self.history()
        fieldnames = list(rows[0].keys()) if rows else []
        for key in row:
            if key not in fieldnames:
                fieldnames.append(key)
        rows.append({key: _format_number(value) for key, value in row.items()})
        atomic_write_csv(self.path / HISTORY_FILE, rows, fieldnames)

    def truncate_history(self, epochs_done: int) -> None:
        """Keep only rows with ``epoch <= epochs_done`` (a resumed run replays later epochs)."""
        rows = self.history()
        if not rows:
            return
        kept = [row for row in rows if int(float(row.get("epoch", 0) or 0)) <= epochs_done]
        if len(kept) != len(rows):
            atomic_write_csv(self.path / HISTORY_FILE, kept, list(rows[0].keys()))

    # metrics --------------------------------------------------------------------------------------
    def write_json(self, name: str, value: Any) -> Path:
        path = self.path / name
        atomic_write_json(path, value)
        return path

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    def metrics(self) -> dict[str, Any] | None:
        path = self.path / METRICS_FILE
        if not path.is_file():
            return None
        try:
            return read_json(path)
        except RunError:
            return None

    # locking --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, what: str = "work") -> Iterator[None]:
        """Hold the run's exclusive lock; ``RunBusyError`` when another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+")
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EACCES):
                    owner = self.status().get("pid", "?")
                    raise RunBusyError(
                        f"{self.path}: already in use by another process (pid {owner}); "
                        f"wait for it to finish or stop it before starting {what}"
                    ) from None
                raise
            yield
        finally:
            handle.close()

    def is_locked(self) -> bool:
        path = self.path / LOCK_FILE
        if not path.exists():
            return False
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False

    # skipped inputs -------------------------------------------------------------------------------
    def record_skipped(self, problems: Sequence[Mapping[str, Any]]) -> None:
        if problems:
            atomic_write_csv(self.path / SKIPPED_FILE, problems, ["file", "line", "reason"])


def _format_number(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "item"):
        return _format_number(value.item())
    return value


def model_file(run_path: str | Path) -> Path | None:
    """The run's trained-model file (see ``MODEL_FILES``), or None. Does not import TensorFlow."""
    for name in MODEL_FILES:
        path = Path(run_path) / name
        if path.is_file():
            return path
    return None


def list_runs(runs_dir: str | Path = DEFAULT_RUNS_DIR) -> list[Run]:
    """Every run folder below ``runs_dir`` (any depth), newest first by modification time."""
    base = Path(runs_dir)
    if not base.is_dir():
        return []
    found = [Run(path.parent) for path in base.rglob(CONFIG_FILE) if (path.parent / STATUS_FILE).exists()]
    return sorted(found, key=lambda run: (run.path / STATUS_FILE).stat().st_mtime, reverse=True)


def linked_gan_run(classifier_run: str | Path, *, root: str | Path | None = None,
                   require_synthesis: bool = True) -> Path | None:
    """The stage-1 run whose synthetic lesions a classifier run used (its ``classifier.gan_run``), or None.

    The one lookup for every reader (``melanet embed``, the dashboard). Candidates in order: the
    saved path as given (absolute, or relative to the working directory), relative to ``root``,
    beside the classifier run (``<run>/../<gan_run>`` and ``<run>/../<its last part>``, for a results
    folder that moved), and the ``gan/`` sibling of a ``melanet reproduce`` results folder. The first
    that holds ``synthetic/manifest.csv`` wins (with ``require_synthesis=False``, the first stage-1 run
    folder at all, e.g. a results-only copy without its images). None when the run names no stage-1 run
    or none is found.
    """
    classifier_run = Path(classifier_run)
    try:
        saved = Run(classifier_run).config().classifier.gan_run
    except (RunError, config_module.ConfigError):
        return None
    if not saved:
        return None
    saved_path = Path(saved)
    candidates = [saved_path]
    if root is not None and not saved_path.is_absolute():
        candidates.append(Path(root) / saved_path)
    candidates += [classifier_run.parent / saved_path, classifier_run.parent / saved_path.name,
                   classifier_run.parent / layout.REPRODUCE_GAN_FOLDER]
    for candidate in candidates:
        if layout.RunLayout(candidate).synthetic_manifest.is_file():
            return candidate
    if not require_synthesis:
        for candidate in candidates:
            try:
                if Run(candidate).status().get("stage") in stages.GAN_STAGES:
                    return candidate
            except (RunError, OSError, ValueError):
                continue
    return None
