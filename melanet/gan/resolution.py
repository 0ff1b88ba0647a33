"""The down-and-up path: real training images brought to the sharpness of synthetic ones made at a lower size.

A CycleGAN trained at ``L`` px writes ``L`` px images; a classifier at ``S > L`` px reads them resized up
(``melanet.gan.synthesis.load_synthetic``: Lanczos), so they are blurrier than the real images, which are
resized from the full-size originals straight to ``S``. Blur then means "synthetic", a shortcut. With
``classifier.match_resolution`` every real training image takes the same path (Lanczos down to ``L``, then up to
``S``) so sharpness no longer tells the two apart; ``benchmarks/bench_gan_translation.py`` checks that with the
pixel probe. Without the option a lower-resolution GAN is refused (``training_sets.check_synthesis_resolution``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def down_and_up(images, low_size: int) -> np.ndarray:
    """(N, S, S, 3) uint8 (an array, or anything indexable with len) -> (N, S, S, 3) uint8 resized to
    ``low_size`` and back (Lanczos both ways, as a synthetic image's own path). ``low_size >= S`` returns a copy."""
    count = len(images)
    if count == 0:
        return np.zeros((0, low_size, low_size, 3), dtype=np.uint8)
    size = np.asarray(images[0]).shape[0]
    if low_size < 1:
        raise ValueError(f"low_size must be >= 1, got {low_size}")
    result = np.empty((count, size, size, 3), dtype=np.uint8)
    for index in range(count):
        image = np.asarray(images[index])
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise ValueError(f"image {index}: expected ({size}, {size}, 3) uint8, got {image.shape} {image.dtype}")
        if low_size >= size:
            result[index] = image
            continue
        small = Image.fromarray(image).resize((low_size, low_size), Image.Resampling.LANCZOS)
        result[index] = np.asarray(small.resize((size, size), Image.Resampling.LANCZOS))
    return result
