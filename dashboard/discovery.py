"""Find run folders: shipped ones under ``models/`` (read-only) and the user's under ``runs/``.

``MELANET_MODELS_DIR`` and ``MELANET_RUNS_DIR`` override the two folders (tests point them at
temporary folders). Relative data roots in run configs (``data/sample``) are relative to the
repository root, which is also the working directory of launched stages.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from melanet.runs import jobs, layout, lifecycle, runs, stages

ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = ROOT / "configs"

GAN_STAGES = stages.GAN_STAGES
CLASSIFIER_STAGES = stages.CLASSIFIER_STAGES
# what the dashboard calls the folder of each stage (melanet.runs.stages folder_stage)
KINDS = {"train-gan": "gan", "train-classifier": "classifier", "reproduce": "results", "reproduce-seeds": "results"}
# folder names inside a run that never hold runs themselves
_NOT_RUNS = {".melanet-cache", *layout.INNER_FOLDERS}


def runs_dir() -> Path:
    """Where the dashboard writes new runs (``MELANET_RUNS_DIR``, default ``<repo>/runs``)."""
    return Path(os.environ.get("MELANET_RUNS_DIR") or ROOT / "runs")


def models_dir() -> Path:
    """Shipped, read-only runs (``MELANET_MODELS_DIR``, default ``<repo>/models``)."""
    return Path(os.environ.get("MELANET_MODELS_DIR") or ROOT / "models")


def presets() -> list[Path]:
    """The YAML presets in ``configs/`` (demo first: it is the one that finishes on a CPU)."""
    found = sorted(CONFIGS_DIR.glob("*.yaml"))
    return sorted(found, key=lambda path: (path.stem != "demo", path.stem != "smoke", path.stem))


def resolve_path(text: str | Path) -> Path:
    """A path from a config or manifest: absolute as given, relative to the repository root."""
    path = Path(text)
    return path if path.is_absolute() else ROOT / path


@dataclasses.dataclass(frozen=True)
class RunEntry:
    """One run folder as the dashboard lists it."""

    path: Path
    label: str  # "models/demo/melanet", "runs/gan-1" (whatever the folders' real paths): what people pick
    source: str  # "shipped" | "user"
    kind: str  # "gan" | "classifier" | "results" | "other"
    stage: str
    state: str

    @property
    def read_only(self) -> bool:
        return self.source == "shipped"


def kind_of(path: Path, stage: str) -> str:
    """Classify a run folder by its stage, else by the files it holds (``melanet.runs.lifecycle.folder_stage``)."""
    owner = stages.folder_stage_of(stage) or lifecycle.folder_stage(runs.Run(path))
    return KINDS.get(owner or "", "other")


def _candidate_folders(base: Path) -> list[Path]:
    found: set[Path] = set()
    for marker in (runs.CONFIG_FILE, runs.STATUS_FILE, jobs.JOB_FILE):
        for file in base.rglob(marker):
            relative_parts = file.parent.relative_to(base).parts
            if not any(part in _NOT_RUNS or part.startswith(".") for part in relative_parts):
                found.add(file.parent)
    return sorted(found)


def discover() -> list[RunEntry]:
    """Every run under the models and runs folders, shipped first, then by label."""
    entries: list[RunEntry] = []
    for base, source, prefix in ((models_dir(), "shipped", "models"), (runs_dir(), "user", "runs")):
        if not base.is_dir():
            continue
        for folder in _candidate_folders(base):
            status = runs.Run(folder).status()
            stage = str(status.get("stage") or jobs.job_info(folder).get("stage") or "")
            label = f"{prefix}/{folder.relative_to(base).as_posix()}" if folder != base else prefix
            entries.append(RunEntry(folder, label, source, kind_of(folder, stage), stage,
                                    str(status.get("state") or "unknown")))
    return entries


def of_kind(entries: list[RunEntry], *kinds: str) -> list[RunEntry]:
    return [entry for entry in entries if entry.kind in kinds]


def with_model(entries: list[RunEntry]) -> list[RunEntry]:
    """The classifier entries holding a trained model (full or compact file)."""
    return [entry for entry in entries if runs.model_file(entry.path) is not None]


def with_file(entries: list[RunEntry], relative: str) -> list[RunEntry]:
    """The entries whose folder holds ``relative`` (e.g. ``metrics.json``, ``explain/index.csv``)."""
    return [entry for entry in entries if (entry.path / relative).is_file()]
