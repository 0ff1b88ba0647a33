"""Training sets larger than memory: the augmented copies, the synthetic images, the joined training set,
flip TTA and the frozen features stay on disk, and what training reads is what the in-memory path gives."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from melanet.runs import layout, runs
from melanet.classifier import augment, predict, train, training_sets
from melanet.data import disk_images
from melanet.data.errors import DataError
from melanet.data.prepare import ImageSet
from melanet.gan import synthesis


def _store(path: Path, images: np.ndarray) -> disk_images.DiskImages:
    with open(path, "wb") as stream:
        writer = disk_images.NpyWriter(stream, images.shape[1])
        writer.append(images)
        writer.finish()
    return disk_images.DiskImages(path)


def _originals(tmp_path: Path, count: int, size: int, seed: int = 0) -> ImageSet:
    images = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    labels = np.arange(count) % 3 == 0
    return ImageSet(_store(tmp_path / "originals.npy", images), labels.astype(np.int64),
                    [f"ISIC_{number:07d}" for number in range(count)])


def test_joined_rows_read_like_the_concatenated_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    first = rng.integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    second = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    third = rng.integers(0, 256, (4, 4, 4, 3), dtype=np.uint8)
    joined = disk_images.concatenate([_store(tmp_path / "a.npy", first).take([6, 0, 1, 2, 3, 4, 5]), second,
                                      _store(tmp_path / "c.npy", third)])
    expected = np.concatenate([first[[6, 0, 1, 2, 3, 4, 5]], second, third])
    assert isinstance(joined, disk_images.ConcatRows) and joined.shape == expected.shape
    positions = [15, 0, 7, 6, 11, 12, 7, 3]  # across the parts, out of order, a repeat
    np.testing.assert_array_equal(joined[positions], expected[positions])
    np.testing.assert_array_equal(joined.take([3, 14, 9]).take([2, 0])[:], expected[[9, 3]])
    np.testing.assert_array_equal(np.asarray(joined), expected)
    with pytest.raises(IndexError):
        joined.read(np.array([16]))
    with pytest.raises(ValueError, match="cannot join"):
        disk_images.ConcatRows([first, np.zeros((2, 5, 5, 3), np.uint8)])
    assert isinstance(disk_images.concatenate([first, second]), np.ndarray)  # all in memory: a plain array


def test_building_augment5x_from_disk_holds_about_one_block_not_the_copies(tmp_path: Path) -> None:
    originals = _originals(tmp_path, 1500, 32)
    copies_bytes = 5 * originals.images.nbytes  # 23 MB; one block of the recipe is about 1 MB
    augment.augment_images(np.zeros((2, 32, 32, 3), np.uint8), 1, seed=0)  # Keras' one-time set-up, not traced
    tracemalloc.start()
    try:
        built = training_sets.build_training_set("augment5x", originals, seed=2, cache_dir=tmp_path / "cache")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(built.labels) == 6 * 1500 and disk_images.is_on_disk(built.images)
    assert peak < copies_bytes / 3, f"building held {peak} bytes; the copies are {copies_bytes}"
    # the rows are the in-memory recipe's, originals first
    expected = training_sets.build_training_set("augment5x", ImageSet(np.asarray(originals.images),
                                                originals.labels, originals.ids), seed=2)
    rows = [0, 1499, 1500, 8999, 4321]
    np.testing.assert_array_equal(built.images[rows], expected.images[rows])


def _fake_gan_run(tmp_path: Path, ids: list[str], size: int) -> Path:
    run_path = tmp_path / "gan"
    rows = []
    for number, image_id in enumerate(ids):
        row = synthesis.manifest_row(image_id)
        for key in ("path", "reconstruction_path"):
            target = run_path / row[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((size, size, 3), number * 20 % 256, np.uint8)).save(target)
        rows.append(row)
    runs.atomic_write_csv(run_path / layout.SYNTHETIC_MANIFEST_FILE, rows, synthesis.MANIFEST_COLUMNS)
    return run_path


def test_synthetic_images_are_decoded_once_into_the_cache_and_a_changed_png_is_read_again(tmp_path: Path) -> None:
    ids = [f"ISIC_{number:07d}" for number in range(5)]
    run_path = _fake_gan_run(tmp_path, ids, 16)
    cache = tmp_path / "cache"
    in_memory = synthesis.load_synthetic(run_path, 16)
    on_disk = synthesis.load_synthetic(run_path, 16, cache_dir=cache)
    assert isinstance(on_disk.images, disk_images.DiskImages) and on_disk.ids == in_memory.ids
    np.testing.assert_array_equal(np.asarray(on_disk.images), in_memory.images)
    assert len(list(cache.glob("synthetic-16px-*.npy"))) == 1
    again = synthesis.load_synthetic(run_path, 16, cache_dir=cache)
    assert again.images.path == on_disk.images.path  # reused
    changed = run_path / synthesis.manifest_row(ids[2])["path"]
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # another modification time, whatever the clock's resolution
    updated = synthesis.load_synthetic(run_path, 16, cache_dir=cache)
    assert updated.images.path != on_disk.images.path and int(updated.images[2][0, 0, 0]) == 7


def test_the_synthetic_training_set_joins_the_cached_images_lazily(tmp_path: Path) -> None:
    originals = _originals(tmp_path, 6, 16)
    benign = [image_id for image_id, label in zip(originals.ids, originals.labels) if label == 0]
    run_path = _fake_gan_run(tmp_path, benign + ["ISIC_9999999"], 16)  # one from outside this training part
    built = training_sets.build_training_set("synthetic", originals, seed=0, gan_run=str(run_path),
                                             cache_dir=tmp_path / "cache")
    assert disk_images.is_on_disk(built.images) and len(built.labels) == 6 + len(benign)
    assert built.ids[6:] == [f"syn_{image_id}" for image_id in benign]
    reference = synthesis.load_synthetic(run_path, 16)
    np.testing.assert_array_equal(np.asarray(built.images)[6:], reference.images[:len(benign)])


def test_flip_tta_on_disk_equals_flipping_the_array_in_memory(tmp_path: Path) -> None:
    images = np.random.default_rng(3).integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
    inputs = keras.Input((8, 8, 3))
    # a position-dependent model: any flip changes its output
    hidden = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax",
                                 kernel_initializer=keras.initializers.RandomNormal(seed=0))(hidden)
    model = keras.Model(inputs, outputs)
    stored = _store(tmp_path / "images.npy", images)
    # "flips": as is, left-right, up-down and both, written out here
    views = [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]
    by_hand = np.mean([model.predict(view.astype(np.float32) / 255.0, verbose=0)[:, 1] for view in views], axis=0)
    from_disk = predict.predict_probabilities(model, stored, 4, tta="flips")
    np.testing.assert_allclose(from_disk, by_hand, rtol=1e-5)
    assert not np.allclose(from_disk, predict.predict_probabilities(model, stored, 4))


def test_frozen_features_written_to_a_folder_are_the_in_memory_features(tmp_path: Path) -> None:
    images = np.random.default_rng(4).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    inputs = keras.Input((8, 8, 3))
    prefix = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(inputs))
    in_memory = train.frozen_features(prefix, images, 4)
    on_disk = train.frozen_features(prefix, _store(tmp_path / "images.npy", images), 4, tmp_path)
    assert isinstance(on_disk, disk_images.DiskImages) and on_disk.dtype == np.float32
    np.testing.assert_allclose(np.asarray(on_disk), in_memory, rtol=1e-6)
    np.testing.assert_allclose(on_disk[[9, 0]], in_memory[[9, 0]], rtol=1e-6)


def test_gan_batches_read_from_disk_are_the_in_memory_batches(tmp_path: Path) -> None:
    """Stage 1 reads each batch pair from the cache: same batches, flips and masks as from arrays."""
    from melanet.gan import dataset
    from melanet.gan import train as gan_train

    images = np.random.default_rng(5).integers(1, 256, (14, 8, 8, 3), dtype=np.uint8)
    images[:, :2] = 0  # padding bars, so the masks have something to find
    labels = np.array([0, 1] * 7)
    labels[[0, 2]] = 1
    stored = _store(tmp_path / "images.npy", images)
    benign, malignant = gan_train.split_domains(stored, labels)
    assert disk_images.is_on_disk(benign) and disk_images.is_on_disk(malignant)
    expected_benign, expected_malignant = gan_train.split_domains(images, labels)
    np.testing.assert_array_equal(np.asarray(benign), expected_benign)
    for masks in (False, True):
        from_disk = list(dataset.epoch_dataset(benign, malignant, seed=3, epoch=2, batch_size=2, masks=masks))
        in_memory = list(dataset.epoch_dataset(expected_benign, expected_malignant, seed=3, epoch=2, batch_size=2,
                                               masks=masks))
        assert len(from_disk) == len(in_memory) == dataset.steps_per_epoch(len(benign), len(malignant), 2)
        for disk_batch, memory_batch in zip(from_disk, in_memory):
            for disk_part, memory_part in zip(disk_batch, memory_batch, strict=True):
                np.testing.assert_array_equal(disk_part.numpy(), memory_part.numpy())


def test_a_damaged_cache_file_is_rebuilt_and_a_damaged_png_is_named(tmp_path: Path) -> None:
    ids = [f"ISIC_{number:07d}" for number in range(4)]
    run_path = _fake_gan_run(tmp_path, ids, 16)
    cache = tmp_path / "cache"
    expected = synthesis.load_synthetic(run_path, 16).images
    first = synthesis.load_synthetic(run_path, 16, cache_dir=cache)
    cached = first.images.path
    cached.write_bytes(cached.read_bytes()[:200])  # cut short: the next reader must not trust it
    again = synthesis.load_synthetic(run_path, 16, cache_dir=cache)
    np.testing.assert_array_equal(np.asarray(again.images), expected)
    broken = run_path / synthesis.manifest_row(ids[1])["path"]
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"manifest.csv: line 3: .*syn_ISIC_0000001.png is not a readable image"):
        synthesis.load_synthetic(run_path, 16, cache_dir=cache)
    assert not list(cache.glob("*.tmp"))  # the half-written cache entry was removed
