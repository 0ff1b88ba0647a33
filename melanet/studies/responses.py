"""Readers' answers: ``responses.csv`` of a study, one line per answer.

Columns: ``case, image, reader, phase, decision, confidence, seconds, answered_at, note`` (``phase``
unaided/aided, ``decision`` benign/malignant, ``confidence`` 1-5, ``seconds`` spent on the case,
``answered_at`` ISO time, ``note`` optional free text on one line).

Every answer is saved at once and atomically: under the study's lock, the file is rewritten with the
new line through a temporary file and ``os.replace`` (``melanet.runs.runs.atomic_write_bytes``), so a
writer killed at any instant leaves either the old file or the new one, never a torn line, and two
readers answering at the same moment both keep their answer. A (reader, phase, case) is answered
once: a second answer (a double click, a resubmitted form) keeps the first. A reader sees the aided
phase only after answering every case unaided.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from melanet.runs import runs
from melanet.studies import study as study_module
from melanet.studies.study import StudyError

RESPONSE_COLUMNS = ("case", "image", "reader", "phase", "decision", "confidence", "seconds", "answered_at", "note")
MAX_READER_LENGTH = 80
MAX_NOTE_LENGTH = 2000


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
def study_lock(study: study_module.Study) -> Iterator[None]:
    """Hold the study's exclusive lock (blocking: answers are quick)."""
    with open(study.path / study_module.LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def read_responses(study: study_module.Study) -> list[dict[str, Any]]:
    """Every answer in file order, typed (confidence int, seconds float); [] when there is none yet.

    StudyError naming the line of a malformed answer.
    """
    path = study.responses_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ())[: len(RESPONSE_COLUMNS) - 1] != RESPONSE_COLUMNS[:-1]:
        raise StudyError(f"{path}: line 1: expected the columns {','.join(RESPONSE_COLUMNS)}")
    known = {case.case for case in study.cases}
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            typed = {**row, "confidence": int(row["confidence"]), "seconds": float(row["seconds"]),
                     "note": row.get("note") or ""}
        except (TypeError, ValueError):
            raise StudyError(f"{path}: line {line}: confidence must be 1-5 and seconds a number, got {row}") from None
        if (typed["case"] not in known or typed["phase"] not in study_module.PHASES
                or typed["decision"] not in study_module.DECISIONS
                or typed["confidence"] not in study_module.CONFIDENCE_LEVELS):
            raise StudyError(f"{path}: line {line}: unknown case, phase, decision or confidence in {row}")
        rows.append(typed)
    return rows


def answers_of(responses: list[dict[str, Any]], reader: str, phase: str) -> dict[str, dict[str, Any]]:
    """Case id -> the (first) answer of ``reader`` in ``phase``."""
    found: dict[str, dict[str, Any]] = {}
    for row in responses:
        if row["reader"] == reader and row["phase"] == phase:
            found.setdefault(row["case"], row)
    return found


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a reader stands in a phase: ``done`` of ``total`` answered; ``next_case`` None when finished."""

    phase: str
    done: int
    total: int
    next_case: str | None

    @property
    def finished(self) -> bool:
        return self.next_case is None


def reader_progress(study: study_module.Study, responses: list[dict[str, Any]], reader: str) -> Progress:
    """The reader's current phase and next case: the first unanswered case of the first unfinished phase
    in the reader's own order (after the last phase: that phase, finished)."""
    for phase in study.phases:
        answered = answers_of(responses, reader, phase)
        order = study_module.case_order(study, reader, phase)
        pending = [case for case in order if case not in answered]
        if pending:
            return Progress(phase, len(order) - len(pending), len(order), pending[0])
    return Progress(study.phases[-1], len(study.cases), len(study.cases), None)


def record_answer(
    study: study_module.Study,
    *,
    reader: str,
    phase: str,
    case: str,
    decision: str,
    confidence: int,
    seconds: float,
    note: str = "",
) -> dict[str, Any]:
    """Validate one answer and append it to ``responses.csv`` atomically; returns the row on disk
    (the earlier one when this reader already answered this case in this phase)."""
    reader = normalise_reader(reader)
    row = _validated_row(study, reader, phase, case, decision, confidence, seconds, note)
    with study_lock(study):
        responses = read_responses(study)
        if phase == study_module.PHASES[1]:
            unaided = answers_of(responses, reader, study_module.PHASES[0])
            if len(unaided) < len(study.cases):
                raise StudyError(f"reader {reader!r} has answered {len(unaided)} of {len(study.cases)} cases "
                                 "unaided; the aided phase starts after the last one")
        earlier = answers_of(responses, reader, phase).get(case)
        if earlier is not None:
            return earlier
        _rewrite_with(study.responses_path, row)
    return row


def _validated_row(study: study_module.Study, reader: str, phase: str, case: str, decision: str,
                   confidence: int, seconds: float, note: str) -> dict[str, Any]:
    if phase not in study.phases:
        raise StudyError(f"phase must be one of {study.phases}, got {phase!r}")
    if decision not in study_module.DECISIONS:
        raise StudyError(f"decision must be one of {study_module.DECISIONS}, got {decision!r}")
    if confidence not in study_module.CONFIDENCE_LEVELS or isinstance(confidence, bool):
        raise StudyError(f"confidence must be an integer 1-5, got {confidence!r}")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise StudyError(f"seconds must be a finite number >= 0, got {seconds!r}")
    note = re.sub(r"\s+", " ", note or "").strip()[:MAX_NOTE_LENGTH]
    return {"case": case, "image": study.case(case).image, "reader": reader, "phase": phase, "decision": decision,
            "confidence": int(confidence), "seconds": round(float(seconds), 1), "answered_at": runs.now_iso(),
            "note": note}


def _rewrite_with(path: Path, row: dict[str, Any]) -> None:
    """The file's bytes plus one CSV line for ``row`` (and the header for a new file), written atomically."""
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = b""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(RESPONSE_COLUMNS), lineterminator="\n")
    if not existing:
        writer.writeheader()
    writer.writerow(row)
    runs.atomic_write_bytes(path, existing + buffer.getvalue().encode("utf-8"))
