"""Read one labelled split of an ISIC 2017-2020 challenge folder (layouts in :mod:`melanet.data.challenges`).

The same bad-input rules as the ISIC-2016 reader, each a problem naming the file and (CSV) line: a CSV
row whose image is missing, an image with no row, an unknown or missing column, a row with two positive
classes (or none where one is required), a label that is not 0/1, a duplicate id, an empty file. Only
JPEGs count as images: the 2017 ``*_superpixels.png`` maps, metadata CSVs and ``LICENSE.txt`` /
``ATTRIBUTION.txt`` files inside the image folders are ignored. Nothing here decodes an image.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path
from typing import Any

from melanet.data.challenges import IMAGE_SUFFIXES, ChallengeLayout
from melanet.data.errors import problem

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Row:
    """One usable labelled image: ``label`` 0 = benign, 1 = malignant; ``group`` keeps related images together."""

    image_id: str
    path: Path
    label: int
    line: int
    group: str | None


def first_existing(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / name for name in candidates if (root / name).exists()), None)


def read_split(root: Path, layout: ChallengeLayout, split: str, malignant: tuple[str, ...],
               problems: list[dict[str, Any]], notes: list[str]) -> list[Row] | None:
    """The usable rows of ``split``; None when the split is absent (neither its folder nor its CSV exists).

    The training split is never absent: a missing part is a problem. Problems are appended to
    ``problems``; facts worth telling a person (how rows were grouped) to ``notes``.
    """
    files = layout.splits[split]
    folder = first_existing(root, files.image_folders)
    csv_path = first_existing(root, files.ground_truth)
    if folder is None and csv_path is None and split != "train":
        return None
    if folder is None or not folder.is_dir():
        problems.append(problem(root / files.image_folders[0], "image folder missing", split=split))
    if csv_path is None or not csv_path.is_file():
        problems.append(problem(root / files.ground_truth[0], "ground-truth CSV missing", split=split))
    if folder is None or csv_path is None or not folder.is_dir() or not csv_path.is_file():
        return []
    files_by_id: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
            files_by_id.setdefault(path.stem, []).append(path)
    labelled, rejected = _read_ground_truth(csv_path, layout, malignant, split, problems)
    groups = _groups(root, layout, labelled, split, problems, notes)
    rows: list[Row] = []
    for image_id, (label, line, _) in labelled.items():
        paths = files_by_id.get(image_id)
        if not paths:
            problems.append(problem(csv_path, f"image '{image_id}' not found in {folder}", line=line, split=split))
        elif len(paths) > 1:
            names = ", ".join(path.name for path in paths)
            problems.append(problem(csv_path, f"duplicate id '{image_id}': several files ({names})", line=line, split=split))
        elif paths[0].stat().st_size == 0:
            problems.append(problem(paths[0], "empty file (0 bytes)", split=split))
        else:
            rows.append(Row(image_id, paths[0], label, line, groups.get(image_id)))
    for image_id, paths in sorted(files_by_id.items()):
        if image_id not in labelled and image_id not in rejected:  # a rejected row is reported once
            for path in paths:
                problems.append(problem(path, f"no row for '{image_id}' in {csv_path.name}", split=split))
    return rows


def read_table(path: Path, split: str, problems: list[dict[str, Any]]) -> tuple[list[str], list[tuple[int, list[str]]]] | None:
    """(header, [(line, fields)]) of a UTF-8 CSV with CRLF or LF line ends; None (and a problem) if unreadable."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problems.append(problem(path, f"not a UTF-8 text file ({error.reason} at byte {error.start})", split=split))
        return None
    numbered = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        problems.append(problem(path, "empty CSV (expected a header row)", split=split))
        return None
    parsed = [(number, [field.strip() for field in next(csv.reader([line]))]) for number, line in numbered]
    return parsed[0][1], parsed[1:]


def _check_header(path: Path, header: list[str], expected: tuple[str, ...], optional: tuple[str, ...],
                  line: int, split: str, problems: list[dict[str, Any]]) -> bool:
    unknown = [name for name in header if name not in expected]
    missing = [name for name in expected if name not in header and name not in optional]
    if unknown or missing:
        what = "; ".join(part for part in (
            f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(repr(n) for n in unknown)}" if unknown else "",
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(n) for n in missing)}" if missing else "",
        ) if part)
        problems.append(problem(path, f"{what} (expected the header {','.join(expected)})", line=line, split=split))
        return False
    return True


def parse_binary(text: str) -> int | None:
    """'0', '1', '0.0', '1.0' -> 0/1; anything else (empty included) None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number in (0.0, 1.0) else None


def _read_ground_truth(csv_path: Path, layout: ChallengeLayout, malignant: tuple[str, ...], split: str,
                       problems: list[dict[str, Any]]) -> tuple[dict[str, tuple[int, int, dict[str, str]]], set[str]]:
    """(image id -> (label, line, the row's fields by column) of every good row, ids of rejected rows).

    Bad rows become problems naming the file and line.
    """
    spec = layout.ground_truth
    table = read_table(csv_path, split, problems)
    if table is None:
        return {}, set()
    header, body = table
    if not _check_header(csv_path, header, spec.known_columns, spec.optional_columns, 1, split, problems):
        return {}, {fields[0] for _, fields in body if fields}
    labelled: dict[str, tuple[int, int, dict[str, str]]] = {}
    rejected: set[str] = set()
    for line, fields in body:
        if len(fields) != len(header):
            problems.append(problem(csv_path, f"expected {len(header)} fields ({','.join(header)}), got {len(fields)}",
                                    line=line, split=split))
            rejected.add(fields[0] if fields else "")
            continue
        row = dict(zip(header, fields))
        image_id = row[spec.id_column]
        reason = _row_problem(row, spec.class_columns, spec.implied_class) or _disagreement(row, spec.agreement)
        if not reason and image_id in labelled:
            reason = f"duplicate id '{image_id}' (first at line {labelled[image_id][1]})"
        if not image_id:
            reason = f"empty {spec.id_column}"
        if reason:
            problems.append(problem(csv_path, f"'{image_id}': {reason}" if image_id else reason, line=line, split=split))
            rejected.add(image_id)
            continue
        positive = [name for name in spec.class_columns if parse_binary(row[name]) == 1]
        labelled[image_id] = (int(bool(set(positive) & set(malignant))), line, row)
    return labelled, rejected


def _row_problem(row: dict[str, str], class_columns: tuple[str, ...], implied_class: str | None) -> str:
    """Why a ground-truth row cannot be used ('' when it can)."""
    for name in class_columns:
        if parse_binary(row[name]) is None:
            return f"label '{row[name]}' in column '{name}' is not 0/1 (expected 0, 1, 0.0 or 1.0)"
    positive = [name for name in class_columns if parse_binary(row[name]) == 1]
    if len(positive) > 1:
        return f"{len(positive)} positive classes ({', '.join(positive)}); expected at most one"
    if not positive and implied_class is None:
        return f"no positive class; expected exactly one of {', '.join(class_columns)}"
    return ""


def _disagreement(row: dict[str, str], agreement: tuple[tuple[str, str, str, str], ...]) -> str:
    """Why a row's two spellings of one label disagree ('' when they agree or a column is absent)."""
    for class_column, column, word_for_0, word_for_1 in agreement:
        if column in row and row[column] != (word_for_1 if parse_binary(row[class_column]) == 1 else word_for_0):
            return (f"{class_column} {row[class_column]} but {column} '{row[column]}' "
                    f"(expected '{word_for_0}' with 0, '{word_for_1}' with 1)")
    return ""


def _groups(root: Path, layout: ChallengeLayout, labelled: dict[str, tuple[int, int, dict[str, str]]], split: str,
            problems: list[dict[str, Any]], notes: list[str]) -> dict[str, str]:
    """image id -> group (patient, else lesion; duplicate pairs joined); empty when the layout has no groups."""
    if not layout.group_columns:
        return {}
    fields_by_id = {image_id: fields for image_id, (_, _, fields) in labelled.items()}
    if layout.metadata:
        fields_by_id = _metadata_fields(root / layout.metadata, layout, split, problems, notes)
        if fields_by_id is None:
            return {}
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    used: dict[str, int] = {}
    for image_id in labelled:
        fields = fields_by_id.get(image_id, {})
        column = next((name for name in layout.group_columns if fields.get(name, "").strip()), None)
        if column:
            parent[find(f"image:{image_id}")] = find(f"{column}:{fields[column].strip()}")
            used[column] = used.get(column, 0) + 1
    joined = _join_duplicates(root, layout, labelled, split, problems, find, parent)
    groups = {image_id: find(f"image:{image_id}") for image_id in labelled}
    counts = ", ".join(f"{count} images by {column}" for column, count in used.items()) or "no group column filled"
    notes.append(f"{split}: validation split grouped ({counts}; {len(set(groups.values()))} groups"
                 + (f"; {joined} duplicate pairs kept together" if layout.duplicates else "") + ")")
    return groups


def _metadata_fields(path: Path, layout: ChallengeLayout, split: str, problems: list[dict[str, Any]],
                     notes: list[str]) -> dict[str, dict[str, str]] | None:
    if not path.is_file():
        notes.append(f"{split}: {path.name} missing: the validation split cannot be grouped by lesion")
        return None
    table = read_table(path, split, problems)
    if table is None:
        return None
    header, body = table
    if not _check_header(path, header, layout.metadata_columns, (), 1, split, problems):
        return None
    return {dict(zip(header, fields)).get("image", ""): dict(zip(header, fields)) for _, fields in body}


def _join_duplicates(root: Path, layout: ChallengeLayout, labelled: dict[str, Any], split: str,
                     problems: list[dict[str, Any]], find: Any, parent: dict[str, str]) -> int:
    """Put both images of each duplicate pair in one group; returns how many pairs were joined."""
    if not layout.duplicates or not (root / layout.duplicates).is_file():
        return 0
    path = root / layout.duplicates
    table = read_table(path, split, problems)
    if table is None or not _check_header(path, table[0], ("image_name_1", "image_name_2"), (), 1, split, problems):
        return 0
    joined = 0
    for line, fields in table[1]:
        if len(fields) != 2:
            problems.append(problem(path, f"expected 2 fields (image_name_1,image_name_2), got {len(fields)}",
                                    line=line, split=split))
            continue
        if fields[0] in labelled and fields[1] in labelled:
            parent[find(f"image:{fields[0]}")] = find(f"image:{fields[1]}")
            joined += 1
    return joined
