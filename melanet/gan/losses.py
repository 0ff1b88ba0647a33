"""CycleGAN objective (paper equations (1)-(5)), least-squares adversarial form as in the authors' code.

All functions take float tensors and return a float32 scalar: the mean over the batch (and over
patches or pixels), so the values do not depend on the batch or image size.
"""

from __future__ import annotations

import tensorflow as tf


def _float32(tensor: tf.Tensor) -> tf.Tensor:
    return tf.cast(tensor, tf.float32)


def generator_adversarial_loss(scores_on_translated: tf.Tensor) -> tf.Tensor:
    """LSGAN generator loss: mean (D(G(x)) - 1)^2 over patch scores (N, P, P, 1)."""
    return tf.reduce_mean(tf.square(_float32(scores_on_translated) - 1.0))


def discriminator_loss(scores_on_real: tf.Tensor, scores_on_translated: tf.Tensor) -> tf.Tensor:
    """LSGAN discriminator loss: 0.5 * (mean (D(real) - 1)^2 + mean D(translated)^2)."""
    real = tf.reduce_mean(tf.square(_float32(scores_on_real) - 1.0))
    translated = tf.reduce_mean(tf.square(_float32(scores_on_translated)))
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
