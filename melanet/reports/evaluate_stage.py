"""``melanet evaluate``: a run's test split scored, checked for duplicates of its training images, with
its similar-cases vote and model card.

The step composes the floors below it: ``melanet.evaluation.evaluate`` predicts and scores the
split, ``melanet.audits.leakage`` adds the duplicates of training images (and the overlap with the
run's own data, for another data folder), ``melanet.explain.similar_cases`` the vote of a run with a
retrieval index, and ``melanet.reports.model_card`` writes ``model_card.md``. Files: see
``melanet.evaluation.evaluate`` and ``docs/run-folders.md``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from melanet import config as config_module
from melanet.audits import leakage
from melanet.data.errors import DataError
from melanet.evaluation import evaluate, external
from melanet.explain import similar_cases
from melanet.reports import model_card
from melanet.runs import lifecycle, runs
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

STAGE = "evaluate"


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


def _evaluate(
    run: runs.Run,
    config: config_module.Config,
    data_config: config_module.DataConfig,
    target: Path,
    progress: Progress | None,
) -> dict[str, Any]:
    predicted = evaluate.predict_split(run, config, data_config, progress)
    report = evaluate.build_report(run, config, data_config, predicted)
    _add_duplicates(report, run, config, data_config, predicted, progress)
    evaluate.write_results(target, report, predicted, config, data_config)
    return report


def _add_duplicates(report: dict[str, Any], run: runs.Run, config: config_module.Config,
                    data_config: config_module.DataConfig, predicted: evaluate.SplitPredictions,
                    progress: Progress | None) -> None:
    """``duplicates_of_training``, ``without_duplicates`` and (external data) ``overlap`` in ``report``
    (:mod:`melanet.audits.leakage`); a printed warning when external images are the run's own."""
    from melanet.data import duplicates

    image_set, labels, probabilities, is_external = (predicted.image_set, predicted.labels, predicted.probabilities,
                                                      predicted.is_external)
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
