"""Per-epoch sample grids: fixed benign inputs | their translation | their cycle reconstruction."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from melanet.runs import runs

MIN_CELL_PIXELS = 128  # small demo images are enlarged (nearest neighbour) so people can see them
GUTTER_PIXELS = 2


def sample_grid(inputs: np.ndarray, translations: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """(R, S, S, 3) uint8 each -> one (H, W, 3) uint8 image, one row per input, three columns."""
    if not (inputs.shape == translations.shape == reconstructions.shape) or inputs.ndim != 4:
        raise ValueError(
            f"sample grid needs three (R, S, S, 3) arrays of one shape, got "
            f"{inputs.shape}, {translations.shape}, {reconstructions.shape}"
        )
    rows, size = inputs.shape[0], inputs.shape[1]
    scale = max(1, -(-MIN_CELL_PIXELS // size))
    cell = size * scale
    height = rows * cell + (rows + 1) * GUTTER_PIXELS
    width = 3 * cell + 4 * GUTTER_PIXELS
    grid = np.full((height, width, 3), 255, dtype=np.uint8)
    for row in range(rows):
        for column, images in enumerate((inputs, translations, reconstructions)):
            enlarged = images[row].repeat(scale, axis=0).repeat(scale, axis=1)
            top = GUTTER_PIXELS + row * (cell + GUTTER_PIXELS)
            left = GUTTER_PIXELS + column * (cell + GUTTER_PIXELS)
            grid[top : top + cell, left : left + cell] = enlarged
    return grid


def write_sample_grid(
    path: str | Path, inputs: np.ndarray, translations: np.ndarray, reconstructions: np.ndarray
) -> Path:
    """Write ``sample_grid(...)`` as a PNG atomically; returns the path."""
    buffer = io.BytesIO()
    Image.fromarray(sample_grid(inputs, translations, reconstructions)).save(buffer, format="PNG")
    runs.atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
