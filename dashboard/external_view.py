"""Rows and ROC curves of the External validation page: a run's own test row, then one row per external data set.

A shipped (read-only) run's external results go to ``runs/external/<its label, '/' as '-'>/<data set>/``
(:func:`results_base`); a user's run files them inside itself, ``RUN/external/<data set>/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from melanet.data import sources
from melanet.data.errors import DataError
from melanet.runs import layout
from melanet.evaluation import external
from melanet.audits import leakage

from dashboard import artifacts, discovery

ALL_LABELLED = "all labelled images (no labelled test split)"


def data_folders() -> list[str]:
    """Folders under ``<repo>/data`` that hold a recognised layout, as paths relative to the repository."""
    base = discovery.ROOT / "data"
    found = []
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            sources.detect_layout(folder)
        except DataError:
            continue
        found.append(folder.relative_to(discovery.ROOT).as_posix())
    return found


def results_base(entry: discovery.RunEntry) -> Path | None:
    """Where the entry's external results live: None (inside the run) for a user's run, else
    ``<runs>/external/<label with '/' as '-'>/`` (``runs/external/models-demo-melanet/``): a shipped run
    stays untouched."""
    if not entry.read_only:
        return None
    return discovery.runs_dir() / layout.EXTERNAL_FOLDER / external.dataset_name(entry.label.replace("/", "-"))


def describe_folder(data_root: Path) -> str:
    """'ISIC 2019 layout (train only): all labelled images will be scored' or the DataError's message."""
    index = sources.read_index(data_root)
    splits = ", ".join(index.splits)
    what = "the test split will be scored" if "test" in index.splits else ALL_LABELLED.replace(
        "all labelled images", "all labelled images will be scored")
    problems = f"; {len(index.problems)} problem(s): run `melanet data check {data_root}`" if index.problems else ""
    return f"{index.title} layout ({splits}): {what}{problems}"


def _row(data_set: str, values: dict[str, Any], state: str) -> dict[str, Any]:
    data = values.get("data") or {}
    n, positives = values.get("n"), values.get("n_malignant")
    prevalence = data.get("prevalence")
    if prevalence is None and n:
        prevalence = (positives or 0) / n
    images = ALL_LABELLED if data.get("all_labelled_images") else f"{data.get('split', 'test')} split"
    return {
        "data set": data_set,
        "images": images,
        "n": n,
        "prevalence %": "-" if prevalence is None else f"{100 * prevalence:.1f}",
        "AUC %": artifacts.with_interval(values, "auc"),
        "sensitivity %": artifacts.with_interval(values, "sensitivity"),
        "specificity %": artifacts.with_interval(values, "specificity"),
        "overlap with the run's images": leakage.overlap_summary(values) if values else "-",
        "duplicates of training": leakage.duplicates_summary(values) if values else "-",
        "state": state,
    }


def table(run_path: Path, base: Path | None = None) -> pd.DataFrame:
    """The run's own test row (its ``metrics.json``), then every external evaluation (running and failed too)
    filed in the run or in ``base`` (:func:`results_base`)."""
    rows = []
    own = artifacts.metrics(run_path)
    if own:
        root = (own.get("data") or {}).get("root", "own data")
        rows.append(_row(f"{Path(root).name} (the run's own test split)", own, "done"))
    for result in external.results(run_path, base):
        if result.metrics is not None:
            rows.append(_row(result.name, result.metrics, result.state))
        else:
            rows.append({"data set": result.name, "images": "-", "n": None, "prevalence %": "-", "AUC %": "-",
                         "sensitivity %": "-", "specificity %": "-", "state": result.state})
    return pd.DataFrame(rows)


def curves(run_path: Path, base: Path | None = None) -> list[tuple[str, list[float], list[float], float]]:
    """(name, fpr, tpr, auc) of the run's own test split and of each finished external evaluation."""
    found = []
    own = artifacts.roc_curve(run_path)
    if own is not None:
        found.append(("own test split", *own))
    for result in external.results(run_path, base):
        roc = (result.metrics or {}).get("roc") or {}
        if roc.get("fpr") and roc.get("tpr"):
            area = result.metrics.get("auc")
            found.append((result.name, list(roc["fpr"]), list(roc["tpr"]),
                          float(area) if area is not None else math.nan))
    return found
