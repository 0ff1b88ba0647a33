"""Predictive values at a stated prevalence (Bayes' rule on sensitivity and specificity).

PPV and NPV depend on how common melanoma is among the images scored: the bundled sample's test
part is 53 % malignant, ISIC-2016's test set 19.8 % (75 of 379). At prevalence pi:

    PPV(pi) = sens pi / (sens pi + (1 - spec)(1 - pi))
    NPV(pi) = spec (1 - pi) / (spec (1 - pi) + (1 - sens) pi)

Their intervals propagate those of sensitivity and specificity (Wilson, or whatever method the figures'
``confidence_intervals`` name) through Bayes' rule by substitution: both PPV and NPV increase with
sensitivity and with specificity, so the lower limit is the rule applied to both lower limits and the upper
limit to both upper limits. The two limits are not reached jointly, so the interval is conservative (its
coverage at least the level of each input interval's, under their independence roughly 0.95^2 or better for
the event that both hold). The prevalence is stated, not estimated: it carries no interval.
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


INTERVAL_METHOD = ("Bayes' rule at the stated prevalence applied to the lower limits of sensitivity and specificity "
                   "(lower limit) and to their upper limits (upper limit); conservative")


def predictive_intervals(sensitivity_interval: tuple[float, float], specificity_interval: tuple[float, float],
                         prevalence: float) -> dict[str, tuple[float, float]]:
    """{"ppv": (low, high), "npv": (low, high)} at ``prevalence`` from (low, high) intervals of sensitivity and
    specificity in [0, 1] (see the module docstring)."""
    low = predictive_values(sensitivity_interval[0], specificity_interval[0], prevalence)
    high = predictive_values(sensitivity_interval[1], specificity_interval[1], prevalence)
    return {"ppv": (low[0], high[0]), "npv": (low[1], high[1])}


def _interval(figures: dict[str, Any], name: str) -> tuple[float, float] | None:
    found = (figures.get("confidence_intervals") or {}).get(name) or {}
    if found.get("low") is None or found.get("high") is None:
        return None
    return float(found["low"]), float(found["high"])


def adjusted(figures: dict[str, Any], prevalence: float) -> dict[str, Any]:
    """The ``prevalence_adjusted`` block for figures holding ``sensitivity``, ``specificity``, ``ppv``,
    ``npv``, ``n`` and ``n_malignant`` (observed on the test images), and where they carry
    ``confidence_intervals`` of sensitivity and specificity, ``ppv_ci``/``npv_ci`` [low, high] and
    ``interval_method``."""
    ppv, npv = predictive_values(figures.get("sensitivity"), figures.get("specificity"), prevalence)
    observed = figures["n_malignant"] / figures["n"] if figures.get("n") else None
    sensitivity_interval, specificity_interval = _interval(figures, "sensitivity"), _interval(figures, "specificity")
    limits: dict[str, Any] = {}
    if sensitivity_interval is not None and specificity_interval is not None:
        found = predictive_intervals(sensitivity_interval, specificity_interval, prevalence)
        limits = {"ppv_ci": list(found["ppv"]), "npv_ci": list(found["npv"]), "interval_method": INTERVAL_METHOD}
    return {
        "prevalence": prevalence,
        "ppv": ppv,
        "npv": npv,
        **limits,
        "observed_prevalence": observed,
        "observed_ppv": figures.get("ppv"),
        "observed_npv": figures.get("npv"),
        "note": (f"PPV and NPV recomputed by Bayes' rule at a stated prevalence of {prevalence:.1%} (evaluation.prevalence) "
                 "from this threshold's sensitivity and specificity; observed_* are on the test images as scored"
                 + ("" if observed is None else f" (prevalence {observed:.1%})") + "."),
    }
