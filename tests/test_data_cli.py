"""``melanet data check`` and ``melanet data prepare`` as a person runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from melanet import cli

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "isic2016-sample"
TRAIN_FOLDER = "ISBI2016_ISIC_Part3_Training_Data"


def _table_rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.startswith(("train ", "test "))]


def test_check_bundled_sample_is_clean(sample_root, capsys):
    assert cli.main(["-q", "data", "check", str(sample_root)]) == 0
    output = capsys.readouterr().out
    assert _table_rows(output) == [["train", "270", "83", "353"], ["test", "34", "39", "73"]]
    assert "OK: the data can be used" in output


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="the project's shared sample is not on this machine")
def test_check_shared_sample_in_a_real_process():
    done = subprocess.run([sys.executable, "-m", "melanet", "-q", "data", "check", str(SHARED_SAMPLE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _table_rows(done.stdout) == [["train", "270", "83", "353"], ["test", "34", "39", "73"]]


def test_check_lists_every_problem_and_fails(tiny_isic, capsys):
    images = sorted((tiny_isic / TRAIN_FOLDER).iterdir())
    images[0].write_text("not an image")
    images[1].unlink()
    with open(tiny_isic / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", "a") as stream:
        stream.write("ISIC_9999999,maybe\r\n")
    assert cli.main(["-q", "data", "check", str(tiny_isic)]) == 1
    output = capsys.readouterr().out
    assert "3 problems:" in output and "NOT USABLE" in output
    assert f"[train] {images[0]}: not an image (unknown format)" in output
    assert f"image '{images[1].stem}' not found" in output
    assert "Test_GroundTruth.csv:7: unknown label 'maybe'" in output
    assert _table_rows(output)[0][1:] == ["6", "4", "10"]  # both broken images are benign ones


def test_prepare_prints_the_cache_and_reuses_it(tiny_isic, capsys):
    arguments = ["-q", "data", "prepare", str(tiny_isic), "--image-size", "32", "--config", "configs/smoke.yaml",
                 "--set", "data.workers=1"]
    assert cli.main(arguments) == 0
    output = capsys.readouterr().out
    assert f"cache folder: {tiny_isic / '.melanet-cache'}" in output
    assert "train: 12 images (8 benign / 4 malignant) at 32 px (pad), decoded and cached" in output
    assert cli.main(arguments) == 0
    assert "test: 6 images (3 benign / 3 malignant) at 32 px (pad), read from cache" in capsys.readouterr().out


def test_prepare_stops_on_bad_input_unless_skip_bad(tiny_isic, capsys):
    bad = sorted((tiny_isic / TRAIN_FOLDER).iterdir())[2]
    bad.write_bytes(bad.read_bytes()[:500])
    assert cli.main(["-q", "data", "prepare", str(tiny_isic), "--image-size", "32", "--workers", "1"]) == 2
    error = capsys.readouterr().err
    assert "the train split has bad inputs (1 bad item)" in error and str(bad) in error
    assert cli.main(["-q", "data", "prepare", str(tiny_isic), "--image-size", "32", "--skip-bad"]) == 0
    output = capsys.readouterr().out
    assert "train: 11 images" in output and f"skipped 1 bad input(s):\n  {bad}: truncated" in output


def test_prepare_user_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["-q", "data", "prepare", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"melanet data: error: {tmp_path / 'nowhere'}: data folder not found"
    assert cli.main(["-q", "data", "prepare", str(tmp_path), "--image-size", "8"]) == 2
    assert "data.image_size" in capsys.readouterr().err
