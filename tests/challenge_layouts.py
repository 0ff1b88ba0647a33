"""Miniature copies of the official ISIC 2017-2020 layouts, built from the bundled sample's real JPEGs.

File and folder names, headers, value spellings and line ends are those of the official files (see
``melanet.data.challenges``); images are sample JPEGs copied under new ids, with the decoys the real
folders hold (2017 ``*_superpixels.png`` maps and metadata CSVs, 2018/2019 ``LICENSE.txt``).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE_IMAGES = sorted((REPOSITORY / "data" / "sample" / "ISBI2016_ISIC_Part3_Training_Data").glob("*.jpg"))

# 2017: (melanoma, seborrheic keratosis, nevus) per split
ISIC2017_COUNTS = {"Training": (2, 2, 3), "Validation": (2, 1, 1), "Test_v2": (2, 1, 2)}
ISIC2018_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC2018_TRAINING = ("MEL", "MEL", "NV", "NV", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC2018_HELD_OUT = ("MEL", "MEL", "NV", "BKL")
ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
# 2019: (class, lesion id or "" when missing) per image; the first two ids end in _downsampled
ISIC2019_ROWS = tuple((name, f"BCN_{index // 2:07d}" if index < 20 else "") for index, name in enumerate(
    ["MEL"] * 8 + ["NV"] * 10 + ["BCC", "AK", "SCC", "BKL", "DF", "VASC"]))
ISIC2020_PATIENTS = 8  # three images each; patients 0-3 have one melanoma
ISIC2020_DUPLICATES = ((0, 13), (9, 23))  # image indices: pairs across patients 0/5 and 1/7


class _Ids:
    """New image ids over the sample's JPEGs, cycling when a layout needs more images than the sample."""

    def __init__(self, start: int) -> None:
        self.next_number = start
        self.images: Iterator[Path] = iter(SAMPLE_IMAGES)

    def take(self, folder: Path, suffix: str = "") -> str:
        image_id = f"ISIC_{self.next_number:07d}{suffix}"
        self.next_number += 1
        try:
            source = next(self.images)
        except StopIteration:
            self.images = iter(SAMPLE_IMAGES)
            source = next(self.images)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / f"{image_id}.jpg")
        return image_id


def _write(path: Path, lines: list[str], newline: str = "\r\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode())


def _superpixels(path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def build_isic2017(root: Path) -> Path:
    """ISIC-2017 Part 3: three Data folders (with superpixel and metadata decoys) and three CRLF CSVs."""
    ids = _Ids(1000)
    for word, (melanoma, keratosis, nevus) in ISIC2017_COUNTS.items():
        folder = root / f"ISIC-2017_{word}_Data"
        rows = ["image_id,melanoma,seborrheic_keratosis"]
        metadata = ["image_id,age_approximate,sex"]
        for values in ["1.0,0.0"] * melanoma + ["0.0,1.0"] * keratosis + ["0.0,0.0"] * nevus:
            image_id = ids.take(folder)
            _superpixels(folder / f"{image_id}_superpixels.png")
            rows.append(f"{image_id},{values}")
            metadata.append(f"{image_id},55,female")
        _write(folder / f"ISIC-2017_{word}_Data_metadata.csv", metadata)
        _write(root / f"ISIC-2017_{word}_Part3_GroundTruth.csv", rows)
    return root


def build_isic2018(root: Path) -> Path:
    """ISIC 2018 Task 3: Input folders (with LICENSE.txt) and GroundTruth folders holding one-hot CSVs."""
    ids = _Ids(24000)
    for word, classes, newline in (("Training", ISIC2018_TRAINING, "\r\n"), ("Validation", ISIC2018_HELD_OUT, "\n"),
                                   ("Test", ISIC2018_HELD_OUT, "\r\n")):
        folder = root / f"ISIC2018_Task3_{word}_Input"
        rows = ["image," + ",".join(ISIC2018_CLASSES)]
        for name in classes:
            image_id = ids.take(folder)
            rows.append(image_id + "," + ",".join("1.0" if column == name else "0.0" for column in ISIC2018_CLASSES))
        (folder / "LICENSE.txt").write_text("CC-BY-NC\n")
        (folder / "ATTRIBUTION.txt").write_text("ViDIR Group\n")
        _write(root / f"ISIC2018_Task3_{word}_GroundTruth" / f"ISIC2018_Task3_{word}_GroundTruth.csv", rows, newline)
    return root


def build_isic2019(root: Path) -> Path:
    """ISIC 2019: the training Input folder, the one-hot ground truth and the metadata (lesion ids)."""
    ids = _Ids(60000)
    folder = root / "ISIC_2019_Training_Input"
    rows = ["image," + ",".join(ISIC2019_CLASSES)]
    metadata = ["image,age_approx,anatom_site_general,lesion_id,sex"]
    for index, (name, lesion) in enumerate(ISIC2019_ROWS):
        image_id = ids.take(folder, "_downsampled" if index < 2 else "")
        rows.append(image_id + "," + ",".join("1.0" if column == name else "0.0" for column in ISIC2019_CLASSES))
        metadata.append(f"{image_id},{'' if index % 5 == 4 else '45.0'},anterior torso,{lesion},{'male' if index % 2 else ''}")
    (folder / "LICENSE.txt").write_text("CC-BY-NC\n")
    _write(root / "ISIC_2019_Training_GroundTruth.csv", rows)
    _write(root / "ISIC_2019_Training_Metadata.csv", metadata)
    return root


ISIC2020_HEADER = ("image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,"
                   "diagnosis,benign_malignant,target")


def isic2020_patient(index: int) -> str:
    return f"IP_{index % ISIC2020_PATIENTS:07d}"


def build_isic2020(root: Path) -> Path:
    """ISIC 2020: ``train/`` (24 JPEGs, 8 patients), ground truth v2 and the duplicates list."""
    ids = _Ids(2_000_000)
    rows = [ISIC2020_HEADER]
    names = []
    for index in range(3 * ISIC2020_PATIENTS):
        image_id = ids.take(root / "train")
        names.append(image_id)
        patient = index % ISIC2020_PATIENTS
        malignant = patient < 4 and index < ISIC2020_PATIENTS
        diagnosis, word = ("melanoma", "malignant") if malignant else ("nevus", "benign")
        rows.append(f"{image_id},{isic2020_patient(index)},IL_{index:07d},female,45.0,torso,{diagnosis},{word},"
                    f"{int(malignant)}")
    _write(root / "ISIC_2020_Training_GroundTruth_v2.csv", rows, "\n")
    _write(root / "ISIC_2020_Training_Duplicates.csv",
           ["image_name_1,image_name_2"] + [f"{names[first]},{names[second]}" for first, second in ISIC2020_DUPLICATES],
           "\n")
    return root


BUILDERS = {"isic2017": build_isic2017, "isic2018": build_isic2018, "isic2019": build_isic2019,
            "isic2020": build_isic2020}
