"""Stage 2 training: VGG-GAP + focal loss on one of the four training sets, selected on validation.

The steps of ``train_classifier``:
1. read the training split and carve the validation split from it (never the test split);
2. build the training set (original / augment5x / augment10x / synthetic);
3. build and compile the model under the configured distribution strategy;
4. on ``resume``, restore weights, optimizer and selection counters from the last checkpoint;
5. fit, one checkpoint per epoch; the best validation model is kept as ``model.keras``;
6. reload the best model and write ``validation_predictions.csv``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from melanet.runs import distribute, layout, lifecycle, runs
from melanet.classifier import model as model_module
from melanet.classifier import gan_match, losses, predict, training_sets
from melanet.classifier.fitting import (  # noqa: F401  (train.X names kept for callers and tests)
    augmented_orders, balanced_sample_weights, build_compiled_model, cached_frozen_features, epoch_length,
    epoch_orders, frozen_features, make_dataset, save_model_atomically, training_views, view_inputs)
from melanet.classifier.selection import SelectionState
from melanet.config import Config
from melanet.data import disk_images
from melanet.data.prepare import ImageSet
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

STAGE = "train-classifier"
# Largest frozen-feature cache held in memory; past it the features are written to a temporary file in
# the data cache folder and read a batch at a time (the frozen layers run every step only when that
# folder cannot be written).
FEATURE_MEMORY_LIMIT_BYTES = 1024**3
VALIDATION_PREDICTIONS_FILE = layout.VALIDATION_PREDICTIONS_FILE


def train_classifier(
    run: runs.Run, config: Config | None = None, *, resume: bool = False, progress: Progress | None = None,
) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) stage 2 in ``run``; returns a summary (best epoch and value).

    Like ``melanet.gan.train.train``: holds the run's lock for the whole stage and writes ``config``
    as ``config.yaml`` once ``lifecycle.check_folder`` accepted the folder (nothing is written into a
    refused one). ``config=None`` trains with the run's saved ``config.yaml``. With ``distribute:
    multi_worker`` only the chief writes ``run``; another worker trains in a temporary folder and, on
    ``resume``, restores ``run``'s checkpoint (``melanet.runs.distribute``).
    """
    resolved = config if config is not None else run.config()
    distribute.start(resolved.distribute)  # before any other TensorFlow op
    # refused before the folder is touched: a stage-1 run that may have seen this run's validation images
    gan_match.check(resolved)
    with distribute.writing_run(run, resolved.distribute) as writer, \
            lifecycle.stage_session(writer, STAGE, resume=resume and writer is run):
        if config is None and writer is run:
            config = run.config()
        else:
            config = resolved
            writer.write_config(config)
        try:
            return _train_holding_lock(writer, config, resume=resume, progress=progress, restore_from=run)
        finally:
            distribute.set_precision(False)  # fit_classifier may have set a mixed policy


def _train_holding_lock(run: runs.Run, config: Config, *, resume: bool, progress: Progress | None,
                        restore_from: runs.Run) -> dict[str, Any]:
    """Steps 1-6 of the module docstring, holding the run's lock; checkpoints restored from ``restore_from``."""
    from melanet.data import prepare, splits

    if config.classifier.folds > 1:
        from melanet.classifier import cross_validation

        return cross_validation.train_cross_validated(run, config, resume=resume, progress=progress)
    run.update_status(message="loading data")
    train_part, validation = splits.training_and_validation(config.data, config.seed, progress=progress)
    run.record_skipped([*train_part.skipped, *validation.skipped])
    run.update_status(message=f"building training set '{config.classifier.training_set}'")
    training_set = training_sets.build_training_set(
        config.classifier.training_set, train_part, seed=config.seed,
        cache_dir=prepare.cache_directory(config.data), gan_run=config.classifier.gan_run,
            synthetic_keep=config.classifier.synthetic_keep, color_constancy=config.data.color_constancy,
            progress=progress, match_resolution=config.classifier.match_resolution,
    )
    benign, malignant = int(np.sum(training_set.labels == 0)), int(np.sum(training_set.labels == 1))
    logger.info("training set '%s': %d images (%d benign, %d malignant); validation %d images",
                config.classifier.training_set, len(training_set.labels), benign, malignant, len(validation.labels))
    return fit_classifier(config, run, training_set, validation, resume=resume, progress=progress,
                          restore_from=restore_from)


class RunCallback(keras.callbacks.Callback):
    """Per epoch: history + status, learning-rate plateaus, early stopping, best model, checkpoint."""

    def __init__(self, run: runs.Run, config: Config, state: SelectionState, checkpoint: tf.train.Checkpoint,
                 reporter: lifecycle.EpochReporter, full_model: keras.Model):
        super().__init__()
        self.run = run
        self.full_model = full_model  # what is saved; ``self.model`` may be only its trainable suffix
        self.settings = config.classifier
        self.state = state
        self.checkpoint = checkpoint
        self.reporter = reporter

        self.epoch_number = 1

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_number = epoch + 1
        self.reporter.start_epoch(self.epoch_number)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.reporter.batch_done(self.epoch_number, batch + 1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        number = epoch + 1
        learning_rate = current_learning_rate(self.model)
        if self.settings.monitor not in logs:
            raise ValueError(f"classifier.monitor={self.settings.monitor!r} is not among the metrics {sorted(logs)}")
        decision = self.state.update(
            number, float(logs[self.settings.monitor]),
            reduce_lr_patience=self.settings.reduce_lr_patience,
            early_stopping_patience=self.settings.early_stopping_patience,
        )
        if decision["improved"]:
            save_model_atomically(self.full_model, self.run.file(predict.MODEL_FILE))
        if decision["reduce_lr"]:
            self.model.optimizer.learning_rate = learning_rate * self.settings.reduce_lr_factor
            logger.info("epoch %d: no %s improvement for %d epochs, learning rate -> %.3g", number,
                        self.settings.monitor, self.settings.reduce_lr_patience, current_learning_rate(self.model))
        if decision["stop"]:
            logger.info("epoch %d: early stopping, best %s %.4f at epoch %d", number, self.settings.monitor,
                        self.state.best_value, self.state.best_epoch)
            self.model.stop_training = True
        values = {name: float(logs[name]) for name in ("loss", "auc", "val_loss", "val_auc") if name in logs}
        self.reporter.end_epoch(number, {**values, "learning_rate": learning_rate})
        lifecycle.save_checkpoint(self.checkpoint, self.run, number, extra={"selection": self.state.to_dict()})


def fit_classifier(
    config: Config, run: runs.Run, training_set: ImageSet, validation: ImageSet, *,
    resume: bool = False, progress: Progress | None = None, restore_from: runs.Run | None = None,
) -> dict[str, Any]:
    """Fit on in-memory sets (images (N, S, S, 3) uint8, labels (N,) 0/1) and write the run's outputs.

    ``resume`` restores the newest checkpoint of ``restore_from`` (default ``run``; another folder
    for a non-chief worker of ``distribute: multi_worker``).

    Returns ``{"best_epoch", "best_value", "monitor", "epochs_run", "stopped_early"}``.
    """
    settings = config.classifier
    keras.utils.set_random_seed(config.seed)
    distribute.set_precision(config.mixed_precision)
    strategy = distribute.strategy_for(config.distribute)
    with strategy.scope():
        model = build_compiled_model(config)
        trained, prefix = model, None
        if settings.trainable_from:
            # Frozen layers are deterministic and the only online augmentation is the choice among the 8
            # dihedral views, so their output for each image and view can be computed once; then only the
            # trainable suffix runs every step.
            prefix, suffix = model_module.split_at(model, settings.trainable_from)
        if prefix is not None:
            trained = suffix
            model_module.compile_classifier(trained, settings.optimizer, settings.learning_rate,
                                            losses.effective_alpha(settings.focal_alpha, settings.focal_alpha_mode),
                                            settings.focal_gamma)
            trained.optimizer.build(trained.trainable_variables)
    distribute.prepare_for_fit(trained, strategy)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=trained.optimizer)
    state = SelectionState(monitor=settings.monitor)
    first_epoch = 0
    restore_from = run if restore_from is None else restore_from
    if resume:
        info = lifecycle.latest_checkpoint(restore_from)
        if info is not None:
            first_epoch = lifecycle.restore_checkpoint(checkpoint, restore_from)
            state = SelectionState.from_dict(info.get("selection", {}))
            logger.info("resuming after epoch %d (best %s %.4g at epoch %d)", first_epoch, state.monitor,
                        float("nan") if state.best_value is None else state.best_value, state.best_epoch)
    distribute.agree_on_epoch(strategy, first_epoch)
    run.truncate_history(first_epoch)  # a fresh start (epoch 0) replaces any earlier history

    weights = balanced_sample_weights(training_set.labels) if settings.class_weight == "balanced" else None
    views = training_views(settings.augment)
    with contextlib.ExitStack() as cleanup:
        train_inputs, validation_inputs = training_set.images, validation.images
        if prefix is not None:
            run.update_status(message=f"computing frozen features (layers before {settings.trainable_from})")
            folder = _feature_folder(cleanup, config, feature_cache_bytes(
                prefix, len(views) * len(train_inputs) + len(validation_inputs)))
        else:
            folder = None
        if prefix is not None and len(views) == 1:
            train_inputs = frozen_features(prefix, training_set.images, settings.batch_size, folder)
        elif len(views) > 1:
            train_inputs = disk_images.concatenate(
                view_inputs(prefix, training_set.images, settings.batch_size, views, folder))
        if prefix is not None:
            validation_inputs = frozen_features(prefix, validation.images, settings.batch_size, folder)
        epochs_run = _fit(config, run, trained, model, checkpoint, state, first_epoch, train_inputs,
                          validation_inputs, training_set.labels, validation.labels, weights, progress,
                          view_count=len(views))
    return _finish(config, run, model, validation, state, epochs_run)


def _feature_folder(cleanup: contextlib.ExitStack, config: Config, size: int) -> Path | None:
    """None (features in memory) up to ``FEATURE_MEMORY_LIMIT_BYTES``; past it a temporary folder in the
    data cache folder, removed when ``cleanup`` closes."""
    if size <= FEATURE_MEMORY_LIMIT_BYTES:
        return None
    from melanet.data import prepare

    parent = prepare.cache_directory(config.data)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="features-", dir=parent)))
    except OSError as error:
        logger.warning("cannot write frozen features to %s (%s); holding them in memory", parent, error)
        return None
    logger.info("frozen features (%.1f GB) go to %s, read a batch at a time", size / 1024**3, folder)
    return folder


def _fit(config: Config, run: runs.Run, trained: keras.Model, model: keras.Model, checkpoint: tf.train.Checkpoint,
         state: SelectionState, first_epoch: int, train_inputs: Any, validation_inputs: Any, labels: np.ndarray,
         validation_labels: np.ndarray, weights: np.ndarray | None, progress: Progress | None,
         view_count: int = 1) -> int:
    """Step 5: fit ``trained`` from ``first_epoch``; returns the number of epochs in the history.

    ``train_inputs`` holds ``view_count`` views of the N examples stacked (view-major, ``view_inputs``).
    """
    settings = config.classifier
    length, steps = epoch_length(len(labels), settings)
    if view_count == 1 and settings.steps_per_epoch == 0:
        orders = epoch_orders(len(labels), config.seed, first_epoch, settings.epochs)
    else:
        orders = augmented_orders(np.arange(len(labels)), view_count, len(labels), config.seed, first_epoch,
                                  settings.epochs, length)
        labels = np.tile(labels, view_count)
        weights = None if weights is None else np.tile(weights, view_count)
    train_dataset = make_dataset(train_inputs, labels, settings.batch_size, sample_weights=weights, orders=orders)
    validation_dataset = make_dataset(validation_inputs, validation_labels, settings.batch_size)
    reporter = lifecycle.EpochReporter(run, settings.epochs, steps, first_epoch=first_epoch + 1, progress=progress)
    callback = RunCallback(run, config, state, checkpoint, reporter, full_model=model)
    if first_epoch < settings.epochs and not state.stopped_early:
        trained.fit(train_dataset, validation_data=validation_dataset, epochs=settings.epochs,
                    initial_epoch=first_epoch, steps_per_epoch=steps, callbacks=[callback], shuffle=False,
                    verbose=0)
    return len(run.history())


def _finish(config: Config, run: runs.Run, model: keras.Model, validation: ImageSet, state: SelectionState,
            epochs_run: int) -> dict[str, Any]:
    """Step 6: the best model's validation predictions; the summary."""
    settings = config.classifier
    model_path = run.file(predict.MODEL_FILE)
    if not model_path.is_file():  # no epoch ever improved (e.g. NaN metric): keep the last weights
        save_model_atomically(model, model_path)
    best = predict.load_model(run.path)
    # with the test-time augmentation evaluation will use, so the operating threshold chosen here fits it
    probabilities = predict.predict_probabilities(best, validation.images, settings.batch_size,
                                                  tta=config.evaluation.tta)
    runs.atomic_write_csv(
        run.file(VALIDATION_PREDICTIONS_FILE),
        [{"image": image_id, "label": int(label), "prob_malignant": f"{probability:.6f}"}
         for image_id, label, probability in zip(validation.ids, validation.labels, probabilities)],
        ["image", "label", "prob_malignant"],
    )
    summary = {"monitor": state.monitor, "best_value": state.best_value, "best_epoch": state.best_epoch,
               "epochs_run": epochs_run, "stopped_early": state.stopped_early}
    best = "n/a" if state.best_value is None else f"{state.best_value:.4g}"
    run.update_status(message=f"best {state.monitor} {best} at epoch {state.best_epoch}")
    return summary


def feature_cache_bytes(prefix: keras.Model, num_images: int) -> int:
    """Memory the frozen features of ``num_images`` images take as float32."""
    return num_images * int(np.prod(prefix.output.shape[1:])) * 4


def current_learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))

