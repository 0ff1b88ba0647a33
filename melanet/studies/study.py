"""A reader study folder: what it holds, how it is opened, and the order each reader sees its cases.

A study lives in ``<studies root>/<NAME>/`` (default root ``studies/``)::

    study.json     name, run, data, split, seed, phases, threshold (value and where it came from), created
    cases.csv      case, image, label (0/1), prob_malignant, model_decision, file, overlay
    overlays/      <case>.png: the run's Grad-CAM overlay of each case (only for a study with an aided phase)
    responses.csv  the readers' answers, one line each (see ``melanet.studies.responses``)
    results.json   written by ``melanet reader-study results`` (see ``melanet.studies.results``)

``file`` is the original image, relative to ``data`` (``data`` itself relative to the working
directory, the repository root, like a run's ``data.root``). Case ids (``c001``...) are numbered in
a seeded random order, so they say nothing about the label. Nothing in the folder is ever
rewritten except ``responses.csv`` (appended, atomically) and ``results.json``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs import layout, runs

STUDY_FILE = "study.json"
CASES_FILE = "cases.csv"
RESPONSES_FILE = "responses.csv"
RESULTS_FILE = "results.json"
OVERLAYS_FOLDER = "overlays"
LOCK_FILE = layout.LOCK_FILE  # the same fcntl lock file name as a run folder
DEFAULT_STUDIES_DIR = Path("studies")

PHASES = ("unaided", "aided")  # reading order: every reader reads unaided first
DECISIONS = ("benign", "malignant")
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
CASE_COLUMNS = ("case", "image", "label", "prob_malignant", "model_decision", "file", "overlay")


class StudyError(runs.RunError):
    """A study is missing, malformed, or asked for something it cannot do (the CLI exits 2)."""


def model_decision(probability: float, threshold: float) -> str:
    """The model's decision word at ``threshold`` by MelaNet's one rule (``metrics.predicted_malignant``)."""
    from melanet.evaluation import metrics  # scikit-learn: imported only when a study is created

    return DECISIONS[1] if metrics.predicted_malignant(probability, threshold) else DECISIONS[0]


@dataclasses.dataclass(frozen=True)
class Case:
    """One case of a study: ``label`` 0 = benign, 1 = malignant; ``prob_malignant`` in [0, 1]."""

    case: str
    image: str
    label: int
    prob_malignant: float
    model_decision: str
    file: str
    overlay: str = ""


@dataclasses.dataclass(frozen=True)
class Study:
    """An opened study folder: its ``study.json`` mapping and its cases in ``cases.csv`` order."""

    path: Path
    info: dict[str, Any]
    cases: tuple[Case, ...]

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.path.name)

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(self.info["phases"])

    @property
    def threshold(self) -> float:
        return float(self.info["threshold"]["value"])

    @property
    def responses_path(self) -> Path:
        return self.path / RESPONSES_FILE

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.case == case_id:
                return case
        raise StudyError(f"{self.path}: no case {case_id!r} in {CASES_FILE}")

    def image_path(self, case: Case, base: str | Path | None = None) -> Path:
        """The original image of ``case``; a relative ``data`` is taken from ``base`` (default: cwd)."""
        data = Path(self.info["data"])
        if not data.is_absolute() and base is not None:
            data = Path(base) / data
        return data / case.file

    def overlay_path(self, case: Case) -> Path | None:
        return self.path / case.overlay if case.overlay else None


def resolve_study_name(root: str | Path, name: str) -> Path:
    """``root/name`` for a study name, under the run-name rules (letters, digits, -_./; no '..')."""
    try:
        return runs.resolve_run_name(root, name)
    except runs.RunError as error:
        raise StudyError(str(error).replace("run name", "study name", 1)) from None


def find_study(name_or_path: str | Path, root: str | Path = DEFAULT_STUDIES_DIR) -> Study:
    """Open a study given as a folder holding ``study.json``, else as a name under ``root``."""
    candidate = Path(name_or_path)
    if (candidate / STUDY_FILE).is_file():
        return open_study(candidate)
    path = resolve_study_name(root, str(name_or_path))
    if not (path / STUDY_FILE).is_file():
        raise StudyError(f"study {name_or_path!r} not found (no {STUDY_FILE} in {candidate} or {path})")
    return open_study(path)


def open_study(path: str | Path) -> Study:
    """Read ``study.json`` and ``cases.csv`` of a study folder; StudyError naming the file and line."""
    path = Path(path)
    info = runs.read_json(path / STUDY_FILE)
    if not isinstance(info, dict):
        raise StudyError(f"{path / STUDY_FILE}: expected a JSON object")
    for key in ("data", "seed", "phases", "threshold"):
        if key not in info:
            raise StudyError(f"{path / STUDY_FILE}: missing key {key!r}")
    phases = info["phases"]
    if not isinstance(phases, list) or not phases or phases[0] != PHASES[0] or set(phases) - set(PHASES):
        raise StudyError(f"{path / STUDY_FILE}: phases must be ['unaided'] or ['unaided', 'aided'], got {phases!r}")
    return Study(path=path, info=info, cases=tuple(_read_cases(path / CASES_FILE)))


def _read_cases(path: Path) -> list[Case]:
    try:
        stream = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: file not found") from None
    cases: list[Case] = []
    with stream:
        reader = csv.DictReader(stream)
        missing = set(CASE_COLUMNS[:5]) - set(reader.fieldnames or ())
        if missing:
            raise StudyError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                case = Case(case=row["case"], image=row["image"], label=int(row["label"]),
                            prob_malignant=float(row["prob_malignant"]), model_decision=row["model_decision"],
                            file=row.get("file") or "", overlay=row.get("overlay") or "")
            except (TypeError, ValueError):
                raise StudyError(f"{path}: line {line}: expected a 0/1 label and a probability, got {row}") from None
            if case.label not in (0, 1) or not 0 <= case.prob_malignant <= 1 or case.model_decision not in DECISIONS:
                raise StudyError(f"{path}: line {line}: label must be 0/1, prob_malignant in [0, 1] and "
                                 f"model_decision one of {DECISIONS}, got {row}")
            cases.append(case)
    if len({case.case for case in cases}) != len(cases):
        raise StudyError(f"{path}: duplicate case ids")
    if not cases:
        raise StudyError(f"{path}: no cases")
    return cases


def list_studies(root: str | Path) -> list[Path]:
    """Study folders directly or deeper below ``root`` (those holding ``study.json``), by path."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(path.parent for path in base.rglob(STUDY_FILE) if not path.parent.name.startswith("."))


def case_order(study: Study, reader: str, phase: str) -> list[str]:
    """The case ids in the order ``reader`` sees them in ``phase``: a permutation seeded by the study's
    seed, the reader and the phase, so it is the same after a reload or a server restart and differs
    between readers and between the two phases."""
    if phase not in study.phases:
        raise StudyError(f"{study.path}: phase {phase!r} is not part of this study (phases {study.phases})")
    digest = hashlib.sha256(json.dumps([int(study.info["seed"]), reader, phase]).encode("utf-8")).digest()
    generator = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return [study.cases[index].case for index in generator.permutation(len(study.cases))]
