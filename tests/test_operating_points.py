"""Triage operating points (rule-out, balanced, rule-in): chosen on validation only, scored on test.

Expected thresholds come from a brute-force search written here over every threshold that can make a
difference (halfway between sorted distinct validation scores, and beyond both ends), with the package's
decision rule (malignant when p > threshold) written out again in plain Python.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.evaluation import evaluate, operating_points

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def _validation(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.35).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.18), 0, 1).round(3)  # rounded: ties among the scores
    return labels, scores


def _brute_force(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    values = sorted(set(float(score) for score in scores))
    candidates = [values[0] / 2] + [(low + high) / 2 for low, high in zip(values, values[1:])] + [(values[-1] + 1) / 2]
    rows = []
    for threshold in candidates:
        tp = sum(1 for label, score in zip(labels, scores) if label == 1 and score > threshold)
        tn = sum(1 for label, score in zip(labels, scores) if label == 0 and not score > threshold)
        rows.append((threshold, tp / int(labels.sum()), tn / int((labels == 0).sum())))
    best_j = max(sensitivity + specificity - 1 for _, sensitivity, specificity in rows)
    return {
        "rule_out": max(threshold for threshold, sensitivity, _ in rows if sensitivity >= 0.95),
        "rule_in": min(threshold for threshold, _, specificity in rows if specificity >= 0.95),
        "balanced": min(threshold for threshold, sensitivity, specificity in rows
                        if sensitivity + specificity - 1 >= best_j - 1e-12),
    }


def _rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    called = scores > threshold
    return float(called[labels == 1].mean()), float((~called[labels == 0]).mean())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_each_threshold_reproduces_its_target_on_the_validation_predictions(seed: int) -> None:
    validation_labels, validation_scores = _validation(seed)
    test_labels, test_scores = _validation(100 + seed, n=60)
    block = operating_points.report(test_labels, test_scores, validation_labels, validation_scores)
    expected = _brute_force(validation_labels, validation_scores)
    for name in operating_points.NAMES:
        assert block[name]["available"], block[name]
        assert block[name]["threshold"] == pytest.approx(expected[name], abs=1e-12), name
        sensitivity, specificity = _rates(validation_labels, validation_scores, block[name]["threshold"])
        assert block[name]["validation"]["sensitivity"] == pytest.approx(sensitivity)
        assert block[name]["validation"]["specificity"] == pytest.approx(specificity)
    assert _rates(validation_labels, validation_scores, block["rule_out"]["threshold"])[0] >= 0.95
    assert _rates(validation_labels, validation_scores, block["rule_in"]["threshold"])[1] >= 0.95
    # the test figures are those at the validation threshold, counted here again
    for name in operating_points.NAMES:
        sensitivity, specificity = _rates(test_labels, test_scores, block[name]["threshold"])
        assert block[name]["sensitivity"] == pytest.approx(sensitivity)
        assert block[name]["specificity"] == pytest.approx(specificity)
        assert block[name]["n"] == 60 and block[name]["chosen_on"].startswith("validation split")


def test_a_tie_in_youden_goes_to_the_lower_threshold_that_misses_fewer_melanomas() -> None:
    labels, scores = np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    # J = 0.5 at 0.15 (sensitivity 1, specificity 0.5) and at 0.35 (0.5, 1); nowhere higher
    block = operating_points.report(labels, scores, labels, scores)
    assert block["balanced"]["threshold"] == pytest.approx(0.15) == _brute_force(labels, scores)["balanced"]
    assert block["balanced"]["validation"]["youden_j"] == pytest.approx(0.5)


def test_thresholds_are_never_fitted_on_the_test_predictions() -> None:
    validation_labels, validation_scores = _validation(5)
    test_labels, test_scores = _validation(6, n=50)
    first = operating_points.report(test_labels, test_scores, validation_labels, validation_scores)
    shuffled = np.random.default_rng(9).permutation(test_scores)  # same test labels, very different scores
    flipped = 1 - test_labels  # and the other way round: labels swapped
    for labels, scores in ((test_labels, shuffled), (flipped, test_scores), (test_labels[:10], test_scores[:10])):
        other = operating_points.report(labels, scores, validation_labels, validation_scores)
        for name in operating_points.NAMES:
            assert other[name]["threshold"] == first[name]["threshold"], name
            assert other[name]["validation"] == first[name]["validation"], name
    # while the test figures do follow the test predictions
    moved = operating_points.report(flipped, test_scores, validation_labels, validation_scores)
    assert moved["balanced"]["tp"] == first["balanced"]["fp"] and moved["balanced"]["fn"] == first["balanced"]["tn"]


def test_without_validation_predictions_every_point_says_why_and_none_is_chosen_on_test() -> None:
    labels, scores = _validation(1, n=40)
    block = operating_points.report(labels, scores, None, None)
    assert set(block) == set(operating_points.NAMES)
    for entry in block.values():
        assert entry["available"] is False and "validation_predictions.csv" in entry["reason"]
        assert "never chosen on test" in entry["reason"] and "threshold" not in entry
    one_class = operating_points.report(labels, scores, np.zeros(10, int), np.linspace(0.1, 0.9, 10))
    assert not one_class["rule_out"]["available"] and "no malignant image" in one_class["rule_out"]["reason"]
    assert not one_class["balanced"]["available"] and "one class" in one_class["balanced"]["reason"]
    assert one_class["rule_in"]["available"]  # specificity needs only benign images


def _wilson_by_hand(successes: int, trials: int) -> tuple[float, float]:
    p = successes / trials
    centre = (p + Z95**2 / (2 * trials)) / (1 + Z95**2 / trials)
    half = Z95 / (1 + Z95**2 / trials) * math.sqrt(p * (1 - p) / trials + Z95**2 / (4 * trials**2))
    return centre - half, centre + half


def test_wilson_intervals_and_prevalence_adjusted_values_against_hand_formulas() -> None:
    validation_labels, validation_scores = _validation(7)
    test_labels, test_scores = _validation(8, n=70)
    block = operating_points.report(test_labels, test_scores, validation_labels, validation_scores,
                                    stated_prevalence=0.1)
    for name in operating_points.NAMES:
        point = block[name]
        fractions = {"sensitivity": (point["tp"], point["tp"] + point["fn"]),
                     "specificity": (point["tn"], point["tn"] + point["fp"]),
                     "npv": (point["tn"], point["tn"] + point["fn"]), "ppv": (point["tp"], point["tp"] + point["fp"])}
        for key, (successes, trials) in fractions.items():
            if not trials:
                continue
            low, high = _wilson_by_hand(successes, trials)
            assert point["confidence_intervals"][key]["low"] == pytest.approx(max(0.0, low), abs=1e-12), (name, key)
            assert point["confidence_intervals"][key]["high"] == pytest.approx(min(1.0, high), abs=1e-12), (name, key)
            assert point[key] == pytest.approx(successes / trials)
        sensitivity, specificity = point["sensitivity"], point["specificity"]
        adjusted = point["prevalence_adjusted"]
        assert adjusted["prevalence"] == 0.1
        assert adjusted["ppv"] == pytest.approx(sensitivity * 0.1 / (sensitivity * 0.1 + (1 - specificity) * 0.9))
        assert adjusted["npv"] == pytest.approx(specificity * 0.9 / (specificity * 0.9 + (1 - sensitivity) * 0.1))
        assert adjusted["observed_ppv"] == point["ppv"] and adjusted["observed_npv"] == point["npv"]
        # the interval: Bayes' rule on the Wilson limits (both predictive values rise with sens and spec)
        (sens_low, sens_high), (spec_low, spec_high) = (
            (max(0.0, low), min(1.0, high)) for low, high in
            (_wilson_by_hand(point["tp"], point["tp"] + point["fn"]), _wilson_by_hand(point["tn"], point["tn"] + point["fp"])))
        assert adjusted["ppv_ci"] == pytest.approx([sens_low * 0.1 / (sens_low * 0.1 + (1 - spec_low) * 0.9),
                                                    sens_high * 0.1 / (sens_high * 0.1 + (1 - spec_high) * 0.9)])
        assert adjusted["npv_ci"] == pytest.approx([spec_low * 0.9 / (spec_low * 0.9 + (1 - sens_low) * 0.1),
                                                    spec_high * 0.9 / (spec_high * 0.9 + (1 - sens_high) * 0.1)])
        assert adjusted["ppv_ci"][0] <= adjusted["ppv"] <= adjusted["ppv_ci"][1]


def test_the_wilson_interval_covers_at_its_stated_level() -> None:
    from melanet.evaluation import metrics

    rng = np.random.default_rng(0)
    for true_share, trials in ((0.9, 40), (0.5, 25), (0.97, 80)):
        draws = rng.binomial(trials, true_share, 4000)
        covered = [metrics.wilson_interval(int(k), trials)[0] <= true_share <= metrics.wilson_interval(int(k), trials)[1]
                   for k in draws]
        assert 0.92 <= np.mean(covered) <= 0.98, (true_share, trials, np.mean(covered))
        narrower = [metrics.wilson_interval(int(k), trials, 0.5) for k in draws[:500]]
        assert 0.35 <= np.mean([low <= true_share <= high for low, high in narrower]) <= 0.65


def test_metrics_json_of_a_rescored_run_carries_the_points_with_the_validation_file(tmp_path: Path) -> None:
    validation_labels, validation_scores = _validation(3, n=60)
    path = tmp_path / "validation_predictions.csv"
    path.write_text("image,label,prob_malignant\n" + "".join(
        f"v{index},{label},{score}\n" for index, (label, score) in enumerate(zip(validation_labels, validation_scores))))
    test_labels, test_scores = _validation(4, n=30)
    settings = config_module.load_config(overrides=["evaluation.bootstrap_samples=50", "evaluation.prevalence=0.2",
                                                    "evaluation.rule_out_sensitivity=0.9"]).evaluation
    report = evaluate.report_for_predictions(test_labels, test_scores, settings, 0, path)
    points = json.loads(json.dumps(report))["operating_points"]  # JSON-safe as written
    assert list(points) == ["rule_out", "balanced", "rule_in"]
    assert points["rule_out"]["validation"]["file"] == "validation_predictions.csv"
    assert points["rule_out"]["validation"]["target_sensitivity"] == 0.9
    assert points["rule_out"]["prevalence_adjusted"]["prevalence"] == 0.2
    assert points["rule_in"]["validation"]["specificity"] >= 0.95
    without = evaluate.report_for_predictions(test_labels, test_scores, settings, 0, tmp_path / "missing.csv")
    assert all(not entry["available"] for entry in without["operating_points"].values())


@pytest.mark.parametrize("override, key", [
    ("evaluation.rule_out_sensitivity=0", "evaluation.rule_out_sensitivity"),
    ("evaluation.rule_in_specificity=1.5", "evaluation.rule_in_specificity"),
])
def test_a_bad_target_is_a_config_error_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(config_module.ConfigError, match=key):
        config_module.load_config(overrides=[override])
