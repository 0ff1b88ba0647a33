"""Lesion-only synthesis (``gan.composite: lesion``): keep the source's skin, take the lesion from the GAN.

A CycleGAN trained on a few hundred images changes the whole picture: it repaints the skin, drops
the vignette, shifts the white balance. Those changes tell every synthetic image from a real one and
give a classifier trained on them a shortcut that has nothing to do with malignancy. With
``gan.composite: lesion`` synthesis blends each translation back onto its own benign source with a
soft lesion mask ``w`` of the source::

    synthetic = w * translation + (1 - w) * source

so the skin, hair, rulers and vignette outside the lesion are the real photograph's pixels and only
the lesion (with a margin, feathered) is generated. The reconstruction is made from the composite
and blended the same way. Training is unchanged (the generators still translate whole images); the
composite is applied where the synthetic images are written, so one trained GAN can be synthesized
either way.

The mask: ``melanet.data.lesion_mask`` (Otsu, darker = lesion), holes filled, the connected parts
that reach the central half of the image kept (a dark vignette corner is not a lesion; the largest
part is kept when none does), grown by ``MARGIN`` of the side and softened by a Gaussian of
``FEATHER`` of the side, then zeroed on padding bars. When the source's mask fails
(``mask_or_failure``), its whole translation is kept, as without a composite, and the manifest says
so (``composite`` column ``whole (mask failed)``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from melanet.data import lesion_mask

COMPOSITES = ("none", "lesion")  # gan.composite
MARGIN = 0.04  # the mask grows by this share of the image side: the lesion's rim is generated too
FEATHER = 0.02  # Gaussian sigma of the soft edge, as a share of the side
LESION = "lesion"
WHOLE_MASK_FAILED = "whole (mask failed)"
NONE = "none"


def _central_parts(mask: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that reach the central half of the image (else its largest)."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    height, width = mask.shape
    centre = labels[height // 4 : height - height // 4, width // 4 : width - width // 4]
    central = np.unique(centre[centre > 0])
    if central.size == 0:
        sizes = np.bincount(labels.ravel())[1:]
        central = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, central)


def lesion_weights(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """(weights (H, W) float32 in [0, 1], failed) of one (H, W, 3) uint8 source image.

    ``weights`` is 1 on the lesion and its margin, falls off smoothly outside, and is 0 on padding
    bars (exact-black pixels). ``failed``: the lesion mask was not usable; ``weights`` then is 1 on
    every non-padding pixel (the whole translation is kept).
    """
    mask, failed = lesion_mask.mask_or_failure(image)
    valid = image.max(axis=-1) > 0
    if failed:
        return valid.astype(np.float32), True
    side = max(image.shape[:2])
    mask = _central_parts(ndimage.binary_fill_holes(mask))
    margin = max(1, round(MARGIN * side))
    disk = np.hypot(*np.mgrid[-margin : margin + 1, -margin : margin + 1]) <= margin
    grown = ndimage.binary_dilation(mask, structure=disk)
    soft = ndimage.gaussian_filter(grown.astype(np.float64), sigma=max(0.5, FEATHER * side), mode="nearest")
    # the lesion itself stays fully generated: the feather softens the margin's outer edge only
    weights = np.where(mask, 1.0, np.clip(soft, 0.0, 1.0)) * valid
    return weights.astype(np.float32), False


def blend(generated: np.ndarray, source: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights * generated + (1 - weights) * source`` for (N, S, S, 3) images in one float range and
    (N, S, S) weights."""
    weights = np.asarray(weights, dtype=np.float32)[..., None]
    return weights * np.asarray(generated, dtype=np.float32) + (1.0 - weights) * np.asarray(source, dtype=np.float32)
