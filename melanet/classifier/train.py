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
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from melanet.runs import distribute, layout, lifecycle, runs
from melanet.classifier import model as model_module
from melanet.classifier import gan_match, losses, predict, training_sets
from melanet.classifier.selection import SelectionState
from melanet.config import Config, ConfigError
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
            progress=progress,
    )
    benign, malignant = int(np.sum(training_set.labels == 0)), int(np.sum(training_set.labels == 1))
    logger.info("training set '%s': %d images (%d benign, %d malignant); validation %d images",
                config.classifier.training_set, len(training_set.labels), benign, malignant, len(validation.labels))
    return fit_classifier(config, run, training_set, validation, resume=resume, progress=progress,
                          restore_from=restore_from)


def balanced_sample_weights(labels: np.ndarray) -> np.ndarray:
    """scikit-learn's 'balanced' class weights n / (2 * n_class), per example: (N,) float32."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    weights = len(labels) / (2.0 * np.maximum(counts, 1.0))
    return weights[labels].astype(np.float32)


def epoch_orders(count: int, seed: int, first_epoch: int, epochs: int) -> np.ndarray:
    """The order of the ``count`` training examples in epochs ``first_epoch + 1 .. epochs``.

    Returns (epochs - first_epoch, count) int64 permutations. Epoch ``e``'s order depends on
    ``(seed, e)`` only, so a resumed run sees the same batches as an uninterrupted one.
    """
    return np.stack([np.random.default_rng([seed, epoch]).permutation(count)
                     for epoch in range(first_epoch + 1, epochs + 1)]).reshape(-1, count)


def training_views(augment: str) -> tuple[predict.View, ...]:
    """The views a training step draws from: the 8 of ``predict.DIHEDRAL_VIEWS`` for ``dihedral``, else the
    image as it is."""
    if augment == "dihedral":
        return predict.DIHEDRAL_VIEWS
    if augment == "none":
        return predict.DIHEDRAL_VIEWS[:1]
    raise ConfigError(f"classifier.augment must be one of none, dihedral, got {augment!r}")


def augmented_orders(rows: np.ndarray, view_count: int, stride: int, seed: Any, first_epoch: int, epochs: int,
                     length: int) -> np.ndarray:
    """Which stacked rows each step of epochs ``first_epoch + 1 .. epochs`` reads: (E, length) int64.

    ``rows`` (M,) the examples to draw from (indices into one view's N rows); the stacked inputs hold view
    ``v`` of example ``r`` at ``v * stride + r`` (``stride`` = N). An epoch is ``length`` examples: whole
    permutations of ``rows`` back to back (cut at ``length``), each example in one view drawn uniformly.
    Epoch ``e`` depends on ``(seed, e)`` only (``seed`` an int or a sequence of ints), so a resumed run sees the
    same batches; with one view and ``length = M`` the first permutation is ``epoch_orders``'s.
    """
    seed_parts = list(seed) if isinstance(seed, (list, tuple)) else [int(seed)]
    rows = np.asarray(rows, dtype=np.int64)
    orders = []
    for epoch in range(first_epoch + 1, epochs + 1):
        rng = np.random.default_rng([*seed_parts, epoch])
        permutations = [rng.permutation(len(rows)) for _ in range(math.ceil(length / max(1, len(rows))))]
        positions = np.concatenate(permutations)[:length]
        order = rows[positions]
        if view_count > 1:
            order = order + stride * rng.integers(0, view_count, size=length)
        orders.append(order)
    return np.stack(orders).reshape(-1, length) if orders else np.zeros((0, length), dtype=np.int64)


def epoch_length(count: int, settings: Any) -> tuple[int, int]:
    """(examples, steps) of one epoch: one pass over ``count`` examples, or ``classifier.steps_per_epoch``
    batches (the same for every training set when set)."""
    if settings.steps_per_epoch > 0:
        return settings.steps_per_epoch * settings.batch_size, settings.steps_per_epoch
    return count, math.ceil(count / settings.batch_size)


def view_inputs(prefix: keras.Model | None, images: np.ndarray, batch_size: int,
                views: tuple[predict.View, ...], folder: Path | None = None, *,
                cache_dir: Path | None = None) -> list[Any]:
    """One input array per view: the frozen prefix's activations of ``images`` under each view (computed
    once here and read by every step, fold and epoch), or without a prefix the viewed uint8 images.

    With ``cache_dir`` the activations are also kept there (``cached_frozen_features``), so every run with the
    same frozen weights and images (another method's, another seed's) reads them instead of computing them.
    """
    if prefix is not None:
        if cache_dir is not None:
            return [cached_frozen_features(prefix, images, batch_size, view, Path(cache_dir)) for view in views]
        return [frozen_features(prefix, images, batch_size, folder) if view == predict.DIHEDRAL_VIEWS[0]
                else frozen_features(prefix, images, batch_size, folder, view=view) for view in views]
    if len(views) == 1 and views[0] == predict.DIHEDRAL_VIEWS[0]:
        return [images]
    pixels = np.asarray(images)
    return [np.ascontiguousarray(predict.apply_view(pixels, view)) for view in views]


def make_dataset(
    images: np.ndarray, labels: np.ndarray, batch_size: int, *,
    sample_weights: np.ndarray | None = None, orders: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of (images float32 [0, 1] (B, S, S, 3), labels int64 (B,)[, weights (B,)]).

    Without ``orders``: one pass in the given order. With ``orders`` (E, N) from ``epoch_orders``:
    E epochs back to back, each in its own order and cut into its own batches (fit with
    ``steps_per_epoch``). The uint8 images stay uint8 until after batching (4x less memory
    traffic), then are scaled. Float inputs (cached frozen features) pass through unscaled.
    """
    parts = (images, labels) if sample_weights is None else (images, labels, sample_weights)
    if disk_images.is_on_disk(images):  # read each batch from the cache file: memory stays flat
        index_batches = tf.data.Dataset.range(len(labels)).batch(batch_size) if orders is None else \
            tf.data.Dataset.from_tensor_slices(orders).flat_map(
                lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        dataset = disk_images.batches(images, index_batches, parts[1:])
    elif orders is None:
        dataset = tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)
    else:
        tensors = tuple(tf.convert_to_tensor(part) for part in parts)
        dataset = tf.data.Dataset.from_tensor_slices(orders).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        dataset = dataset.map(lambda indices: tuple(tf.gather(tensor, indices) for tensor in tensors))

    if images.dtype != np.uint8:
        return dataset.prefetch(tf.data.AUTOTUNE)

    def scale(batch_images, *rest):
        return (tf.cast(batch_images, tf.float32) / 255.0, *rest)

    return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def build_compiled_model(config: Config) -> keras.Model:
    """The configured VGG-GAP, compiled, optimizer built (call inside the strategy's scope)."""
    settings = config.classifier
    try:
        model = model_module.build_from_config(config)
    except ConfigError:
        raise
    except ValueError as error:  # a setting the builder refuses (e.g. an unknown trainable_from layer)
        raise ConfigError(f"config: classifier settings: {error}") from None
    model_module.compile_classifier(model, settings.optimizer, settings.learning_rate,
                                    losses.effective_alpha(settings.focal_alpha, settings.focal_alpha_mode),
                                    settings.focal_gamma)
    model.optimizer.build(model.trainable_variables)
    return model


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
        if prefix is not None or len(views) > 1:
            per_view = view_inputs(prefix, training_set.images, settings.batch_size, views, folder)
            train_inputs = per_view[0] if len(per_view) == 1 else disk_images.concatenate(per_view)
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


def frozen_features(prefix: keras.Model, images: np.ndarray, batch_size: int,
                    folder: Path | None = None, *, view: predict.View = (False, ())
                    ) -> np.ndarray | disk_images.DiskImages:
    """The frozen prefix's activations for uint8 images (N, S, S, 3) seen under ``view``: float32 (N, h, w, c).

    With ``folder`` they are written there a batch at a time (a new ``.npy`` file) and returned as
    ``DiskImages`` rows, so memory holds one batch of them whatever the number of images.
    """
    transpose, axes = view
    if folder is None:
        outputs = prefix.predict(predict.scaled_batches(images, batch_size, axes, transpose=transpose), verbose=0)
        return np.asarray(outputs, dtype=np.float32)
    handle, name = tempfile.mkstemp(prefix="features-", suffix=".npy", dir=folder)
    with os.fdopen(handle, "wb") as stream:
        writer = disk_images.NpyWriter(stream, row_shape=tuple(prefix.output.shape[1:]), dtype=np.float32)
        for batch in predict.scaled_batches(images, batch_size, axes, transpose=transpose):
            writer.append(np.asarray(prefix(batch, training=False), dtype=np.float32))
        writer.finish()
    return disk_images.DiskImages(name, dtype=np.float32)


def cached_frozen_features(prefix: keras.Model, images: Any, batch_size: int, view: predict.View,
                           cache_dir: Path) -> np.ndarray:
    """``frozen_features`` of ``images`` under ``view``, read from ``cache_dir`` when an earlier run computed them.

    The file is keyed by a SHA-256 of the prefix's weights (names, shapes, bytes), of the images' pixels and of
    the view, so a change to any of them computes anew. Returns float32 (N, h, w, c) (memory-mapped when read).
    When the folder cannot be written the features are computed and returned without caching.
    """
    import hashlib

    digest = hashlib.sha256(f"frozen-features-v1-{view}-{tuple(prefix.output.shape[1:])}".encode())
    for weight in prefix.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{weight.path}/{array.dtype}/{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(f"{len(images)}".encode())
    for start in range(0, len(images), 256):
        digest.update(np.ascontiguousarray(np.asarray(images[start:start + 256])).tobytes())
    path = Path(cache_dir) / f"features-{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r")
            if cached.shape == (len(images), *prefix.output.shape[1:]):
                logger.info("frozen features from cache %s", path)
                return cached
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable feature cache %s (%s)", path, error)
    features = frozen_features(prefix, images, batch_size, view=view)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_with(path, lambda stream: np.save(stream, features))
    except OSError as error:
        logger.warning("cannot cache frozen features in %s (%s)", path.parent, error)
    return features


def current_learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temp name in the same folder, then rename (readers never see half a file)."""
    temp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    model.save(temp)
    os.replace(temp, path)
