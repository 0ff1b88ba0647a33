"""Prepared splits stay on disk: the cache is written a block at a time and read a batch at a time, and the
batches that training and evaluation see are the same as from an in-memory array."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from melanet.config import DataConfig
from melanet.data import disk_images, parallel, prepare, splits


def _write(path: Path, images: np.ndarray, block: int = 3) -> None:
    with open(path, "wb") as stream:
        writer = disk_images.NpyWriter(stream, images.shape[1])
        for start in range(0, len(images), block):
            writer.append(images[start:start + block])
        assert writer.finish() == images.shape


@pytest.fixture
def stored(tmp_path: Path) -> tuple[np.ndarray, Path]:
    images = np.random.default_rng(0).integers(0, 256, (11, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "images.npy"
    _write(path, images)
    return images, path


def test_written_file_is_an_ordinary_npy_and_reads_back_by_rows(stored) -> None:
    images, path = stored
    assert np.array_equal(np.load(path), images)
    view = disk_images.DiskImages(path)
    assert view.shape == images.shape and view.dtype == np.uint8 and len(view) == 11
    assert np.array_equal(view[[7, 2, 3, 4, 2]], images[[7, 2, 3, 4, 2]])  # any order, repeats, runs
    assert np.array_equal(view[3], images[3]) and np.array_equal(view[2:9:3], images[2:9:3])
    subset = view.take([9, 1, 5, 6])
    assert np.array_equal(np.asarray(subset), images[[9, 1, 5, 6]])
    assert np.array_equal(subset.take([3, 0])[[1, 0]], images[[9, 6]])
    assert np.array_equal(subset[:, 0, 0], images[[9, 1, 5, 6], 0, 0])


def _read_in_child(view: disk_images.DiskImages, queue) -> None:
    queue.put(view[[4, 0]])


def test_a_forked_child_reads_with_its_own_descriptor(stored) -> None:
    images, path = stored
    view = disk_images.DiskImages(path)
    view[0]  # the parent opened its descriptor
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_read_in_child, args=(view, queue))
    child.start()
    assert np.array_equal(queue.get(timeout=30), images[[4, 0]])
    child.join(30)


def test_a_truncated_file_is_refused(stored) -> None:
    _, path = stored
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="shorter than its header"):
        disk_images.DiskImages(path)


def test_prepare_decodes_block_by_block_into_the_cache(tiny_isic, tmp_path, monkeypatch) -> None:
    calls: list[int] = []
    real = parallel.map_chunks

    def counting(function, items, *arguments, **options):
        calls.append(len(items))
        return real(function, items, *arguments, **options)

    monkeypatch.setattr(parallel, "map_chunks", counting)
    monkeypatch.setattr(prepare, "DECODE_BLOCK_BYTES", 5 * 32 * 32 * 3)  # five 32-px images per block
    (tiny_isic / "ISBI2016_ISIC_Part3_Training_Data" / "ISIC_0000000.jpg").write_bytes(b"not a jpeg")
    config = DataConfig(root=str(tiny_isic), image_size=32, workers=1, skip_bad=True, cache_dir=str(tmp_path / "c"))
    second = prepare.load_split(config, "train")
    assert calls == [5, 5, 2] and isinstance(second.images, disk_images.DiskImages)
    # the refused image left no gap: the header counts the 11 kept images and the file ends with them
    assert second.images.shape == (11, 32, 32, 3) and len(second.ids) == 11 and len(second.skipped) == 1
    assert second.cache_path.stat().st_size == disk_images.HEADER_BYTES + 11 * 32 * 32 * 3
    in_memory = np.stack([prepare.decode_chunk([str(tiny_isic / "ISBI2016_ISIC_Part3_Training_Data" / f"{i}.jpg")],
                                               32, 10**8)[0][0] for i in second.ids])
    assert np.array_equal(np.asarray(second.images), in_memory)
    again = prepare.load_split(config, "train")
    assert again.from_cache and isinstance(again.images, disk_images.DiskImages)


def test_splits_stay_on_disk(tiny_isic, tmp_path) -> None:
    config = DataConfig(root=str(tiny_isic), image_size=32, workers=1, val_fraction=0.25,
                        cache_dir=str(tmp_path / "c"))
    training, validation = splits.training_and_validation(config, seed=0)
    full = prepare.load_split(config, "train")
    assert isinstance(training.images, disk_images.DiskImages) and isinstance(validation.images, disk_images.DiskImages)
    positions = [full.ids.index(image_id) for image_id in training.ids]
    assert np.array_equal(np.asarray(training.images), np.asarray(full.images)[positions])


def test_training_and_evaluation_batches_match_an_in_memory_array(stored) -> None:
    from melanet.classifier import predict
    from melanet.classifier import train as classifier_train

    images, path = stored
    view = disk_images.DiskImages(path).take(np.arange(10, -1, -1))
    in_memory = images[::-1].copy()
    labels = np.arange(11) % 2
    weights = np.linspace(0.5, 1.5, 11).astype(np.float32)
    orders = classifier_train.epoch_orders(11, seed=3, first_epoch=0, epochs=2)
    streamed = list(classifier_train.make_dataset(view, labels, 4, sample_weights=weights, orders=orders))
    expected = list(classifier_train.make_dataset(in_memory, labels, 4, sample_weights=weights, orders=orders))
    assert len(streamed) == len(expected) == 6
    for got, want in zip(streamed, expected):
        for got_part, want_part in zip(got, want):
            assert np.array_equal(got_part.numpy(), want_part.numpy())
    for got, want in zip(predict.scaled_batches(view, 5), predict.scaled_batches(in_memory, 5)):
        assert np.array_equal(got.numpy(), want.numpy())
