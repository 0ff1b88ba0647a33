"""Predictive values at a stated prevalence (Bayes' rule on sensitivity and specificity).

PPV and NPV depend on how common melanoma is among the images scored: the bundled sample's test
part is 53 % malignant, ISIC-2016's test set 19.8 % (75 of 379). At prevalence pi:

    PPV(pi) = sens pi / (sens pi + (1 - spec)(1 - pi))
    NPV(pi) = spec (1 - pi) / (spec (1 - pi) + (1 - sens) pi)
"""

from __future__ import annotations

import math
from typing import Any

ISIC_2016_TEST_PREVALENCE = 75 / 379  # the paper's test set: 75 melanomas of 379 lesions


def predictive_values(sensitivity: float, specificity: float, prevalence: float) -> tuple[float, float]:
    """(PPV, NPV) at ``prevalence`` in (0, 1); nan where a denominator is zero or an input is missing."""
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be in (0, 1), got {prevalence}")
    if sensitivity is None or specificity is None or not (math.isfinite(sensitivity) and math.isfinite(specificity)):
        return math.nan, math.nan
    true_positive = sensitivity * prevalence
    false_positive = (1 - specificity) * (1 - prevalence)
    true_negative = specificity * (1 - prevalence)
    false_negative = (1 - sensitivity) * prevalence
    ppv = true_positive / (true_positive + false_positive) if true_positive + false_positive > 0 else math.nan
    npv = true_negative / (true_negative + false_negative) if true_negative + false_negative > 0 else math.nan
    return ppv, npv


def adjusted(figures: dict[str, Any], prevalence: float) -> dict[str, Any]:
    """The ``prevalence_adjusted`` block for figures holding ``sensitivity``, ``specificity``, ``ppv``,
    ``npv``, ``n`` and ``n_malignant`` (observed on the test images)."""
    ppv, npv = predictive_values(figures.get("sensitivity"), figures.get("specificity"), prevalence)
    observed = figures["n_malignant"] / figures["n"] if figures.get("n") else None
    return {
        "prevalence": prevalence,
        "ppv": ppv,
        "npv": npv,
        "observed_prevalence": observed,
        "observed_ppv": figures.get("ppv"),
        "observed_npv": figures.get("npv"),
        "note": (f"PPV and NPV recomputed by Bayes' rule at a stated prevalence of {prevalence:.1%} (evaluation.prevalence) "
                 "from this threshold's sensitivity and specificity; observed_* are on the test images as scored"
                 + ("" if observed is None else f" (prevalence {observed:.1%})") + "."),
    }
