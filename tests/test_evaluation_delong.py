"""DeLong's test, Holm's adjustment and McNemar's test against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sklearn_metrics

from melanet.evaluation import delong, paired


def slow_delong(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) written out: the O(m n) kernel psi over every malignant/benign pair."""
    positive = scores[:, labels == 1]
    negative = scores[:, labels == 0]
    m, n = positive.shape[1], negative.shape[1]
    count = scores.shape[0]
    v10 = np.zeros((count, m))
    v01 = np.zeros((count, n))
    for k in range(count):
        for i in range(m):
            for j in range(n):
                psi = 1.0 if positive[k, i] > negative[k, j] else 0.5 if positive[k, i] == negative[k, j] else 0.0
                v10[k, i] += psi / n
                v01[k, j] += psi / m
    aucs = v10.mean(axis=1)
    s10 = np.array([[np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1) for b in range(count)]
                    for a in range(count)])
    s01 = np.array([[np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1) for b in range(count)]
                    for a in range(count)])
    return aucs, s10 / m + s01 / n


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each row of (B, N) ``scores`` with row labels (B, N)."""
    ranks = stats.rankdata(scores, axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    return ((ranks * labels).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)


def tied_arrays() -> tuple[np.ndarray, np.ndarray]:
    """30 images, 3 scorers rounded to one decimal: many ties within and across classes."""
    generator = np.random.default_rng(7)
    labels = np.array([0] * 18 + [1] * 12)
    base = generator.normal(size=labels.size) + 1.2 * labels
    scores = np.vstack([
        np.round(1 / (1 + np.exp(-base)), 1),
        np.round(1 / (1 + np.exp(-(base + generator.normal(scale=0.8, size=labels.size)))), 1),
        np.round(generator.uniform(size=labels.size), 1),
    ])
    return labels, scores


def test_fast_delong_equals_the_slow_structural_components_with_ties() -> None:
    labels, scores = tied_arrays()
    assert len(np.unique(scores[0])) < 12  # the arrays really are full of ties
    expected_aucs, expected_covariance = slow_delong(labels, scores)
    aucs, covariance = delong.auc_covariance(labels, scores)
    np.testing.assert_allclose(aucs, expected_aucs, atol=1e-12)
    np.testing.assert_allclose(covariance, expected_covariance, atol=1e-12)
    # each side's components average to the AUC (the benign side's would drift unseen by a covariance)
    _, components_malignant, components_benign = delong.structural_components(labels, scores)
    np.testing.assert_allclose(components_malignant.mean(axis=1), expected_aucs, atol=1e-12)
    np.testing.assert_allclose(components_benign.mean(axis=1), expected_aucs, atol=1e-12)
    for k in range(3):
        assert aucs[k] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores[k]))
    result = delong.paired_difference(aucs, covariance, 0, 2)
    variance = expected_covariance[0, 0] + expected_covariance[2, 2] - 2 * expected_covariance[0, 2]
    z = (expected_aucs[0] - expected_aucs[2]) / math.sqrt(variance)
    assert result["p"] == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert result["ci_high"] - result["delta_auc"] == pytest.approx(1.959964 * math.sqrt(variance), rel=1e-5)


def test_delong_standard_error_matches_a_paired_bootstrap() -> None:
    """DeLong's SE of the AUC difference agrees with resampling images (both models together) to 0.01."""
    generator = np.random.default_rng(3)
    labels = np.array([0] * 150 + [1] * 100)
    signal = generator.normal(size=labels.size)
    first = signal + 1.0 * labels + generator.normal(scale=0.7, size=labels.size)
    second = signal + 0.7 * labels + generator.normal(scale=0.7, size=labels.size)
    result = delong.delong_test(labels, first, second)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    draws = np.concatenate([generator.choice(positives, (4000, positives.size)),
                            generator.choice(negatives, (4000, negatives.size))], axis=1)
    draw_labels = labels[draws]
    assert sklearn_metrics.roc_auc_score(draw_labels[0], first[draws[0]]) == pytest.approx(
        rank_auc(draw_labels, first[draws])[0])
    differences = rank_auc(draw_labels, first[draws]) - rank_auc(draw_labels, second[draws])
    assert result["standard_error"] == pytest.approx(differences.std(ddof=1), abs=0.01)
    assert result["ci_low"] == pytest.approx(np.percentile(differences, 2.5), abs=0.01)
    assert result["ci_high"] == pytest.approx(np.percentile(differences, 97.5), abs=0.01)
    # paired: the shared signal makes the difference far tighter than two independent AUCs would be
    _, covariance = delong.auc_covariance(labels, np.vstack([first, second]))
    assert result["standard_error"] < 0.8 * math.sqrt(covariance[0, 0] + covariance[1, 1])


def test_identical_scorers_give_p_one_and_bad_input_is_refused() -> None:
    labels, scores = tied_arrays()
    result = delong.delong_test(labels, scores[0], scores[0])
    assert result["delta_auc"] == 0 and result["p"] == 1.0
    with pytest.raises(ValueError, match="at least one malignant and one benign"):
        delong.delong_test(np.zeros(5, dtype=int), np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match=r"scores must be \(K, 30\)"):
        delong.auc_covariance(labels, scores[:, :10])


def test_holm_on_a_textbook_example() -> None:
    """Four p-values: sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> 0.06 (monotone)."""
    assert paired.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert paired.holm([0.2, 0.5, 0.9]) == pytest.approx([0.6, 1.0, 1.0])  # capped at 1
    assert paired.holm([0.27]) == pytest.approx([0.27])
    with pytest.raises(ValueError):
        paired.holm([0.5, 1.2])


def test_mcnemar_on_a_hand_made_table() -> None:
    """Both right 10, a only 8, b only 2, both wrong 5: p = 2 P(Bin(10, 1/2) <= 2) = 2 * 56/1024."""
    correct_a = [1] * 10 + [1] * 8 + [0] * 2 + [0] * 5
    correct_b = [1] * 10 + [0] * 8 + [1] * 2 + [0] * 5
    result = paired.mcnemar(correct_a, correct_b)
    assert (result["both_right"], result["a_only"], result["b_only"], result["both_wrong"]) == (10, 8, 2, 5)
    assert result["p"] == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert paired.mcnemar([1, 0, 1], [1, 0, 1])["p"] == 1.0
    assert paired.mcnemar([1, 1, 1, 0], [0, 0, 0, 1])["p"] == pytest.approx(2 * 5 / 16)  # a 3, b 1
