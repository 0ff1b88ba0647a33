"""The translation rule of scripts/gan_arms.py, recomputed by hand from an arms CSV.

Each challenger below is built to pass every condition but one (or all); the expected verdicts are written
out by hand from the numbers, not computed by the script's function.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
COLUMNS = ("arm", "seed", "val_auc", "share_backbone", "share_pixel", "backbone_probe_auc", "pixel_probe_auc",
           "gap_val_auc", "melanet_minus_gap")

# arm: per seed (share_backbone, share_pixel, backbone_probe, pixel_probe, melanet_minus_gap)
ARMS = {
    # the floor: backbone share 0, pixel share (0.20 + 0.20 + 0.25) / 3 = 0.2167
    "identity": [(0.00, 0.20, 0.95, 0.96, -0.01), (0.00, 0.20, 0.95, 0.96, -0.01), (0.00, 0.25, 0.95, 0.96, -0.01)],
    "incumbent": [(0.02, 0.22, 0.94, 0.96, 0.00)] * 3,
    # wins: shares 0.6 / 0.6 (>= 0.5, >= floor + 0.3 = 0.3 / 0.5167), probes below 0.94 / 0.96, AUC gap mean -0.01
    "good": [(0.5, 0.6, 0.90, 0.93, -0.05), (0.6, 0.6, 0.90, 0.93, 0.0), (0.7, 0.6, 0.90, 0.93, 0.02)],
    # wins too, with a smaller smaller-share (0.55 < 0.6): not the winner
    "also-good": [(0.55, 0.55, 0.80, 0.80, 0.0)] * 3,
    # backbone share 0.45 < 0.5
    "half-way": [(0.45, 0.9, 0.80, 0.80, 0.0)] * 3,
    # pixel share 0.51: >= 0.5, but below the floor's 0.2167 + 0.3 = 0.5167
    "near-floor": [(0.9, 0.51, 0.80, 0.80, 0.0)] * 3,
    # pixel probe equal to the incumbent's (0.96): not lower
    "same-probe": [(0.9, 0.9, 0.80, 0.96, 0.0)] * 3,
    # MelaNet minus GAP: -0.01, -0.03, -0.05 -> mean -0.03 < -0.02
    "worse-auc": [(0.9, 0.9, 0.80, 0.80, -0.01), (0.9, 0.9, 0.80, 0.80, -0.03), (0.9, 0.9, 0.80, 0.80, -0.05)],
}


def write_csv(path: Path, arms: dict) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for arm, seeds in arms.items():
            for seed, (backbone, pixel, probe, pixel_probe, gap) in zip((42, 43, 44), seeds):
                writer.writerow({"arm": arm, "seed": seed, "val_auc": 0.8 + gap, "share_backbone": backbone,
                                 "share_pixel": pixel, "backbone_probe_auc": probe, "pixel_probe_auc": pixel_probe,
                                 "gap_val_auc": 0.8, "melanet_minus_gap": gap})


def decide(path: Path) -> dict:
    subprocess.run([sys.executable, str(REPOSITORY / "scripts" / "gan_arms.py"), "--out", str(path.parent),
                    "--decide", str(path)], check=True, capture_output=True, cwd=REPOSITORY)
    return json.loads((path.parent / "decision-translation.json").read_text())


def test_the_rule_picks_the_arm_a_hand_reading_of_the_csv_picks(tmp_path: Path) -> None:
    write_csv(tmp_path / "arms.csv", ARMS)
    decision = decide(tmp_path / "arms.csv")
    verdicts = decision["verdicts"]
    expected_failures = {
        "good": [], "also-good": [],
        "half-way": ["share_at_least_0.5"],
        "near-floor": ["share_over_identity"],
        "same-probe": ["probes_below_incumbent"],
        "worse-auc": ["auc_vs_gap"],
        # the incumbent has shares near 0 and cannot be below its own probes
        "incumbent": ["share_at_least_0.5", "share_over_identity", "probes_below_incumbent"],
    }
    checks = ("share_at_least_0.5", "share_over_identity", "probes_below_incumbent", "auc_vs_gap")
    assert set(verdicts) == set(expected_failures)  # the identity arm is the floor, never a candidate
    for arm, failures in expected_failures.items():
        assert [check for check in checks if not verdicts[arm][check]] == failures, arm
        assert verdicts[arm]["wins"] == (not failures), arm
    assert decision["winner"] == "good"  # smaller share 0.6 against also-good's 0.55
    assert decision["fallback"] is None and decision["premise_failed"] is False
    assert decision["means"]["good"]["melanet_minus_gap"] == -0.01


def test_with_no_winner_the_fallback_is_the_arm_that_beats_the_identity_arm_most(tmp_path: Path) -> None:
    arms = {arm: ARMS[arm] for arm in ("identity", "incumbent", "half-way", "worse-auc")}
    arms["worse-auc"] = [(0.3, 0.3, 0.80, 0.80, -0.05)] * 3  # smaller share 0.3 against half-way's 0.45
    write_csv(tmp_path / "arms.csv", arms)
    decision = decide(tmp_path / "arms.csv")
    assert decision["winner"] is None and decision["premise_failed"] is True
    assert decision["fallback"] == "half-way"


def test_the_identity_arm_is_required(tmp_path: Path) -> None:
    write_csv(tmp_path / "arms.csv", {arm: ARMS[arm] for arm in ("incumbent", "good")})
    result = subprocess.run([sys.executable, str(REPOSITORY / "scripts" / "gan_arms.py"), "--out", str(tmp_path),
                             "--decide", str(tmp_path / "arms.csv")], capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode != 0 and "'identity' arm" in result.stderr
