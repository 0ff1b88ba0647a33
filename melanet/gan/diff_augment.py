"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every image a discriminator sees.

With 83 malignant training images a discriminator soon memorises the real set and its gradient
stops teaching the generator anything. DiffAugment transforms real and generated images alike,
with differentiable operations, both when the discriminator is trained and when the generator is
scored through it, so the discriminator never sees an un-augmented image and the augmentation
never leaks into the generator's output (it is off outside training).

The three policies of the paper, per image of the batch:

- colour: brightness + U(-0.5, 0.5); saturation about the per-pixel channel mean x U(0, 2);
  contrast about the image mean x U(0.5, 1.5);
- translation: an integer shift of up to 1/8 of the side in each direction, the uncovered
  border filled with 0 (the middle of [-1, 1]);
- cutout: a square of half the side at a random centre set to 0.

Here one draw of the parameters serves a (real, generated) pair: image ``i`` of the real batch and
image ``i`` of the generated batch get the same transform, so the discriminator cannot tell them
apart by their augmentation.
"""

from __future__ import annotations

import tensorflow as tf

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
PARAMETER_NAMES = (
    "brightness", "saturation", "contrast", "shift_rows", "shift_columns", "cutout_row", "cutout_column",
)


def draw_parameters(generator: tf.random.Generator, batch_size: int, image_size: int) -> dict[str, tf.Tensor]:
    """One draw of per-image parameters for a batch of ``batch_size`` (S = ``image_size``) images.

    Returns float32 (N, 1, 1, 1) ``brightness`` in [-0.5, 0.5), ``saturation`` in [0, 2),
    ``contrast`` in [0.5, 1.5), and int32 (N,) ``shift_rows``/``shift_columns`` in
    [-S/8, S/8] and ``cutout_row``/``cutout_column`` in [0, S).
    """
    shape = [batch_size, 1, 1, 1]
    largest_shift = int(image_size * TRANSLATION_RATIO + 0.5)
    return {
        "brightness": generator.uniform(shape) - 0.5,
        "saturation": generator.uniform(shape) * 2.0,
        "contrast": generator.uniform(shape) + 0.5,
        "shift_rows": generator.uniform([batch_size], -largest_shift, largest_shift + 1, dtype=tf.int32),
        "shift_columns": generator.uniform([batch_size], -largest_shift, largest_shift + 1, dtype=tf.int32),
        "cutout_row": generator.uniform([batch_size], 0, image_size, dtype=tf.int32),
        "cutout_column": generator.uniform([batch_size], 0, image_size, dtype=tf.int32),
    }


def _colour(images: tf.Tensor, parameters: dict[str, tf.Tensor]) -> tf.Tensor:
    images = images + parameters["brightness"]
    pixel_mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - pixel_mean) * parameters["saturation"] + pixel_mean
    image_mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - image_mean) * parameters["contrast"] + image_mean


def _shift(images: tf.Tensor, shifts: tf.Tensor, axis: int) -> tf.Tensor:
    """Shift each image by ``shifts[i]`` pixels along ``axis`` (1 rows, 2 columns), zero-filled."""
    size = tf.shape(images)[axis]
    sources = tf.range(size)[None, :] - shifts[:, None]  # (N, S): output position <- source position
    inside = tf.logical_and(sources >= 0, sources < size)
    gathered = tf.gather(images, tf.clip_by_value(sources, 0, size - 1), axis=axis, batch_dims=1)
    keep = tf.cast(inside, images.dtype)
    keep = keep[:, :, None, None] if axis == 1 else keep[:, None, :, None]
    return gathered * keep


def _cutout(images: tf.Tensor, parameters: dict[str, tf.Tensor]) -> tf.Tensor:
    size = tf.shape(images)[1]
    half = tf.cast(tf.cast(size, tf.float32) * CUTOUT_RATIO / 2.0 + 0.5, tf.int32)
    positions = tf.range(size)[None, :]
    rows_in = tf.abs(positions - parameters["cutout_row"][:, None]) < half  # (N, S)
    columns_in = tf.abs(positions - parameters["cutout_column"][:, None]) < half
    hole = tf.logical_and(rows_in[:, :, None], columns_in[:, None, :])[..., None]
    return images * tf.cast(tf.logical_not(hole), images.dtype)


def augment(images: tf.Tensor, parameters: dict[str, tf.Tensor]) -> tf.Tensor:
    """Colour, translation and cutout with ``parameters`` from ``draw_parameters``.

    ``images``: (N, S, S, 3) float in [-1, 1] (the result may leave that range, as in the paper).
    """
    images = tf.cast(images, tf.float32)
    images = _colour(images, parameters)
    images = _shift(images, parameters["shift_rows"], axis=1)
    images = _shift(images, parameters["shift_columns"], axis=2)
    return _cutout(images, parameters)


class PairAugmenter:
    """Applies one draw of DiffAugment to a (real, generated) pair while training; identity otherwise.

    ``seed`` fixes the draws; ``reset(epoch)`` restarts them from ``(seed, epoch)`` so that a
    resumed run augments exactly as an uninterrupted one would.
    """

    def __init__(self, seed: int, enabled: bool = True):
        self.seed = int(seed)
        self.enabled = bool(enabled)
        self.generator = tf.random.Generator.from_seed(self.seed)

    def reset(self, epoch: int) -> None:
        self.generator.reset_from_seed(self.seed * 100_003 + int(epoch))

    def __call__(self, real: tf.Tensor, generated: tf.Tensor, *, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """``real``, ``generated``: (N, S, S, 3) float32; returns both augmented alike (training) or as they are."""
        if not (self.enabled and training):
            return real, generated
        parameters = draw_parameters(self.generator, tf.shape(real)[0], real.shape[1])
        return augment(real, parameters), augment(generated, parameters)
