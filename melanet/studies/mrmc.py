"""Multi-reader multi-case (MRMC) analysis of a reader study: Obuchowski-Rockette with Hillis's ddf.

The model and its arithmetic live in :mod:`melanet.evaluation.obuchowski_rockette` (shared with the
random-seeds analysis of :mod:`melanet.reproduce.seeds_summary`); this module reads the study's long table.

Input: a long table with columns ``reader, treatment, case, truth, rating`` (truth 1 = diseased/malignant;
higher rating = more likely diseased; any ordinal or continuous rating). Every reader rates every case
under both treatments. The difference is ``treatment A - treatment B`` in the order given.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from melanet.common import formatting
from melanet.data import errors as data_errors
from melanet.evaluation import obuchowski_rockette

COLUMNS = ("reader", "treatment", "case", "truth", "rating")
COVARIANCE_METHODS = obuchowski_rockette.COVARIANCE_METHODS
CONFIDENCE_LEVEL = obuchowski_rockette.CONFIDENCE_LEVEL


class MRMCError(data_errors.DataError):
    """A table that cannot be analysed (names the file, line and column where there is one)."""


@dataclass(frozen=True)
class Table:
    """A complete MRMC design: ``ratings`` (t, r, c) float64, ``truth`` (c,) 0/1, names of each axis."""

    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    truth: np.ndarray
    ratings: np.ndarray


def table_from_rows(rows: Sequence[dict[str, Any]], treatments: Sequence[str] | None = None,
                    source: str = "table") -> Table:
    """A complete (t, r, c) design from long rows (dicts with COLUMNS, values as text or numbers).

    Each row may carry ``_line`` (its line in the file) for error messages. ``treatments``: the two to
    compare, in this order (default: the only two present, in order of first appearance).
    """
    def where(row: dict[str, Any]) -> str:
        return f"{source} line {row['_line']}" if "_line" in row else source

    truth_of: dict[str, tuple[int, str]] = {}
    cells: dict[tuple[str, str, str], float] = {}
    treatment_order: list[str] = []
    reader_order: list[str] = []
    case_order: list[str] = []
    for row in rows:
        values = {}
        for column in COLUMNS:
            value = row.get(column)
            if value is None or str(value).strip() == "":
                raise MRMCError(f"{where(row)}: column '{column}' is empty")
            values[column] = str(value).strip()
        reader, treatment, case = values["reader"], values["treatment"], values["case"]
        try:
            rating_value = float(values["rating"])
        except ValueError:
            raise MRMCError(f"{where(row)}, column 'rating': expected a number, got {values['rating']!r}") from None
        if not math.isfinite(rating_value):
            raise MRMCError(f"{where(row)}, column 'rating': expected a finite number, got {values['rating']!r}")
        if values["truth"] not in ("0", "1", "0.0", "1.0"):
            raise MRMCError(f"{where(row)}, column 'truth': expected 0 (negative) or 1 (positive), "
                            f"got {values['truth']!r}")
        truth_value = int(float(values["truth"]))
        if case in truth_of and truth_of[case][0] != truth_value:
            raise MRMCError(f"{where(row)}: case {case!r} has truth {truth_value} here but {truth_of[case][0]} "
                            f"at {truth_of[case][1]} (a case has one truth)")
        truth_of.setdefault(case, (truth_value, where(row)))
        key = (treatment, reader, case)
        if key in cells:
            raise MRMCError(f"{where(row)}: reader {reader!r} rated case {case!r} under treatment {treatment!r} "
                            f"twice")
        cells[key] = rating_value
        for value, order in ((treatment, treatment_order), (reader, reader_order), (case, case_order)):
            if value not in order:
                order.append(value)
    if not cells:
        raise MRMCError(f"{source}: no ratings")
    if treatments is None:
        if len(treatment_order) != 2:
            raise MRMCError(f"{source}: {len(treatment_order)} treatments ({', '.join(treatment_order)}); "
                            f"name the two to compare (--treatments A B)")
        chosen = tuple(treatment_order)
    else:
        chosen = tuple(str(name) for name in treatments)
        if len(chosen) != 2 or chosen[0] == chosen[1]:
            raise MRMCError(f"give two different treatments to compare, got {list(chosen)}")
        for name in chosen:
            if name not in treatment_order:
                raise MRMCError(f"{source}: no treatment {name!r} (treatments: {', '.join(treatment_order)})")
    readers = [reader for reader in reader_order if any((t, reader, c) in cells for t in chosen for c in case_order)]
    cases = [case for case in case_order if any((t, r, case) in cells for t in chosen for r in readers)]
    for treatment in chosen:
        for reader in readers:
            missing = [case for case in cases if (treatment, reader, case) not in cells]
            if missing:
                shown = ", ".join(repr(case) for case in missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise MRMCError(f"{source}: reader {reader!r} has no rating under treatment {treatment!r} for "
                                f"{len(missing)} case(s): {shown} (every reader must rate every case in both "
                                f"treatments)")
    truth = np.array([truth_of[case][0] for case in cases], dtype=np.int64)
    positives = int(truth.sum())
    if positives < 2 or truth.size - positives < 2:
        raise MRMCError(f"{source}: {positives} positive and {truth.size - positives} negative case(s); the "
                        f"analysis needs at least 2 of each (one-class data have no AUC)")
    if len(readers) < 2:
        raise MRMCError(f"{source}: {len(readers)} reader(s); a multi-reader analysis needs at least 2")
    ratings = np.array([[[cells[(t, r, c)] for c in cases] for r in readers] for t in chosen], dtype=np.float64)
    return Table(treatments=chosen, readers=tuple(readers), cases=tuple(cases), truth=truth, ratings=ratings)


def read_table(path: str | Path, treatments: Sequence[str] | None = None) -> Table:
    """A Table from a CSV file with header ``reader,treatment,case,truth,rating`` (extra columns ignored)."""
    path = Path(path)
    if not path.is_file():
        raise MRMCError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            raise MRMCError(f"{path} line 1: missing column(s) {', '.join(missing)} (expected columns "
                            f"{', '.join(COLUMNS)}; found {', '.join(header) or 'none'})")
        reader.fieldnames = header
        rows = []
        for row in reader:
            row["_line"] = reader.line_num
            rows.append(row)
    return table_from_rows(rows, treatments, source=str(path))


def reader_aucs(table: Table) -> np.ndarray:
    """(t, r) empirical AUCs (Mann-Whitney, ties one half)."""
    return obuchowski_rockette.reader_aucs(table.truth, table.ratings)


def error_covariance(table: Table, method: str = "jackknife") -> np.ndarray:
    """(t*r, t*r) covariance of the cell AUCs over cases (:func:`obuchowski_rockette.error_covariance`)."""
    if method not in COVARIANCE_METHODS:
        raise MRMCError(f"covariance must be one of {', '.join(COVARIANCE_METHODS)}, got {method!r}")
    return obuchowski_rockette.error_covariance(table.truth, table.ratings, method)


covariance_averages = obuchowski_rockette.covariance_averages


def analyse(table: Table, covariance: str = "jackknife", confidence: float = CONFIDENCE_LEVEL) -> dict[str, Any]:
    """The whole analysis (see :mod:`melanet.evaluation.obuchowski_rockette`) as a JSON-ready mapping."""
    if covariance not in COVARIANCE_METHODS:
        raise MRMCError(f"covariance must be one of {', '.join(COVARIANCE_METHODS)}, got {covariance!r}")
    return obuchowski_rockette.analyse(table.truth, table.ratings, table.treatments, table.readers,
                                       covariance, confidence)


IDENTICAL = "no difference (the ratings are identical in both treatments)"


def _number(value: float | None, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return "infinite" if math.isinf(value) else f"{value:.{digits}f}"


def difference_sentence(result: dict[str, Any], digits: int = 3) -> str:
    """The random-readers test in one sentence; for identical treatments, IDENTICAL (no F, no p)."""
    if result.get("identical_treatments"):
        return f"{result['difference_of']}: {IDENTICAL}; F and p undefined"
    ddf = "infinite (MS(T*R) = 0: the limiting F)" if result.get("ddf_infinite") else _number(result["ddf"], 2)
    return (f"{result['difference_of']} = {result['difference']:.{digits}f} (SE {_number(result['se'], digits)}, "
            f"95% CI {_number(result['ci_low'], digits)} to {_number(result['ci_high'], digits)}), "
            f"F = {_number(result['F'], 3)} on 1 and {ddf} df, {formatting.p_value(result['p'])}")


def json_safe(value: Any) -> Any:
    """nan/inf -> None and numpy scalars -> Python numbers, recursively (what JSON can hold)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_bytes(result: dict[str, Any]) -> bytes:
    """An analysis as strict JSON (an undefined or infinite number is null; see ``ddf_infinite``)."""
    return (json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n").encode("utf-8")


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A few lines for a person: AUCs, the random-reader test, each treatment's CI, the fixed-reader test."""
    lines = [f"{len(result['readers'])} readers x {result['n_cases']} cases ({result['n_positive']} positive), "
             f"covariance: {result['covariance']}"]
    for name in result["treatments"]:
        single = result["single_treatment"][name]
        lines.append(f"  {name}: mean AUC {single['auc']:.4f} (95% CI {single['ci_low']:.4f} to "
                     f"{single['ci_high']:.4f}, df {single['df']:.2f})")
    lines.append(f"random readers and cases: {difference_sentence(result, 4)}")
    fixed = result["fixed_readers"]
    if result.get("identical_treatments"):
        lines.append(f"fixed readers: {IDENTICAL}")
    else:
        lines.append(f"fixed readers: chi2 = {_number(fixed['chi2'], 3)} (1 df), {formatting.p_value(fixed['p'])}, "
                     f"95% CI {fixed['ci_low']:.4f} to {fixed['ci_high']:.4f}")
    return lines
