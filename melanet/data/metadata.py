"""Per-image clinical metadata of a data folder, where its layout has some: age, sex, site, patient, diagnosis.

What the official files hold (file names and headers in :mod:`melanet.data.challenges`):

- ISIC 2017 Part 3: ``ISIC-2017_<split>_Data/ISIC-2017_<split>_Data_metadata.csv`` (``image_id,
  age_approximate,sex``; ``unknown`` = missing); diagnosis from the ground truth (melanoma, seborrheic
  keratosis, else nevus);
- ISIC 2018 Task 3: no metadata in the challenge files; diagnosis from the one-hot ground truth;
- ISIC 2019: ``ISIC_2019_Training_Metadata.csv`` (``image,age_approx,anatom_site_general,lesion_id,sex``;
  an empty field = missing); diagnosis from the one-hot ground truth;
- ISIC 2020: the ground truth itself (``patient_id``, ``sex``, ``age_approx``,
  ``anatom_site_general_challenge``, ``diagnosis``);
- ISIC-2016 and plain folders: labels only (every image maps to ``ImageMetadata()``, no variable present).

A missing or unreadable metadata file is not an error here: the images simply have no metadata
(``data check`` reports the data folder's structural problems).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from melanet.data import challenge_reader, challenges, sources

logger = logging.getLogger(__name__)

VARIABLES = ("sex", "age", "site")  # the subgroup variables evaluate reports
MISSING_WORDS = {"", "unknown", "nan", "na", "n/a", "none", "null"}
# the one-hot class columns as people name them
DIAGNOSIS_NAMES = {
    "melanoma": "melanoma", "seborrheic_keratosis": "seborrheic keratosis", "nevus": "nevus",
    "MEL": "melanoma", "NV": "nevus", "BCC": "basal cell carcinoma", "AK": "actinic keratosis",
    "AKIEC": "actinic keratosis / intraepithelial carcinoma", "BKL": "benign keratosis", "DF": "dermatofibroma",
    "VASC": "vascular lesion", "SCC": "squamous cell carcinoma", "UNK": "unknown",
}


@dataclasses.dataclass(frozen=True)
class ImageMetadata:
    """What the data folder says about one image; None where it says nothing (or 'unknown')."""

    age: float | None = None  # years (the challenges give it rounded to 5)
    sex: str | None = None
    site: str | None = None  # anatomic site
    patient: str | None = None
    diagnosis: str | None = None


@dataclasses.dataclass(frozen=True)
class _Columns:
    """Where one layout keeps each field: a CSV (relative to the root; ``{folder}`` = the split's image
    folder), its id column and the column of each field (None = not there)."""

    file: str | None  # None: the split's ground-truth CSV
    id_column: str
    age: str | None = None
    sex: str | None = None
    site: str | None = None
    patient: str | None = None
    diagnosis: str | None = None


_COLUMNS = {
    "isic2017": _Columns("{folder}/{folder}_metadata.csv", "image_id", age="age_approximate", sex="sex"),
    "isic2019": _Columns(challenges.ISIC2019.metadata, "image", age="age_approx", sex="sex", site="anatom_site_general"),
    "isic2020": _Columns(None, "image_name", age="age_approx", sex="sex", site="anatom_site_general_challenge",
                         patient="patient_id", diagnosis="diagnosis"),
}


def _value(text: str | None) -> str | None:
    if text is None or text.strip().lower() in MISSING_WORDS:
        return None
    return text.strip()


def _age(text: str | None) -> float | None:
    value = _value(text)
    try:
        age = float(value) if value is not None else None
    except ValueError:
        return None
    return age if age is not None and 0 <= age < 130 else None


def variables_of(layout: str) -> tuple[str, ...]:
    """The subgroup variables (of ``VARIABLES``) a layout records; () for ISIC-2016, 2018 and plain folders."""
    columns = _COLUMNS.get(layout)
    return tuple(name for name in VARIABLES if columns is not None and getattr(columns, name) is not None)


def read_metadata(root: str | Path, split: str) -> tuple[str, dict[str, ImageMetadata]]:
    """(layout, image id -> metadata) for the images of ``split`` of ``root``; images the files say
    nothing about are absent. Diagnoses of the one-hot layouts come from the ground truth."""
    root = Path(root)
    layout = sources.detect_layout(root)
    if layout not in challenges.LAYOUTS or split not in challenges.LAYOUTS[layout].splits:
        return layout, {}
    challenge = challenges.LAYOUTS[layout]
    diagnoses = _one_hot_diagnoses(root, challenge, split)
    found: dict[str, ImageMetadata] = {image_id: ImageMetadata(diagnosis=name) for image_id, name in diagnoses.items()}
    columns = _COLUMNS.get(layout)
    if columns is None:
        return layout, found
    table = _table(root, challenge, split, columns)
    if table is None:
        return layout, found
    header, body = table
    for _, fields in body:
        row = dict(zip(header, fields))
        image_id = row.get(columns.id_column, "")
        if not image_id:
            continue
        field = {name: row.get(getattr(columns, name)) if getattr(columns, name) else None
                 for name in ("sex", "site", "patient", "diagnosis")}
        found[image_id] = ImageMetadata(
            age=_age(row.get(columns.age)) if columns.age else None,
            sex=(_value(field["sex"]) or "").lower() or None,
            site=_value(field["site"]),
            patient=_value(field["patient"]),
            diagnosis=_value(field["diagnosis"]) or diagnoses.get(image_id),
        )
    return layout, found


def _table(root: Path, challenge: challenges.ChallengeLayout, split: str,
           columns: _Columns) -> tuple[list[str], list[tuple[int, list[str]]]] | None:
    files = challenge.splits[split]
    if columns.file is None:
        path = challenge_reader.first_existing(root, files.ground_truth)
    else:
        folder = challenge_reader.first_existing(root, files.image_folders)
        name = columns.file.format(folder=folder.name if folder is not None else files.image_folders[0])
        path = root / name
    if path is None or not path.is_file():
        logger.info("%s: no metadata file for the %s split (%s)", root, split, path)
        return None
    table = challenge_reader.read_table(path, split, [])
    if table is None or columns.id_column not in table[0]:
        logger.warning("%s: metadata not read (no %s column)", path, columns.id_column)
        return None
    return table


def _one_hot_diagnoses(root: Path, challenge: challenges.ChallengeLayout, split: str) -> dict[str, str]:
    """image id -> diagnosis from a one-hot ground truth ({} for 2020, whose diagnosis is a column)."""
    spec = challenge.ground_truth
    if spec.implied_class == "benign":  # 2020: 'target' is a label, not a diagnosis
        return {}
    path = challenge_reader.first_existing(root, challenge.splits[split].ground_truth)
    table = challenge_reader.read_table(path, split, []) if path is not None and path.is_file() else None
    if table is None:
        return {}
    header, body = table
    found = {}
    for _, fields in body:
        row = dict(zip(header, fields))
        positive = [name for name in spec.class_columns if challenge_reader.parse_binary(row.get(name, "")) == 1]
        name = positive[0] if len(positive) == 1 else spec.implied_class if not positive else None
        if name and row.get(spec.id_column):
            found[row[spec.id_column]] = DIAGNOSIS_NAMES.get(name, name)
    return found
