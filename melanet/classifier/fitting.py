"""What every stage-2 training shares: the batches (orders, views, class weights), the frozen prefix's
activations (computed once per image and view, cached on disk), the compiled model, atomic model saves.

``melanet.classifier.train`` (one validation split) and ``melanet.classifier.cross_validation`` (K folds)
both fit with these.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from melanet.runs import runs
from melanet.classifier import model as model_module
from melanet.classifier import losses, predict
from melanet.config import Config, ConfigError
from melanet.data import disk_images

logger = logging.getLogger(__name__)


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


def save_model_atomically(model: keras.Model, path: Path) -> None:
    """``model.save`` to a temp name in the same folder, then rename (readers never see half a file)."""
    temp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    model.save(temp)
    os.replace(temp, path)
