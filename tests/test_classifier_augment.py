"""Offline augmentation and the four training sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from melanet.data import disk_images
from melanet.classifier import augment, training_sets
from melanet.config import ConfigError
from melanet.data import prepare


@pytest.fixture(scope="module")
def originals() -> prepare.ImageSet:
    """Six real lesions from the bundled sample at 32 px (2 malignant)."""
    from melanet.data import preprocess

    root = Path(__file__).resolve().parents[1] / "data" / "sample"
    rows = [line.split(",") for line in (root / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").read_text().split()][:6]
    images = np.stack([preprocess.preprocess_image(root / "ISBI2016_ISIC_Part3_Training_Data" / f"{image_id}.jpg",
                                                   32, 100_000_000) for image_id, _ in rows])
    labels = np.array([1 if label == "malignant" else 0 for _, label in rows], dtype=np.int64)
    return prepare.ImageSet(images, labels, [image_id for image_id, _ in rows])


def test_augmentation_is_reproducible_by_seed_and_changes_with_it(originals: prepare.ImageSet) -> None:
    first = augment.augment_images(originals.images, 2, seed=7)
    again = augment.augment_images(originals.images, 2, seed=7)
    other = augment.augment_images(originals.images, 2, seed=8)
    assert first.shape == (12, 32, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.mean(first != other) > 0.5
    # copies differ from their originals and from each other, but stay images of the same lesion
    assert np.mean(first[:6] != originals.images) > 0.5
    assert np.mean(first[:6] != first[6:]) > 0.5
    assert abs(float(first.mean()) - float(originals.images.mean())) < 25


def test_augmentation_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        augment.augment_images(np.zeros((2, 8, 8, 3), dtype=np.float32), 1, seed=0)
    with pytest.raises(ValueError, match="copies"):
        augment.augment_images(np.zeros((2, 8, 8, 3), dtype=np.uint8), 0, seed=0)


def test_augment5x_adds_five_copies_per_image_and_is_cached(originals: prepare.ImageSet, tmp_path: Path) -> None:
    built = training_sets.build_training_set("augment5x", originals, seed=3, cache_dir=tmp_path)
    assert len(built.ids) == 6 * 6  # the paper: 900 originals -> 5400 images
    np.testing.assert_array_equal(built.images[:6], originals.images)
    np.testing.assert_array_equal(built.labels, np.tile(originals.labels, 6))
    assert built.ids[6] == f"{originals.ids[0]}_aug1"
    cached = list(tmp_path.glob("augmented-32px-5x-*.npy"))
    assert len(cached) == 1
    # the copies stay in the cache file, joined lazily to the originals; the rows are those made in memory
    assert disk_images.is_on_disk(built.images)
    in_memory = training_sets.build_training_set("augment5x", originals, seed=3)
    assert isinstance(in_memory.images, np.ndarray)
    np.testing.assert_array_equal(np.asarray(built.images), in_memory.images)
    stamp = cached[0].stat().st_mtime_ns
    again = training_sets.build_training_set("augment5x", originals, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(built.images))
    assert cached[0].stat().st_mtime_ns == stamp, "second build reads the cache"
    training_sets.build_training_set("augment5x", originals, seed=4, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("augmented-32px-5x-*.npy"))) == 2, "another seed is another cache entry"


def test_original_and_synthetic_need_the_right_settings(originals: prepare.ImageSet) -> None:
    assert training_sets.build_training_set("original", originals, seed=0) is originals
    with pytest.raises(ConfigError, match="gan_run"):
        training_sets.build_training_set("synthetic", originals, seed=0)
    with pytest.raises(ConfigError, match="training_set"):
        training_sets.build_training_set("augment3x", originals, seed=0)
