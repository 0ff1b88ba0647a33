"""DeLong's test for correlated ROC curves: AUCs of several scorers on the same images.

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of K AUCs measured on the same
m malignant and n benign images from their *structural components*: for malignant image i,
V10[i] = the fraction of benign images it outranks (ties count one half); for benign image j,
V01[j] = the fraction of malignant images that outrank it. Then

    S = cov(V10) / m + cov(V01) / n        (K, K)

and the difference of two AUCs is approximately normal with variance S_aa + S_bb - 2 S_ab.
The components are computed from mid-ranks (Sun & Xu 2014), O(K N log N) instead of O(K m n):
10,000 images x 4 scorers take milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats


def _validated(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool malignant mask, (K, N) float64 scores) from labels (N,) in {0, 1} and scores (K, N) or (N,)."""
    labels_array = np.asarray(labels)
    scores_array = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if labels_array.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels_array.shape}")
    if scores_array.ndim != 2 or scores_array.shape[1] != labels_array.shape[0]:
        raise ValueError(f"scores must be (K, {labels_array.shape[0]}), got shape {scores_array.shape}")
    if labels_array.size and not np.isin(labels_array, (0, 1)).all():
        raise ValueError("labels must be 0 (benign) or 1 (malignant)")
    if not np.isfinite(scores_array).all():
        raise ValueError("scores contain NaN or infinity")
    malignant = labels_array == 1
    if malignant.all() or not malignant.any():
        raise ValueError("DeLong's test needs at least one malignant and one benign image")
    return malignant, scores_array


def structural_components(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aucs (K,), V10 (K, m) for malignant images, V01 (K, n) for benign images) by mid-ranks.

    ``labels`` (N,) in {0, 1}; ``scores`` (K, N), higher = more malignant. Ties count one half.
    """
    malignant, scores_array = _validated(labels, scores)
    positive = scores_array[:, malignant]
    negative = scores_array[:, ~malignant]
    m, n = positive.shape[1], negative.shape[1]
    combined_ranks = stats.rankdata(np.concatenate([positive, negative], axis=1), axis=1)
    positive_ranks = stats.rankdata(positive, axis=1)
    negative_ranks = stats.rankdata(negative, axis=1)
    # a malignant image's rank among all minus its rank among malignant = benign images it outranks (+ ties/2)
    components_malignant = (combined_ranks[:, :m] - positive_ranks) / n
    # likewise, malignant images outranking a benign image = m - (its rank among all - its rank among benign)
    components_benign = 1.0 - (combined_ranks[:, m:] - negative_ranks) / m
    aucs = components_malignant.mean(axis=1)
    return aucs, components_malignant, components_benign


def auc_covariance(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """(aucs (K,), DeLong covariance (K, K)) of K scorers on the same images."""
    aucs, components_malignant, components_benign = structural_components(labels, scores)
    m, n = components_malignant.shape[1], components_benign.shape[1]
    covariance_malignant = np.atleast_2d(np.cov(components_malignant)) if m > 1 else np.zeros((len(aucs),) * 2)
    covariance_benign = np.atleast_2d(np.cov(components_benign)) if n > 1 else np.zeros((len(aucs),) * 2)
    return aucs, covariance_malignant / m + covariance_benign / n


def paired_difference(
    aucs: np.ndarray, covariance: np.ndarray, first: int, second: int, confidence: float = 0.95
) -> dict[str, float]:
    """AUC[first] - AUC[second] with its normal-theory CI and two-sided p-value from a DeLong covariance.

    Identical scorers (zero variance of the difference) give delta 0 and p = 1.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    delta = float(aucs[first] - aucs[second])
    variance = float(covariance[first, first] + covariance[second, second] - 2 * covariance[first, second])
    standard_error = math.sqrt(max(variance, 0.0))
    z_critical = float(stats.norm.ppf(0.5 + confidence / 2))
    if standard_error <= 1e-15:
        z_value, p_value = 0.0, 1.0 if abs(delta) <= 1e-15 else 0.0
    else:
        z_value = delta / standard_error
        p_value = float(2 * stats.norm.sf(abs(z_value)))
    return {
        "auc_a": float(aucs[first]),
        "auc_b": float(aucs[second]),
        "delta_auc": delta,
        "standard_error": standard_error,
        "ci_low": delta - z_critical * standard_error,
        "ci_high": delta + z_critical * standard_error,
        "z": z_value,
        "p": p_value,
    }


def delong_test(labels: Any, scores_a: Any, scores_b: Any, confidence: float = 0.95) -> dict[str, float]:
    """Two-sided DeLong test of AUC(a) = AUC(b) for scores (N,) of two models on the same images."""
    aucs, covariance = auc_covariance(labels, np.vstack([np.asarray(scores_a), np.asarray(scores_b)]))
    return paired_difference(aucs, covariance, 0, 1, confidence)
