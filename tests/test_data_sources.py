"""Reading data folders: both layouts, every CSV spelling, and each structural problem, on real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from melanet.data import sources
from melanet.data.errors import DataError

TRAIN_CSV = "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
TEST_CSV = "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"
TRAIN_FOLDER = "ISBI2016_ISIC_Part3_Training_Data"


def _rows(root: Path, csv_name: str = TRAIN_CSV) -> list[list[str]]:
    return [line.split(",") for line in (root / csv_name).read_text().splitlines()]


def _write_csv(root: Path, rows: list[list[str]], *, csv_name: str = TRAIN_CSV, newline: str = "\r\n",
               final_newline: bool = True, header: str | None = None) -> None:
    lines = ([header] if header else []) + [",".join(row) for row in rows]
    text = newline.join(lines) + (newline if final_newline else "")
    (root / csv_name).write_bytes(text.encode())


def test_bundled_sample_has_the_documented_counts(sample_root):
    index = sources.read_index(sample_root)
    assert index.layout == "isic2016" and index.problems == []
    assert [len(index.train), sum(s.label for s in index.train)] == [353, 83]
    assert [len(index.test), sum(s.label for s in index.test)] == [73, 39]
    first = index.train[0]
    assert (first.image_id, first.label, first.split, first.line) == ("ISIC_0000000", 0, "train", 1)
    assert first.path.is_file()


@pytest.mark.parametrize("spelling", [("benign", "malignant"), ("0.0", "1.0"), ("0", "1"), ("Benign", " MALIGNANT ")])
@pytest.mark.parametrize("newline", ["\r\n", "\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_label_spellings_and_line_ends(tiny_isic, spelling, newline, final_newline):
    original = _rows(tiny_isic)
    rows = [[image_id, spelling[0] if label == "benign" else spelling[1]] for image_id, label in original]
    _write_csv(tiny_isic, rows, newline=newline, final_newline=final_newline)
    index = sources.read_index(tiny_isic)
    assert index.problems == []
    assert [(s.image_id, s.label) for s in index.train] == [(i, int(label == "malignant")) for i, label in original]


@pytest.mark.parametrize("header", ["image_id,melanoma", "image,label", "\ufeffimage_id,target"])
def test_optional_header_row(tiny_isic, header):
    rows = _rows(tiny_isic)
    _write_csv(tiny_isic, rows, header=header)
    index = sources.read_index(tiny_isic)
    assert index.problems == [] and len(index.train) == len(rows)
    assert index.train[0].line == 2  # line numbers count the header


def test_plain_folder_layout(tmp_path, tiny_isic):
    root = tmp_path / "plain"
    for split, folder, csv_name in (("train", TRAIN_FOLDER, TRAIN_CSV), ("test", "ISBI2016_ISIC_Part3_Test_Data", TEST_CSV)):
        for image_id, label in _rows(tiny_isic, csv_name):
            class_name = "malignant" if label in ("malignant", "1.0") else "benign"
            (root / split / class_name).mkdir(parents=True, exist_ok=True)
            shutil.copy(tiny_isic / folder / f"{image_id}.jpg", root / split / class_name / f"{image_id}.jpg")
    (root / "train" / "benign" / ".DS_Store").write_bytes(b"litter")  # hidden files are ignored
    index = sources.read_index(root)
    assert index.layout == "folders" and index.problems == []
    assert (len(index.train), sum(s.label for s in index.train)) == (12, 4)
    assert (len(index.test), sum(s.label for s in index.test)) == (6, 3)
    assert all(s.line is None and s.path.parent.name == sources.CLASS_NAMES[s.label] for s in index.train)


def _reasons(index: sources.DataIndex) -> list[str]:
    return [f"{Path(p['file']).name}:{p['line']}:{p['reason']}" for p in index.problems]


def test_csv_row_whose_image_is_missing(tiny_isic):
    rows = _rows(tiny_isic)
    (tiny_isic / TRAIN_FOLDER / f"{rows[2][0]}.jpg").unlink()
    index = sources.read_index(tiny_isic)
    assert _reasons(index) == [f"{TRAIN_CSV}:3:image '{rows[2][0]}' not found in {tiny_isic / TRAIN_FOLDER}"]
    assert rows[2][0] not in [s.image_id for s in index.train] and len(index.train) == 11


def test_image_with_no_csv_row(tiny_isic):
    rows = _rows(tiny_isic)
    _write_csv(tiny_isic, [row for row in rows if row != rows[0]])
    index = sources.read_index(tiny_isic)
    assert _reasons(index) == [f"{rows[0][0]}.jpg:None:no row for '{rows[0][0]}' in {TRAIN_CSV}"]
    assert index.problems[0]["split"] == "train"


def test_unknown_label_names_file_and_line(tiny_isic):
    rows = _rows(tiny_isic)
    rows[4][1] = "melanoma?"
    rows[6][1] = "0.5"
    _write_csv(tiny_isic, rows)
    index = sources.read_index(tiny_isic)
    assert [(Path(p["file"]).name, p["line"]) for p in index.problems[:2]] == [(TRAIN_CSV, 5), (TRAIN_CSV, 7)]
    assert "unknown label 'melanoma?'" in index.problems[0]["reason"]
    assert len(index.problems) == 2 and len(index.train) == 10  # not reported again as "no row"


def test_malformed_row(tiny_isic):
    rows = _rows(tiny_isic)
    _write_csv(tiny_isic, rows[:3] + [[rows[3][0]]] + rows[4:])
    index = sources.read_index(tiny_isic)
    assert [(p["line"], p["reason"]) for p in index.problems] == [(4, f"expected 'image_id,label', got '{rows[3][0]}'")]


def test_duplicate_ids(tiny_isic):
    rows = _rows(tiny_isic)
    _write_csv(tiny_isic, rows + [[rows[1][0], "malignant"]])
    shutil.copy(tiny_isic / TRAIN_FOLDER / f"{rows[2][0]}.jpg", tiny_isic / TRAIN_FOLDER / f"{rows[2][0]}.png")
    index = sources.read_index(tiny_isic)
    reasons = _reasons(index)
    assert f"{TRAIN_CSV}:13:duplicate id '{rows[1][0]}' (first at line 2)" in reasons
    assert any(r.startswith(f"{TRAIN_CSV}:3:duplicate id '{rows[2][0]}': several files") for r in reasons)
    assert len(index.problems) == 2 and len(index.train) == 11


def test_duplicate_id_across_splits_stays_out_of_test(tiny_isic):
    train_id = _rows(tiny_isic)[0][0]
    test_folder = tiny_isic / "ISBI2016_ISIC_Part3_Test_Data"
    shutil.copy(tiny_isic / TRAIN_FOLDER / f"{train_id}.jpg", test_folder / f"{train_id}.jpg")
    _write_csv(tiny_isic, _rows(tiny_isic, TEST_CSV) + [[train_id, "0.0"]], csv_name=TEST_CSV)
    index = sources.read_index(tiny_isic)
    assert len(index.problems) == 1 and index.problems[0]["split"] == "test"
    assert "also a training image" in index.problems[0]["reason"]
    assert train_id not in [s.image_id for s in index.test] and train_id in [s.image_id for s in index.train]


def test_duplicate_id_in_two_class_folders(tmp_path, tiny_isic):
    image = next((tiny_isic / TRAIN_FOLDER).iterdir())
    for split in ("train", "test"):
        for class_name in ("benign", "malignant"):
            (tmp_path / split / class_name).mkdir(parents=True)
            shutil.copy(image, tmp_path / split / class_name / f"{split}_{class_name}.jpg")
    shutil.copy(image, tmp_path / "train" / "malignant" / "train_benign.jpg")
    index = sources.read_index(tmp_path)
    assert [p["reason"].split(":")[0] for p in index.problems] == ["duplicate id 'train_benign'",
                                                                   "empty class"]
    assert [s.image_id for s in index.train] == ["train_malignant"]


def test_empty_class_and_zero_byte_file(tiny_isic):
    rows = _rows(tiny_isic)
    malignant = [image_id for image_id, label in rows if label == "malignant"]
    for image_id in malignant[:-1]:
        _write_csv(tiny_isic, [row for row in _rows(tiny_isic) if row[0] != image_id])
        (tiny_isic / TRAIN_FOLDER / f"{image_id}.jpg").unlink()
    (tiny_isic / TRAIN_FOLDER / f"{malignant[-1]}.jpg").write_bytes(b"")
    index = sources.read_index(tiny_isic)
    assert _reasons(index) == [
        f"{malignant[-1]}.jpg:None:empty file (0 bytes)",
        f"{TRAIN_CSV}:None:empty class: the train split has no usable malignant images",
    ]


def test_missing_parts_and_unknown_folder(tmp_path, tiny_isic):
    (tiny_isic / TEST_CSV).unlink()
    index = sources.read_index(tiny_isic)
    assert [(Path(p["file"]).name, p["reason"]) for p in index.problems] == [(TEST_CSV, "ground-truth CSV missing")]
    assert index.test == [] and len(index.train) == 12
    with pytest.raises(DataError, match="not a data folder"):
        sources.read_index(tmp_path)
    with pytest.raises(DataError, match="data folder not found"):
        sources.read_index(tmp_path / "nowhere")


@pytest.mark.parametrize("text,label", [("benign", 0), ("MALIGNANT", 1), ("0", 0), ("1.0", 1), (" 1 ", 1),
                                        ("0.5", None), ("nan", None), ("2", None), ("", None), ("yes", None)])
def test_parse_label(text, label):
    assert sources.parse_label(text) == label
