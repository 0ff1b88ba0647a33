"""A simple lesion mask of a model-input image, shared by stage 1 (``gan.composite: lesion``) and the audits.

Otsu's threshold on the grey levels: a dermoscopy lesion is darker than the skin around it, so the
darker class is taken as the lesion. Exact-black padding bars (``data.resize: pad``) are left out of
both classes, so they neither pull the threshold nor count as lesion. A rough segmentation: good
enough to tell a heat map on the lesion from one on the frame, or to keep the skin of an image while
its lesion is translated; ``mask_or_failure`` says when it is not usable (empty, or covering under
0.5 % or over 95 % of the non-padding content).
"""

from __future__ import annotations

import numpy as np

MASK_DESCRIPTION = "Otsu threshold on the input's grey levels, darker class = lesion; black padding excluded"


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of 8-bit grey levels (any shape, values 0-255): the level t that maximises
    the between-class variance of {v <= t} and {v > t}. ValueError on an empty array."""
    levels = np.asarray(values, dtype=np.float64).ravel()
    if levels.size == 0:
        raise ValueError("otsu_threshold needs at least one value")
    counts = np.bincount(np.clip(np.rint(levels), 0, 255).astype(np.int64), minlength=256).astype(np.float64)
    weights = np.cumsum(counts)  # pixels at or below each level
    sums = np.cumsum(counts * np.arange(256))
    total, total_sum = weights[-1], sums[-1]
    above = total - weights
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = sums / weights
        mean_above = (total_sum - sums) / above
        between = weights * above * (mean_below - mean_above) ** 2
    between[~np.isfinite(between)] = -1.0
    return float(np.argmax(between))


def lesion_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool lesion mask of an (H, W, 3) uint8 RGB image: valid (not exact-black padding) pixels
    at or below the Otsu threshold of the valid pixels' grey levels."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    valid = image.max(axis=-1) > 0
    if valid.sum() < 2:
        return np.zeros(grey.shape, dtype=bool)
    # the threshold is an integer level of the rounded histogram: compare the same rounded levels, or
    # pixels of the threshold's own level (grey 18.1 at level 18) fall out of the lesion
    return valid & (np.rint(grey) <= otsu_threshold(grey[valid]))


MASK_MIN_SHARE = 0.005  # a lesion mask under 0.5 % of the content is a failure
MASK_MAX_SHARE = 0.95  # ... and so is one over 95 %


def mask_or_failure(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(lesion mask (H, W) bool, failed) of one (H, W, 3) uint8 image; failed when the mask is empty or
    covers under ``MASK_MIN_SHARE`` or over ``MASK_MAX_SHARE`` of the non-padding pixels."""
    mask = lesion_mask(image)
    content = int((image.max(axis=-1) > 0).sum())
    share = mask.sum() / content if content else 0.0
    return mask, bool(mask.sum() == 0 or share < MASK_MIN_SHARE or share > MASK_MAX_SHARE)
