"""Predict a test split with a trained classifier run and write its result files.

``predict_split`` predicts the test split of the run's own data (or of any data folder);
``build_report`` scores it, choosing the operating threshold on the run's *validation* predictions
(``validation_predictions.csv``, written at training time); ``write_results`` writes to the run folder
(or another folder):

- ``metrics.json``: see :func:`melanet.evaluation.metrics.full_report`, plus ``data`` (what was
  evaluated) and ``model`` (which run);
- ``predictions.csv``: ``image, label, prob_malignant`` (label 0 = benign, 1 = malignant), then
  ``prob_sd, prob_range, uncertain``: the spread of the probability over the 8 flips and 90-degree
  rotations and its flag (:mod:`melanet.evaluation.uncertainty`);
- ``predictions_isic.csv``: the ``isic-challenge-scoring`` format, ``image, benign, malignant``
  (class probabilities, one row per image), scorable by the official package.

The test split is read here and nowhere in training. The ``melanet evaluate`` step that adds the
duplicates of training images, the similar-cases vote and the model card around these is
``melanet.reports.evaluate_stage``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.data.errors import DataError
from melanet.evaluation import evidence, external, metrics, predictions, subgroups, uncertainty
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = layout.PREDICTIONS_FILE
ISIC_PREDICTIONS_FILE = layout.ISIC_PREDICTIONS_FILE
VALIDATION_PREDICTIONS_FILE = layout.VALIDATION_PREDICTIONS_FILE
SKIPPED_FILE = layout.EVALUATION_SKIPPED_FILE


def report_for_predictions(
    labels: np.ndarray,
    probabilities: np.ndarray,
    evaluation_config: config_module.EvaluationConfig,
    seed: int,
    validation_path: Path | None,
    spread: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """``metrics.full_report`` with the config's settings and the run's validation predictions (if any).

    ``spread``: (N,) ``prob_sd`` and ``prob_range`` of the test images over the 8 views, for the
    ``uncertainty`` block; None says the views were not predicted (an older predictions.csv).
    """
    validation_labels = validation_probabilities = None
    if validation_path is not None and validation_path.is_file():
        _, validation_labels, validation_probabilities = predictions.read_predictions(validation_path)
    report = metrics.full_report(
        labels,
        probabilities,
        threshold=evaluation_config.threshold,
        confidence=evaluation_config.confidence,
        bootstrap_samples=evaluation_config.bootstrap_samples,
        seed=seed,
        validation_labels=validation_labels,
        validation_probabilities=validation_probabilities,
        target_sensitivity=evaluation_config.target_sensitivity,
    )
    if validation_path is not None and report["operating_point"].get("available"):
        report["operating_point"]["validation"]["file"] = validation_path.name
    if validation_path is not None:
        report["selection"] = selection_block(validation_path.parent, validation_labels, validation_probabilities,
                                              evaluation_config, seed)
    report["evaluation_settings"] = dataclasses.asdict(evaluation_config)
    if spread is None:
        report["uncertainty"] = uncertainty.unavailable(
            f"{PREDICTIONS_FILE} has no {uncertainty.RANGE_COLUMN} column: it was predicted before the 8 views were; "
            "re-evaluate with `melanet evaluate --run RUN` to predict them")
    else:
        report["uncertainty"] = uncertainty.summary(labels, probabilities, spread[uncertainty.RANGE_COLUMN],
                                                    spread[uncertainty.SD_COLUMN], evaluation_config.uncertain_spread)
    report = evidence.add_to_report(report, labels, probabilities, evaluation_config, seed,
                                    validation_labels, validation_probabilities)
    if validation_path is not None:
        chosen_on = report["selection"].get("chosen_on")
        for point in [*report["operating_points"].values(), report["operating_point"]]:
            if point.get("available"):
                point["validation"]["file"] = validation_path.name
                if chosen_on:
                    point["chosen_on"] = chosen_on
    return report


CHOSEN_ON_OUT_OF_FOLD = ("out-of-fold predictions of the whole training part ({folds} folds, {n_benign} benign / "
                         "{n_malignant} malignant), never the test set")


def selection_block(run_folder: Path, validation_labels: np.ndarray | None, validation_probabilities: np.ndarray | None,
                    evaluation_config: config_module.EvaluationConfig, seed: int) -> dict[str, Any]:
    """Which predictions every choice (thresholds, operating points, calibration, k) was made on, and how many
    of each class: ``kind`` ``out_of_fold`` (``classifier.folds`` > 1: ``cross_validation.json``) or
    ``validation_split``; with the AUC of those predictions and its bootstrap interval, to stand beside the
    test AUC."""
    block: dict[str, Any] = {"kind": "none", "n_benign": 0, "n_malignant": 0}
    if validation_labels is not None and len(validation_labels):
        counts = np.bincount(validation_labels, minlength=2)
        low, high = metrics.bootstrap_auc_interval(validation_labels, validation_probabilities,
                                                   samples=evaluation_config.bootstrap_samples,
                                                   confidence=evaluation_config.confidence, seed=seed)
        block = {"kind": "validation_split", "n_benign": int(counts[0]), "n_malignant": int(counts[1]),
                 "auc": metrics.auc(validation_labels, validation_probabilities),
                 "auc_ci": {"low": low, "high": high, "level": evaluation_config.confidence, "method": "bootstrap"}}
    summary_path = run_folder / layout.CROSS_VALIDATION_FILE
    if summary_path.is_file() and block["kind"] != "none":
        summary = runs.read_json(summary_path)
        block.update(kind=summary["selection"], folds=summary["folds"], epoch=summary["epoch"],
                     test_time_views=summary.get("test_time_views"), training_views=summary.get("training_views"))
        block["chosen_on"] = CHOSEN_ON_OUT_OF_FOLD.format(**block)
    return block


def _rounded(value: float | None) -> str:
    """A figure for a log line: three decimals ("0.552"), or "n/a"."""
    return "n/a" if value is None else f"{value:.3f}"


@dataclasses.dataclass
class SplitPredictions:
    """One split predicted by a run: ``labels`` (N,) int64 0/1, ``probabilities`` (N,) float64 in
    [0, 1], ``spread`` the (N,) columns of :func:`melanet.evaluation.uncertainty.columns`."""

    image_set: Any  # melanet.data.prepare.ImageSet: ids, images (N, S, S, 3) uint8, skipped rows
    split: str  # "test", or "train" = every labelled image of a folder without a labelled test split
    is_external: bool  # another data folder than the run's own
    labels: np.ndarray
    probabilities: np.ndarray
    spread: dict[str, np.ndarray]


def predict_split(run: runs.Run, config: config_module.Config, data_config: config_module.DataConfig,
                  progress: Progress | None = None) -> SplitPredictions:
    """Predict the test split of ``data_config`` (each image under the 8 flips and rotations) with ``run``'s model."""
    # imported here: loading TensorFlow takes seconds, and compare/tests of metrics do not need it
    from melanet.classifier import predict as classifier_predict
    from melanet.data import prepare, splits

    is_external = not external.same_data(data_config.root, config.data.root)
    split = splits.evaluation_split(data_config, external=is_external)  # 'train' = all labelled images
    image_set = prepare.load_split(data_config, split, progress=progress)
    if len(image_set.ids) == 0:
        raise DataError(f"{data_config.root}: the {split} split has no usable images")
    logger.info("evaluating %s on %d test images of %s", run.path, len(image_set.ids), data_config.root)
    model = classifier_predict.load_model(run.path)
    # every image under the 8 flips and rotations: the tta views give the probability, all 8 its spread
    probabilities, views = classifier_predict.predict_with_views(model, image_set.images, config.classifier.batch_size,
                                                                 tta=config.evaluation.tta)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    spread = uncertainty.columns(views, config.evaluation.uncertain_spread)
    labels = np.asarray(image_set.labels, dtype=np.int64)
    return SplitPredictions(image_set, split, is_external, labels, probabilities, spread)


def build_report(run: runs.Run, config: config_module.Config, data_config: config_module.DataConfig,
                 predicted: SplitPredictions) -> dict[str, Any]:
    """The ``metrics.json`` mapping of ``predicted``: ``report_for_predictions`` plus ``data`` (what was
    evaluated) and ``model`` (which run)."""
    labels, image_set = predicted.labels, predicted.image_set
    report = report_for_predictions(
        labels, predicted.probabilities, config.evaluation, config.seed, run.file(VALIDATION_PREDICTIONS_FILE),
        predicted.spread,
    )
    report["data"] = {
        "root": str(data_config.root),
        "split": predicted.split,
        "all_labelled_images": predicted.split != "test",  # no labelled test split: every labelled image was scored
        "prevalence": float(np.mean(labels)) if len(labels) else None,
        "image_size": data_config.image_size,
        "n_images": len(image_set.ids),
        "n_skipped": len(image_set.skipped),
        "training_data": str(config.data.root),
        "same_as_training_data": Path(data_config.root).resolve() == Path(config.data.root).resolve(),
    }
    report["model"] = {"run": str(run.path), "file": runs.model_file(run.path).name, "training_set": config.classifier.training_set}
    if run.file(layout.ENSEMBLE_FILE).is_file():
        members = runs.read_json(run.file(layout.ENSEMBLE_FILE)).get("members", [])
        report["model"]["ensemble"] = {"members": len(members), "combine": "mean of the members' probabilities"}
    from melanet.classifier import predict as classifier_predict

    report["test_time_augmentation"] = {"mode": config.evaluation.tta, "views": [
        classifier_predict.view_name(view) for view in classifier_predict.TTA_VIEWS[config.evaluation.tta]]}
    return report


def write_results(target: Path, report: dict[str, Any], predicted: SplitPredictions,
                  config: config_module.Config, data_config: config_module.DataConfig) -> None:
    """Stamp ``evaluated_at`` and write ``predictions.csv``, ``predictions_isic.csv``, the skipped rows,
    ``metrics.json`` and ``subgroups.json`` into ``target``."""
    image_set = predicted.image_set
    report["evaluated_at"] = runs.now_iso()
    target.mkdir(parents=True, exist_ok=True)
    predictions.write_predictions(target, image_set.ids, predicted.labels, predicted.probabilities, predicted.spread)
    if image_set.skipped:
        runs.atomic_write_csv(target / SKIPPED_FILE, image_set.skipped, ["file", "line", "reason"])
    runs.atomic_write_json(target / runs.METRICS_FILE, report)
    subgroups.write(target, data_config.root, predicted.split, image_set.ids, predicted.labels, predicted.probabilities,
                    threshold=report["threshold"], confidence=config.evaluation.confidence)
    logger.info("AUC %s, sensitivity %s, specificity %s at threshold %s", *(
        _rounded(report[key]) for key in ("auc", "sensitivity", "specificity", "threshold")))
