"""Training / validation split carved from the training set; the test set is never touched here.

Three cases, in this order:

- the layout has an official validation split (ISIC 2017 Part 3, ISIC 2018 Task 3): it is used as it is
  (``data.val_fraction`` does not apply);
- the training samples carry groups (ISIC 2019: ``lesion_id``; ISIC 2020: ``patient_id``, with the
  duplicate pairs of ``ISIC_2020_Training_Duplicates.csv`` joined into one group), or some training
  images are duplicates of each other (``melanet.data.duplicates`` at ``data.duplicate_threshold``; their
  groups are joined with the lesion/patient groups): a stratified *grouped* split, so no patient's (else
  lesion's) images sit on both sides and a duplicate pair is never split;
- otherwise (ISIC-2016, plain folders, no duplicates): a stratified split of the images, the same as
  before duplicates were looked for.

Synthetic images (stage 1) keep their source's side: a classifier uses only those synthesized from its
training part (``training_sets.synthetic_images``), and a source's duplicates share that part.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from melanet.config import DataConfig
from melanet.data import duplicates, prepare, sources
from melanet.data.errors import DataError

logger = logging.getLogger(__name__)


def split_seed(data_config: DataConfig, seed: int) -> int:
    """The seed that draws the validation split: ``data.split_seed``, or the run's ``seed`` when it is -1."""
    return seed if data_config.split_seed < 0 else data_config.split_seed


def training_and_validation(
    data_config: DataConfig, seed: int, *, progress: prepare.Progress | None = None
) -> tuple[prepare.ImageSet, prepare.ImageSet]:
    """(training, validation) image sets of ``data_config.root`` (see the module docstring for which split).

    ``data_config.val_fraction`` of each class goes to validation (rounded by scikit-learn; about that
    fraction when grouped); the same ``seed`` and data give the same split. Both keep the training
    split's order. Images skipped with ``data.skip_bad`` are reported once, in the training set's ``skipped``.
    """
    seed = split_seed(data_config, seed)
    index = sources.read_index(Path(data_config.root), malignant_classes=data_config.malignant_classes)
    full = prepare.load_split(data_config, "train", progress=progress)
    if "validation" in index.splits:
        logger.info("%s: using the official %s validation split (data.val_fraction does not apply)",
                    data_config.root, index.title)
        validation = prepare.load_split(data_config, "validation", progress=progress)
        return full, validation
    groups = training_groups(data_config, full, index)
    if any(group is not None for group in groups):
        training_indices, validation_indices = grouped_split_indices(
            full.labels, groups, data_config.val_fraction, seed)
    else:
        training_indices, validation_indices = split_indices(full.labels, data_config.val_fraction, seed)
    return full.subset(training_indices, skipped=full.skipped), full.subset(validation_indices)


def training_groups(data_config: DataConfig, full: prepare.ImageSet,
                    index: sources.DataIndex | None = None) -> list[str | None]:
    """Per image of ``full`` (the training split), the group that must stay on one side of any split.

    The layout's lesion/patient group joined with the image's duplicate group (``melanet.data.duplicates``
    at ``data.duplicate_threshold``; -1 skips the check); None = the image is its own group.
    """
    if index is None:
        index = sources.read_index(Path(data_config.root), malignant_classes=data_config.malignant_classes)
    group_of = {sample.image_id: sample.group for sample in [*index.train, *index.validation]}
    groups = [group_of.get(image_id) for image_id in full.ids]
    if data_config.duplicate_threshold >= 0:
        # duplicate images (melanet.data.duplicates) stay on one side, joined with any lesion/patient group
        duplicate_groups = duplicates.group_names(duplicates.records_of(full, workers=data_config.workers),
                                                  data_config.duplicate_threshold)
        if any(group is not None for group in duplicate_groups):
            logger.info("%s: %d training images have a duplicate; each duplicate group stays on one side",
                        data_config.root, sum(group is not None for group in duplicate_groups))
            groups = duplicates.merge_groups(groups, duplicate_groups)
    return groups


def split_indices(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (training, validation) index arrays of a stratified split of ``labels`` (N,) in {0, 1}."""
    indices = np.arange(len(labels))
    try:
        training, validation = train_test_split(
            indices, test_size=val_fraction, stratify=labels, random_state=seed, shuffle=True)
    except ValueError as error:  # e.g. a class with a single image cannot be stratified
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2)
        raise DataError(
            f"cannot carve a stratified validation split ({val_fraction:.0%}) from {counts[0]} benign and "
            f"{counts[1]} malignant training images: {error}") from None
    return np.sort(training), np.sort(validation)


def grouped_split_indices(
    labels: np.ndarray, groups: Sequence[str | None], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (training, validation) indices of a stratified split that never splits a group.

    ``labels`` (N,) in {0, 1}; ``groups`` N group names (None = the image is its own group). One fold
    of ``StratifiedGroupKFold`` with ``round(1 / val_fraction)`` folds becomes validation: the first
    fold, in the seeded order, that leaves both classes on both sides.
    """
    labels = np.asarray(labels, dtype=np.int64)
    names = [group if group is not None else f"image:{index}" for index, group in enumerate(groups)]
    folds = max(2, round(1 / val_fraction))
    distinct = len(set(names))
    if distinct < folds:
        raise DataError(f"cannot carve a grouped validation split ({val_fraction:.0%}): only {distinct} "
                        f"patient/lesion groups among {len(labels)} training images (need at least {folds})")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for training, validation in splitter.split(np.zeros(len(labels)), labels, names):
        if len(set(labels[training])) == 2 and len(set(labels[validation])) == 2:
            return np.sort(training), np.sort(validation)
    counts = np.bincount(labels, minlength=2)
    raise DataError(f"cannot carve a grouped validation split ({val_fraction:.0%}) with both classes on both "
                    f"sides from {counts[0]} benign and {counts[1]} malignant training images in {distinct} groups")


def evaluation_split(data_config: DataConfig, *, external: bool) -> str:
    """Which split of ``data_config.root`` an evaluation reads: 'test', else (external data only) 'train'.

    A folder without a labelled test split (ISIC 2019 and 2020 label only their training images) can
    still validate a model trained elsewhere: then all its labelled images are used. A run's own data
    without a test split is refused, since its training images would be scored as if unseen.
    """
    index = sources.read_index(Path(data_config.root), malignant_classes=data_config.malignant_classes)
    if "test" in index.splits:
        return "test"
    if external:
        logger.info("%s: no labelled test split (%s); evaluating all %d labelled images",
                    data_config.root, index.title, len(index.train))
        return "train"
    raise DataError(f"{data_config.root}: this {index.title} folder has no labelled test split, and the run was "
                    "trained on it; evaluate a run trained on other data with --data DIR instead")
