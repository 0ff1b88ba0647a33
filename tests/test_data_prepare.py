"""Loading splits through the disk cache, bad-input policy, and the stratified validation split."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from melanet.config import DataConfig
from melanet.data import prepare, preprocess, splits
from melanet.data.errors import DataError

TRAIN_FOLDER = "ISBI2016_ISIC_Part3_Training_Data"
TRAIN_CSV = "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"


def _config(root: Path, **changes) -> DataConfig:
    return dataclasses.replace(DataConfig(root=str(root), image_size=32, workers=1), **changes)


def _image(root: Path, index: int) -> Path:
    return sorted((root / TRAIN_FOLDER).iterdir())[index]


def test_load_split_images_labels_and_ids(tiny_isic):
    image_set = prepare.load_split(_config(tiny_isic), "train")
    assert image_set.images.shape == (12, 32, 32, 3) and image_set.images.dtype == np.uint8
    assert image_set.labels.dtype == np.int64 and image_set.class_counts() == (8, 4)
    assert image_set.ids[0] == sorted(p.stem for p in (tiny_isic / TRAIN_FOLDER).iterdir())[0]
    assert image_set.skipped == [] and not image_set.from_cache
    expected = preprocess.preprocess_image(_image(tiny_isic, 0), 32)
    assert np.array_equal(image_set.images[0], expected)
    test_set = prepare.load_split(_config(tiny_isic), "test")
    assert test_set.class_counts() == (3, 3)


def test_second_load_reads_only_the_cache(tiny_isic):
    config = _config(tiny_isic)
    first = prepare.load_split(config, "train")
    assert first.cache_path == tiny_isic / ".melanet-cache" / first.cache_path.name and first.cache_path.is_file()
    written = first.cache_path.stat().st_mtime_ns
    # Overwrite an image with same-length garbage and put its size and mtime back: a decode would now
    # fail, so a clean second load proves that nothing was decoded.
    victim = _image(tiny_isic, 3)
    stat = victim.stat()
    victim.write_bytes(b"x" * stat.st_size)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = prepare.load_split(config, "train")
    assert second.from_cache and second.cache_path == first.cache_path
    assert np.array_equal(second.images, first.images) and second.ids == first.ids
    assert np.array_equal(second.labels, first.labels)
    assert first.cache_path.stat().st_mtime_ns == written


def test_cache_misses_when_a_file_or_a_setting_changes(tiny_isic):
    config = _config(tiny_isic)
    first = prepare.load_split(config, "train")
    victim = _image(tiny_isic, 3)
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    touched = prepare.load_split(config, "train")
    assert not touched.from_cache and touched.cache_path != first.cache_path
    assert not first.cache_path.exists()  # the stale entry is removed
    resized = prepare.load_split(dataclasses.replace(config, image_size=16), "train")
    assert not resized.from_cache and resized.images.shape[1:] == (16, 16, 3)
    assert prepare.load_split(config, "train").from_cache  # each size keeps its own entry
    stretched = prepare.load_split(dataclasses.replace(config, resize="stretch"), "train")
    assert not stretched.from_cache and not np.array_equal(stretched.images, first.images)
    assert prepare.load_split(config, "train").from_cache  # and so does each resize mode


def test_entries_named_before_the_resize_mode_are_removed_on_the_next_write(tiny_isic):
    config = _config(tiny_isic)
    folder = prepare.cache_directory(config)
    tag = prepare.load_split(config, "train").cache_path.name.split("-")[0]
    legacy = [folder / f"{tag}-train-32px-{'ab' * 12}{suffix}" for suffix in (".npy", ".json")]
    other_size = [folder / f"{tag}-train-16px-{'cd' * 12}{suffix}" for suffix in (".npy", ".json")]
    for path in legacy + other_size:
        path.write_bytes(b"old")
    victim = _image(tiny_isic, 2)
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    assert not prepare.load_split(config, "train").from_cache
    assert not any(path.exists() for path in legacy)
    assert all(path.exists() for path in other_size), "another size's entries are not this write's to remove"


def test_cache_dir_override_and_fallback(tiny_isic, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    image_set = prepare.load_split(_config(tiny_isic, cache_dir=str(elsewhere)), "train")
    assert image_set.cache_path.parent == elsewhere
    assert prepare.cache_directory(_config(tiny_isic)) == tiny_isic / ".melanet-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    unusable = tmp_path / "unusable"
    shutil.copytree(tiny_isic, unusable, ignore=shutil.ignore_patterns(".melanet-cache"))
    (unusable / ".melanet-cache").write_text("a file where the cache folder would go")
    assert prepare.cache_directory(_config(unusable)) == tmp_path / "xdg" / "melanet"
    assert prepare.load_split(_config(unusable), "test").cache_path.parent == tmp_path / "xdg" / "melanet"


def test_a_killed_writer_leaves_no_entry(tiny_isic):
    config = _config(tiny_isic)
    first = prepare.load_split(config, "train")
    meta = first.cache_path.with_suffix(".json")
    meta.unlink()  # as if the process died between the two renames
    again = prepare.load_split(config, "train")
    assert not again.from_cache and meta.is_file()


def _break_images(root: Path) -> tuple[Path, Path, Path]:
    truncated, text, empty = _image(root, 1), _image(root, 2), _image(root, 5)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    text.write_text("not a jpeg")
    empty.write_bytes(b"")
    return truncated, text, empty


def test_bad_images_stop_the_load_with_every_item_listed(tiny_isic):
    truncated, text, empty = _break_images(tiny_isic)
    with pytest.raises(DataError) as caught:
        prepare.load_split(_config(tiny_isic), "train")
    message = str(caught.value)
    assert "3 bad items" in message and "--skip-bad" in message
    for path, reason in ((truncated, "truncated or corrupt"), (text, "not an image"), (empty, "empty file")):
        assert f"{path}" in message and reason in message
    # the test split is fine and loads on its own
    assert len(prepare.load_split(_config(tiny_isic), "test")) == 6


def test_skip_bad_goes_on_and_reports_what_was_skipped(tiny_isic):
    truncated, text, empty = _break_images(tiny_isic)
    config = _config(tiny_isic, skip_bad=True)
    for attempt in range(2):  # the cached load reports the same skipped images
        image_set = prepare.load_split(config, "train")
        assert image_set.from_cache == (attempt == 1)
        assert len(image_set) == 9 and image_set.images.shape[0] == 9
        assert sorted(item["file"] for item in image_set.skipped) == sorted(str(p) for p in (truncated, text, empty))
        assert all(item["line"] is None and item["split"] == "train" for item in image_set.skipped)
        assert not {p.stem for p in (truncated, text, empty)} & set(image_set.ids)


def test_an_emptied_class_is_an_error_even_with_skip_bad(tiny_isic):
    lines = (tiny_isic / TRAIN_CSV).read_text().splitlines()
    for line in lines:
        image_id, label = line.split(",")
        if label == "malignant":
            (tiny_isic / TRAIN_FOLDER / f"{image_id}.jpg").write_text("broken")
    with pytest.raises(DataError, match="8 usable benign and 0 usable malignant"):
        prepare.load_split(_config(tiny_isic, skip_bad=True), "train")


def test_parallel_decoding_matches_serial(tiny_isic, tmp_path):
    serial = prepare.load_split(_config(tiny_isic, cache_dir=str(tmp_path / "a")), "train")
    parallel = prepare.load_split(_config(tiny_isic, cache_dir=str(tmp_path / "b"), workers=2), "train")
    assert np.array_equal(serial.images, parallel.images) and serial.ids == parallel.ids


def test_progress_reports_reach_the_total(tiny_isic):
    calls = []
    prepare.load_split(_config(tiny_isic), "train", progress=lambda done, total, message: calls.append((done, total)))
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    calls.clear()
    prepare.load_split(_config(tiny_isic), "train", progress=lambda done, total, message: calls.append((done, total)))
    assert calls == [(12, 12)]


def test_split_is_stratified_deterministic_and_never_uses_test(sample_root, tmp_path):
    config = DataConfig(root=str(sample_root), image_size=16, cache_dir=str(tmp_path), val_fraction=0.2)
    training, validation = splits.training_and_validation(config, seed=7)
    assert len(training) + len(validation) == 353 and not set(training.ids) & set(validation.ids)
    assert validation.class_counts() == (54, 17)  # 20 % of 270 / 83, stratified
    again_training, again_validation = splits.training_and_validation(config, seed=7)
    assert again_validation.ids == validation.ids and again_training.ids == training.ids
    assert again_validation.from_cache
    other_seed = splits.training_and_validation(config, seed=8)[1]
    assert other_seed.ids != validation.ids and other_seed.class_counts() == (54, 17)
    test_ids = set(prepare.load_split(config, "test").ids)
    assert not test_ids & (set(training.ids) | set(validation.ids))
    index = {image_id: i for i, image_id in enumerate(training.ids)}
    full = prepare.load_split(config, "train")
    position = full.ids.index(training.ids[5])
    assert np.array_equal(training.images[index[training.ids[5]]], full.images[position])


def test_split_never_decodes_test_images(tiny_isic, tmp_path):
    for image in (tiny_isic / "ISBI2016_ISIC_Part3_Test_Data").iterdir():
        image.write_text("broken")  # would be refused if anything decoded it
    training, validation = splits.training_and_validation(_config(tiny_isic, val_fraction=0.25), seed=1)
    assert (len(training), len(validation)) == (9, 3) and validation.class_counts() == (2, 1)


def test_a_class_too_small_to_stratify_is_a_data_error():
    with pytest.raises(DataError, match="1 malignant"):
        splits.split_indices(np.array([0, 0, 0, 0, 1]), 0.2, seed=0)
