"""Reading and writing the synthesis audit's files in a stage-1 run (names in ``melanet.runs.layout``).

- ``audit/audit.json``: the summary (see ``melanet.audits.synthesis_stage``);
- ``audit/realism.csv``: ``synthetic_id, source_id, path, realism, rank`` (rank 1 = most realistic);
- ``audit/nearest.csv``: ``features, kind, image, nearest_id, distance``: for every synthetic image
  (kind ``synthetic``) and every real malignant training image (kind ``real``) its nearest real
  malignant training image (another one, for kind ``real``) in feature space ``features``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from melanet.runs import layout, runs

REALISM_COLUMNS = ("synthetic_id", "source_id", "path", "realism", "rank")
NEAREST_COLUMNS = ("features", "kind", "image", "nearest_id", "distance")


def write_audit(run_path: str | Path, summary: dict[str, Any], realism_rows: list[dict[str, Any]],
                nearest_rows: list[dict[str, Any]]) -> Path:
    """Write the three files atomically (the summary last: it marks a complete audit); returns its path."""
    files = layout.RunLayout(Path(run_path))
    runs.atomic_write_csv(files.audit_realism, realism_rows, REALISM_COLUMNS)
    runs.atomic_write_csv(files.audit_nearest, nearest_rows, NEAREST_COLUMNS)
    runs.atomic_write_json(files.audit, summary)
    return files.audit


def read_summary(run_path: str | Path) -> dict[str, Any]:
    """``audit/audit.json`` of a stage-1 run; ``FileNotFoundError`` naming what to run when it is missing."""
    path = layout.RunLayout(Path(run_path)).audit
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (run `melanet audit-synthesis --run {run_path}`)")
    value = runs.read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return value


def _read_rows(path: Path, columns: tuple[str, ...], run_path: str | Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (run `melanet audit-synthesis --run {run_path}`)")
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        return list(reader)


def read_realism(run_path: str | Path) -> dict[str, float]:
    """``synthetic_id -> realism`` (held-out probability of real malignant, [0, 1]) from ``audit/realism.csv``."""
    path = layout.RunLayout(Path(run_path)).audit_realism
    scores: dict[str, float] = {}
    for line, row in enumerate(_read_rows(path, REALISM_COLUMNS, run_path), start=2):
        try:
            scores[row["synthetic_id"]] = float(row["realism"])
        except ValueError:
            raise ValueError(f"{path}: line {line}: realism {row['realism']!r} is not a number") from None
    return scores


def read_nearest(run_path: str | Path) -> list[dict[str, str]]:
    """Rows of ``audit/nearest.csv`` (strings, as written)."""
    return _read_rows(layout.RunLayout(Path(run_path)).audit_nearest, NEAREST_COLUMNS, run_path)
