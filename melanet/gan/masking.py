"""Padding masks: which pixels of a padded image came from the source photograph.

``data.resize: pad`` resizes first and then centres the image on a black square
(``melanet.data.preprocess.pad_and_resize``), so its bars are whole rows (or columns) of exact zeros
at the image's edges. A CycleGAN that sees those bars learns them: its translations grow a frame
of their own (a beige border with coloured stripes, ringing along the bar edge) that tells every
synthetic image from a real one. With ``gan.mask_padding`` the model pastes the source's bars back
onto every generated image (``paste_bars``) before any loss sees it, so bars are identical in real
and generated images and pass no gradient, and the L1 terms average over the valid pixels only.

The mask is derived from the pixels: a row (column) is a bar when it and every row (column)
between it and the edge is exactly black in all three channels. A source whose own edge rows are
pure black is treated the same way; pasting black onto black changes nothing. ``stretch`` and
``crop`` images have no bars, so their masks are all ones.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _edge_runs(is_black_line: tf.Tensor) -> tf.Tensor:
    """(N, L) bool "this line is all black" -> (N, L) bool "this line is part of an edge run of them"."""
    as_int = tf.cast(is_black_line, tf.int32)
    from_start = tf.math.cumprod(as_int, axis=1)
    from_end = tf.math.cumprod(as_int, axis=1, reverse=True)
    return tf.logical_or(from_start > 0, from_end > 0)


def padding_masks(images: tf.Tensor | np.ndarray) -> tf.Tensor:
    """Validity masks of padded images.

    Args:
        images: (N, S, S, 3) uint8 in [0, 255] as cached (bars exactly 0).
    Returns:
        (N, S, S, 1) float32: 1 where the pixel came from the source image, 0 on a padding bar.
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.dtype != tf.uint8:
        raise ValueError(f"padding_masks expects (N, S, S, 3) uint8 images, got {images.shape} {images.dtype}")
    black = tf.reduce_all(tf.equal(images, 0), axis=-1)  # (N, S, S)
    bar_rows = _edge_runs(tf.reduce_all(black, axis=2))  # (N, S): rows (over all columns)
    bar_columns = _edge_runs(tf.reduce_all(black, axis=1))  # (N, S): columns (over all rows)
    bars = tf.logical_or(bar_rows[:, :, None], bar_columns[:, None, :])
    return tf.cast(tf.logical_not(bars), tf.float32)[..., None]


def paste_bars(generated: tf.Tensor, source: tf.Tensor, masks: tf.Tensor | None) -> tf.Tensor:
    """``generated`` inside the valid region, ``source`` on its bars; ``generated`` itself when ``masks`` is None.

    ``generated``, ``source``: (N, S, S, 3) in the same range (either [-1, 1] floats or uint8);
    ``masks``: (N, S, S, 1) from ``padding_masks`` of the source. The bars are copied exactly
    (``tf.where``, not a blend), so no gradient reaches a generated bar pixel.
    """
    if masks is None:
        return generated
    source = tf.cast(source, generated.dtype)
    inside = tf.broadcast_to(masks > 0.5, tf.shape(generated))
    return tf.where(inside, generated, source)



def translate_and_reconstruct(
    to_target, to_source, inputs: tf.Tensor, masks: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Translate with generator ``to_target`` and back with ``to_source`` (inference mode).

    ``inputs``: (N, S, S, 3) float32 in [-1, 1]; ``masks``: their ``padding_masks`` or None.
    Returns (translations, reconstructions), both (N, S, S, 3) float32 in [-1, 1], carrying the
    inputs' padding bars exactly when ``masks`` is given.
    """
    translated = paste_bars(tf.convert_to_tensor(to_target(inputs, training=False)), inputs, masks)
    reconstructed = paste_bars(tf.convert_to_tensor(to_source(translated, training=False)), inputs, masks)
    return translated, reconstructed
