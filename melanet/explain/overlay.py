"""Rendering of class activation maps: colour maps and heat-map overlays on the input image.

No matplotlib: the colour maps are small piecewise-linear tables evaluated with numpy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Control points (position in [0, 1], (red, green, blue) in [0, 1]) of each colour map.
_COLOUR_MAPS: dict[str, tuple[tuple[float, tuple[float, float, float]], ...]] = {
    # The classic Grad-CAM look: dark blue -> blue -> cyan -> yellow -> red -> dark red.
    "jet": (
        (0.0, (0.0, 0.0, 0.5)),
        (0.11, (0.0, 0.0, 1.0)),
        (0.125, (0.0, 0.0, 1.0)),
        (0.375, (0.0, 1.0, 1.0)),
        (0.625, (1.0, 1.0, 0.0)),
        (0.875, (1.0, 0.0, 0.0)),
        (1.0, (0.5, 0.0, 0.0)),
    ),
    # Black -> red -> yellow -> white.
    "hot": (
        (0.0, (0.04, 0.0, 0.0)),
        (0.365, (1.0, 0.0, 0.0)),
        (0.746, (1.0, 1.0, 0.0)),
        (1.0, (1.0, 1.0, 1.0)),
    ),
    "gray": ((0.0, (0.0, 0.0, 0.0)), (1.0, (1.0, 1.0, 1.0))),
}

COLOUR_MAPS = tuple(_COLOUR_MAPS)


def apply_colour_map(values: np.ndarray, colour_map: str = "jet") -> np.ndarray:
    """Map values in [0, 1] of any shape (...) to colours (..., 3) uint8 in [0, 255]."""
    if colour_map not in _COLOUR_MAPS:
        raise ValueError(f"unknown colour map '{colour_map}'; expected one of {', '.join(COLOUR_MAPS)}")
    points = _COLOUR_MAPS[colour_map]
    positions = np.array([position for position, _ in points])
    colours = np.array([colour for _, colour in points])
    clipped = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    channels = [np.interp(clipped, positions, colours[:, channel]) for channel in range(3)]
    return np.round(np.stack(channels, axis=-1) * 255.0).astype(np.uint8)


def resize_map(activation_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinearly resize an (h, w) float map to (height, width); values stay in the input's range."""
    activation_map = np.asarray(activation_map, dtype=np.float32)
    if activation_map.shape == (height, width):
        return activation_map
    resized = Image.fromarray(activation_map).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32).clip(activation_map.min(), activation_map.max())


def overlay(
    image: np.ndarray,
    activation_map: np.ndarray,
    *,
    colour_map: str = "jet",
    opacity: float = 0.5,
) -> np.ndarray:
    """Blend a coloured activation map onto an image.

    Args:
        image: (H, W, 3) uint8 RGB, or (H, W, 3) float in [0, 1].
        activation_map: (h, w) float in [0, 1]; resized bilinearly to (H, W) if it differs.
        colour_map: one of ``COLOUR_MAPS``.
        opacity: weight of the heat map in [0, 1] (0 = the image alone, 1 = the heat map alone).
    Returns:
        (H, W, 3) uint8 RGB, the image's size.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    base = image.astype(np.float32) if image.dtype == np.uint8 else image.astype(np.float32) * 255.0
    activation_map = np.asarray(activation_map)
    if activation_map.ndim != 2:
        raise ValueError(f"expected an (h, w) activation map, got shape {activation_map.shape}")
    heat = apply_colour_map(resize_map(activation_map, *image.shape[:2]), colour_map).astype(np.float32)
    blended = (1.0 - opacity) * base + opacity * heat
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
