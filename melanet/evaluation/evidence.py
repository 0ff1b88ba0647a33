"""What ``metrics.json`` carries beyond Table 1: calibration and predictive values at a stated prevalence.

``add_to_report`` adds to a ``metrics.full_report`` mapping:

- ``brier``, ``ece``: of the raw (as predicted) test probabilities, top level;
- ``calibration``: ``bins``, ``raw`` {brier, ece, confidence_intervals, reliability}, ``method``,
  ``parameters``, ``fitted_on``, ``calibrated`` (the same figures after the map fitted on the
  validation predictions, plus ``auc``, unchanged by a monotone map), see
  :mod:`melanet.evaluation.calibration`;
- ``prevalence_adjusted``: PPV/NPV at ``evaluation.prevalence`` beside the observed ones, at the
  threshold and (when there is one) at the operating point, see :mod:`melanet.evaluation.prevalence`;
- ``operating_points``: the triage thresholds rule_out / balanced / rule_in chosen on the validation
  predictions and scored on the test images, see :mod:`melanet.evaluation.operating_points`.

It needs only labels and probabilities, so it serves ``evaluate`` and ``evaluate --from-predictions``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from melanet import config as config_module
from melanet.evaluation import calibration, metrics, operating_points, prevalence


def add_to_report(
    report: dict[str, Any],
    labels: np.ndarray,
    probabilities: np.ndarray,
    evaluation_config: config_module.EvaluationConfig,
    seed: int,
    validation_labels: np.ndarray | None = None,
    validation_probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Add ``brier``, ``ece``, ``calibration``, ``prevalence_adjusted`` and ``operating_points`` to ``report``
    (returned, JSON-safe).

    ``labels`` (N,) in {0, 1}, ``probabilities`` (N,) in [0, 1] on the test images; the validation
    arrays (M,) only fit the calibration map and choose the operating points' thresholds.
    """
    block = calibration.calibration_report(
        labels, probabilities, method=evaluation_config.calibration,
        validation_labels=validation_labels, validation_probabilities=validation_probabilities,
        samples=evaluation_config.bootstrap_samples, confidence=evaluation_config.confidence, seed=seed,
    )
    if block["calibrated"] is not None:
        calibrated_probabilities = calibration.apply(block["parameters"], probabilities)
        block["calibrated"]["auc"] = metrics.auc(labels, calibrated_probabilities)
    report["brier"] = block["raw"]["brier"]
    report["ece"] = block["raw"]["ece"]
    report["calibration"] = block
    adjusted = {"at_threshold": prevalence.adjusted(report, evaluation_config.prevalence)}
    operating = report.get("operating_point") or {}
    if operating.get("available"):
        adjusted["at_operating_point"] = prevalence.adjusted(operating, evaluation_config.prevalence)
    report["prevalence_adjusted"] = adjusted
    report["operating_points"] = operating_points.report(
        labels, probabilities, validation_labels, validation_probabilities,
        rule_out_sensitivity=evaluation_config.rule_out_sensitivity,
        rule_in_specificity=evaluation_config.rule_in_specificity,
        confidence=evaluation_config.confidence, stated_prevalence=evaluation_config.prevalence,
    )
    return metrics._json_safe(report)  # the package's one nan -> null rule
