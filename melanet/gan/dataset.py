"""The stage-1 input pipeline: per-epoch balanced, shuffled, flipped (benign, malignant) batch pairs.

Algorithm 1 step 5 of the paper: every epoch draws as many benign images as there are malignant
ones (undersampling the majority class afresh each epoch). The draw is a pure function of
``(seed, epoch)``, so a resumed run sees exactly the batches an uninterrupted one would have seen.
Everything per batch (scaling, flipping, padding masks, batching, prefetching) happens inside tf.data.
Images on disk (``melanet.data.disk_images``) are read a batch at a time, so memory does not grow with
the data set; in-memory arrays are gathered for the epoch as before (the batches are the same).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from melanet.data import disk_images
from melanet.gan import masking


def to_model_range(images: tf.Tensor | np.ndarray) -> tf.Tensor:
    """(..., 3) uint8 in [0, 255] -> float32 in [-1, 1] (the CycleGAN's input scaling)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images: tf.Tensor | np.ndarray) -> np.ndarray:
    """(..., 3) float in [-1, 1] -> uint8 in [0, 255]: ``(x + 1) * 127.5``, rounded and clipped."""
    values = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((values + 1.0) * 127.5), 0, 255).astype(np.uint8)


def balanced_count(benign_count: int, malignant_count: int) -> int:
    """Images drawn from each domain per epoch: the minority class's size."""
    return min(benign_count, malignant_count)


def steps_per_epoch(benign_count: int, malignant_count: int, batch_size: int) -> int:
    """Full batches per epoch (a partial last batch is dropped; the next epoch draws afresh)."""
    return balanced_count(benign_count, malignant_count) // batch_size


def epoch_draw(benign_count: int, malignant_count: int, seed: int, epoch: int) -> dict[str, np.ndarray]:
    """Indices and flip decisions for one epoch, a deterministic function of ``(seed, epoch)``.

    Returns ``benign`` and ``malignant`` (count,) int64 indices without repetition and ``flips``
    (count, 2) bool (horizontal flip of the benign / malignant image of each pair).
    """
    count = balanced_count(benign_count, malignant_count)
    generator = np.random.default_rng([seed, epoch])
    return {
        "benign": generator.choice(benign_count, size=count, replace=False),
        "malignant": generator.choice(malignant_count, size=count, replace=False),
        "flips": generator.random((count, 2)) < 0.5,
    }


def _flip_where(images: tf.Tensor, decisions: tf.Tensor) -> tf.Tensor:
    return tf.where(decisions[:, None, None, None], tf.reverse(images, axis=[2]), images)


def _prepare(benign: tf.Tensor, malignant: tf.Tensor, flips: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """uint8 batches + flip decisions -> float32 batches in [-1, 1], flipped where asked."""
    return (
        to_model_range(_flip_where(benign, flips[:, 0])),
        to_model_range(_flip_where(malignant, flips[:, 1])),
    )


def _prepare_with_masks(benign: tf.Tensor, malignant: tf.Tensor, flips: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """As ``_prepare``, plus the (N, S, S, 1) padding masks of both flipped batches."""
    benign, malignant = _flip_where(benign, flips[:, 0]), _flip_where(malignant, flips[:, 1])
    return (
        to_model_range(benign),
        to_model_range(malignant),
        masking.padding_masks(benign),
        masking.padding_masks(malignant),
    )


def epoch_dataset(
    benign_images: np.ndarray,
    malignant_images: np.ndarray,
    *,
    seed: int,
    epoch: int,
    batch_size: int,
    flip: bool = True,
    masks: bool = False,
) -> tf.data.Dataset:
    """One epoch of ``(benign, malignant)`` pairs of (batch_size, S, S, 3) float32 in [-1, 1].

    ``benign_images``, ``malignant_images``: (N, S, S, 3) uint8 training images of each domain.
    With ``masks`` each element is ``(benign, malignant, benign_masks, malignant_masks)``, the masks
    (batch_size, S, S, 1) float32, 1 = source pixel, 0 = padding bar (``melanet.gan.masking``).
    Yields ``steps_per_epoch(...)`` batches.
    """
    for name, images in (("benign_images", benign_images), ("malignant_images", malignant_images)):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"{name} must be (N, S, S, 3) uint8, got {images.shape} {images.dtype}")
    if steps_per_epoch(len(benign_images), len(malignant_images), batch_size) < 1:
        raise ValueError(
            f"batch size {batch_size} is larger than the smaller domain ({len(benign_images)} benign, "
            f"{len(malignant_images)} malignant training images); lower gan.batch_size"
        )
    draw = epoch_draw(len(benign_images), len(malignant_images), seed, epoch)
    flips = draw["flips"] if flip else np.zeros_like(draw["flips"])
    if disk_images.is_on_disk(benign_images) or disk_images.is_on_disk(malignant_images):
        dataset = _read_per_batch(benign_images, malignant_images, draw, flips, batch_size)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(
            (benign_images[draw["benign"]], malignant_images[draw["malignant"]], flips)
        ).batch(batch_size, drop_remainder=True)
    return (
        dataset.map(_prepare_with_masks if masks else _prepare, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _read_per_batch(benign_images, malignant_images, draw: dict[str, np.ndarray], flips: np.ndarray,
                    batch_size: int) -> tf.data.Dataset:
    """Batches of ``(benign uint8, malignant uint8, flips)`` whose pixels are read when the batch is made."""
    row_shape = tuple(benign_images.shape[1:])

    def rows(images):
        return (lambda indices: images.read(indices)) if disk_images.is_on_disk(images) else \
            (lambda indices: np.asarray(images[indices]))

    read_benign, read_malignant = rows(benign_images), rows(malignant_images)

    def read(benign: tf.Tensor, malignant: tf.Tensor, flip: tf.Tensor) -> tuple[tf.Tensor, ...]:
        pixels = [tf.ensure_shape(tf.numpy_function(reader, [indices], tf.uint8, stateful=False), (None, *row_shape))
                  for reader, indices in ((read_benign, benign), (read_malignant, malignant))]
        return pixels[0], pixels[1], flip

    indices = tf.data.Dataset.from_tensor_slices((draw["benign"], draw["malignant"], flips))
    return indices.batch(batch_size, drop_remainder=True).map(read, num_parallel_calls=tf.data.AUTOTUNE,
                                                                deterministic=True)
