"""Does a Grad-CAM map point at the lesion? The share of a map's mass inside a simple lesion mask.

The mask is Otsu's threshold on the grey levels of the model's input image: a dermoscopy lesion is
darker than the skin around it, so the darker class is taken as the lesion. Exact-black padding bars
(``data.resize: pad``) are left out of both classes, so they neither pull the threshold nor count as
lesion. It is a rough segmentation, good enough to tell a map on the lesion from one on the frame or
the skin; the chance level of the share is the mask's own area fraction (a uniform map scores exactly
that), reported beside it.

``lesion_focus.json`` in an explain folder (written by ``melanet explain``)::

    {"mask": "...", "by_outcome": {"TP": {"n", "mass_share", "area_fraction"}, ...},
     "all": {...}, "method", "layer"}
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from melanet import layout, runs

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


def mass_share(activation_map: np.ndarray, mask: np.ndarray) -> float:
    """Share of a non-negative map's mass inside ``mask`` (resized to the map's shape, nearest); NaN
    for an all-zero map."""
    activation = np.clip(np.asarray(activation_map, dtype=np.float64), 0.0, None)
    if mask.shape != activation.shape:
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(activation.shape[::-1], Image.NEAREST)
        mask = np.asarray(resized) > 0
    total = activation.sum()
    return float(activation[mask].sum() / total) if total > 0 else float("nan")


def summarize_folder(run_path: str | Path, explain_folder: str | Path) -> dict[str, Any]:
    """Lesion-mass shares of every map listed in ``explain_folder``'s index, per outcome; written to
    ``lesion_focus.json`` there and returned. Paths in the index are relative to ``run_path``."""
    run_path, explain_folder = Path(run_path), Path(explain_folder)
    index = explain_folder / layout.EXPLAIN_INDEX_NAME
    if not index.is_file():
        raise runs.RunError(f"{explain_folder}: no {layout.EXPLAIN_INDEX_NAME}; run `melanet explain` first")
    with index.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    shares: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        image = np.asarray(Image.open(run_path / row["input_path"]).convert("RGB"))
        mask = lesion_mask(image)
        share = mass_share(np.load(run_path / row["map_path"]), mask)
        shares.setdefault(row["outcome"], []).append((share, float(mask.mean())))
    summary = {
        "mask": MASK_DESCRIPTION,
        "method": rows[0]["method"] if rows else None,
        "layer": rows[0]["layer"] if rows else None,
        "by_outcome": {outcome: _group(values) for outcome, values in sorted(shares.items())},
        "all": _group([value for values in shares.values() for value in values]),
    }
    runs.atomic_write_json(explain_folder / layout.LESION_FOCUS_NAME, summary)
    return summary


def _group(values: list[tuple[float, float]]) -> dict[str, Any]:
    finite = [(share, area) for share, area in values if np.isfinite(share)]
    return {
        "n": len(values),
        "mass_share": float(np.mean([share for share, _ in finite])) if finite else None,
        "area_fraction": float(np.mean([area for _, area in finite])) if finite else None,
    }
