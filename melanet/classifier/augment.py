"""Offline augmentation for the Augment-5x / Augment-10x baselines (paper Section 2.3).

Each augmented copy gets one random geometric transform (horizontal/vertical flip, rotation, shift,
zoom; reflected borders) and a random photometric change (brightness, Gaussian noise). All random
numbers come from one ``numpy`` generator seeded by ``seed``: same seed, same images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from keras import ops

from melanet.runs.progress import Progress

# Ranges of the random changes (uniform unless noted).
MAX_ROTATION_DEGREES = 30.0
MAX_SHIFT_FRACTION = 0.1  # of the image side
ZOOM_RANGE = (0.9, 1.1)
BRIGHTNESS_RANGE = (0.85, 1.15)  # multiplicative
MAX_NOISE_STD = 8.0  # Gaussian noise std on the 0-255 scale, drawn per image in [0, MAX_NOISE_STD]
# Bump when the recipe changes so cached augmented sets are rebuilt.
AUGMENTATION_VERSION = 1


def random_transforms(count: int, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 8) projective transforms mapping output pixel (x, y) to input pixel (x', y')."""
    flips_x = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    flips_y = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    angles = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, count))
    zooms = rng.uniform(*ZOOM_RANGE, count)
    shifts = rng.uniform(-MAX_SHIFT_FRACTION, MAX_SHIFT_FRACTION, (count, 2)) * image_size
    centre = (image_size - 1) / 2.0
    transforms = np.zeros((count, 8), dtype=np.float32)
    for index in range(count):
        cos, sin = math.cos(angles[index]), math.sin(angles[index])
        # output -> input: undo the zoom, rotate, flip, all about the image centre
        matrix = np.array([[cos, -sin], [sin, cos]]) / zooms[index]
        matrix = np.diag([flips_x[index], flips_y[index]]) @ matrix
        offset = np.array([centre, centre]) - matrix @ np.array([centre, centre]) + shifts[index]
        transforms[index] = [matrix[0, 0], matrix[0, 1], offset[0], matrix[1, 0], matrix[1, 1], offset[1], 0, 0]
    return transforms


def augment_images(
    images: np.ndarray,
    copies: int,
    seed: int,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Make ``copies`` randomly augmented versions of every image.

    Args:
        images: (N, S, S, 3) uint8 (an array, or rows read on demand such as a ``DiskImages``).
        copies: augmented copies per image (>= 1).
        seed: random seed; the result depends only on ``images``, ``copies`` and ``seed``.
    Returns:
        (copies * N, S, S, 3) uint8, copy-major: rows ``k * N + i`` are copy k of image i.
    """
    output = np.empty((copies * len(images), *images.shape[1:]), dtype=np.uint8)
    for start, block in augmented_blocks(images, copies, seed, batch_size=batch_size, progress=progress):
        output[start:start + len(block)] = block
    return output


def augmented_blocks(
    images: np.ndarray,
    copies: int,
    seed: int,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``augment_images`` a block at a time: yields ``(first row, (B, S, S, 3) uint8)`` in row order.

    Only one block of sources and results is in memory at once, so the copies of a data set larger
    than memory can be written straight to disk; the rows are those of ``augment_images``.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, S, S, 3) uint8, got {images.shape} {images.dtype}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    count, image_size = images.shape[0], images.shape[1]
    total = copies * count
    rng = np.random.default_rng(seed)
    transforms = random_transforms(total, image_size, rng)
    brightness = rng.uniform(*BRIGHTNESS_RANGE, total).astype(np.float32)
    noise_std = rng.uniform(0.0, MAX_NOISE_STD, total).astype(np.float32)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        sources = images[np.arange(start, stop) % count].astype(np.float32)
        moved = np.asarray(
            ops.image.affine_transform(sources, transforms[start:stop], interpolation="bilinear", fill_mode="reflect")
        )
        noise = rng.standard_normal(moved.shape).astype(np.float32) * noise_std[start:stop, None, None, None]
        changed = moved * brightness[start:stop, None, None, None] + noise
        yield start, np.clip(np.rint(changed), 0, 255).astype(np.uint8)
        if progress is not None:
            progress(stop, total, "augmenting")
