"""Every figure of the model card sits under its own name (issue 21 item 15).

A real run folder (config, status, validation and test predictions) is scored by
``melanet evaluate --from-predictions`` (``rescore.rescore_run``), which writes ``metrics.json`` and
``model_card.md``. The expected figures are counted here from the prediction arrays (confusion
counts at "malignant when p > threshold", Wilson intervals, Bayes' rule at the stated prevalence,
Brier and the 10-bin ECE, the AUC as the share of correctly ordered pairs), never read back from
``metrics.json``; only the thresholds chosen on validation are taken from it. The test arrays make
every pair that a swap could confuse differ: sensitivity 87.5 % vs specificity 75.0 %, PPV 70.0 % vs
NPV 90.0 %, TP 7, FP 3, TN 9, FN 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.reports import rescore

TEST_MALIGNANT = [0.95, 0.9, 0.85, 0.8, 0.7, 0.65, 0.55, 0.3]
TEST_BENIGN = [0.6, 0.75, 0.52, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05]
VALIDATION_MALIGNANT = [0.9, 0.7, 0.6, 0.45, 0.35]
VALIDATION_BENIGN = [0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
PREVALENCE = 75 / 379  # the config's default evaluation.prevalence (ISIC-2016 test set)
Z = 1.959963984540054  # the 97.5th percentile of the standard normal
SEPARABILITY = {"synthetic_vs_real_malignant": {"auc": 0.611, "n_first": 31, "n_second": 12, "folds": 5},
                "synthetic_vs_real_benign": {"auc": 0.722, "n_first": 31, "n_second": 40, "folds": 5},
                "real_malignant_vs_real_benign": {"auc": 0.833, "n_first": 12, "n_second": 40, "folds": 5}}


def _arrays(malignant: list[float], benign: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([1] * len(malignant) + [0] * len(benign)), np.array(malignant + benign)


def counts_at(threshold: float) -> dict[str, int]:
    labels, probabilities = _arrays(TEST_MALIGNANT, TEST_BENIGN)
    called = probabilities > threshold
    return {"tp": int(np.sum(called & (labels == 1))), "fn": int(np.sum(~called & (labels == 1))),
            "fp": int(np.sum(called & (labels == 0))), "tn": int(np.sum(~called & (labels == 0)))}


def wilson(successes: int, trials: int) -> tuple[float, float]:
    share = successes / trials
    centre = (share + Z * Z / (2 * trials)) / (1 + Z * Z / trials)
    half = Z * math.sqrt(share * (1 - share) / trials + Z * Z / (4 * trials * trials)) / (1 + Z * Z / trials)
    return centre - half, centre + half


def percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def interval(successes: int, trials: int) -> str:
    low, high = wilson(successes, trials)
    return f" [{100 * low:.1f}, {100 * high:.1f}]"


def figures_text(counts: dict[str, int], with_intervals: bool) -> dict[str, str]:
    """``sensitivity`` ... ``npv`` as the card writes them, from the counts alone."""
    tp, fn, fp, tn = counts["tp"], counts["fn"], counts["fp"], counts["tn"]
    return {
        "sensitivity": percent(tp / (tp + fn)) + (interval(tp, tp + fn) if with_intervals else ""),
        "specificity": percent(tn / (tn + fp)) + (interval(tn, tn + fp) if with_intervals else ""),
        "ppv": percent(tp / (tp + fp)),
        "npv": percent(tn / (tn + fn)),
    }


def at_prevalence(counts: dict[str, int], prevalence: float) -> tuple[float, float]:
    """(PPV, NPV) by Bayes' rule from the counts' sensitivity and specificity."""
    sensitivity = counts["tp"] / (counts["tp"] + counts["fn"])
    specificity = counts["tn"] / (counts["tn"] + counts["fp"])
    ppv = sensitivity * prevalence / (sensitivity * prevalence + (1 - specificity) * (1 - prevalence))
    npv = specificity * (1 - prevalence) / (specificity * (1 - prevalence) + (1 - sensitivity) * prevalence)
    return ppv, npv


def _write_predictions(path: Path, malignant: list[float], benign: list[float], prefix: str) -> None:
    labels, probabilities = _arrays(malignant, benign)
    rows = [f"{prefix}_{index:04d},{label},{probability:.8f}" for index, (label, probability) in
            enumerate(zip(labels, probabilities))]
    path.write_text("image,label,prob_malignant\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    folder = tmp_path_factory.mktemp("card") / "run"
    config = config_module.load_config(None, ["evaluation.bootstrap_samples=100", "classifier.weights=hed",
                                              f"data.root={folder.parent / 'no-data'}"])
    run = runs.Run.create(folder, config, "train-classifier")
    run.update_status(state="done")
    _write_predictions(folder / layout.VALIDATION_PREDICTIONS_FILE, VALIDATION_MALIGNANT, VALIDATION_BENIGN, "val")
    _write_predictions(folder / layout.PREDICTIONS_FILE, TEST_MALIGNANT, TEST_BENIGN, "ISIC")
    runs.atomic_write_json(folder / layout.SEPARABILITY_FILE, SEPARABILITY)
    rescore.rescore_run(folder)
    return (folder / layout.MODEL_CARD_FILE).read_text(), json.loads((folder / layout.METRICS_FILE).read_text())


def _line(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(start)]
    assert len(found) == 1, f"expected one line starting {start!r}, found {found}"
    return found[0]


def test_the_arrays_tell_every_swapped_pair_apart() -> None:
    assert counts_at(0.5) == {"tp": 7, "fn": 1, "fp": 3, "tn": 9}


def test_the_figures_at_the_threshold_are_under_their_own_names(card: tuple[str, dict]) -> None:
    text, _ = card
    figures = figures_text(counts_at(0.5), with_intervals=True)
    line = _line(text, "- At threshold 0.5 ")
    assert (f"sensitivity {figures['sensitivity']}, specificity {figures['specificity']}, PPV {figures['ppv']}, "
            f"NPV {figures['npv']}; TP 7, FP 3, TN 9, FN 1") in line
    assert _line(text, "- Test images:").startswith("- Test images: 20 (8 malignant)")
    labels, probabilities = _arrays(TEST_MALIGNANT, TEST_BENIGN)
    pairs = [(1.0 if m > b else 0.5 if m == b else 0.0) for m in TEST_MALIGNANT for b in TEST_BENIGN]
    assert _line(text, "- AUC:").startswith(f"- AUC: {percent(np.mean(pairs))} [")


def test_the_clinicians_summary_counts_the_missed_melanomas(card: tuple[str, dict]) -> None:
    text, report = card
    low, high = wilson(1, 8)  # 1 of 8 melanomas missed
    assert (f"missed 1 of the 8 melanomas in the test images (12 %, 95 % CI {100 * low:.0f}-{100 * high:.0f} %) "
            "and called 3 of 12 benign lesions malignant.") in text
    operating = report["operating_point"]["threshold"]
    counts = counts_at(operating)
    assert (f"At the lower threshold chosen on the validation images ({operating:.3f}) it missed {counts['fn']} of 8 "
            f"and raised {counts['fp']} false alarms among 12 benign lesions.") in text


def test_the_operating_and_triage_points_are_under_their_own_names(card: tuple[str, dict]) -> None:
    text, report = card
    operating = report["operating_point"]["threshold"]
    figures = figures_text(counts_at(operating), with_intervals=False)
    assert (f"- Operating threshold {operating:.3f}, chosen on the validation split for sensitivity >= 0.8: test "
            f"sensitivity {figures['sensitivity']}, specificity {figures['specificity']}") == _line(text, "- Operating threshold")
    for name, title in (("rule_out", "Rule-out"), ("balanced", "Balanced (Youden)"), ("rule_in", "Rule-in")):
        threshold = report["operating_points"][name]["threshold"]
        counts = counts_at(threshold)
        figures = figures_text(counts, with_intervals=True)
        ppv, npv = at_prevalence(counts, PREVALENCE)
        line = _line(text, f"- {title} threshold {threshold:.3f}")
        assert (f"test sensitivity {figures['sensitivity']}, specificity {figures['specificity']}, NPV {figures['npv']}, "
                f"PPV {figures['ppv']}; at a prevalence of {PREVALENCE:.1%}: NPV {percent(npv)}, PPV {percent(ppv)}") in line, name
    target = {"rule_out": "validation sensitivity >= 0.95", "rule_in": "validation specificity >= 0.95"}
    for name, words in target.items():
        assert words in _line(text, f"- {'Rule-out' if name == 'rule_out' else 'Rule-in'} threshold")


def test_the_predictive_values_at_the_stated_prevalence(card: tuple[str, dict]) -> None:
    text, _ = card
    ppv, npv = at_prevalence(counts_at(0.5), PREVALENCE)
    assert _line(text, "- At a stated prevalence") == (
        f"- At a stated prevalence of {PREVALENCE:.1%} (evaluation.prevalence): PPV {percent(ppv)}, NPV {percent(npv)} "
        "(observed on the test images, prevalence 40.0 %: PPV 70.0 %, NPV 90.0 %)")


def test_the_data_counts_and_calibration_come_from_the_prediction_files(card: tuple[str, dict]) -> None:
    text, _ = card
    assert "- Validation: 12 (7 benign, 5 malignant; prevalence 41.7%)" in text
    assert "- Test: 20 (12 benign, 8 malignant; prevalence 40.0%)" in text
    labels, probabilities = _arrays(TEST_MALIGNANT, TEST_BENIGN)
    brier = np.mean((probabilities - labels) ** 2)
    ece = sum(abs(labels[(probabilities >= k / 10) & (probabilities < (k + 1) / 10)].sum()
                  - probabilities[(probabilities >= k / 10) & (probabilities < (k + 1) / 10)].sum())
              for k in range(10)) / labels.size
    raw = _line(text, "- Raw probabilities:")
    assert raw.startswith(f"- Raw probabilities: Brier {brier:.3f} [") and f"ECE (10 bins) {ece:.3f} [" in raw


def test_each_domain_gap_pair_carries_its_own_figures(card: tuple[str, dict]) -> None:
    text, _ = card
    for pair, figures in SEPARABILITY.items():
        assert (f"- Domain gap, {pair.replace('_', ' ')}: AUC {figures['auc']:.3f} ({figures['n_first']} vs "
                f"{figures['n_second']} images; 0.5 = indistinguishable)") in text
