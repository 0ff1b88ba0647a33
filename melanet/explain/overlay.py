"""Rendering of class activation maps: colour maps and heat-map overlays on the input image.

No matplotlib: the colour maps are small piecewise-linear tables evaluated with numpy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

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


# --- Maps over the original image, in its own framing -------------------------------------------------------------

# What a reader is told under every heat map: Grad-CAM keeps only the regions that raise the malignant score.
HEATMAP_CAPTION = ("Red: the regions that raised the malignant score most; blue: regions that did not raise it. "
                   "The map shows where the model looked, not why, and not whether it is right.")


def content_box(width: int, height: int, image_size: int, resize_mode: str) -> tuple[float, float, float, float]:
    """Where the original image lies in the model's (S, S) square, S = ``image_size``.

    Returns (left, top, right, bottom) in pixels of the square, the inverse of
    ``melanet.data.preprocess`` for an original of ``width`` x ``height`` (after its EXIF rotation):
    ``pad`` -> the centred, aspect-kept box (the black bars are outside it; same rounding as
    ``pad_and_resize``); ``stretch`` and ``crop`` -> the whole square (for ``crop`` the square shows
    only the centred square of the original, see ``original_box``).
    """
    if resize_mode not in ("pad", "stretch", "crop"):
        raise ValueError(f"resize_mode must be pad, stretch or crop, got {resize_mode!r}")
    if width < 1 or height < 1 or image_size < 1:
        raise ValueError(f"sizes must be >= 1, got {width} x {height} at {image_size} px")
    if resize_mode != "pad":
        return 0.0, 0.0, float(image_size), float(image_size)
    scale = image_size / max(width, height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (image_size - new_width) // 2, (image_size - new_height) // 2
    return float(left), float(top), float(left + new_width), float(top + new_height)


def original_box(width: int, height: int, resize_mode: str) -> tuple[int, int, int, int]:
    """The part of a ``width`` x ``height`` original that the model's square shows (left, top, right, bottom).

    ``crop``: the centred square of the short side (as ``crop_and_resize``); ``pad`` and ``stretch``: all of it.
    """
    if resize_mode == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side
    if resize_mode not in ("pad", "stretch"):
        raise ValueError(f"resize_mode must be pad, stretch or crop, got {resize_mode!r}")
    return 0, 0, width, height


def map_on_original(activation_map: np.ndarray, width: int, height: int, image_size: int,
                    resize_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Carry an (h, w) map over the model's square onto the original's (height, width) pixels.

    The map is read as covering the (S, S) square evenly; the part over the padding is dropped
    (``pad``), the squashed square is un-stretched (``stretch``), and for ``crop`` the map covers only
    the centred square of the original. Returns (values (height, width) float32 in the map's range,
    covered (height, width) bool: False where the model never saw the original, i.e. outside the crop).
    """
    activation_map = np.asarray(activation_map, dtype=np.float32)
    if activation_map.ndim != 2:
        raise ValueError(f"expected an (h, w) activation map, got shape {activation_map.shape}")
    map_height, map_width = activation_map.shape
    left, top, right, bottom = content_box(width, height, image_size, resize_mode)
    # the same box in the map's own cells: a cell of the map covers S / w pixels of the square
    box = (left * map_width / image_size, top * map_height / image_size,
           right * map_width / image_size, bottom * map_height / image_size)
    region_left, region_top, region_right, region_bottom = original_box(width, height, resize_mode)
    region_width, region_height = region_right - region_left, region_bottom - region_top
    resized = Image.fromarray(activation_map).resize((region_width, region_height), Image.Resampling.BILINEAR,
                                                     box=box)
    low, high = float(activation_map.min()), float(activation_map.max())
    values = np.zeros((height, width), dtype=np.float32)
    covered = np.zeros((height, width), dtype=bool)
    values[region_top:region_bottom, region_left:region_right] = np.clip(np.asarray(resized, np.float32), low, high)
    covered[region_top:region_bottom, region_left:region_right] = True
    return values, covered


def heatmap_on_original(
    original_rgb: np.ndarray,
    activation_map: np.ndarray,
    resize_mode: str,
    image_size: int,
    *,
    colour_map: str = "jet",
    opacity: float = 0.5,
) -> np.ndarray:
    """The map blended onto the original image in its own framing (not the model's padded square).

    Args:
        original_rgb: (H, W, 3) uint8, the upright original or a copy downscaled with its aspect ratio
            (``load_original``); the pad bars' rounding then differs by under one pixel of the square.
        activation_map: (h, w) float in [0, 1] over the model's (S, S) input square.
        resize_mode: the run's ``data.resize`` (``pad``, ``stretch`` or ``crop``).
        image_size: S, the run's ``data.image_size``.
    Returns:
        (H, W, 3) uint8; outside a crop, where the model saw nothing, the original is shown untinted.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    original_rgb = np.asarray(original_rgb)
    if original_rgb.ndim != 3 or original_rgb.shape[-1] != 3 or original_rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB original, got {original_rgb.dtype} {original_rgb.shape}")
    height, width = original_rgb.shape[:2]
    values, covered = map_on_original(activation_map, width, height, image_size, resize_mode)
    heat = apply_colour_map(values, colour_map).astype(np.float32)
    base = original_rgb.astype(np.float32)
    weight = np.where(covered, opacity, 0.0)[..., None]
    return np.clip(np.round((1.0 - weight) * base + weight * heat), 0, 255).astype(np.uint8)


def load_original(source, max_side: int = 1024, max_pixels: int = 100_000_000) -> np.ndarray:
    """The original image upright (EXIF), RGB, downscaled so its long side is at most ``max_side``.

    ``source``: a path, bytes or binary file object. Returns (H, W, 3) uint8 with the original's aspect
    ratio: what ``heatmap_on_original`` draws on. Raises ``BadImageError`` as ``preprocess_image`` does.
    """
    from melanet.data import preprocess  # the data package, not the other way round

    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    with preprocess._open(source, preprocess._source_name(source), max_pixels) as image:
        if image.format == "JPEG" and max(image.size) > max_side:
            image.draft(None, (max_side, max_side))
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise preprocess.BadImageError(preprocess._source_name(source),
                                           f"truncated or corrupt image ({error})") from None
        rgb = preprocess.to_rgb(upright)
        if max(rgb.size) > max_side:
            scale = max_side / max(rgb.size)
            rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                             Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(rgb, dtype=np.uint8)


def colour_scale(colour_map: str = "jet", width: int = 256, height: int = 14, *, labels: bool = True) -> np.ndarray:
    """A horizontal colour bar of ``colour_map``, low on the left, high on the right: (height', width, 3) uint8.

    With ``labels`` a strip beneath names the ends ("did not raise the malignant score" / "raised it most").
    """
    if width < 2 or height < 1:
        raise ValueError(f"colour scale needs width >= 2 and height >= 1, got {width} x {height}")
    bar = np.repeat(apply_colour_map(np.linspace(0.0, 1.0, width))[None], height, axis=0)
    if not labels:
        return bar
    from PIL import ImageDraw

    strip = Image.new("RGB", (width, 14), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    draw.text((1, 1), "low", fill=(0, 0, 0))
    high = "high: raised the malignant score most"
    text_width = draw.textlength(high)
    draw.text((max(30, width - text_width - 1), 1), high if text_width < width - 30 else "high", fill=(0, 0, 0))
    return np.concatenate([bar, np.asarray(strip, dtype=np.uint8)], axis=0)
