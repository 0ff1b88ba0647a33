"""`melanet data check` on a test-only download: usable for evaluation, no training split, exit 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import challenge_layouts

REPOSITORY = Path(__file__).resolve().parents[1]


def _check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "melanet", "-q", "data", "check", str(root)], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=300)


def test_the_isic2017_test_part_alone_is_usable_for_evaluation(tmp_path: Path) -> None:
    root = challenge_layouts.build_isic2017(tmp_path / "isic2017")
    for word in ("Training", "Validation"):
        shutil.rmtree(root / f"ISIC-2017_{word}_Data")
        (root / f"ISIC-2017_{word}_Part3_GroundTruth.csv").unlink()
    result = _check(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usable for evaluation; no training split" in result.stdout
    assert "NOT USABLE" not in result.stdout


def test_a_broken_test_part_is_still_not_usable(tmp_path: Path) -> None:
    root = challenge_layouts.build_isic2017(tmp_path / "isic2017")
    for word in ("Training", "Validation"):
        shutil.rmtree(root / f"ISIC-2017_{word}_Data")
        (root / f"ISIC-2017_{word}_Part3_GroundTruth.csv").unlink()
    broken = sorted((root / "ISIC-2017_Test_v2_Data").glob("ISIC_*.jpg"))[0]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated JPEG
    result = _check(root)
    assert result.returncode == 1 and "NOT USABLE" in result.stdout and broken.name in result.stdout
