"""AUC intervals that never collapse, and the difference of two AUCs on independent image sets.

Newcombe (2006, "Confidence intervals for an effect size measure based on the Mann-Whitney statistic. Part 2:
asymptotic methods and evaluation", Stat Med 25:559-573), Method 5: a score interval, as Wilson's is for a
proportion, on his modified Hanley-McNeil variance

    V(theta) = theta (1 - theta) [1 + N* (1 - theta) / (2 - theta) + N* theta / (1 + theta)] / (m n),
    N* = (m + n) / 2 - 1   (m positive, n negative images),

the interval being every theta with (AUC - theta)^2 <= z^2 V(theta). A perfectly separated set (AUC 1,
DeLong variance 0) gets [lower, 1] with lower < 1. Where a variance is needed and DeLong's is 0, the one the
interval implies, ((high - low) / (2 z))^2, stands in (``variance_source``: ``newcombe``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, stats

from melanet.evaluation import delong


def newcombe_variance(theta: float, malignant: int, benign: int) -> float:
    """Newcombe's (2006) modified Hanley-McNeil variance of an AUC ``theta`` on ``malignant`` x ``benign`` images."""
    star = (malignant + benign) / 2 - 1
    return theta * (1 - theta) * (1 + star * (1 - theta) / (2 - theta) + star * theta / (1 + theta)) / (malignant * benign)


def newcombe_interval(auc: float, malignant: int, benign: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's (2006) Method 5 score interval of an empirical AUC (see the module docstring).

    The limits are the roots of g(theta) = (auc - theta)^2 - z^2 V(theta) on either side of ``auc``;
    g > 0 at 0 and 1 away from ``auc`` (V(0) = V(1) = 0) and g < 0 just beside it, so each side has a root.
    """
    if malignant < 1 or benign < 1 or not 0 <= auc <= 1:
        raise ValueError(f"Newcombe interval needs an AUC in [0, 1] and both classes, got {auc} on "
                         f"{malignant} malignant and {benign} benign")
    z = float(stats.norm.ppf(0.5 + confidence / 2))

    def excess(theta: float) -> float:
        return (auc - theta) ** 2 - z ** 2 * newcombe_variance(theta, malignant, benign)

    step = 1e-9  # beside the estimate, where g < 0 even at AUC 0 or 1 (V grows linearly, the square quadratically)
    low = 0.0 if auc <= 0 else optimize.brentq(excess, 0.0, max(auc - step, 0.0) if auc >= 1 else auc, xtol=1e-14)
    high = 1.0 if auc >= 1 else optimize.brentq(excess, min(auc + step, 1.0) if auc <= 0 else auc, 1.0, xtol=1e-14)
    return float(low), float(high)


def auc_figures(labels: Any, scores: Any, confidence: float = 0.95) -> dict[str, Any]:
    """AUC of ``scores`` (n,) against 0/1 ``labels`` (n,) with the Newcombe interval and a variance
    (DeLong's, or the interval's where DeLong's is 0); None values and a ``reason`` for one class."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    positive, negative = int(labels.sum()), int(labels.size - labels.sum())
    if positive == 0 or negative == 0:
        return {"auc": None, "ci_low": None, "ci_high": None, "variance": None, "n": int(labels.size),
                "n_malignant": positive, "reason": "one class only: no AUC"}
    aucs, covariance = delong.auc_covariance(labels, scores[None, :])
    auc = float(aucs[0])
    low, high = newcombe_interval(auc, positive, negative, confidence)
    variance, source = max(float(covariance[0, 0]), 0.0), "delong"
    if variance <= 0.0:
        variance, source = ((high - low) / (2 * float(stats.norm.ppf(0.5 + confidence / 2)))) ** 2, "newcombe"
    return {"auc": auc, "ci_low": low, "ci_high": high, "variance": variance, "variance_source": source,
            "n": int(labels.size), "n_malignant": positive, "ci_method": "Newcombe (2006) Method 5 score interval"}


def independent_difference(first: dict[str, Any], second: dict[str, Any], confidence: float = 0.95) -> dict[str, Any] | None:
    """``first`` minus ``second`` AUC (each from :func:`auc_figures`, on disjoint image sets): Wald interval
    on var1 + var2 and a two-sided z-test p; None when either has no AUC."""
    if first.get("auc") is None or second.get("auc") is None:
        return None
    delta = first["auc"] - second["auc"]
    se = math.sqrt(first["variance"] + second["variance"])
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = float(2 * stats.norm.sf(abs(delta) / se)) if se > 0 else (1.0 if delta == 0 else 0.0)
    return {"delta": delta, "se": se, "ci_low": delta - z * se, "ci_high": delta + z * se, "p": p,
            "method": "difference of two independent AUCs: z on the sum of their variances (DeLong, Newcombe where 0)"}
