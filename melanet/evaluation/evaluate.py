"""Evaluate a trained classifier run on a test split and write its result files.

``evaluate_run`` predicts the test split of the run's own data (or of any data folder), picks the
operating threshold on the run's *validation* predictions (``validation_predictions.csv``, written at
training time), and writes to the run folder (or ``out_dir``):

- ``metrics.json``: see :func:`melanet.evaluation.metrics.full_report`, plus ``data`` (what was
  evaluated) and ``model`` (which run);
- ``predictions.csv``: ``image, label, prob_malignant`` (label 0 = benign, 1 = malignant), then
  ``prob_sd, prob_range, uncertain``: the spread of the probability over the 8 flips and 90-degree
  rotations and its flag (:mod:`melanet.evaluation.uncertainty`);
- ``predictions_isic.csv``: the ``isic-challenge-scoring`` format, ``image, benign, malignant``
  (class probabilities, one row per image), scorable by the official package.

The test split is read here and nowhere in training.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from melanet import config as config_module
from melanet.runs import layout, lifecycle, runs
from melanet.data.errors import DataError
from melanet.evaluation import evidence, external, metrics, subgroups
from melanet.audits import leakage
from melanet.reports import model_card
from melanet.explain import similar_cases
from melanet.evaluation import uncertainty
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

STAGE = "evaluate"

PREDICTIONS_FILE = layout.PREDICTIONS_FILE
ISIC_PREDICTIONS_FILE = layout.ISIC_PREDICTIONS_FILE
VALIDATION_PREDICTIONS_FILE = layout.VALIDATION_PREDICTIONS_FILE
SKIPPED_FILE = layout.EVALUATION_SKIPPED_FILE


def read_predictions(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read an ``image, label, prob_malignant`` CSV -> (ids, (N,) int64 labels, (N,) float64 probabilities).

    Raises DataError naming the file and line of the first bad row.
    """
    path = Path(path)
    try:
        stream = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read predictions ({error.strerror or error})") from None
    ids: list[str] = []
    labels: list[int] = []
    probabilities: list[float] = []
    with stream:
        reader = csv.DictReader(stream)
        missing = {"image", "label", "prob_malignant"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))} "
                            "(expected image,label,prob_malignant)")
        for line, row in enumerate(reader, start=2):
            try:
                label = int(float(row["label"]))
                probability = float(row["prob_malignant"])
            except (TypeError, ValueError):
                raise DataError(f"{path}: line {line}: expected a 0/1 label and a probability, got {row}") from None
            if label not in (0, 1) or not 0.0 <= probability <= 1.0:
                raise DataError(f"{path}: line {line}: label must be 0/1 and prob_malignant in [0, 1], got {row}")
            ids.append(row["image"])
            labels.append(label)
            probabilities.append(probability)
    return ids, np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float64)


def write_predictions(out_dir: str | Path, ids: Sequence[str], labels: np.ndarray, probabilities: np.ndarray,
                      spread: dict[str, np.ndarray] | None = None) -> None:
    """Write ``predictions.csv`` and ``predictions_isic.csv`` for (N,) ``labels`` and ``probabilities``.

    ``spread``: :func:`melanet.evaluation.uncertainty.columns` ((N,) ``prob_sd``, ``prob_range``,
    ``uncertain``), written as extra columns of ``predictions.csv`` only; the ISIC file keeps its
    official three columns.
    """
    out_dir = Path(out_dir)
    rows = [
        {"image": image_id, "label": int(label), "prob_malignant": f"{float(probability):.8f}"}
        for image_id, label, probability in zip(ids, labels, probabilities)
    ]
    fields = ["image", "label", "prob_malignant"]
    if spread is not None:
        fields += list(uncertainty.COLUMNS)
        for row, sd, width, flagged in zip(rows, *(spread[column] for column in uncertainty.COLUMNS)):
            row.update({uncertainty.SD_COLUMN: f"{float(sd):.8f}", uncertainty.RANGE_COLUMN: f"{float(width):.8f}",
                        uncertainty.FLAG_COLUMN: int(bool(flagged))})
    runs.atomic_write_csv(out_dir / PREDICTIONS_FILE, rows, fields)
    isic_rows = [
        {"image": image_id, "benign": f"{1.0 - float(probability):.8f}", "malignant": f"{float(probability):.8f}"}
        for image_id, probability in zip(ids, probabilities)
    ]
    runs.atomic_write_csv(out_dir / ISIC_PREDICTIONS_FILE, isic_rows, ["image", "benign", "malignant"])


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
        _, validation_labels, validation_probabilities = read_predictions(validation_path)
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


def evaluate_run(
    run_path: str | Path,
    *,
    data_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Predict the test split and write metrics + predictions; returns the ``metrics.json`` mapping.

    ``data_root`` replaces the run's ``data.root`` (any layout; its test split, or all its labelled
    images where it has no labelled test split, is evaluated at the run's image size). ``out_dir``
    defaults to the run folder, or for another data folder to ``<run>/external/<name>/``
    (:mod:`melanet.evaluation.external`).
    """
    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)
    config = run.config()
    if runs.model_file(run.path) is None:
        status = run.status()
        raise runs.RunError(
            f"{run.path}: no trained model (state {status.get('state', 'unknown')!r}, stage "
            f"{status.get('stage', 'unknown')!r}); evaluate a finished train-classifier run"
        )
    data_config = config.data if data_root is None else dataclasses.replace(config.data, root=str(data_root))
    if data_root is not None and not external.same_data(data_root, config.data.root):
        # external data: labelled melanoma vs the rest (the run's data.malignant_classes names its own
        # layout's columns), filed under external/<name>/ and never over the run's own metrics
        data_config = dataclasses.replace(data_config, malignant_classes="")
        if out_dir is None:
            out_dir = external.results_folder(run.path, data_root)
    target = run.path if out_dir is None else Path(out_dir)
    writes_into_run = target.resolve() == run.path.resolve()
    if writes_into_run:
        with lifecycle.step_session(run, STAGE, data=data_config.root, split="test") as entry:
            report = _evaluate(run, config, data_config, target, progress)
            block = similar_cases.add_to_metrics(run.path)  # from retrieval/votes.csv, when the run has one
            if block is not None:
                report["similar_cases"] = block
            model_card.write(run.path)
            entry.update(n=report["n"], auc=report["auc"])
    else:
        report = _evaluate(run, config, data_config, target, progress)
    return report


def _add_duplicates(report: dict[str, Any], run: runs.Run, config: config_module.Config,
                    data_config: config_module.DataConfig, image_set: Any, labels: np.ndarray,
                    probabilities: np.ndarray, is_external: bool, progress: Progress | None) -> None:
    """``duplicates_of_training``, ``without_duplicates`` and (external data) ``overlap`` in ``report``
    (:mod:`melanet.audits.leakage`); a printed warning when external images are the run's own."""
    from melanet.data import duplicates

    threshold = config.data.duplicate_threshold
    if threshold < 0:
        report["duplicates_of_training"] = None
        report["duplicates_check"] = {"checked": False, "reason": "data.duplicate_threshold = -1"}
        return
    try:
        references = leakage.run_references(config, run.path, with_test=is_external, progress=progress)
    except (DataError, OSError) as error:  # the run's own data is not on this machine
        logger.warning("duplicates of the training images not checked: %s", str(error).splitlines()[0])
        report["duplicates_of_training"] = None
        report["duplicates_check"] = {"checked": False, "reason": str(error).splitlines()[0]}
        return
    records = duplicates.records_of(image_set, workers=data_config.workers)
    leaked = leakage.duplicates_of_training(image_set.ids, records, references, threshold)
    report["duplicates_of_training"] = leaked
    report["duplicates_check"] = {"checked": True, "threshold": threshold, "hash": "phash+dhash (128 bits), 4 orientations",
                                  "against": sorted(name for name in references if name != "test")}
    report["without_duplicates"] = leakage.metrics_without(
        labels, probabilities, leaked, image_set.ids, threshold=report["threshold"],
        confidence=config.evaluation.confidence, bootstrap_samples=config.evaluation.bootstrap_samples, seed=config.seed)
    if leaked:
        logger.warning("%d of the %d evaluated images duplicate an image the run (or its GAN) trained or "
                       "selected on; metrics.json also reports the figures without them", len(leaked), len(image_set.ids))
    if is_external:
        report["overlap"] = leakage.overlap(image_set.ids, records, references)
        warning = leakage.overlap_warning(report["overlap"], len(image_set.ids))
        if warning:
            logger.warning("%s", warning)


def _evaluate(
    run: runs.Run,
    config: config_module.Config,
    data_config: config_module.DataConfig,
    target: Path,
    progress: Progress | None,
) -> dict[str, Any]:
    # imported here: loading TensorFlow takes seconds, and compare/tests of metrics do not need it
    from melanet.classifier import predict as classifier_predict
    from melanet.data import prepare

    from melanet.data import splits

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
    report = report_for_predictions(
        labels, probabilities, config.evaluation, config.seed, run.file(VALIDATION_PREDICTIONS_FILE), spread
    )
    report["data"] = {
        "root": str(data_config.root),
        "split": split,
        "all_labelled_images": split != "test",  # no labelled test split: every labelled image was scored
        "prevalence": float(np.mean(labels)) if len(labels) else None,
        "image_size": data_config.image_size,
        "n_images": len(image_set.ids),
        "n_skipped": len(image_set.skipped),
        "training_data": str(config.data.root),
        "same_as_training_data": Path(data_config.root).resolve() == Path(config.data.root).resolve(),
    }
    report["model"] = {"run": str(run.path), "file": runs.model_file(run.path).name, "training_set": config.classifier.training_set}
    if isinstance(model, classifier_predict.Ensemble):
        report["model"]["ensemble"] = {"members": len(model.members), "combine": "mean of the members' probabilities"}
    report["test_time_augmentation"] = {"mode": config.evaluation.tta, "views": [
        classifier_predict.view_name(view) for view in classifier_predict.TTA_VIEWS[config.evaluation.tta]]}
    _add_duplicates(report, run, config, data_config, image_set, labels, probabilities, is_external, progress)
    report["evaluated_at"] = runs.now_iso()
    target.mkdir(parents=True, exist_ok=True)
    write_predictions(target, image_set.ids, labels, probabilities, spread)
    if image_set.skipped:
        runs.atomic_write_csv(target / SKIPPED_FILE, image_set.skipped, ["file", "line", "reason"])
    runs.atomic_write_json(target / runs.METRICS_FILE, report)
    subgroups.write(target, data_config.root, split, image_set.ids, labels, probabilities,
                    threshold=report["threshold"], confidence=config.evaluation.confidence)
    logger.info("AUC %s, sensitivity %s, specificity %s at threshold %s", *(
        _rounded(report[key]) for key in ("auc", "sensitivity", "specificity", "threshold")))
    return report
