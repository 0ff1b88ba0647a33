"""Read what the stages wrote (run-folder contract in ``docs/run-folders.md``) into plain values.

No Streamlit and no TensorFlow here, so every function is cheap to import and easy to test.
Missing or malformed files read as ``None`` / empty frames: the pages say what is missing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.evaluation import compare
from melanet.audits import leakage
from melanet.evaluation import metrics as metrics_module

from dashboard import discovery

_EPOCH_PATTERN = re.compile(rf"{layout.SAMPLE_GRID_PREFIX}(\d+)\.png$")


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV as a frame; an empty frame when the file is missing or unreadable."""
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return pd.DataFrame()


def history(run_path: Path) -> pd.DataFrame:
    """``history.csv`` with numeric columns (one row per finished epoch)."""
    frame = read_csv(run_path / runs.HISTORY_FILE)
    return frame.apply(pd.to_numeric, errors="coerce") if not frame.empty else frame


def epochs_shown(run_path: Path, status: dict[str, Any]) -> str | None:
    """"done/planned" epochs of a run for the runs table, or None for a run that is not a training run.

    While a training stage is the latest stage, ``status.json``'s ``epoch``/``epochs`` (the epoch in progress).
    After a later step (synthesize, audit, evaluate) has written its own progress there (synthesize counts one
    "epoch" of batches), the epochs trained: the last row of ``history.csv`` over the config's planned epochs.
    """
    from melanet.runs import stages

    if status.get("stage") in stages.TRAINING_STAGES and status.get("epochs"):
        return f"{status.get('epoch')}/{status.get('epochs')}"
    trained = history(run_path)
    config = run_config(run_path)
    if config is None:
        return None
    if "val_auc" in trained:
        planned = config.classifier.epochs
    elif any((run_path / name).is_file() for name in layout.GENERATOR_FILES) or "cycle" in trained:
        if config.gan.generator == "identity":
            return "0 (identity map, nothing trained)"
        planned = config.gan.epochs
    else:
        return f"{status.get('epoch')}/{status.get('epochs')}" if status.get("epochs") else None
    done = int(trained["epoch"].max()) if "epoch" in trained and not trained.empty else 0
    return f"{done}/{planned}"


def run_config(run_path: Path) -> config_module.Config | None:
    try:
        return runs.Run(run_path).config()
    except (runs.RunError, config_module.ConfigError):
        return None


def metrics(run_path: Path) -> dict[str, Any] | None:
    return runs.Run(run_path).metrics()


def predictions(run_path: Path) -> pd.DataFrame:
    """``predictions.csv``: ``image``, ``label`` 0/1, ``prob_malignant`` in [0, 1] (empty if unusable)."""
    frame = read_csv(layout.RunLayout(run_path).predictions)
    if frame.empty or not {"image", "label", "prob_malignant"} <= set(frame.columns):
        return pd.DataFrame()
    return frame


def roc_curve(run_path: Path) -> tuple[list[float], list[float], float] | None:
    """(fpr, tpr, auc) from ``metrics.json`` "roc", else computed from ``predictions.csv``."""
    values = metrics(run_path) or {}
    roc = values.get("roc") or {}
    if roc.get("fpr") and roc.get("tpr"):
        area = values.get("auc")
        return list(roc["fpr"]), list(roc["tpr"]), float(area) if area is not None else math.nan
    frame = predictions(run_path)
    if frame.empty:
        return None
    points = metrics_module.roc_points(frame["label"].to_numpy(), frame["prob_malignant"].to_numpy())
    if not points["fpr"]:
        return None
    area = metrics_module.auc(frame["label"].to_numpy(), frame["prob_malignant"].to_numpy())
    return points["fpr"], points["tpr"], area


def at_threshold(frame: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Counts and rates of ``predictions.csv`` rows at ``threshold`` (malignant when prob > threshold)."""
    counts = metrics_module.confusion_counts(frame["label"].to_numpy(), frame["prob_malignant"].to_numpy(), threshold)
    return {**counts, **metrics_module.rates(counts), "threshold": threshold}


def operating_threshold(values: dict[str, Any] | None) -> float | None:
    """The threshold chosen on the validation split, when evaluation found one."""
    point = (values or {}).get("operating_point") or {}
    if point.get("available") and point.get("threshold") is not None:
        return float(point["threshold"])
    return None


def with_interval(values: dict[str, Any], key: str, percent: bool = True) -> str:
    """"81.2 (72.0-88.9)" for ``key`` of a metrics mapping with its 95 % interval ("-" if absent)."""
    value = values.get(key)
    if value is None:
        return "-"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{value * scale:.{digits}f}"
    interval = (values.get("confidence_intervals") or {}).get(key) or {}
    low, high = interval.get("low"), interval.get("high")
    if low is not None and high is not None:
        text += f" ({low * scale:.{digits}f}-{high * scale:.{digits}f})"
    return text


def _cell(row: dict[str, Any], key: str, percent: bool = True) -> str:
    """"81.2 (72.0-88.9)" for ``key`` of a ``compare.load_row`` row with its interval ("-" if absent)."""
    value = row.get(key)
    if value is None:
        return "-"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{value * scale:.{digits}f}"
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if low is not None and high is not None:
        text += f" ({low * scale:.{digits}f}-{high * scale:.{digits}f})"
    return text


def metrics_table(entries: list[discovery.RunEntry]) -> pd.DataFrame:
    """Table 1 layout: one row per evaluated run (``melanet.evaluation.compare.load_row``), percentages
    with 95 % intervals."""
    rows = []
    for entry in entries:
        try:
            row = compare.load_row(entry.path)
        except (runs.RunError, config_module.ConfigError):
            continue
        config = run_config(entry.path)
        rows.append({
            "run": entry.label,
            "training set": config.classifier.training_set if config else "?",
            "AUC %": _cell(row, "auc"),
            "sensitivity %": _cell(row, "sensitivity"),
            "specificity %": _cell(row, "specificity"),
            "PPV %": with_interval(metrics(entry.path) or {}, "ppv"),
            "NPV %": _cell(row, "npv"),
            "FN": row.get("fn"),
            "FP": row.get("fp"),
            "n": row.get("n"),
            "duplicates of training": leakage.duplicates_summary(metrics(entry.path) or {}),
        })
    return pd.DataFrame(rows)


def key_metrics(run_path: Path) -> dict[str, Any]:
    """AUC, sensitivity, specificity at 0.5 (or nothing) for the runs table."""
    values = metrics(run_path) or {}
    return {name: values.get(name) for name in ("auc", "sensitivity", "specificity") if values.get(name) is not None}


def sample_grids(run_path: Path) -> list[tuple[int, Path]]:
    """``figures/samples_epoch_NNN.png`` as (epoch, path), oldest first."""
    found = []
    for path in layout.RunLayout(run_path).figures.glob(layout.SAMPLE_GRID_GLOB):
        match = _EPOCH_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def synthetic_manifest(run_path: Path) -> pd.DataFrame:
    """``synthetic/manifest.csv`` (``synthetic_id, source_id, path, reconstruction_path``)."""
    frame = read_csv(layout.RunLayout(run_path).synthetic_manifest)
    if frame.empty or not {"synthetic_id", "source_id", "path"} <= set(frame.columns):
        return pd.DataFrame()
    return frame


def explain_index(run_path: Path) -> pd.DataFrame:
    """``explain/index.csv`` (``image, label, prob_malignant, outcome, ..., map_path, input_path``)."""
    frame = read_csv(layout.RunLayout(run_path).explain_index())
    if frame.empty or not {"image", "outcome"} <= set(frame.columns):
        return pd.DataFrame()
    frame["outcome"] = frame["outcome"].astype(str).str.upper()
    return frame


def lesion_focus(run_path: Path) -> dict[str, dict[str, Any]] | str:
    """``explain/lesion_focus.json``: group (TP, FP, TN, FN, all) -> {n, mass_share, area_fraction};
    {} when absent; a one-line message naming the file when it cannot be read."""
    path = layout.RunLayout(run_path).explain_folder() / layout.LESION_FOCUS_NAME
    if not path.is_file():
        return {}
    try:
        values = runs.read_json(path)
    except runs.RunError as error:
        return str(error)
    if not isinstance(values, dict) or not isinstance(values.get("by_outcome", {}), dict):
        return f"{path}: expected a JSON object with by_outcome and all"
    groups = {**values.get("by_outcome", {}), "all": values.get("all")}
    usable = {}
    for name, entry in groups.items():
        if isinstance(entry, dict) and all(isinstance(entry.get(key), (int, float)) and math.isfinite(entry[key])
                                           for key in ("n", "mass_share", "area_fraction")):
            usable[str(name)] = entry
    return usable


def shortcut_audit(run_path: Path) -> dict[str, Any] | str | None:
    """``shortcuts/shortcuts.json`` of a classifier run: the summary, None when the run has none, or a
    one-line message naming the file when it cannot be read."""
    from melanet.audits import shortcuts

    path = layout.RunLayout(run_path).shortcuts
    if not path.is_file():
        return None
    return shortcuts.read_summary(path)


def umap_points(run_path: Path) -> pd.DataFrame:
    """``embedding/umap.csv`` (``panel, image, tag, x, y``)."""
    frame = read_csv(layout.RunLayout(run_path).umap_csv)
    if frame.empty or not {"panel", "image", "tag", "x", "y"} <= set(frame.columns):
        return pd.DataFrame()
    return frame


def domain_gap(run_path: Path) -> dict[str, dict[str, Any]] | str:
    """``embedding/separability.json``: pair name -> {auc, n_first, n_second, folds}; {} when absent;
    a one-line message naming the file when it cannot be read."""
    path = layout.RunLayout(run_path).separability
    if not path.is_file():
        return {}
    try:
        values = runs.read_json(path)
    except runs.RunError as error:
        return str(error)
    if not isinstance(values, dict):
        return f"{path}: expected a JSON object of pair name -> {{auc, n_first, n_second, folds}}"
    return {name: entry for name, entry in values.items()
            if isinstance(entry, dict) and isinstance(entry.get("auc"), (int, float))}


def linked_gan_run(run_path: Path) -> Path | None:
    """The stage-1 run whose synthetic images a classifier run used: ``melanet.runs.runs.linked_gan_run``
    (relative saved paths also from the repository root)."""
    return runs.linked_gan_run(run_path, root=discovery.ROOT)


def image_paths(data_root: str | Path) -> dict[str, Path]:
    """Image id -> file for every sample of a data folder (``melanet.data.sources.image_files``)."""
    from melanet.data import sources

    return sources.image_files(discovery.resolve_path(data_root))


def load_rgb(path: Path) -> np.ndarray | None:
    """An image file as (H, W, 3) uint8, or None when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def class_counts(data_root: str | Path) -> tuple[pd.DataFrame, list[dict[str, Any]], str]:
    """Per-split, per-class image counts (Figure 4), the problems found and the layout."""
    from melanet.data import sources

    index = sources.read_index(discovery.resolve_path(data_root))
    rows = []
    for split in ("train", "test"):
        labels = [sample.label for sample in index.samples(split)]
        rows.append({"split": split, "benign": labels.count(0), "malignant": labels.count(1)})
    return pd.DataFrame(rows), list(index.problems), index.layout
