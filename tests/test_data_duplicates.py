"""Duplicate images: which copies the documented threshold finds (melanet.data.duplicates docstring,
docs/duplicates.md), label conflicts, grouped validation splits, evaluation without duplicates and the
external overlap check. Real dermoscopy JPEGs from data/sample throughout."""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from melanet.config import DataConfig
from melanet.data import duplicates, preprocess, splits
from melanet.audits import leakage

from conftest import SAMPLE_ROOT, TRAINING_FOLDER

THRESHOLD = DataConfig().duplicate_threshold
KNOWN_COPY = {"ISIC_0000477", "ISIC_0000512"}  # one photograph under two ids in the ISIC-2016 sample


def _sample_files(count: int, start: int = 0) -> list[Path]:
    files = sorted((SAMPLE_ROOT / TRAINING_FOLDER).glob("*.jpg"))
    return [path for path in files if path.stem not in KNOWN_COPY][start:start + count]


def _jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _record(source, size: int = 256) -> np.ndarray:
    return duplicates.image_record(preprocess.preprocess_image(source, size))[np.newaxis]


def _distance(first: np.ndarray, second: np.ndarray) -> int:
    return int(duplicates.distances(first, second)[0, 0])


def test_the_default_threshold_is_the_documented_one():
    assert THRESHOLD == 8
    assert "default 8 of 128 bits" in duplicates.THRESHOLD_NOTE
    assert "``data.duplicate_threshold = 8``" in duplicates.__doc__
    assert "threshold is 8" in (Path(__file__).parents[1] / "docs" / "duplicates.md").read_text()


@pytest.mark.parametrize("path", _sample_files(6, start=10), ids=lambda path: path.stem)
def test_copies_found_or_not_as_documented(path):
    original = Image.open(path).convert("RGB")
    reference = _record(path)
    width, height = original.size
    # found: exact copy, JPEG quality 75, half the side, mirrored either way (flipped copies count)
    exact = _record(io.BytesIO(path.read_bytes()))
    assert _distance(exact, reference) == 0 and duplicates.identical(exact, reference)[0, 0]
    assert _distance(_record(io.BytesIO(_jpeg(original, 75))), reference) <= THRESHOLD
    assert _distance(_record(io.BytesIO(_jpeg(original.resize((width // 2, height // 2))))), reference) <= THRESHOLD
    for flip in (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180):
        flipped = _record(io.BytesIO(_jpeg(original.transpose(flip))))
        assert _distance(flipped, reference) <= THRESHOLD, flip
        assert not duplicates.identical(flipped, reference)[0, 0]
    # not looked for: a turn by 90 degrees
    turned = _record(io.BytesIO(_jpeg(original.transpose(Image.Transpose.ROTATE_90))))
    assert _distance(turned, reference) > THRESHOLD


def test_distinct_lesions_are_not_flagged_and_the_distance_is_symmetric():
    files = _sample_files(40)
    records = np.concatenate([_record(path, 128) for path in files])
    assert duplicates.close_pairs(records, None, THRESHOLD) == []
    full = duplicates.distances(records, records)
    assert np.array_equal(full, full.T)
    # a slow reference: popcount of the XOR, bit by bit, smallest over the orientations either way
    def slow(first: np.ndarray, second: np.ndarray) -> int:
        best = 128
        for orientation in range(4):
            for one, other in ((first[:2], second[2 * orientation:2 * orientation + 2]),
                               (first[2 * orientation:2 * orientation + 2], second[:2])):
                best = min(best, sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(one, other)))
        return best
    for first, second in itertools.combinations(range(8), 2):
        assert full[first, second] == slow(records[first], records[second])


def _folders(root: Path, train: dict[str, list[Path]], test: dict[str, list[Path]]) -> Path:
    for split, classes in (("train", train), ("test", test)):
        for class_name, paths in classes.items():
            folder = root / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for path in paths:
                shutil.copyfile(path, folder / path.name)
    return root


def test_a_duplicate_pair_with_different_labels_is_an_error(tmp_path):
    benign, malignant = _sample_files(6), _sample_files(4, start=6)
    renamed = tmp_path / "copy" / "ISIC_9999999.jpg"
    renamed.parent.mkdir()
    shutil.copyfile(benign[0], renamed)  # a benign training image, again, labelled malignant in test
    root = _folders(tmp_path / "data", {"benign": benign, "malignant": malignant},
                    {"benign": _sample_files(2, start=10), "malignant": [renamed, *_sample_files(1, start=12)]})
    config = DataConfig(root=str(root), image_size=64, workers=1)
    report = duplicates.scan(config)
    conflicts = report.conflicts
    assert {(pair.first.image_id, pair.second.image_id) for pair in conflicts} == {(benign[0].stem, "ISIC_9999999")}
    assert conflicts[0].exact and conflicts[0].conflict
    assert report.to_json()["n_different_labels"] == 1
    assert len(report.pairs) == 1 and report.images == {"train": 10, "test": 4}
    assert "ERROR different labels" in duplicates.format_report(report)
    result = subprocess.run([sys.executable, "-m", "melanet", "data", "check", str(root), "--workers", "1",
                             "--set", "data.image_size=64"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ERROR different labels" in result.stdout
    assert f"train {benign[0].stem} (benign), test ISIC_9999999 (malignant): identical pixels" in result.stdout


def test_the_validation_split_never_separates_a_duplicate_group(tmp_path):
    benign, malignant = _sample_files(24), _sample_files(12, start=24)
    copies = tmp_path / "copies"
    copies.mkdir()
    extra_benign, extra_malignant = [], []
    for index, path in enumerate(benign[:5] + malignant[:3]):
        original = Image.open(path).convert("RGB")
        copy = copies / f"ISIC_99{index:05d}.jpg"
        # an exact copy, a re-encoded one, a mirrored one
        if index % 3 == 0:
            shutil.copyfile(path, copy)
        else:
            (original if index % 3 == 1 else original.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).save(copy, quality=75)
        (extra_benign if index < 5 else extra_malignant).append(copy)
    partner = {copy.stem: path.stem for copy, path in zip(extra_benign + extra_malignant, benign[:5] + malignant[:3])}
    root = _folders(tmp_path / "data", {"benign": benign + extra_benign, "malignant": malignant + extra_malignant},
                    {"benign": benign[:2], "malignant": malignant[:2]})
    config = DataConfig(root=str(root), image_size=64, workers=1, val_fraction=0.25)
    for seed in range(5):
        training, validation = splits.training_and_validation(config, seed)
        assert set(training.ids).isdisjoint(validation.ids)
        for copy, source in partner.items():
            assert (copy in validation.ids) == (source in validation.ids), (seed, copy, source)
        assert len(set(validation.labels.tolist())) == 2
    # with the check off, the old ungrouped split separates some pair over these seeds
    off = DataConfig(root=str(root), image_size=64, workers=1, val_fraction=0.25, duplicate_threshold=-1)
    separated = 0
    for seed in range(5):
        _, validation = splits.training_and_validation(off, seed)
        separated += sum((copy in validation.ids) != (source in validation.ids) for copy, source in partner.items())
    assert separated > 0


def test_without_duplicates_drops_the_test_images_seen_in_training():
    files = _sample_files(12)
    train_records = np.concatenate([_record(path, 64) for path in files[:6]])
    references = {"train": leakage.Reference([path.stem for path in files[:4]], np.zeros(4), train_records[:4]),
                  "validation": leakage.Reference([path.stem for path in files[4:6]], np.zeros(2), train_records[4:6])}
    # test: 2 copies of training images (one renamed and re-encoded, one mirrored from validation), 6 unseen
    original = Image.open(files[1]).convert("RGB")
    mirrored = Image.open(files[5]).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    test_records = np.concatenate([_record(io.BytesIO(_jpeg(original, 75)), 64), _record(io.BytesIO(_jpeg(mirrored)), 64),
                                   *[_record(path, 64) for path in files[6:12]]])
    test_ids = ["ISIC_1000000", "ISIC_1000001", *[path.stem for path in files[6:12]]]
    leaked = leakage.duplicates_of_training(test_ids, test_records, references, THRESHOLD)
    assert [(entry["image"], entry["duplicate_of"], entry["source"]) for entry in leaked] == [
        ("ISIC_1000000", files[1].stem, "train"), ("ISIC_1000001", files[5].stem, "validation")]
    labels = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    probabilities = np.array([0.95, 0.05, 0.4, 0.6, 0.7, 0.2, 0.3, 0.35])

    def slow_auc(kept: list[int]) -> float:  # share of (malignant, benign) pairs ranked right, ties half
        positives = [probabilities[index] for index in kept if labels[index] == 1]
        negatives = [probabilities[index] for index in kept if labels[index] == 0]
        score = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
        return score / (len(positives) * len(negatives))

    everything = slow_auc(list(range(8)))
    without = leakage.metrics_without(labels, probabilities, leaked, test_ids, threshold=0.5, confidence=0.95,
                                      bootstrap_samples=200, seed=0)
    assert without["n"] == 6 and without["n_removed"] == 2
    assert without["auc"] == pytest.approx(slow_auc(list(range(2, 8))))
    assert without["auc"] == pytest.approx(7 / 9) and everything == pytest.approx(14 / 16)  # counted by hand
    assert without["auc_ci"]["low"] <= without["auc"] <= without["auc_ci"]["high"]


def test_external_overlap_counts_ids_and_identical_pixels():
    files = _sample_files(10)
    records = {path.stem: _record(path, 64) for path in files}
    references = {
        "train": leakage.Reference([path.stem for path in files[:4]], np.zeros(4),
                                   np.concatenate([records[path.stem] for path in files[:4]])),
        "validation": leakage.Reference([files[4].stem], np.zeros(1), records[files[4].stem]),
        "test": leakage.Reference([files[5].stem, files[6].stem], np.zeros(2),
                                  np.concatenate([records[files[5].stem], records[files[6].stem]])),
    }
    # external: train image 0 under its own id, train image 1 renamed (same pixels), a re-encoded copy of
    # image 2 under a new id (near, not identical: no overlap), test image 5 by id, two new images
    reencoded = _record(io.BytesIO(_jpeg(Image.open(files[2]).convert("RGB"), 75)), 64)
    ids = [files[0].stem, "ISIC_2000001", "ISIC_2000002", files[5].stem, files[7].stem, files[8].stem]
    external = np.concatenate([records[files[0].stem], records[files[1].stem], reencoded, records[files[5].stem],
                               records[files[7].stem], records[files[8].stem]])
    counts = leakage.overlap(ids, external, references)
    assert counts == {"train": 2, "validation": 0, "test": 1, "gan_train": 0}
    warning = leakage.overlap_warning(counts, len(ids))
    assert "2 with its train images" in warning and "1 with its test images" in warning
    assert leakage.overlap_warning({"train": 0, "validation": 0, "test": 0, "gan_train": 0}, 6) is None


def test_hashes_are_cached_beside_the_prepare_entry(tmp_path):
    from melanet.data import prepare

    root = _folders(tmp_path / "data", {"benign": _sample_files(4), "malignant": _sample_files(2, start=4)},
                    {"benign": _sample_files(2, start=6), "malignant": _sample_files(2, start=8)})
    config = DataConfig(root=str(root), image_size=32, workers=1)
    image_set = prepare.load_split(config, "train")
    first = duplicates.records_of(image_set)
    cached = duplicates.records_path(image_set.cache_path)
    assert cached.is_file()
    np.save(cached, first + np.uint64(1))  # a reader that hashed again would not see this
    assert np.array_equal(duplicates.records_of(prepare.load_split(config, "train")), first + np.uint64(1))
    subset = image_set.subset([3, 1])
    assert np.array_equal(duplicates.records_of(subset), (first + np.uint64(1))[[3, 1]])
    assert np.array_equal(duplicates.records_of_array(np.asarray(image_set.images)), first)


def test_shipped_demo_without_the_new_keys_says_not_checked():
    import json

    from melanet.reports import model_card

    demo = Path(__file__).parents[1] / "models" / "demo" / "vgg_gap"
    report = json.loads((demo / "metrics.json").read_text())
    report.pop("duplicates_of_training", None)
    assert leakage.duplicates_summary(report) == "not checked"
    assert leakage.overlap_summary(report) == "not checked"
    leaked = {**report, "duplicates_of_training": [{"image": "a"}], "without_duplicates": {"auc": 0.5625}, "n": 73}
    assert leakage.duplicates_summary(leaked) == "1 of 73 (AUC without them 0.562)"
    assert leakage.duplicates_summary({**report, "duplicates_of_training": []}) == "none"
    card = model_card.render(demo)
    expected = leakage.duplicates_summary(json.loads((demo / "metrics.json").read_text()))
    assert f"duplicate a training, validation or GAN-training image: {expected}" in card
