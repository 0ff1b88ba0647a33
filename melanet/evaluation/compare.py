"""Table 1 of the paper for any evaluated classifier runs: AUC, sensitivity, specificity, FN, FP, NPV.

Each row reads a run's ``metrics.json`` (written by ``melanet evaluate``) and its config (for the
method name). Percentages carry their 95 % intervals: bootstrap for the AUC, Wilson for proportions.
The NPV column is what the paper calls "sensitivity" (see ``metrics.PAPER_NOTE``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet import config as config_module
from melanet.common import formatting, training_sets
from melanet.runs import layout, runs

# Sub-folders of a `melanet reproduce` results folder, in Table 1 order.

CSV_COLUMNS = (
    "method", "run", "n", "n_malignant", "threshold",
    "auc", "auc_low", "auc_high",
    "sensitivity", "sensitivity_low", "sensitivity_high",
    "specificity", "specificity_low", "specificity_high",
    "fn", "fp", "tp", "tn",
    "npv", "npv_low", "npv_high",
)
TABLE_HEADERS = ("Method", "AUC % [95% CI]", "Sensitivity % [95% CI]", "Specificity % [95% CI]", "FN", "FP",
                 "NPV % (paper's 'sensitivity')")
FOOTNOTE = (
    "Test images: {test_images}. Threshold {threshold}; AUC CI: stratified bootstrap; proportion CIs: Wilson. Sensitivity = TP/(TP+FN) "
    "for melanoma. The paper's 'sensitivity' column is the NPV = TN/(TN+FN) (its code's cm[0,0]/(cm[0,0]+cm[1,0]))."
)


def reproduce_folders(results: str | Path) -> list[Path]:
    """The classifier folders of a reproduce results folder in Table 1 order, one per training set
    (``melanet.common.training_sets``; an older folder name such as ``vgg_gap/`` where that one exists)."""
    return [entry.folder_in(results) for entry in training_sets.REGISTRY.values()]


def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders to compare; a ``reproduce`` results folder stands for its evaluated classifier runs."""
    expanded: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / runs.METRICS_FILE).is_file() or not path.is_dir():
            expanded.append(path)
            continue
        children = [child for child in reproduce_folders(path) if (child / runs.METRICS_FILE).is_file()]
        others = sorted(child.parent for child in path.glob(f"*/{runs.METRICS_FILE}") if child.parent not in children)
        if not children and not others:
            expanded.append(path)  # load_row names the problem
        expanded.extend(children + others)
    return expanded


def load_row(run_path: str | Path, *, operating_point: bool = False) -> dict[str, Any]:
    """One table row (numbers as fractions, CIs as ``*_low``/``*_high``) from an evaluated run."""
    path = Path(run_path)
    metrics_path = path / runs.METRICS_FILE
    if not metrics_path.is_file():
        raise runs.RunError(f"{path}: no {runs.METRICS_FILE}; evaluate it first with `melanet evaluate --run {path}`")
    report = runs.read_json(metrics_path)
    backbone = "vgg16"
    try:
        run_classifier = runs.Run(path).config().classifier
        training_set, backbone = run_classifier.training_set, run_classifier.backbone
    except (runs.RunError, config_module.ConfigError):
        training_set = (report.get("model") or {}).get("training_set", "")
    figures = report
    if operating_point:
        figures = report.get("operating_point") or {}
        if not figures.get("available"):
            raise runs.RunError(f"{metrics_path}: no operating point ({figures.get('reason', 'not computed')})")
    intervals = figures.get("confidence_intervals") or {}
    auc_interval = (report.get("confidence_intervals") or {}).get("auc") or {}
    row: dict[str, Any] = {
        "method": training_sets.method_name(training_set, backbone) if training_set else path.name,
        "run": path.name,
        "n": figures.get("n"),
        "n_malignant": figures.get("n_malignant"),
        "threshold": figures.get("threshold"),
        "auc": report.get("auc"),
        "auc_low": auc_interval.get("low"),
        "auc_high": auc_interval.get("high"),
    }
    for name in ("sensitivity", "specificity", "npv"):
        row[name] = figures.get(name)
        row[f"{name}_low"] = (intervals.get(name) or {}).get("low")
        row[f"{name}_high"] = (intervals.get(name) or {}).get("high")
    for name in ("fn", "fp", "tp", "tn"):
        row[name] = figures.get(name)
    return row


def load_rows(paths: Sequence[str | Path], *, operating_point: bool = False) -> list[dict[str, Any]]:
    """Rows for every run (results folders expanded); duplicate method names get the run name added."""
    rows = [load_row(path, operating_point=operating_point) for path in expand_runs(paths)]
    names = [row["method"] for row in rows]
    for row in rows:
        if names.count(row["method"]) > 1:
            row["method"] = f"{row['method']} ({row['run']})"
    return rows


def _percent(value: Any, low: Any = None, high: Any = None) -> str:
    """Table 1's cell: ``"83.33 [80.1, 90.2]"`` (two decimals, the interval in one), ``"n/a"`` when missing."""
    if value is None:
        return formatting.NOT_AVAILABLE
    return formatting.percent(value, 2, unit="") + formatting.percent_bounds(low, high)


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        str(row["method"]),
        _percent(row["auc"], row["auc_low"], row["auc_high"]),
        _percent(row["sensitivity"], row["sensitivity_low"], row["sensitivity_high"]),
        _percent(row["specificity"], row["specificity_low"], row["specificity_high"]),
        "n/a" if row["fn"] is None else str(row["fn"]),
        "n/a" if row["fp"] is None else str(row["fp"]),
        _percent(row["npv"], row["npv_low"], row["npv_high"]),
    ]


def _thresholds(rows: Sequence[dict[str, Any]]) -> str:
    values = sorted({f"{row['threshold']:.3g}" for row in rows if row.get("threshold") is not None})
    return ", ".join(values) or "n/a"


def _test_images(rows: Sequence[dict[str, Any]]) -> str:
    values = sorted({f"{row['n']} ({row['n_malignant']} malignant)" for row in rows if row.get("n") is not None})
    return ", ".join(values) or "n/a"


def _footnote(rows: Sequence[dict[str, Any]]) -> str:
    return FOOTNOTE.format(threshold=_thresholds(rows), test_images=_test_images(rows))


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table with a footnote on thresholds, intervals and the NPV column."""
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(TABLE_HEADERS) - 1)) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    lines += ["", _footnote(rows)]
    return "\n".join(lines) + "\n"


def to_text(rows: Sequence[dict[str, Any]]) -> str:
    """An aligned plain-text table for a terminal."""
    table = [list(TABLE_HEADERS)] + [_cells(row) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(TABLE_HEADERS))]
    lines = ["  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(line, widths))).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + ["", _footnote(rows)]) + "\n"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Machine-readable table: fractions (not percentages) and interval bounds in their own columns."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row.get(name) is None else row[name] for name in CSV_COLUMNS})
    return buffer.getvalue()


def write_tables(rows: Sequence[dict[str, Any]], folder: str | Path) -> tuple[Path, Path]:
    """Write ``table.md`` and ``table.csv`` atomically into ``folder``."""
    files = layout.RunLayout(Path(folder))
    runs.atomic_write_text(files.table_markdown, to_markdown(rows))
    runs.atomic_write_text(files.table_csv, to_csv(rows))
    return files.table_markdown, files.table_csv
