"""Find the images of a data folder and their labels, and every structural problem with them.

The layout is recognised from the file names and reported (``DataIndex.layout``):

- the official ISIC-2016 Part 3 layout (``ISBI2016_ISIC_Part3_{Training,Test}_Data/`` folders beside
  ``ISBI2016_ISIC_Part3_{Training,Test}_GroundTruth.csv``). The CSVs hold ``image_id,label`` rows with
  labels ``benign``/``malignant``, ``0.0``/``1.0`` or ``0``/``1``, CRLF or LF line ends, an optional
  header row and an optional final newline;
- the later challenges, ``isic2017`` (Part 3), ``isic2018`` (Task 3), ``isic2019`` and ``isic2020``, exactly
  as their files unpack (file names, headers and conventions in :mod:`melanet.data.challenges`, read by
  :mod:`melanet.data.challenge_reader`). 2017 and 2018 have an official ``validation`` split beside
  ``train`` and ``test``; 2019 and 2020 label only their training images (no ``test`` split). Their
  samples carry a ``group`` (2019: lesion; 2020: patient, duplicate pairs joined) for grouped
  validation splits. ``malignant_classes`` picks which classes count as malignant (default: melanoma);
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

from melanet.data import challenge_reader, challenges
from melanet.data.errors import DataError, problem

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")  # the splits every layout may have; "validation" only where official
ALL_SPLITS = ("train", "validation", "test")
CLASS_NAMES = ("benign", "malignant")  # label 0, label 1
ISIC_FOLDERS = {"train": "ISBI2016_ISIC_Part3_Training_Data", "test": "ISBI2016_ISIC_Part3_Test_Data"}
ISIC_CSVS = {"train": "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "test": "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"}
_LABEL_WORDS = {"benign": 0, "malignant": 1}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One labelled image: ``label`` 0 = benign, 1 = malignant; ``line`` is its CSV line (None for folders);
    ``group`` the patient/lesion it belongs to (None where the layout gives none)."""

    image_id: str
    path: Path
    label: int
    split: str
    line: int | None = None
    group: str | None = None


@dataclasses.dataclass(frozen=True)
class DataIndex:
    """Every usable sample of a data folder and every problem found (dicts: file, line, reason, split)."""

    train: list[Sample]
    test: list[Sample]
    problems: list[dict[str, Any]]
    layout: str  # "isic2016" | "isic2017" | "isic2018" | "isic2019" | "isic2020" | "folders"
    validation: list[Sample] = dataclasses.field(default_factory=list)  # official validation split (2017, 2018)
    splits: tuple[str, ...] = SPLITS  # the labelled splits this folder has, in ALL_SPLITS order
    notes: list[str] = dataclasses.field(default_factory=list)  # facts for people (grouping, conventions)

    def samples(self, split: str) -> list[Sample]:
        if split not in ALL_SPLITS:
            raise ValueError(f"split must be one of {', '.join(ALL_SPLITS)}, got {split!r}")
        return {"train": self.train, "validation": self.validation, "test": self.test}[split]

    @property
    def title(self) -> str:
        """The layout as people name it ('ISIC 2018 Task 3', 'ISIC-2016 Part 3', 'plain folders')."""
        if self.layout in challenges.LAYOUTS:
            return challenges.LAYOUTS[self.layout].title
        return {"isic2016": "ISIC-2016 Part 3", "folders": "plain folders"}.get(self.layout, self.layout)

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
    for layout in challenges.LAYOUTS.values():
        if any((root / name).exists() for name in layout.markers()):
            return layout.name
    if any((root / split).is_dir() for split in SPLITS):
        return "folders"
    raise DataError(
        f"{root}: not a data folder: expected an official ISIC layout (2016: {ISIC_FOLDERS['train']}/ + "
        f"{ISIC_CSVS['train']}; 2017: ISIC-2017_Training_Data/ + ISIC-2017_Training_Part3_GroundTruth.csv; "
        "2018: ISIC2018_Task3_Training_Input/ + ISIC2018_Task3_Training_GroundTruth/; 2019: "
        "ISIC_2019_Training_Input/ + ISIC_2019_Training_GroundTruth.csv; 2020: train/ + "
        "ISIC_2020_Training_GroundTruth_v2.csv) or <root>/train/{benign,malignant}/ and <root>/test/{benign,malignant}/ "
        "(`melanet data download isic2016|isic2017|isic2018|isic2019|isic2020 --dest DIR` fetches the official data)"
    )


def read_index(root: str | Path, *, malignant_classes: str = "") -> DataIndex:
    """List the samples of ``root`` (any layout) and every structural problem, without decoding images.

    Problems (each ``{"file", "line", "reason", "split"}``): a CSV row whose image is missing, an
    image with no CSV row, an unknown label or malformed row (file and line), an unknown or missing
    column, a row with two positive classes, a duplicate id, an empty (zero-byte) file, an empty class
    or split, an image id present in two splits (reported on the later one). A sample with a problem is
    left out; the caller decides whether problems are fatal (``load_split`` raises unless
    ``data.skip_bad``). ``malignant_classes`` ('MEL,BCC,AKIEC'; '' = melanoma) applies to the
    ISIC 2017-2020 layouts only; an unknown class name is a ``DataError``.
    """
    root = Path(root)
    layout = detect_layout(root)
    problems: list[dict[str, Any]] = []
    notes: list[str] = []
    found: dict[str, list[Sample]] = {}
    if layout in challenges.LAYOUTS:
        found = _read_challenge(root, challenges.LAYOUTS[layout], malignant_classes, problems, notes)
    else:
        if malignant_classes.strip():
            raise DataError(f"{root}: data.malignant_classes={malignant_classes!r} applies to the ISIC 2017-2020 "
                            f"layouts only; this folder has the {layout} layout (labels benign/malignant)")
        for split in SPLITS:
            reader = _read_isic_split if layout == "isic2016" else _read_folder_split
            found[split] = reader(root, split, problems)
    _drop_cross_split_duplicates(found, problems)
    for split in found:
        _check_classes(root, layout, split, found[split], problems)
    logger.debug("%s: %s layout, %s, %d problems", root, layout,
                 ", ".join(f"{len(samples)} {split}" for split, samples in found.items()), len(problems))
    return DataIndex(train=found.get("train", []), test=found.get("test", []), problems=problems, layout=layout,
                     validation=found.get("validation", []), splits=tuple(found), notes=notes)


def image_files(root: str | Path) -> dict[str, Path]:
    """Image id -> file of every sample (training and test) of ``root``; empty when ``root`` cannot be read.

    What a page or a similar-cases answer needs to show an image's original file.
    """
    try:
        index = read_index(root)
    except (DataError, OSError):
        return {}
    return {sample.image_id: sample.path for sample in [*index.train, *index.test]}


def _read_challenge(root: Path, layout: challenges.ChallengeLayout, malignant_classes: str,
                    problems: list[dict[str, Any]], notes: list[str]) -> dict[str, list[Sample]]:
    """The present splits of an ISIC 2017-2020 folder, in ALL_SPLITS order."""
    try:
        malignant = challenges.malignant_columns(layout, malignant_classes)
    except ValueError as error:
        raise DataError(f"{root}: {error}") from None
    if layout.ground_truth.label_note and malignant == layout.ground_truth.malignant_default:
        notes.append(layout.ground_truth.label_note)
    else:
        notes.append(f"malignant = {' or '.join(malignant)}; benign = every other class "
                     f"({', '.join(name for name in layout.ground_truth.class_names if name not in malignant)})")
    found: dict[str, list[Sample]] = {}
    for split in ALL_SPLITS:
        if split not in layout.splits:
            continue
        rows = challenge_reader.read_split(root, layout, split, malignant, problems, notes)
        if rows is not None:
            found[split] = [Sample(row.image_id, row.path, row.label, split, row.line, row.group) for row in rows]
    return found


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


def _drop_cross_split_duplicates(found: dict[str, list[Sample]], problems: list[dict[str, Any]]) -> None:
    """An image id in two splits would leak training images into evaluation: keep it in the first split only."""
    seen: dict[str, Sample] = {}
    for split, samples in found.items():
        kept = []
        for sample in samples:
            if sample.image_id in seen:
                where = f" (line {sample.line})" if sample.line else ""
                first = seen[sample.image_id]
                problems.append(problem(
                    sample.path, f"duplicate id '{sample.image_id}' is also a {_SPLIT_WORDS[first.split]} image "
                    f"({first.path}){where}", split=split))
            else:
                kept.append(sample)
        seen.update((sample.image_id, sample) for sample in kept)
        found[split] = kept


_SPLIT_WORDS = {"train": "training", "validation": "validation", "test": "test"}


def _check_classes(root: Path, layout: str, split: str, samples: list[Sample], problems: list[dict[str, Any]]) -> None:
    if layout in challenges.LAYOUTS:
        files = challenges.LAYOUTS[layout].splits[split]
        where = challenge_reader.first_existing(root, files.ground_truth) or root / files.ground_truth[0]
    else:
        where = root / (ISIC_CSVS[split] if layout == "isic2016" else split)
    if not samples:
        # a missing file or an unreadable header already says why the split is empty
        if not any(item["split"] == split and ("missing" in item["reason"] or "expected the header" in item["reason"])
                   for item in problems):
            problems.append(problem(where, f"the {split} split has no usable images", split=split))
        return
    for label, class_name in enumerate(CLASS_NAMES):
        if not any(sample.label == label for sample in samples):
            target = root / split / class_name if layout == "folders" else where
            problems.append(problem(target, f"empty class: the {split} split has no usable {class_name} images", split=split))
