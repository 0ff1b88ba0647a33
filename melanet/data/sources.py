"""Find the images of a data folder and their labels, and every structural problem with them.

Two layouts are read:

- the official ISIC-2016 Part 3 layout (``ISBI2016_ISIC_Part3_{Training,Test}_Data/`` folders beside
  ``ISBI2016_ISIC_Part3_{Training,Test}_GroundTruth.csv``). The CSVs hold ``image_id,label`` rows with
  labels ``benign``/``malignant``, ``0.0``/``1.0`` or ``0``/``1``, CRLF or LF line ends, an optional
  header row and an optional final newline;
- a plain layout ``<root>/{train,test}/{benign,malignant}/<image files>`` (image id = file stem).

Nothing here decodes an image: problems found by decoding (truncated, not an image, too many
pixels) come from :mod:`melanet.data.preprocess` when the images are loaded or checked.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path
from typing import Any

from melanet.data.errors import DataError, problem

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
CLASS_NAMES = ("benign", "malignant")  # label 0, label 1
ISIC_FOLDERS = {"train": "ISBI2016_ISIC_Part3_Training_Data", "test": "ISBI2016_ISIC_Part3_Test_Data"}
ISIC_CSVS = {"train": "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "test": "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"}
_LABEL_WORDS = {"benign": 0, "malignant": 1}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One labelled image: ``label`` 0 = benign, 1 = malignant; ``line`` is its CSV line (None for folders)."""

    image_id: str
    path: Path
    label: int
    split: str
    line: int | None = None


@dataclasses.dataclass(frozen=True)
class DataIndex:
    """Every usable sample of a data folder and every problem found (dicts: file, line, reason, split)."""

    train: list[Sample]
    test: list[Sample]
    problems: list[dict[str, Any]]
    layout: str  # "isic2016" | "folders"

    def samples(self, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        return self.train if split == "train" else self.test

    def split_problems(self, split: str) -> list[dict[str, Any]]:
        return [item for item in self.problems if item["split"] == split]


def parse_label(text: str) -> int | None:
    """'benign'/'malignant', '0'/'1', '0.0'/'1.0' (any case, spaces ignored) -> 0/1; anything else None."""
    value = text.strip().lower()
    if value in _LABEL_WORDS:
        return _LABEL_WORDS[value]
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number in (0.0, 1.0) else None


def detect_layout(root: Path) -> str:
    """'isic2016' or 'folders'; DataError naming what was looked for when it is neither."""
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    if any((root / name).exists() for name in (*ISIC_FOLDERS.values(), *ISIC_CSVS.values())):
        return "isic2016"
    if any((root / split).is_dir() for split in SPLITS):
        return "folders"
    raise DataError(
        f"{root}: not a data folder: expected the ISIC-2016 layout ({ISIC_FOLDERS['train']}/ + "
        f"{ISIC_CSVS['train']}, ...) or <root>/train/{{benign,malignant}}/ and <root>/test/{{benign,malignant}}/ "
        "(`melanet data download isic2016 --dest DIR` fetches the official data)"
    )


def read_index(root: str | Path) -> DataIndex:
    """List the samples of ``root`` (either layout) and every structural problem, without decoding images.

    Problems (each ``{"file", "line", "reason", "split"}``): a CSV row whose image is missing, an
    image with no CSV row, an unknown label or malformed row (file and line), a duplicate id, an
    empty (zero-byte) file, an empty class or split, an image id present in both splits (reported on
    the test side). A sample with a problem is left out of ``train``/``test``; the caller decides
    whether problems are fatal (``load_split`` raises unless ``data.skip_bad``).
    """
    root = Path(root)
    layout = detect_layout(root)
    problems: list[dict[str, Any]] = []
    found: dict[str, list[Sample]] = {}
    for split in SPLITS:
        if layout == "isic2016":
            found[split] = _read_isic_split(root, split, problems)
        else:
            found[split] = _read_folder_split(root, split, problems)
    found["test"] = _drop_cross_split_duplicates(found["train"], found["test"], problems)
    for split in SPLITS:
        _check_classes(root, layout, split, found[split], problems)
    logger.debug("%s: %s layout, %d train, %d test, %d problems", root, layout,
                 len(found["train"]), len(found["test"]), len(problems))
    return DataIndex(train=found["train"], test=found["test"], problems=problems, layout=layout)


def _image_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files of ``folder`` sorted by name (hidden files are OS/tool litter)."""
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))


def _usable_file(path: Path, split: str, problems: list[dict[str, Any]]) -> bool:
    if path.stat().st_size == 0:
        problems.append(problem(path, "empty file (0 bytes)", split=split))
        return False
    return True


def _read_isic_split(root: Path, split: str, problems: list[dict[str, Any]]) -> list[Sample]:
    folder, csv_path = root / ISIC_FOLDERS[split], root / ISIC_CSVS[split]
    if not folder.is_dir():
        problems.append(problem(folder, "image folder missing", split=split))
    if not csv_path.is_file():
        problems.append(problem(csv_path, "ground-truth CSV missing", split=split))
    if not folder.is_dir() or not csv_path.is_file():
        return []
    files_by_id: dict[str, list[Path]] = {}
    for path in _image_files(folder):
        files_by_id.setdefault(path.stem, []).append(path)
    rows, mentioned = _read_ground_truth(csv_path, files_by_id, split, problems)
    samples: list[Sample] = []
    for image_id, label, line in rows:
        paths = files_by_id.get(image_id)
        if not paths:
            problems.append(problem(csv_path, f"image '{image_id}' not found in {folder}", line=line, split=split))
            continue
        if len(paths) > 1:
            names = ", ".join(path.name for path in paths)
            problems.append(problem(csv_path, f"duplicate id '{image_id}': several files ({names})", line=line, split=split))
            continue
        if _usable_file(paths[0], split, problems):
            samples.append(Sample(image_id, paths[0], label, split, line))
    for image_id, paths in sorted(files_by_id.items()):
        if image_id not in mentioned:
            for path in paths:
                problems.append(problem(path, f"no row for '{image_id}' in {csv_path.name}", split=split))
    return samples


def _read_ground_truth(
    csv_path: Path, files_by_id: dict[str, list[Path]], split: str, problems: list[dict[str, Any]]
) -> tuple[list[tuple[str, int, int]], set[str]]:
    """(image_id, label, line) of every good row, and every id named by any row (a bad one included).

    Bad rows become problems naming file and line.
    """
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problems.append(problem(csv_path, f"not a UTF-8 text file ({error.reason} at byte {error.start})", split=split))
        return [], set(files_by_id)
    rows: list[tuple[str, int, int]] = []
    first_line: dict[str, int] = {}
    mentioned: set[str] = set()
    header_possible = True
    # splitlines() takes CRLF, LF and a missing final newline alike
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in next(csv.reader([line]))]
        is_first_row, header_possible = header_possible, False
        if fields and fields[0]:
            mentioned.add(fields[0])
        if len(fields) < 2 or not fields[0]:
            problems.append(problem(csv_path, f"expected 'image_id,label', got {line!r}", line=line_number, split=split))
            continue
        image_id, label_text = fields[0], fields[1]
        label = parse_label(label_text)
        if label is None:
            if is_first_row and image_id not in files_by_id:
                mentioned.discard(image_id)
                continue  # a header row such as 'image_id,melanoma'
            problems.append(problem(
                csv_path, f"unknown label '{label_text}' for '{image_id}' (expected benign/malignant, 0/1 or 0.0/1.0)",
                line=line_number, split=split))
            continue
        if image_id in first_line:
            problems.append(problem(
                csv_path, f"duplicate id '{image_id}' (first at line {first_line[image_id]})", line=line_number, split=split))
            continue
        first_line[image_id] = line_number
        rows.append((image_id, label, line_number))
    return rows, mentioned


def _read_folder_split(root: Path, split: str, problems: list[dict[str, Any]]) -> list[Sample]:
    split_folder = root / split
    if not split_folder.is_dir():
        problems.append(problem(split_folder, f"{split} folder missing (expected {split}/benign/ and {split}/malignant/)", split=split))
        return []
    for path in _image_files(split_folder):
        problems.append(problem(path, f"file outside a class folder (expected {split}/benign/ or {split}/malignant/)", split=split))
    for folder in sorted(path for path in split_folder.iterdir() if path.is_dir()):
        if folder.name not in CLASS_NAMES:
            problems.append(problem(folder, f"unknown class folder '{folder.name}' (expected benign or malignant)", split=split))
    files_by_id: dict[str, list[tuple[Path, int]]] = {}
    for label, class_name in enumerate(CLASS_NAMES):
        if (split_folder / class_name).is_dir():  # a missing one is reported as an empty class
            for path in _image_files(split_folder / class_name):
                files_by_id.setdefault(path.stem, []).append((path, label))
    samples: list[Sample] = []
    for image_id, entries in sorted(files_by_id.items()):
        if len(entries) > 1:  # neither copy's label can be trusted
            names = ", ".join(str(path) for path, _ in entries)
            problems.append(problem(entries[0][0], f"duplicate id '{image_id}': several files ({names})", split=split))
        elif _usable_file(entries[0][0], split, problems):
            samples.append(Sample(image_id, entries[0][0], entries[0][1], split))
    return samples


def _drop_cross_split_duplicates(
    train: list[Sample], test: list[Sample], problems: list[dict[str, Any]]
) -> list[Sample]:
    """An image id in both splits would leak training images into the test set: keep it in train only."""
    train_ids = {sample.image_id: sample for sample in train}
    kept = []
    for sample in test:
        if sample.image_id in train_ids:
            where = f" (line {sample.line})" if sample.line else ""
            problems.append(problem(
                sample.path, f"duplicate id '{sample.image_id}' is also a training image "
                f"({train_ids[sample.image_id].path}){where}", split="test"))
        else:
            kept.append(sample)
    return kept


def _check_classes(root: Path, layout: str, split: str, samples: list[Sample], problems: list[dict[str, Any]]) -> None:
    where = root / (ISIC_CSVS[split] if layout == "isic2016" else split)
    if not samples:
        if not any(item["split"] == split and "missing" in item["reason"] for item in problems):
            problems.append(problem(where, f"the {split} split has no usable images", split=split))
        return
    for label, class_name in enumerate(CLASS_NAMES):
        if not any(sample.label == label for sample in samples):
            target = where if layout == "isic2016" else root / split / class_name
            problems.append(problem(target, f"empty class: the {split} split has no usable {class_name} images", split=split))
