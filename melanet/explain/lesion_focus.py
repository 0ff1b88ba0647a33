"""Does a Grad-CAM map point at the lesion? The share of a map's mass inside a simple lesion mask.

The mask (``melanet.data.lesion_mask``, shared with the shortcut audit and the GAN's lesion composite) is Otsu's threshold on the grey levels of the model's input image: a dermoscopy lesion is
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

from melanet.runs import layout, runs
from melanet.data import lesion_mask as lesion_mask_module

MASK_DESCRIPTION = lesion_mask_module.MASK_DESCRIPTION
otsu_threshold = lesion_mask_module.otsu_threshold
lesion_mask = lesion_mask_module.lesion_mask


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
