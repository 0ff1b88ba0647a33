"""A reader study folder: what it holds, how it is opened, and the order each reader sees its cases.

A study lives in ``<studies root>/<NAME>/`` (default root ``studies/``)::

    study.json     name, kind, run, data, split, seed, phases, threshold (value and where it came from), created
    cases.csv      case, image, label (0/1), prob_malignant, model_decision, file, overlay
    overlays/      <case>.png: the run's Grad-CAM overlay of each case (only for a study with an aided phase)
    responses.csv  the readers' answers, one line each (see ``melanet.studies.responses``)
    results.json   written by ``melanet reader-study results`` (see ``melanet.studies.results``)

``file`` is the original image, relative to ``data`` (``data`` itself relative to the working
directory, the repository root, like a run's ``data.root``). Case ids (``c001``...) are numbered in
a seeded random order, so they say nothing about the label. Nothing in the folder is ever
rewritten except ``responses.csv`` (appended, atomically) and ``results.json``.

Two kinds of study (``study.json``'s ``kind``; a study without the key is the first):

- ``benign-or-malignant``: the reader says benign or malignant about a classifier run's test cases,
  then (aided phase) again with the model's output.
- ``real-or-synthetic`` (``melanet.studies.synthetic_study``): the reader says whether a "melanoma" is
  real or made by a GAN run. ``label`` 1 = synthetic, 0 = real; the images are copies inside the study
  folder, ``images/<case>.png``, so ``file`` is relative to the study folder; no model, no threshold,
  one phase (``unaided``), and ``prob_malignant`` / ``model_decision`` stay empty.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
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
BENIGN_OR_MALIGNANT = "benign-or-malignant"
REAL_OR_SYNTHETIC = "real-or-synthetic"
KINDS = (BENIGN_OR_MALIGNANT, REAL_OR_SYNTHETIC)
# each kind's two answers, (negative, positive): label 1 is the positive answer's class
KIND_DECISIONS = {BENIGN_OR_MALIGNANT: DECISIONS, REAL_OR_SYNTHETIC: ("real", "synthetic")}
IMAGES_FOLDER = "images"  # a real-or-synthetic study's own copies of its images
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
CASE_COLUMNS = ("case", "image", "label", "prob_malignant", "model_decision", "file", "overlay")
MAX_READER_LENGTH = 80


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
    def kind(self) -> str:
        """``benign-or-malignant`` (also a study made before kinds existed) or ``real-or-synthetic``."""
        return str(self.info.get("kind") or BENIGN_OR_MALIGNANT)

    @property
    def decisions(self) -> tuple[str, str]:
        """The two answers a reader chooses from, (negative, positive): label 1 = the positive one."""
        return KIND_DECISIONS[self.kind]

    @property
    def real_or_synthetic(self) -> bool:
        return self.kind == REAL_OR_SYNTHETIC

    @property
    def threshold(self) -> float:
        if self.real_or_synthetic:
            raise StudyError(f"{self.path}: a real-or-synthetic study has no model and no threshold")
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
        """The original image of ``case``; a relative ``data`` is taken from ``base`` (default: cwd). A
        real-or-synthetic study's images are its own copies, inside the study folder."""
        if self.real_or_synthetic:
            return self.path / case.file
        data = Path(self.info["data"])
        if not data.is_absolute() and base is not None:
            data = Path(base) / data
        return data / case.file

    def overlay_path(self, case: Case) -> Path | None:
        return self.path / case.overlay if case.overlay else None


def normalise_reader(name: str) -> str:
    """A reader's name as stored: surrounding space dropped, inner runs of space made one. StudyError if
    empty, longer than 80 characters, or holding control characters."""
    cleaned = re.sub(r"\s+", " ", str(name)).strip()
    if not cleaned:
        raise StudyError("reader name is empty")
    if len(cleaned) > MAX_READER_LENGTH:
        raise StudyError(f"reader name is longer than {MAX_READER_LENGTH} characters")
    if any(ord(character) < 32 or ord(character) == 127 for character in cleaned):
        raise StudyError("reader name holds control characters")
    return cleaned


@contextlib.contextmanager
def study_lock(study: "Study") -> Iterator[None]:
    """Hold the study's exclusive lock (blocking: answers and access changes are quick)."""
    with open(study.path / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


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
    kind = info.get("kind") or BENIGN_OR_MALIGNANT
    if kind not in KINDS:
        raise StudyError(f"{path / STUDY_FILE}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    needed = ("seed", "phases") if kind == REAL_OR_SYNTHETIC else ("data", "seed", "phases", "threshold")
    for key in needed:
        if key not in info:
            raise StudyError(f"{path / STUDY_FILE}: missing key {key!r}")
    phases = info["phases"]
    if not isinstance(phases, list) or not phases or phases[0] != PHASES[0] or set(phases) - set(PHASES):
        raise StudyError(f"{path / STUDY_FILE}: phases must be ['unaided'] or ['unaided', 'aided'], got {phases!r}")
    if kind == REAL_OR_SYNTHETIC and phases != [PHASES[0]]:
        raise StudyError(f"{path / STUDY_FILE}: a real-or-synthetic study has one phase, ['unaided'], got {phases!r}")
    reader = _read_synthetic_cases if kind == REAL_OR_SYNTHETIC else _read_cases
    return Study(path=path, info=info, cases=tuple(reader(path / CASES_FILE)))


SYNTHETIC_CASE_COLUMNS = ("case", "image", "label", "file")  # cases.csv of a real-or-synthetic study


def _read_synthetic_cases(path: Path) -> list[Case]:
    """A real-or-synthetic study's cases: label 1 = synthetic, 0 = real; no model figures."""
    cases: list[Case] = []
    for line, row in _case_rows(path, SYNTHETIC_CASE_COLUMNS):
        file = Path(row["file"] or "")
        if (row["label"] not in ("0", "1") or not row["case"] or not row["file"] or file.is_absolute()
                or ".." in file.parts):
            raise StudyError(f"{path}: line {line}: expected a case id, a 0/1 label (1 = synthetic) and a file "
                             f"inside the study folder, got {row}")
        cases.append(Case(case=row["case"], image=row["image"], label=int(row["label"]), prob_malignant=math.nan,
                          model_decision="", file=row["file"]))
    return _checked_cases(path, cases)


def _read_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    for line, row in _case_rows(path, CASE_COLUMNS[:5]):
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
    return _checked_cases(path, cases)


def _case_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a cases.csv; ``StudyError`` naming the file when it is missing or lacks ``columns``."""
    try:
        stream = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: file not found") from None
    with stream:
        reader = csv.DictReader(stream)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise StudyError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))}")
        yield from enumerate(reader, start=2)


def _checked_cases(path: Path, cases: list[Case]) -> list[Case]:
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
