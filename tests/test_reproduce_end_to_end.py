"""`melanet reproduce` end to end with the real stages on the bundled sample (configs/smoke.yaml, 32 px)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from melanet.runs import runs

REPOSITORY = Path(__file__).resolve().parents[1]
FOLDERS = ("baseline", "augment5x", "augment10x", "melanet")


@pytest.mark.slow
def test_reproduce_smoke_end_to_end(tmp_path: Path) -> None:
    results = tmp_path / "results"
    command = [sys.executable, "-m", "melanet", "-q", "reproduce", "--config", "configs/smoke.yaml",
               "--set", "gan.epochs=1", "--set", "classifier.epochs=1", "--out", str(results)]
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.startswith(f"run folder: {results}")

    status = runs.Run(results).status()
    assert status["stage"] == "reproduce" and status["state"] == "done" and status["progress"] == 1.0
    assert [entry["state"] for entry in status["stages"]] == ["done"] * 11
    assert (results / "gan" / "synthetic" / "manifest.csv").is_file()
    assert runs.Run(results / "gan").status()["audit"]["state"] == "done"  # audit-synthesis after synthesis
    assert runs.Run(results / "melanet").config().classifier.gan_run == str((results / "gan").resolve())
    for folder in FOLDERS:
        report = json.loads((results / folder / "metrics.json").read_text())
        assert report["n"] == report["tp"] + report["fp"] + report["tn"] + report["fn"] > 0
        assert report["data"]["split"] == "test"
        assert (results / folder / "predictions_isic.csv").is_file()
        assert runs.Run(results / folder).status()["evaluation"]["state"] == "done"
    table = list(csv.DictReader((results / "table.csv").open()))
    assert [row["method"] for row in table] == [
        "VGG-GAP", "VGG-GAP + Augment-5x", "VGG-GAP + Augment-10x", "MelaNet"]
    markdown = (results / "table.md").read_text()
    assert markdown.startswith("| Method | AUC % [95% CI]") and "| MelaNet |" in markdown

    # running it again finds every stage done and only rewrites the table
    started = time.monotonic()
    again = subprocess.run([sys.executable, "-m", "melanet", "-q", "reproduce", "--resume", str(results)],
                           cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert time.monotonic() - started < 30
    assert "MelaNet" in again.stdout
    compared = subprocess.run([sys.executable, "-m", "melanet", "compare", str(results), "--markdown"],
                              cwd=REPOSITORY, capture_output=True, text=True, timeout=60)
    # the same Table 1 as the results folder's table.md, then the paired tests of the four runs
    assert compared.stdout.startswith(markdown)
    assert "p (DeLong)" in compared.stdout[len(markdown):] and "| VGG-GAP | MelaNet |" in compared.stdout
