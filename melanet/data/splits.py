"""Training / validation split carved from the training set; the test set is never touched here."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from melanet.config import DataConfig
from melanet.data import prepare
from melanet.data.errors import DataError


def training_and_validation(
    data_config: DataConfig, seed: int, *, progress: prepare.Progress | None = None
) -> tuple[prepare.ImageSet, prepare.ImageSet]:
    """(training, validation) image sets: a stratified split of the training split of ``data_config.root``.

    ``data_config.val_fraction`` of each class goes to validation (rounded by scikit-learn); the same
    ``seed`` and data give the same split. Both keep the training split's order. Images skipped with
    ``data.skip_bad`` are reported once, in the training set's ``skipped``.
    """
    full = prepare.load_split(data_config, "train", progress=progress)
    training_indices, validation_indices = split_indices(full.labels, data_config.val_fraction, seed)
    return full.subset(training_indices, skipped=full.skipped), full.subset(validation_indices)


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
