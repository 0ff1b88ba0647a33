"""Recompute an evaluated run's ``metrics.json`` and ``model_card.md`` from its saved predictions.

``melanet evaluate --run RUN --from-predictions`` needs no model weights and no images: it reads the
run's ``predictions.csv`` (test) and ``validation_predictions.csv`` and writes the figures the
current version computes (calibration, prevalence-adjusted values, ...) with the run's evaluation
settings (or ``--set evaluation.KEY=VALUE`` overrides, recorded in ``evaluation_settings``). The
``data`` and ``model`` blocks of the previous ``metrics.json`` are kept: they describe what was scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet import config as config_module
from melanet.runs import layout, lifecycle, runs
from melanet.evaluation import evaluate, predictions, uncertainty
from melanet.audits import leakage
from melanet.reports import model_card
from melanet.explain import similar_cases

logger = logging.getLogger(__name__)

STAGE = "evaluate"
# Blocks of the previous metrics.json that predictions alone cannot recompute: where the images came from,
# which model, and the duplicate check (image hashes; ``without_duplicates`` is recomputed from it below).
KEPT_BLOCKS = ("data", "model", "evaluated_at", "duplicates_of_training", "duplicates_check", "overlap")


def evaluation_settings(config: config_module.Config, overrides: Sequence[str]) -> config_module.EvaluationConfig:
    """The run's ``evaluation`` section with ``evaluation.KEY=VALUE`` overrides; other sections are refused."""
    for text in overrides:
        if not text.strip().startswith("evaluation."):
            raise config_module.ConfigError(
                f"--set {text}: only evaluation.* settings apply to scores already predicted")
    return config_module.with_overrides(config, overrides).evaluation


def rescore_run(run_path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Rewrite ``metrics.json`` and ``model_card.md`` of an evaluated run from its prediction files."""
    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)  # a GAN run (or any other stage's folder) is refused untouched
    predictions_path = run.path / layout.PREDICTIONS_FILE
    if not predictions_path.is_file():
        raise runs.RunError(f"{run.path}: no {layout.PREDICTIONS_FILE}; --from-predictions needs a run evaluated "
                            f"before (evaluate it with `melanet evaluate --run {run.path}`)")
    config = run.config()
    settings = evaluation_settings(config, overrides)
    ids, labels, probabilities = predictions.read_predictions(predictions_path)
    spread = uncertainty.read_columns(predictions_path)  # None for a predictions.csv without the 8 views
    metrics_path = run.path / layout.METRICS_FILE
    previous = runs.read_json(metrics_path) if metrics_path.is_file() else {}
    data_root = (previous.get("data") or {}).get("root", config.data.root)
    with lifecycle.step_session(run, STAGE, data=data_root, split="test", from_predictions=True) as entry:
        report = evaluate.report_for_predictions(labels, probabilities, settings, config.seed,
                                                 run.path / layout.VALIDATION_PREDICTIONS_FILE, spread)
        uncertainty.refresh_flags(predictions_path, settings.uncertain_spread)  # its flag column follows the setting
        for key in KEPT_BLOCKS:
            if key in previous:
                report[key] = previous[key]
        leaked = report.get("duplicates_of_training")
        if isinstance(leaked, list):  # the figures without the duplicates follow the new settings too
            report["without_duplicates"] = leakage.metrics_without(
                labels, probabilities, leaked, list(ids), threshold=report["threshold"],
                confidence=settings.confidence, bootstrap_samples=settings.bootstrap_samples, seed=config.seed)
        report["rescored_at"] = runs.now_iso()
        report["rescored_from"] = layout.PREDICTIONS_FILE
        runs.atomic_write_json(metrics_path, report)
        similar_cases.add_to_metrics(run.path)  # the vote's block comes from retrieval/votes.csv
        model_card.write(run.path)
        entry.update(n=report["n"], auc=report["auc"])
    logger.info("%s: metrics.json and model_card.md rewritten from %s", run.path, layout.PREDICTIONS_FILE)
    return report
