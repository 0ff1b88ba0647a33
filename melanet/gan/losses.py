"""CycleGAN objective (paper equations (1)-(5)), least-squares adversarial form as in the authors' code.

All functions take float tensors and return a float32 scalar: the mean over the batch (and over
patches or pixels), so the values do not depend on the batch or image size. A projected discriminator
(``melanet.gan.projected``) scores each image at several scales: its scores come as a list of maps, and
the adversarial terms are the mean of the per-scale terms (each scale counts alike, whatever its size).
"""

from __future__ import annotations

import tensorflow as tf


def _float32(tensor: tf.Tensor) -> tf.Tensor:
    return tf.cast(tensor, tf.float32)


Scores = tf.Tensor | list[tf.Tensor] | tuple[tf.Tensor, ...]


def _mean_over_scales(scores: Scores, per_scale) -> tf.Tensor:
    """``per_scale(map)`` for one map of scores, or the mean of it over a list of maps."""
    if isinstance(scores, (list, tuple)):
        return tf.add_n([per_scale(_float32(scale)) for scale in scores]) / float(len(scores))
    return per_scale(_float32(scores))


def generator_adversarial_loss(scores_on_translated: Scores) -> tf.Tensor:
    """LSGAN generator loss: mean (D(G(x)) - 1)^2 over patch scores (N, P, P, 1) (or a list of them)."""
    return _mean_over_scales(scores_on_translated, lambda scores: tf.reduce_mean(tf.square(scores - 1.0)))


def discriminator_loss(scores_on_real: Scores, scores_on_translated: Scores) -> tf.Tensor:
    """LSGAN discriminator loss: 0.5 * (mean (D(real) - 1)^2 + mean D(translated)^2)."""
    real = _mean_over_scales(scores_on_real, lambda scores: tf.reduce_mean(tf.square(scores - 1.0)))
    translated = _mean_over_scales(scores_on_translated, lambda scores: tf.reduce_mean(tf.square(scores)))
    return 0.5 * (real + translated)


def l1_loss(images: tf.Tensor, targets: tf.Tensor, masks: tf.Tensor | None = None) -> tf.Tensor:
    """Mean absolute difference of two (N, S, S, 3) batches in [-1, 1] (cycle and identity terms).

    ``masks`` (N, S, S, 1), 1 = valid pixel, 0 = padding bar (``melanet.gan.masking``): the mean then
    runs over the valid pixels only, and the bar pixels get no gradient.
    """
    differences = tf.abs(_float32(images) - _float32(targets))
    if masks is None:
        return tf.reduce_mean(differences)
    masks = _float32(masks)
    channels = tf.cast(tf.shape(differences)[-1], tf.float32)
    valid = tf.maximum(tf.reduce_sum(masks) * channels, 1.0)
    return tf.reduce_sum(differences * masks) / valid
