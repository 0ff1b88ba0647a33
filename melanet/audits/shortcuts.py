"""Shortcut audit of a classifier: does it read the lesion, or the skin and the frame around it?

Pure functions on model-input images (N, S, S, 3) uint8 and a ``predict(images) -> (N,)``
probability callable, so they run without TensorFlow:

- ``lesion_only``: everything outside the lesion mask (``melanet.data.lesion_mask``: Otsu, darker =
  lesion, exact-black padding excluded) replaced by a neutral fill (mid grey 128); padding stays black;
- ``background_only``: the lesion replaced by the median colour of that image's surrounding skin (the
  non-lesion, non-padding pixels);
- each AUC with a DeLong interval, and its paired DeLong difference from the full image's AUC;
- perturbations of the whole input (JPEG 75, rotation by 10 degrees, horizontal flip, brightness
  +-10 %): AUC and how far each image's probability moves.

Images whose mask fails (empty, or covering under 0.5 % or over 95 % of the non-padding content) are
listed in ``mask_failures`` and left out of both masked AUCs (``n_masked`` says how many were used).
The stage that loads a run's model and writes ``shortcuts.json`` is ``melanet.audits.shortcut_stage``;
the synthesis audit (``run_audit``) lives beside it in ``melanet.explain``.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image
from scipy import stats

from melanet.common import formatting
from melanet.evaluation import delong
from melanet.data import lesion_mask

Predict = Callable[[np.ndarray], np.ndarray]

NEUTRAL_FILL = 128  # mid grey outside the lesion in the lesion-only view
MASK_MIN_SHARE = lesion_mask.MASK_MIN_SHARE
MASK_MAX_SHARE = lesion_mask.MASK_MAX_SHARE
MASK_METHOD = lesion_mask.MASK_DESCRIPTION
mask_or_failure = lesion_mask.mask_or_failure
CONFIDENCE = 0.95
MASKED_VIEWS = ("lesion_only", "background_only")


def _jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)


def _rotate(image: np.ndarray, degrees: float = 10.0) -> np.ndarray:
    rotated = Image.fromarray(image).rotate(degrees, resample=Image.BILINEAR, expand=False, fillcolor=(0, 0, 0))
    return np.asarray(rotated, dtype=np.uint8)


def _brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(np.rint(image.astype(np.float64) * factor), 0, 255).astype(np.uint8)


# name -> one (S, S, 3) uint8 image to the perturbed (S, S, 3) uint8 image
PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg75": _jpeg,
    "rotate10": _rotate,
    "hflip": lambda image: np.ascontiguousarray(image[:, ::-1]),
    "brightness+10": lambda image: _brightness(image, 1.1),
    "brightness-10": lambda image: _brightness(image, 0.9),
}
STEPS = 1 + len(MASKED_VIEWS) + len(PERTURBATIONS)  # progress calls of one audit: full, masked views, perturbations


def lesion_only(image: np.ndarray, mask: np.ndarray, fill: int = NEUTRAL_FILL) -> np.ndarray:
    """The image with every non-lesion, non-padding pixel set to ``fill``; padding stays black."""
    padding = image.max(axis=-1) == 0
    out = image.copy()
    out[~mask & ~padding] = fill
    return out


def background_only(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the lesion replaced by the median colour of its non-lesion, non-padding pixels
    (mid grey when there are none)."""
    skin = ~mask & (image.max(axis=-1) > 0)
    colour = np.median(image[skin], axis=0) if skin.any() else np.full(3, NEUTRAL_FILL)
    out = image.copy()
    out[mask] = np.rint(colour).astype(np.uint8)
    return out


def auc_interval(labels: np.ndarray, scores: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, float]:
    """AUC with its DeLong normal-theory interval, clipped to [0, 1]."""
    aucs, covariance = delong.auc_covariance(labels, np.asarray(scores, dtype=np.float64)[None, :])
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(float(covariance[0, 0]), 0.0))
    value = float(aucs[0])
    return {"auc": value, "ci_low": max(0.0, value - half), "ci_high": min(1.0, value + half)}


def masked_comparison(labels: np.ndarray, full: np.ndarray, masked: np.ndarray) -> dict[str, float]:
    """AUC of ``masked`` scores with its interval, ``delta`` = masked - full AUC and DeLong's paired ``p``."""
    test = delong.delong_test(labels, masked, full, CONFIDENCE)
    return {**auc_interval(labels, masked), "delta": test["delta_auc"], "p": test["p"]}


def audit_images(ids: list[str], images: np.ndarray, labels: np.ndarray, predict: Predict, *,
                 fill: int = NEUTRAL_FILL, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The shortcut audit of (N, S, S, 3) uint8 ``images`` with 0/1 ``labels`` (both classes needed).

    ``predict``: (M, S, S, 3) uint8 -> (M,) probabilities of malignant. Returns the ``shortcuts.json``
    figures (``full``, ``lesion_only``, ``background_only``, ``n``, ``n_malignant``, ``n_masked``,
    ``mask_method``, ``mask_failures``, ``perturbations``), without the run's own fields.
    """
    labels = np.asarray(labels).astype(int)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels) or len(ids) != len(labels):
        raise ValueError(f"expected {len(ids)} ids, (N, S, S, 3) uint8 images and N labels; "
                         f"got images {images.shape} {images.dtype}, {len(labels)} labels")
    if set(labels.tolist()) != {0, 1}:
        raise ValueError("the shortcut audit needs benign and malignant images (AUC)")
    say = progress or (lambda message: None)
    say(f"full images ({len(ids)})")
    full = np.asarray(predict(images), dtype=np.float64)
    masks_failed = [mask_or_failure(image) for image in images]
    kept = np.array([not failed for _, failed in masks_failed])
    summary: dict[str, Any] = {"full": auc_interval(labels, full)}
    views = {"lesion_only": lambda image, mask: lesion_only(image, mask, fill), "background_only": background_only}
    for name, view in views.items():
        say(f"{name.replace('_', ' ')} ({int(kept.sum())} masked images)")
        if set(labels[kept].tolist()) != {0, 1}:
            summary[name] = {"auc": None, "ci_low": None, "ci_high": None, "delta": None, "p": None}
            continue
        masked = np.stack([view(image, mask) for image, (mask, _), keep in zip(images, masks_failed, kept) if keep])
        summary[name] = masked_comparison(labels[kept], full[kept], np.asarray(predict(masked), dtype=np.float64))
    perturbations = {}
    for name, perturb in PERTURBATIONS.items():
        say(f"perturbation {name}")
        scores = np.asarray(predict(np.stack([perturb(image) for image in images])), dtype=np.float64)
        change = np.abs(scores - full)
        perturbations[name] = {"auc": auc_interval(labels, scores)["auc"], "mean_abs_change": float(change.mean()),
                               "max_abs_change": float(change.max())}
    summary.update({
        "n": len(ids), "n_malignant": int(labels.sum()), "n_masked": int(kept.sum()), "mask_method": MASK_METHOD,
        "neutral_fill": int(fill),
        "mask_failures": [image_id for image_id, keep in zip(ids, kept) if not keep],
        "perturbations": perturbations,
    })
    return summary


def read_summary(path: str | Path) -> dict[str, Any] | str:
    """A ``shortcuts.json`` as a mapping, or a one-line error naming the file."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path}: no shortcut audit yet (run `melanet audit-shortcuts --run RUN`)"
    except (OSError, ValueError) as error:
        return f"{path}: unreadable shortcut audit ({error})"
    missing = [key for key in ("full", *MASKED_VIEWS, "n", "mask_failures", "perturbations")
               if not isinstance(summary, dict) or key not in summary]
    if missing:
        return f"{path}: not a shortcut audit (missing {', '.join(missing)})"
    return summary


def _figure(view: dict[str, Any]) -> str:
    return f"{view['auc']:.2f} [{view['ci_low']:.2f}, {view['ci_high']:.2f}]"


def summary_sentence(summary: dict[str, Any]) -> str:
    """One plain sentence on what the model reads, from the background-only (lesion removed) view."""
    background, lesion = summary["background_only"], summary["lesion_only"]
    if background.get("auc") is None:
        return "Too few images had a usable lesion mask to tell what this model reads."
    chance = background["ci_low"] <= 0.5 <= background["ci_high"]
    lesion_chance = lesion.get("auc") is not None and lesion["ci_low"] <= 0.5 <= lesion["ci_high"]
    if chance and lesion_chance:
        sentence = (f"With the lesion removed its AUC falls to {_figure(background)}, near chance, and on the lesion "
                    "alone it is near chance too: it reads neither part alone, only the whole image.")
    elif chance:
        sentence = (f"With the lesion removed its AUC falls to {_figure(background)}, near chance: "
                    "it reads the lesion.")
    else:
        sentence = (f"This model keeps AUC {_figure(background)} with the lesion painted over in the skin's colour "
                    "(background only; the patch keeps the lesion's outline and size): it also reads the surroundings.")
    if lesion.get("auc") is not None:
        sentence += f" On the lesion alone: AUC {_figure(lesion)} ({formatting.p_value(lesion['p'])} against the full image)."
    return sentence


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The CLI's short human summary."""
    def view(name: str) -> str:
        figures = summary[name]
        if figures["auc"] is None:
            return f"{name.replace('_', ' ')}: n/a (too few usable masks)"
        return (f"{name.replace('_', ' ')}: AUC {_figure(figures)} "
                f"(delta {figures['delta']:+.2f}, {formatting.p_value(figures['p'])})")

    lines = [f"full: AUC {_figure(summary['full'])} on {summary['n']} images ({summary['n_malignant']} malignant)",
             f"{view('lesion_only')}; {view('background_only')} "
             f"({summary['n_masked']} masked, {len(summary['mask_failures'])} mask failures)"]
    lines += [f"  {name}: AUC {figures['auc']:.2f}, probability change mean {figures['mean_abs_change']:.3f}, "
              f"max {figures['max_abs_change']:.3f}" for name, figures in summary["perturbations"].items()]
    lines.append(summary_sentence(summary))
    return lines
