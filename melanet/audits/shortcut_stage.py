"""``melanet audit-shortcuts``: the shortcut audit of a classifier run (``melanet.audits.shortcuts``).

Reads the run's model and the test split of its own data folder (or, with ``--data DIR``, of another
data folder), predicts each image as the run's evaluation does (``evaluation.tta`` included), then on
the lesion-only and background-only views and under each perturbation, and writes
``<run>/shortcuts/shortcuts.json`` (or ``<run>/external/<name>/shortcuts.json`` for ``--data``). The run's
``status.json`` keeps a ``shortcuts`` entry. The test split is read here, as by ``evaluate``: run it
once a model is final, never to choose one.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs import layout, lifecycle, runs
from melanet.audits import shortcuts

logger = logging.getLogger(__name__)

STAGE = "audit-shortcuts"
Progress = lifecycle.Progress


def output_path(run_path: str | Path, data_root: str | Path | None = None) -> Path:
    """Where the audit of ``run_path`` on its own test split (or on ``data_root``'s) is written."""
    if data_root is None:
        return layout.RunLayout(Path(run_path)).shortcuts
    from melanet.evaluation import external

    return external.results_folder(run_path, data_root) / layout.SHORTCUTS_NAME


def audit_run(run_path: str | Path, *, data_root: str | Path | None = None,
              progress: Progress | None = None) -> Path:
    """Audit classifier run ``run_path``; returns the path of the ``shortcuts.json`` written."""
    from melanet.classifier import predict as classifier_predict
    from melanet.data import prepare

    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)
    if runs.model_file(run.path) is None:
        raise runs.RunError(f"{run.path}: no trained model ({' or '.join(layout.MODEL_FILES)}); "
                            "audit a finished train-classifier run")
    config = run.config()
    data_config = config.data if data_root is None else dataclasses.replace(config.data, root=str(data_root))
    path = output_path(run.path, data_root)
    with lifecycle.step_session(run, STAGE, folder=path.parent.relative_to(run.path).as_posix()) as entry:
        model = classifier_predict.load_model(run.path)
        image_set = prepare.load_split(data_config, "test", progress=progress)
        size = int(model.input_shape[1])
        if image_set.images.shape[1] != size:
            raise runs.RunError(f"{run.path}: the model takes {size} px images, the data gives "
                                f"{image_set.images.shape[1]} px")

        def predict(images: np.ndarray) -> np.ndarray:
            return classifier_predict.predict_probabilities(model, images, config.classifier.batch_size,
                                                            tta=config.evaluation.tta)

        steps = [0]

        def say(message: str) -> None:  # one call per view and perturbation, before it is predicted
            logger.info("audit-shortcuts: %s", message)
            entry.update(step=message, done=steps[0], total=shortcuts.STEPS)
            if progress is not None:
                progress(steps[0], shortcuts.STEPS, message)
            steps[0] += 1

        summary: dict[str, Any] = {
            "run": str(run.path), "data_root": str(data_config.root), "split": "test",
            "image_size": size, "tta": config.evaluation.tta, "created_at": runs.now_iso(),
        }
        summary.update(shortcuts.audit_images(list(image_set.ids), image_set.images, image_set.labels, predict,
                                              progress=say))
        if progress is not None:
            progress(shortcuts.STEPS, shortcuts.STEPS, "done")
        summary["sentence"] = shortcuts.summary_sentence(summary)
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_json(path, summary)
        entry.update(full_auc=round(summary["full"]["auc"], 4), mask_failures=len(summary["mask_failures"]),
                     background_only_auc=_rounded(summary["background_only"]["auc"]),
                     lesion_only_auc=_rounded(summary["lesion_only"]["auc"]))
    return path


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
