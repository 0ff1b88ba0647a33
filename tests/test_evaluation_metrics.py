"""Metrics against scikit-learn, the official ISIC scorer and hand-computed values."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from sklearn import metrics as sklearn_metrics

from melanet.evaluation import metrics

# 12 benign, 8 malignant; one score exactly 0.5 (a benign one) to pin the "> threshold" rule,
# and tied scores across classes to exercise mid-rank AUC.
LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
PROBABILITIES = np.array(
    [0.05, 0.10, 0.20, 0.20, 0.30, 0.35, 0.40, 0.50, 0.55, 0.62, 0.70, 0.15,
     0.20, 0.45, 0.60, 0.62, 0.80, 0.85, 0.90, 0.99]
)


def official_scores(labels: np.ndarray, probabilities: np.ndarray) -> pd.Series:
    """The ISIC scorer's per-category figures for 'malignant' (pandas-3-safe path, see FACTS.md)."""
    index = pd.Index([f"ISIC_{number:07d}" for number in range(labels.size)], name="image")
    truth = pd.DataFrame({"benign": 1.0 - labels, "malignant": labels.astype(float)}, index=index)
    predictions = pd.DataFrame({"benign": 1.0 - probabilities, "malignant": probabilities}, index=index)
    weights = pd.DataFrame({"score_weight": 1.0, "validation_weight": 1.0}, index=index)
    with warnings.catch_warnings():  # the scorer uses pandas' deprecated inplace rename
        warnings.simplefilter("ignore")
        score = ClassificationScore(truth, predictions, weights, ClassificationMetric.AUC)
    return score.per_category.loc["malignant"]


def test_counts_by_hand() -> None:
    counts = metrics.confusion_counts(LABELS, PROBABILITIES, 0.5)
    # malignant > 0.5: 0.60 0.62 0.80 0.85 0.90 0.99 -> TP 6, FN 2 (0.20, 0.45)
    # benign > 0.5: 0.55 0.62 0.70 -> FP 3 (0.50 itself is not above 0.5), TN 9
    assert counts == {"tp": 6, "fp": 3, "tn": 9, "fn": 2}
    figures = metrics.rates(counts)
    assert figures["sensitivity"] == pytest.approx(6 / 8)
    assert figures["specificity"] == pytest.approx(9 / 12)
    assert figures["ppv"] == pytest.approx(6 / 9)
    assert figures["npv"] == pytest.approx(9 / 11)
    assert figures["f1"] == pytest.approx(12 / 17)
    assert figures["balanced_accuracy"] == pytest.approx((6 / 8 + 9 / 12) / 2)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62, 0.7])
def test_against_scikit_learn(threshold: float) -> None:
    figures = metrics.classification_metrics(LABELS, PROBABILITIES, threshold)
    predicted = (PROBABILITIES > threshold).astype(int)
    tn, fp, fn, tp = sklearn_metrics.confusion_matrix(LABELS, predicted, labels=[0, 1]).ravel()
    assert (figures["tp"], figures["fp"], figures["tn"], figures["fn"]) == (tp, fp, tn, fn)
    assert figures["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(LABELS, PROBABILITIES))
    assert figures["sensitivity"] == pytest.approx(sklearn_metrics.recall_score(LABELS, predicted))
    assert figures["ppv"] == pytest.approx(sklearn_metrics.precision_score(LABELS, predicted))
    assert figures["f1"] == pytest.approx(sklearn_metrics.f1_score(LABELS, predicted))
    assert figures["balanced_accuracy"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(LABELS, predicted))


def test_against_official_isic_scorer() -> None:
    official = official_scores(LABELS, PROBABILITIES)
    figures = metrics.classification_metrics(LABELS, PROBABILITIES, 0.5)
    for name in ("auc", "sensitivity", "specificity", "ppv", "npv"):
        assert figures[name] == pytest.approx(float(official[name]), abs=1e-12), name


def test_against_official_isic_scorer_random_arrays() -> None:
    generator = np.random.default_rng(7)
    labels = (generator.random(379) < 75 / 379).astype(int)
    # coarse rounding gives many ties, including exact 0.5 values
    probabilities = np.round(np.clip(generator.normal(0.35 + 0.3 * labels, 0.2), 0, 1), 1)
    assert np.any(probabilities == 0.5)
    official = official_scores(labels, probabilities)
    figures = metrics.classification_metrics(labels, probabilities, 0.5)
    for name in ("auc", "sensitivity", "specificity"):
        assert figures[name] == pytest.approx(float(official[name]), abs=1e-12), name


def test_wilson_interval_hand_computed() -> None:
    # 8 of 10 at 95 %: z = 1.959964; centre = (0.8 + z^2/20) / (1 + z^2/10)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    low, high = metrics.wilson_interval(8, 10)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # textbook value
    assert metrics.wilson_interval(0, 10)[0] == 0.0
    assert metrics.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert metrics.wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(value) for value in metrics.wilson_interval(0, 0))
    wider = metrics.wilson_interval(8, 10, confidence=0.99)
    assert wider[0] < low and wider[1] > high
    with pytest.raises(ValueError):
        metrics.wilson_interval(11, 10)


def test_bootstrap_auc_interval_is_seeded_and_brackets_auc() -> None:
    first = metrics.bootstrap_auc_interval(LABELS, PROBABILITIES, samples=500, seed=3)
    second = metrics.bootstrap_auc_interval(LABELS, PROBABILITIES, samples=500, seed=3)
    other = metrics.bootstrap_auc_interval(LABELS, PROBABILITIES, samples=500, seed=4)
    assert first == second
    assert first != other
    value = metrics.auc(LABELS, PROBABILITIES)
    assert 0 <= first[0] < value < first[1] <= 1


def test_bootstrap_rank_auc_equals_scikit_learn_on_each_resample() -> None:
    generator = np.random.default_rng(0)
    labels = np.tile(LABELS, (5, 1))
    scores = np.round(generator.random((5, LABELS.size)), 1)
    expected = [sklearn_metrics.roc_auc_score(row_labels, row) for row_labels, row in zip(labels, scores)]
    assert metrics._rank_auc(labels, scores) == pytest.approx(expected)


def test_select_threshold_reaches_target_on_validation() -> None:
    selection = metrics.select_threshold(LABELS, PROBABILITIES, target_sensitivity=0.75)
    # malignant scores sorted: .20 .45 .60 .62 .80 .85 .90 .99; 6 of 8 above needs threshold < .60;
    # the highest such candidate is halfway between .60 and the next lower distinct score .55
    assert selection["threshold"] == pytest.approx(0.575)
    assert selection["sensitivity"] == pytest.approx(0.75)
    assert selection["specificity"] == pytest.approx(10 / 12)  # benign .62 and .70 stay above
    full = metrics.select_threshold(LABELS, PROBABILITIES, target_sensitivity=1.0)
    assert full["threshold"] == pytest.approx(0.175)  # between .15 and .20
    assert full["sensitivity"] == 1.0
    with pytest.raises(ValueError, match="no malignant"):
        metrics.select_threshold(np.zeros(4, int), np.full(4, 0.3), 0.8)


def test_one_class_gives_nan_auc_not_a_crash() -> None:
    labels = np.zeros(5, int)
    figures = metrics.classification_metrics(labels, np.linspace(0, 1, 5))
    assert math.isnan(figures["auc"]) and math.isnan(figures["sensitivity"])
    report = metrics.full_report(labels, np.linspace(0, 1, 5), bootstrap_samples=10)
    assert report["auc"] is None and report["confidence_intervals"]["auc"]["low"] is None
    json.dumps(report, allow_nan=False)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        metrics.classification_metrics([0, 1], [0.2])
    with pytest.raises(ValueError, match="0 \\(benign\\) or 1"):
        metrics.classification_metrics([0, 2], [0.2, 0.4])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.classification_metrics([0, 1], [0.2, 1.4])


def test_full_report_layout_and_paper_compatibility() -> None:
    report = metrics.full_report(
        LABELS, PROBABILITIES, bootstrap_samples=200, seed=1,
        validation_labels=LABELS, validation_probabilities=PROBABILITIES, target_sensitivity=1.0,
    )
    json.dumps(report, allow_nan=False)
    for key in ("auc", "sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy",
                "tp", "fp", "tn", "fn", "n", "threshold"):
        assert key in report
    assert report["threshold"] == 0.5 and report["n"] == 20
    intervals = report["confidence_intervals"]
    assert intervals["sensitivity"]["low"] <= report["sensitivity"] <= intervals["sensitivity"]["high"]
    assert intervals["auc"]["low"] <= report["auc"] <= intervals["auc"]["high"]
    assert len(report["roc"]["fpr"]) == len(report["roc"]["tpr"]) == len(report["roc"]["thresholds"])
    assert report["roc"]["thresholds"][0] is None and report["roc"]["tpr"][-1] == 1.0
    operating = report["operating_point"]
    assert operating["available"] and operating["threshold"] == pytest.approx(0.175)
    assert operating["sensitivity"] == 1.0 and operating["fn"] == 0
    compatibility = report["paper_compatibility"]
    assert compatibility["paper_sensitivity_is_npv"] == pytest.approx(9 / 11) == report["npv"]
    assert "TN/(TN+FN)" in compatibility["note"]
    assert "sensitivity" not in compatibility  # never under the bare name
    no_validation = metrics.full_report(LABELS, PROBABILITIES, bootstrap_samples=10)
    assert no_validation["operating_point"]["available"] is False


# A validation split that differs from the test arrays above: a threshold chosen on the test set,
# or validation figures reported as test figures, would show.
VALIDATION_LABELS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
VALIDATION_PROBABILITIES = np.array([0.02, 0.08, 0.12, 0.25, 0.33, 0.41, 0.47, 0.71, 0.38, 0.52, 0.66, 0.74, 0.93])


def _stratified_bootstrap_aucs(labels: np.ndarray, scores: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """An independent draw of the bootstrap distribution (resampling within each class)."""
    generator = np.random.default_rng(seed)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    drawn = np.concatenate([positives[generator.integers(0, positives.size, (samples, positives.size))],
                            negatives[generator.integers(0, negatives.size, (samples, negatives.size))]], axis=1)
    row_labels = np.concatenate([np.ones(positives.size), np.zeros(negatives.size)])
    return metrics._rank_auc(np.broadcast_to(row_labels, drawn.shape), drawn)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_bootstrap_auc_interval_holds_its_level_of_the_bootstrap_distribution(confidence: float) -> None:
    generator = np.random.default_rng(11)
    labels = np.array([1] * 40 + [0] * 60)
    scores = np.clip(generator.normal(0.4 + 0.2 * labels, 0.2), 0, 1)
    low, high = metrics.bootstrap_auc_interval(labels, scores, samples=4000, confidence=confidence, seed=0)
    independent = _stratified_bootstrap_aucs(labels, scores, 8000, seed=99)
    inside = np.mean((independent >= low) & (independent <= high))
    assert inside == pytest.approx(confidence, abs=0.012)
    # and the two tails are equal: a percentile interval, not a one-sided one
    assert np.mean(independent < low) == pytest.approx((1 - confidence) / 2, abs=0.01)


def test_bootstrap_auc_interval_covers_the_true_auc_on_simulated_data() -> None:
    # scores N(0, 1) benign vs N(1.2, 1) malignant: true AUC = Phi(1.2 / sqrt(2))
    from scipy import stats

    true_auc = stats.norm.cdf(1.2 / math.sqrt(2))
    generator = np.random.default_rng(5)
    labels = np.array([1] * 60 + [0] * 90)
    covered, widths = 0, []
    trials = 300
    for trial in range(trials):
        scores = stats.norm.cdf(generator.normal(1.2 * labels, 1.0))  # monotone: same AUC, inside [0, 1]
        low, high = metrics.bootstrap_auc_interval(labels, scores, samples=400, seed=trial)
        covered += low <= true_auc <= high
        widths.append(high - low)
    # a percentile bootstrap at these sizes covers about 93-95 %; a 90 % interval would cover ~88 %
    assert 0.915 <= covered / trials <= 0.98, covered / trials
    # the width agrees with the normal theory (Hanley-McNeil) 95 % width within 15 %
    q1, q2 = true_auc / (2 - true_auc), 2 * true_auc**2 / (1 + true_auc)
    variance = (true_auc * (1 - true_auc) + 59 * (q1 - true_auc**2) + 89 * (q2 - true_auc**2)) / (60 * 90)
    assert np.mean(widths) == pytest.approx(2 * 1.959964 * math.sqrt(variance), rel=0.15)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_wilson_interval_has_its_level_on_average(confidence: float) -> None:
    # exact coverage: P(p inside the interval of k successes) summed over k ~ Binomial(n, p)
    from scipy import stats

    trials = 40
    intervals = [metrics.wilson_interval(successes, trials, confidence) for successes in range(trials + 1)]
    coverages = []
    for proportion in np.linspace(0.05, 0.95, 91):
        probabilities = stats.binom.pmf(np.arange(trials + 1), trials, proportion)
        coverages.append(sum(p for p, (low, high) in zip(probabilities, intervals) if low <= proportion <= high))
    assert np.mean(coverages) == pytest.approx(confidence, abs=0.01)


def test_each_proportion_gets_the_wilson_interval_of_its_own_counts() -> None:
    counts = {"tp": 6, "fp": 5, "tn": 9, "fn": 2}  # sensitivity 6/8, specificity 9/14, ppv 6/11, npv 9/11
    intervals = metrics.proportion_intervals(counts)
    expected = {"sensitivity": (6, 8), "specificity": (9, 14), "ppv": (6, 11), "npv": (9, 11), "accuracy": (15, 22)}
    for name, (successes, trials) in expected.items():
        low, high = metrics.wilson_interval(successes, trials)
        assert (intervals[name]["low"], intervals[name]["high"]) == pytest.approx((low, high)), name
    assert len({(value["low"], value["high"]) for value in intervals.values()}) == 5


def test_operating_point_is_chosen_on_validation_and_measured_on_test() -> None:
    report = metrics.full_report(
        LABELS, PROBABILITIES, bootstrap_samples=50, seed=1,
        validation_labels=VALIDATION_LABELS, validation_probabilities=VALIDATION_PROBABILITIES,
        target_sensitivity=0.8,
    )
    on_validation = metrics.select_threshold(VALIDATION_LABELS, VALIDATION_PROBABILITIES, 0.8)
    on_test = metrics.select_threshold(LABELS, PROBABILITIES, 0.8)
    # validation malignant scores .38 .52 .66 .74 .93: 4 of 5 above needs threshold < .52 -> (.47 + .52) / 2
    assert on_validation["threshold"] == pytest.approx(0.495)
    assert on_test["threshold"] != pytest.approx(0.495)
    operating = report["operating_point"]
    assert operating["threshold"] == pytest.approx(0.495)
    assert operating["validation"]["n"] == VALIDATION_LABELS.size
    test_counts = metrics.confusion_counts(LABELS, PROBABILITIES, 0.495)
    assert {key: operating[key] for key in ("tp", "fp", "tn", "fn")} == test_counts
    assert operating["n"] == LABELS.size
    assert operating["sensitivity"] == pytest.approx(test_counts["tp"] / (test_counts["tp"] + test_counts["fn"]))
    low, high = metrics.wilson_interval(test_counts["tn"], test_counts["tn"] + test_counts["fp"])
    assert operating["confidence_intervals"]["specificity"]["low"] == pytest.approx(low)
    assert operating["confidence_intervals"]["specificity"]["high"] == pytest.approx(high)
    # the top-level figures stay at 0.5, with their own Wilson intervals
    top = report["confidence_intervals"]
    assert (top["sensitivity"]["low"], top["sensitivity"]["high"]) == pytest.approx(metrics.wilson_interval(6, 8))
    assert (top["specificity"]["low"], top["specificity"]["high"]) == pytest.approx(metrics.wilson_interval(9, 12))
