"""Decode one image the way the paper prepares it: upright, RGB, made square, resized.

Steps: refuse too many pixels from the header alone (a decompression bomb never gets decoded);
let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding when the target is small
(``Image.draft``: a 3872x2592 ISIC JPEG decodes several times faster); apply the EXIF orientation;
convert any mode to 8-bit RGB; make it square at ``image_size`` with an antialiasing (Lanczos)
filter in one of three ways (``data.resize``):

- ``pad`` (the paper, the default): long side to S, centred on a black square; nothing is lost or
  distorted, but the bars are a hard edge that a model can learn.
- ``stretch`` (the authors' code): both sides to S; no bars, the lesion is squashed by the aspect
  ratio (ISIC-2016 images are mostly 4:3 to 3:2).
- ``crop``: the centred square of the short side, then to S; no bars, no distortion, the image's
  left and right margins (usually skin, rarely lesion) are cut off.

Why black padding: dermoscopy images already have dark vignette corners from the lens, so black
bars look like the data rather than a new artefact; black is also 0 after both scalings the models
use (``x / 255``) and the "no signal" end of ``x / 127.5 - 1``, and it never invents lesion colour.
Resizing before padding keeps the pad out of the resampling filter, so the image border stays sharp.

Colour constancy (``data.color_constancy``, applied last, before the image is cached): ``none``, or
``shades_of_gray`` (Finlayson & Trezzi 2004, as used for dermoscopy by Barata et al. 2015 and the
ISIC challenge winners): the illuminant of each channel is the Minkowski p-norm mean of its values
(p = 6), and each channel is scaled so that the illuminant becomes grey. Black padding does not move
the estimate: zeros scale the three channel means alike, and only the direction of the illuminant
is used.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from melanet.data.errors import BadImageError

# Bump when the output of preprocess_image changes for the same input: it invalidates every cache.
PREPROCESSING_VERSION = 1
PAD_COLOUR = (0, 0, 0)
SHADES_OF_GRAY_POWER = 6  # Minkowski norm p of Shades of Gray (Barata et al. 2015)

ImageSource = str | Path | bytes | BinaryIO


def preprocess_image(
    source: ImageSource,
    image_size: int,
    max_pixels: int = 100_000_000,
    resize: str = "pad",
    color_constancy: str = "none",
) -> np.ndarray:
    """Decode ``source`` (path, bytes or binary file object) to a (S, S, 3) uint8 RGB array, S = ``image_size``.

    ``resize`` is ``pad`` (keep the aspect ratio, pad the short side with black, centred),
    ``stretch`` (both sides to S) or ``crop`` (centred square, then to S); see the module text.
    ``color_constancy`` is ``none`` or ``shades_of_gray`` (``apply_color_constancy``).
    Raises ``BadImageError`` (a ``DataError``) naming the file for an empty, truncated or
    unreadable file and for an image whose width x height exceeds ``max_pixels``.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if resize not in _SQUARERS:
        raise ValueError(f"resize must be one of {', '.join(_SQUARERS)}, got {resize!r}")
    if color_constancy not in COLOR_CONSTANCY:
        raise ValueError(f"color_constancy must be one of {', '.join(COLOR_CONSTANCY)}, got {color_constancy!r}")
    name = _source_name(source)
    with _open(source, name, max_pixels) as image:
        width, height = image.size
        # the smallest size each mode reads from: pad needs the long side at S, stretch and crop the short one
        side = max(width, height) if resize == "pad" else min(width, height)
        if image.format == "JPEG" and side > image_size:
            # the decoder scales by 1/2, 1/4 or 1/8 but never below the requested size
            image.draft(None, (max(1, width * image_size // side), max(1, height * image_size // side)))
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise BadImageError(name, f"truncated or corrupt image ({error})") from None
        rgb = to_rgb(upright)
    return apply_color_constancy(_SQUARERS[resize](rgb, image_size), color_constancy)


def read_dimensions(source: ImageSource, max_pixels: int = 100_000_000) -> tuple[int, int]:
    """(width, height) from the header alone, no pixels decoded; ``BadImageError`` as ``preprocess_image``."""
    with _open(source, _source_name(source), max_pixels) as image:
        return image.size


def inspect_image(source: ImageSource, max_pixels: int = 100_000_000) -> tuple[int, int]:
    """Fully decode ``source`` (cheaply, at 1/8 scale for JPEG) and return its (width, height).

    Raises ``BadImageError`` exactly where ``preprocess_image`` would, without resizing anything.
    """
    name = _source_name(source)
    with _open(source, name, max_pixels) as image:
        size = image.size
        if image.format == "JPEG":
            image.draft(None, (max(1, size[0] // 8), max(1, size[1] // 8)))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise BadImageError(name, f"truncated or corrupt image ({error})") from None
    return size


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: transparency onto the pad colour, 16-bit and float scaled to 0-255."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # PIL's own convert clips 16-bit values at 255 (a white image); scale the full range instead
        values = np.asarray(image, dtype=np.float64)
        top = 255.0 if values.max(initial=0) <= 255 else 65535.0
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*PAD_COLOUR, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def pad_and_resize(image: Image.Image, image_size: int) -> np.ndarray:
    """RGB ``image`` -> (S, S, 3) uint8: long side resized to S (Lanczos), short side centred on black."""
    width, height = image.size
    scale = image_size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size != image.size:
        # reducing_gap: a fast box reduction first when shrinking a lot, then Lanczos (still antialiased)
        image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new("RGB", (image_size, image_size), PAD_COLOUR)
    canvas.paste(image, ((image_size - new_size[0]) // 2, (image_size - new_size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def stretch_resize(image: Image.Image, image_size: int) -> np.ndarray:
    """RGB ``image`` -> (S, S, 3) uint8: both sides resized to S (Lanczos), aspect ratio not kept."""
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


def crop_and_resize(image: Image.Image, image_size: int) -> np.ndarray:
    """RGB ``image`` -> (S, S, 3) uint8: the centred square of side min(width, height), resized to S (Lanczos)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side == image_size:
        return np.asarray(image.crop(box), dtype=np.uint8)
    resized = image.resize((image_size, image_size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


_SQUARERS = {"pad": pad_and_resize, "stretch": stretch_resize, "crop": crop_and_resize}


def shades_of_gray(image: np.ndarray, power: int = SHADES_OF_GRAY_POWER) -> np.ndarray:
    """Shades of Gray colour constancy of one image.

    ``image``: (H, W, 3) uint8 RGB. Illuminant ``e_c = (mean_x I_c(x)^p)^(1/p)`` per channel,
    normalised to unit length; each channel is multiplied by ``1 / (sqrt(3) * e_c)`` (a grey
    illuminant leaves the image unchanged), then rounded and clipped to [0, 255]. Returns (H, W, 3)
    uint8. An all-black image is returned unchanged.
    """
    values = np.asarray(image, dtype=np.float64)
    if values.ndim != 3 or values.shape[-1] != 3:
        raise ValueError(f"shades_of_gray expects an (H, W, 3) image, got {values.shape}")
    illuminant = np.power(np.mean(np.power(values, power), axis=(0, 1)), 1.0 / power)
    length = float(np.linalg.norm(illuminant))
    if length == 0.0 or not np.all(illuminant > 0):
        return np.asarray(image, dtype=np.uint8)
    gains = 1.0 / (np.sqrt(3.0) * illuminant / length)
    return np.clip(np.rint(values * gains), 0, 255).astype(np.uint8)


COLOR_CONSTANCY = {"none": None, "shades_of_gray": shades_of_gray}


def apply_color_constancy(image: np.ndarray, method: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``data.color_constancy`` ``method`` applied (``none``: as it is)."""
    if method not in COLOR_CONSTANCY:
        raise ValueError(f"color_constancy must be one of {', '.join(COLOR_CONSTANCY)}, got {method!r}")
    correct = COLOR_CONSTANCY[method]
    return image if correct is None else correct(image)


def _source_name(source: ImageSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return str(getattr(source, "name", "<file object>"))


def _open(source: ImageSource, name: str, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse empty files, non-images and images over ``max_pixels``."""
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        if isinstance(source, (str, Path)) and Path(source).stat().st_size == 0:
            raise BadImageError(name, "empty file (0 bytes)")
        # PIL's own bomb protection stays on (a warning past Image.MAX_IMAGE_PIXELS, an error at twice
        # that); data.max_image_pixels below is checked as well, from the header alone.
        image = Image.open(source)
    except FileNotFoundError:
        raise BadImageError(name, "file not found") from None
    except UnidentifiedImageError:
        empty = isinstance(source, io.IOBase) and source.seek(0, io.SEEK_END) == 0
        raise BadImageError(name, "empty file (0 bytes)" if empty else "not an image (unknown format)") from None
    except Image.DecompressionBombError as error:
        raise BadImageError(name, f"refused: too many pixels ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadImageError(name, f"truncated or corrupt image ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise BadImageError(
            name, f"refused: {width}x{height} = {width * height} pixels exceeds data.max_image_pixels={max_pixels} "
            "(a decompression bomb or a huge scan)")
    if width < 1 or height < 1:
        image.close()
        raise BadImageError(name, f"image has no pixels ({width}x{height})")
    return image
