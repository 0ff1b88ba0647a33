"""ISIC 2017-2020 layouts on miniature copies of the official files: detection, counts, labels, decoys,
class conventions, grouped validation splits, and one problem line per bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from challenge_layouts import (
    BUILDERS,
    ISIC2020_DUPLICATES,
    build_isic2017,
    build_isic2018,
    build_isic2019,
    build_isic2020,
)
from melanet import cli
from melanet.config import DataConfig
from melanet.data import check, prepare, sources, splits
from melanet.data.errors import DataError, describe_problem

GROUND_TRUTH = {
    "isic2017": "ISIC-2017_Training_Part3_GroundTruth.csv",
    "isic2018": "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
    "isic2019": "ISIC_2019_Training_GroundTruth.csv",
    "isic2020": "ISIC_2020_Training_GroundTruth_v2.csv",
}
IMAGES = {"isic2017": "ISIC-2017_Training_Data", "isic2018": "ISIC2018_Task3_Training_Input",
          "isic2019": "ISIC_2019_Training_Input", "isic2020": "train"}


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode().splitlines()


def _set_line(path: Path, number: int, text: str) -> None:
    """Replace line ``number`` (1-based), keeping the file's line ends."""
    raw = path.read_bytes().decode()
    newline = "\r\n" if "\r\n" in raw else "\n"
    lines = raw.split(newline)
    lines[number - 1] = text
    path.write_bytes(newline.join(lines).encode())


@pytest.mark.parametrize("layout, splits_found, counts", [
    ("isic2017", ("train", "validation", "test"), {"train": (5, 2), "validation": (2, 2), "test": (3, 2)}),
    ("isic2018", ("train", "validation", "test"), {"train": (8, 2), "validation": (2, 2), "test": (2, 2)}),
    ("isic2019", ("train",), {"train": (16, 8)}),
    ("isic2020", ("train",), {"train": (20, 4)}),
])
def test_each_layout_is_recognised_with_its_counts(tmp_path, layout, splits_found, counts):
    root = BUILDERS[layout](tmp_path / layout)
    index = sources.read_index(root)
    assert (index.layout, index.splits, index.problems) == (layout, splits_found, [])
    found = {split: (sum(s.label == 0 for s in index.samples(split)), sum(s.label for s in index.samples(split)))
             for split in index.splits}
    assert found == counts
    # only the JPEGs are images: no superpixel map, metadata CSV or licence text was taken
    assert all(sample.path.suffix == ".jpg" for split in index.splits for sample in index.samples(split))


def test_isic2017_labels_follow_the_melanoma_column(tmp_path):
    root = build_isic2017(tmp_path / "isic2017")
    rows = _lines(root / GROUND_TRUTH["isic2017"])
    assert rows[0] == "image_id,melanoma,seborrheic_keratosis"
    assert (root / GROUND_TRUTH["isic2017"]).read_bytes().count(b"\r\n") == len(rows)
    index = sources.read_index(root)
    expected = {line.split(",")[0]: int(line.split(",")[1] == "1.0") for line in rows[1:]}
    assert {s.image_id: s.label for s in index.train} == expected
    assert index.train[0].line == 2  # the header is line 1
    assert any(path.name.endswith("_superpixels.png") for path in (root / IMAGES["isic2017"]).iterdir())


def test_isic2018_convention_bcc_akiec_malignant_is_a_user_choice(tmp_path):
    root = build_isic2018(tmp_path / "isic2018")
    default = sources.read_index(root)
    chosen = sources.read_index(root, malignant_classes="MEL,BCC,AKIEC")
    assert sum(s.label for s in default.train) == 2 and sum(s.label for s in chosen.train) == 4
    assert "malignant = MEL or BCC or AKIEC" in chosen.notes[0]
    with pytest.raises(DataError, match="SCC is not a class of the ISIC 2018 Task 3 ground truth"):
        sources.read_index(root, malignant_classes="MEL,SCC")
    # the convention reaches the stages through data.malignant_classes (and the cache key, through the labels)
    config = DataConfig(root=str(root), image_size=32, workers=1, malignant_classes="MEL,BCC,AKIEC")
    assert prepare.load_split(config, "train").class_counts() == (6, 4)


def test_isic2019_downsampled_ids_and_no_test_split(tmp_path):
    root = build_isic2019(tmp_path / "isic2019")
    index = sources.read_index(root)
    assert index.train[0].image_id.endswith("_downsampled") and index.train[0].path.name.endswith("_downsampled.jpg")
    config = DataConfig(root=str(root), image_size=32, workers=1)
    with pytest.raises(DataError, match="ISIC 2019 folder has no labelled test split"):
        prepare.load_split(config, "test")


def test_isic2020_v1_ground_truth_without_lesion_id(tmp_path):
    root = build_isic2020(tmp_path / "isic2020")
    lines = _lines(root / GROUND_TRUTH["isic2020"])
    v1 = [",".join(field for position, field in enumerate(line.split(",")) if position != 2) for line in lines]
    (root / GROUND_TRUTH["isic2020"]).unlink()
    (root / "ISIC_2020_Training_GroundTruth.csv").write_text("\n".join(v1) + "\n")
    index = sources.read_index(root)
    assert index.layout == "isic2020" and index.problems == [] and len(index.train) == 24


# --- one problem line per bad input, naming the file and the row ------------------------------------

def _only_problem(root: Path) -> str:
    index = sources.read_index(root)
    assert len(index.problems) == 1, index.problems
    return describe_problem(index.problems[0])


@pytest.mark.parametrize("layout", list(BUILDERS))
def test_missing_image_names_the_csv_row(tmp_path, layout):
    root = BUILDERS[layout](tmp_path / layout)
    image_id = _lines(root / GROUND_TRUTH[layout])[3].split(",")[0]
    (root / IMAGES[layout] / f"{image_id}.jpg").unlink()
    assert _only_problem(root) == (f"{root / GROUND_TRUTH[layout]}:4: image '{image_id}' not found in "
                                   f"{root / IMAGES[layout]}")


@pytest.mark.parametrize("layout", list(BUILDERS))
def test_unknown_column_names_the_header(tmp_path, layout):
    root = BUILDERS[layout](tmp_path / layout)
    header = _lines(root / GROUND_TRUTH[layout])[0]
    _set_line(root / GROUND_TRUTH[layout], 1, header + ",extra")
    for number, line in enumerate(_lines(root / GROUND_TRUTH[layout])[1:], start=2):
        _set_line(root / GROUND_TRUTH[layout], number, line + ",0")
    message = _only_problem(root)
    assert message.startswith(f"{root / GROUND_TRUTH[layout]}:1: unknown column 'extra' (expected the header ")


@pytest.mark.parametrize("layout", ["isic2017", "isic2018", "isic2019"])
def test_two_positive_classes_names_the_row(tmp_path, layout):
    root = BUILDERS[layout](tmp_path / layout)
    fields = _lines(root / GROUND_TRUTH[layout])[2].split(",")
    fields[1] = fields[2] = "1.0"
    _set_line(root / GROUND_TRUTH[layout], 3, ",".join(fields))
    header = _lines(root / GROUND_TRUTH[layout])[0].split(",")
    assert _only_problem(root) == (f"{root / GROUND_TRUTH[layout]}:3: '{fields[0]}': 2 positive classes "
                                   f"({header[1]}, {header[2]}); expected at most one")


@pytest.mark.parametrize("layout, value", [("isic2017", "0.5"), ("isic2018", "yes"), ("isic2019", ""), ("isic2020", "2")])
def test_label_that_is_not_0_or_1_names_the_row(tmp_path, layout, value):
    root = BUILDERS[layout](tmp_path / layout)
    fields = _lines(root / GROUND_TRUTH[layout])[4].split(",")
    column = len(fields) - 1 if layout == "isic2020" else 1
    fields[column] = value
    _set_line(root / GROUND_TRUTH[layout], 5, ",".join(fields))
    name = _lines(root / GROUND_TRUTH[layout])[0].split(",")[column]
    assert _only_problem(root) == (f"{root / GROUND_TRUTH[layout]}:5: '{fields[0]}': label '{value}' in column "
                                   f"'{name}' is not 0/1 (expected 0, 1, 0.0 or 1.0)")


def test_one_hot_row_with_no_class_is_refused(tmp_path):
    root = build_isic2018(tmp_path / "isic2018")
    image_id = _lines(root / GROUND_TRUTH["isic2018"])[1].split(",")[0]
    _set_line(root / GROUND_TRUTH["isic2018"], 2, image_id + ",0.0" * 7)
    assert _only_problem(root).endswith(f":2: '{image_id}': no positive class; expected exactly one of "
                                        "MEL, NV, BCC, AKIEC, BKL, DF, VASC")


def test_image_without_row_and_missing_csv(tmp_path):
    root = build_isic2019(tmp_path / "isic2019")
    stray = root / IMAGES["isic2019"] / "ISIC_9999999.jpg"
    stray.write_bytes((root / IMAGES["isic2019"] / f"{sources.read_index(root).train[0].image_id}.jpg").read_bytes())
    assert _only_problem(root) == f"{stray}: no row for 'ISIC_9999999' in ISIC_2019_Training_GroundTruth.csv"
    stray.unlink()
    (root / GROUND_TRUTH["isic2019"]).unlink()
    assert _only_problem(root) == f"{root / GROUND_TRUTH['isic2019']}: ground-truth CSV missing"


def test_data_check_cli_names_the_layout_and_each_bad_row(tmp_path, capsys):
    root = build_isic2018(tmp_path / "isic2018")
    assert cli.main(["-q", "data", "check", str(root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "(isic2018 layout: ISIC 2018 Task 3)" in out and "validation" in out and "OK: the data can be used" in out
    fields = _lines(root / GROUND_TRUTH["isic2018"])[2].split(",")
    fields[1] = fields[3] = "1.0"
    _set_line(root / GROUND_TRUTH["isic2018"], 3, ",".join(fields))
    assert cli.main(["-q", "data", "check", str(root), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert f"[train] {root / GROUND_TRUTH['isic2018']}:3: '{fields[0]}': 2 positive classes (MEL, BCC)" in out


def test_data_check_on_a_training_only_layout_says_so(tmp_path, capsys):
    root = build_isic2020(tmp_path / "isic2020")
    report = check.check_data(root, workers=1)
    assert report.usable and list(report.counts) == ["train"] and report.counts["train"] == (20, 4)
    text = check.format_report(report)
    assert "no labelled test split" in text and "2 duplicate pairs kept together" in text


# --- validation splits -------------------------------------------------------------------------------

def test_official_validation_split_is_used(tmp_path):
    root = build_isic2017(tmp_path / "isic2017")
    config = DataConfig(root=str(root), image_size=32, workers=1)
    training, validation = splits.training_and_validation(config, seed=0)
    index = sources.read_index(root)
    assert training.ids == [s.image_id for s in index.train]
    assert validation.ids == [s.image_id for s in index.validation]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isic2020_split_keeps_patients_and_duplicate_pairs_together(tmp_path, seed):
    root = build_isic2020(tmp_path / "isic2020")
    config = DataConfig(root=str(root), image_size=32, workers=1, val_fraction=0.25)
    training, validation = splits.training_and_validation(config, seed=seed)
    assert sorted(training.ids + validation.ids) == sorted(s.image_id for s in sources.read_index(root).train)
    rows = [line.split(",") for line in _lines(root / GROUND_TRUTH["isic2020"])[1:]]
    patient = {fields[0]: fields[1] for fields in rows}
    assert not {patient[i] for i in training.ids} & {patient[i] for i in validation.ids}
    names = [fields[0] for fields in rows]
    for first, second in ISIC2020_DUPLICATES:
        assert (names[first] in validation.ids) == (names[second] in validation.ids)
    assert set(training.labels) == set(validation.labels) == {0, 1}


def test_isic2019_split_keeps_lesions_together(tmp_path):
    root = build_isic2019(tmp_path / "isic2019")
    config = DataConfig(root=str(root), image_size=32, workers=1, val_fraction=0.25)
    training, validation = splits.training_and_validation(config, seed=3)
    lesion = {line.split(",")[0]: line.split(",")[3] for line in _lines(root / "ISIC_2019_Training_Metadata.csv")[1:]}
    training_lesions = {lesion[i] for i in training.ids if lesion[i]}
    assert training_lesions and not training_lesions & {lesion[i] for i in validation.ids if lesion[i]}


def test_grouped_split_indices_never_split_a_group():
    labels = np.array([0, 0, 1, 1] * 10)
    groups = [f"g{index // 4}" for index in range(40)]  # ten groups of four, each with both classes
    training, validation = splits.grouped_split_indices(labels, groups, 0.2, seed=0)
    assert not {groups[i] for i in training} & {groups[i] for i in validation}
    assert len(validation) == 8
    with pytest.raises(DataError, match="only 2 patient/lesion groups"):
        splits.grouped_split_indices(labels, ["a"] * 20 + ["b"] * 20, 0.2, seed=0)


def test_data_prepare_cli_names_the_layout_and_caches_every_split(tmp_path, capsys):
    root = build_isic2018(tmp_path / "isic2018")
    assert cli.main(["-q", "data", "prepare", str(root), "--image-size", "32", "--workers", "1",
                     "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    out = capsys.readouterr().out
    assert f"{root}: isic2018 layout (ISIC 2018 Task 3); splits: train, validation, test" in out
    assert "train: 10 images (8 benign / 2 malignant)" in out and "validation: 4 images (2 benign / 2 malignant)" in out
    fields = _lines(root / GROUND_TRUTH["isic2018"])[4].split(",")
    fields[2] = "0.5"
    _set_line(root / GROUND_TRUTH["isic2018"], 5, ",".join(fields))
    assert cli.main(["-q", "data", "prepare", str(root), "--image-size", "32", "--workers", "1",
                     "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 2
    err = capsys.readouterr().err
    assert f"{root / GROUND_TRUTH['isic2018']}:5: '{fields[0]}': label '0.5' in column 'NV' is not 0/1" in err


def test_isic2020_target_and_benign_malignant_must_agree(tmp_path):
    root = build_isic2020(tmp_path / "isic2020")
    fields = _lines(root / GROUND_TRUTH["isic2020"])[1].split(",")  # a melanoma: target 1, 'malignant'
    fields[7] = "benign"
    _set_line(root / GROUND_TRUTH["isic2020"], 2, ",".join(fields))
    assert _only_problem(root) == (f"{root / GROUND_TRUTH['isic2020']}:2: '{fields[0]}': target 1 but benign_malignant "
                                   "'benign' (expected 'benign' with 0, 'malignant' with 1)")
