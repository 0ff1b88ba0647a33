"""K folds of the whole training part for cross-validated choices (``classifier.folds``).

Stratified (each fold holds about 1/K of each class) and grouped: a group (duplicate images,
``melanet.data.duplicates``, joined with the layout's lesion or patient group, ``splits.training_groups``)
never straddles two folds. The assignment is drawn by ``StratifiedGroupKFold`` from the split seed, so
the same data and seed give the same folds, and is recorded in the run folder as ``folds.csv``
(``image, label, fold, group``; folds numbered 1..K).

The whole training part is the layout's training split plus its official validation split where it has
one: with folds, every training image is held out once and no separate validation split is needed.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from melanet.runs import layout, runs
from melanet.config import DataConfig
from melanet.data import prepare, sources, splits
from melanet.data.errors import DataError

logger = logging.getLogger(__name__)

FOLDS_FILE = layout.FOLDS_FILE
FOLDS_COLUMNS = ("image", "label", "fold", "group")


def whole_training_part(data_config: DataConfig, *, progress: prepare.Progress | None = None
                        ) -> tuple[prepare.ImageSet, list[str | None]]:
    """(every labelled training image, its group per image): the training split plus any official
    validation split (ISIC 2017, 2018), with the groups of ``splits.training_groups``."""
    root = Path(data_config.root)
    index = sources.read_index(root, malignant_classes=data_config.malignant_classes)
    full = prepare.load_split(data_config, "train", progress=progress)
    if "validation" in index.splits:
        validation = prepare.load_split(data_config, "validation", progress=progress)
        full = prepare.ImageSet(np.concatenate([np.asarray(full.images), np.asarray(validation.images)]),
                                np.concatenate([full.labels, validation.labels]).astype(np.int64),
                                [*full.ids, *validation.ids], skipped=[*full.skipped, *validation.skipped])
    return full, splits.training_groups(data_config, full, index)


def assign_folds(labels: np.ndarray, groups: Sequence[str | None], folds: int, seed: int) -> np.ndarray:
    """Fold number (1..K) of each image: stratified by ``labels`` (N,) in {0, 1}, never splitting a group.

    ``groups``: N group names, None = the image is its own group. ``DataError`` when there are fewer
    groups than folds or a fold would hold no image of one class (its AUC would be undefined).
    Returns (N,) int64 in 1..K.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    names = [group if group is not None else f"image:{index}" for index, group in enumerate(groups)]
    counts = np.bincount(labels, minlength=2)
    if len(set(names)) < folds or counts.min() < folds:
        raise DataError(f"cannot make {folds} stratified folds of {counts[0]} benign and {counts[1]} malignant "
                        f"training images in {len(set(names))} groups (each fold needs both classes)")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    assignment = np.zeros(len(labels), dtype=np.int64)
    for number, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, names), start=1):
        assignment[held_out] = number
    for number in range(1, folds + 1):
        if len(set(labels[assignment == number])) < 2:
            raise DataError(f"fold {number} of {folds} holds images of one class only ({counts[0]} benign and "
                            f"{counts[1]} malignant training images); use fewer folds")
    return assignment


def write_folds(path: str | Path, ids: Sequence[str], labels: np.ndarray, assignment: np.ndarray,
                groups: Sequence[str | None]) -> None:
    """``folds.csv``: one row per training image (``image, label, fold, group``; group empty = its own)."""
    rows = [{"image": image_id, "label": int(label), "fold": int(fold), "group": group or ""}
            for image_id, label, fold, group in zip(ids, labels, assignment, groups)]
    runs.atomic_write_csv(path, rows, FOLDS_COLUMNS)


def read_folds(path: str | Path) -> dict[str, int]:
    """``image -> fold`` from a ``folds.csv``; ``DataError`` naming the file and line of a bad row."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except OSError as error:
        raise DataError(f"{path}: cannot read the fold assignment ({error.strerror or error})") from None
    assignment: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        try:
            assignment[row["image"]] = int(row["fold"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: line {line}: expected image and an integer fold, got {row}") from None
    return assignment
