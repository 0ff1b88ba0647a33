"""Shared fixtures: small folders of REAL dermoscopy JPEGs copied from the bundled data/sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = REPOSITORY / "data" / "sample"
TRAINING_FOLDER = "ISBI2016_ISIC_Part3_Training_Data"
TEST_FOLDER = "ISBI2016_ISIC_Part3_Test_Data"
TRAINING_CSV = "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
TEST_CSV = "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"


@pytest.fixture(autouse=True, scope="session")
def _apptest_shows_full_errors() -> None:
    """AppTest reads .streamlit/config.toml, which hides error details from users; a failing test needs them."""
    import sys

    if "streamlit" in sys.modules:  # imported at collection by the AppTest modules only
        from streamlit import config as streamlit_config

        streamlit_config.set_option("client.showErrorDetails", "full")


def _sample_rows(csv_name: str) -> list[tuple[str, str]]:
    lines = (SAMPLE_ROOT / csv_name).read_text().splitlines()
    return [tuple(line.split(",")) for line in lines if line.strip()]


def _pick(rows: list[tuple[str, str]], benign: int, malignant: int) -> list[tuple[str, str]]:
    chosen_benign = [row for row in rows if row[1] in ("benign", "0.0")][:benign]
    chosen_malignant = [row for row in rows if row[1] in ("malignant", "1.0")][:malignant]
    return sorted(chosen_benign + chosen_malignant)


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The bundled data/sample (official ISIC-2016 layout, 353 train / 73 test). Read only."""
    return SAMPLE_ROOT


@pytest.fixture
def tiny_isic(tmp_path: Path) -> Path:
    """A writable ISIC-2016-layout folder of real JPEGs: train 8 benign / 4 malignant, test 3 / 3.

    CSVs as the official ones: no header, CRLF, train labels benign/malignant, test labels 0.0/1.0.
    """
    root = tmp_path / "isic"
    for folder, csv_name, (benign, malignant) in ((TRAINING_FOLDER, TRAINING_CSV, (8, 4)), (TEST_FOLDER, TEST_CSV, (3, 3))):
        (root / folder).mkdir(parents=True)
        rows = _pick(_sample_rows(csv_name), benign, malignant)
        for image_id, _ in rows:
            shutil.copy2(SAMPLE_ROOT / folder / f"{image_id}.jpg", root / folder / f"{image_id}.jpg")
        (root / csv_name).write_bytes("".join(f"{image_id},{label}\r\n" for image_id, label in rows).encode())
    return root
