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

One family per question: the audits of the runs compared together (e.g. the four classifiers of a
reproduction) ask one question, "does this model read the lesion?", with two paired tests each (lesion
only, background only). :func:`apply_family` adjusts their stored p-values by Holm over the whole family
(2 tests x runs) and writes each run's ``p_holm`` and the ``family`` into its ``shortcuts.json``, from the
saved files alone (``melanet audit-shortcuts --family RUN...``).
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
from melanet.evaluation import delong, paired
from melanet.data import lesion_mask
from melanet.runs import layout

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
    """AUC of ``masked`` scores with its interval, ``delta`` = masked - full AUC with its paired DeLong
    interval (``delta_ci_low``/``delta_ci_high``) and ``p``."""
    test = delong.delong_test(labels, masked, full, CONFIDENCE)
    return {**auc_interval(labels, masked), "delta": test["delta_auc"], "delta_ci_low": test["ci_low"],
            "delta_ci_high": test["ci_high"], "p": test["p"]}


def delta_interval_from_p(delta: float, p_value: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The paired DeLong interval of ``delta`` recovered from its two-sided z-test ``p`` (an audit written
    before the interval was stored): SE = |delta| / z_(1 - p/2), then delta +- z_(1 - a/2) SE."""
    if not 0 < p_value < 1 or delta == 0:
        raise ValueError(f"cannot recover an interval from delta {delta} and p {p_value}")
    se = abs(delta) / float(stats.norm.isf(p_value / 2))
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return delta - half, delta + half


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


def auc_text(view: dict[str, Any]) -> str:
    """``0.69 [0.56, 0.81]``: a view's AUC with its DeLong interval."""
    return f"{view['auc']:.2f} [{view['ci_low']:.2f}, {view['ci_high']:.2f}]"




FAMILY_NAME = "shortcut audit"


def _p_text(view: dict[str, Any], family: dict[str, Any] | None) -> str:
    """``p = 0.0125 against the full image; Holm over the 8 tests of the shortcut audit family: 0.093``."""
    text = f"{formatting.p_value(view['p'])} against the full image"
    if family is not None and view.get("p_holm") is not None:
        text += f"; Holm over the {family['size']} tests of the {family['name']} family: {view['p_holm']:.3f}"
    return text


def family_tests(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Holm over every masked view's stored p of ``summaries`` (run label -> ``shortcuts.json`` mapping).

    Returns one entry per test with a p: ``run``, ``view``, ``p``, ``p_holm``, in run then view order.
    """
    tests = [{"run": label, "view": view, "p": float(summary[view]["p"])}
             for label, summary in summaries.items() for view in MASKED_VIEWS
             if summary[view].get("p") is not None and math.isfinite(summary[view]["p"])]
    for test, adjusted in zip(tests, paired.holm([test["p"] for test in tests]) if tests else []):
        test["p_holm"] = adjusted
    return tests


def apply_family(run_paths: list[str | Path], shortcuts_file: str = layout.SHORTCUTS_FILE) -> list[Path]:
    """Holm over the shortcut tests of ``run_paths`` (each run's saved audit; no images, no model): each
    masked view gains ``p_holm``, each summary ``family`` and a new ``sentence``; files rewritten atomically."""
    from melanet.runs import runs

    paths = [Path(run) / shortcuts_file for run in run_paths]
    summaries: dict[str, dict[str, Any]] = {}
    for path in paths:
        summary = read_summary(path)
        if isinstance(summary, str):
            raise runs.RunError(summary)
        label = path.parent.parent.name
        if label in summaries:
            raise runs.RunError(f"{path}: two runs named {label!r} in one family; give runs with distinct folder names")
        summaries[label] = summary
    tests = family_tests(summaries)
    family = {"name": FAMILY_NAME, "method": "Holm", "size": len(tests),
              "tests": [{key: test[key] for key in ("run", "view", "p", "p_holm")} for test in tests],
              "note": "one question (does the model read the lesion?) over the runs audited together: each run's "
                      "lesion-only and background-only paired DeLong tests, Holm-adjusted over all of them"}
    for path, (label, summary) in zip(paths, summaries.items()):
        for view in MASKED_VIEWS:
            found = [test["p_holm"] for test in tests if test["run"] == label and test["view"] == view]
            summary[view]["p_holm"] = found[0] if found else None
            figures = summary[view]
            if "delta_ci_low" not in figures and figures.get("p") is not None and figures.get("delta"):
                figures["delta_ci_low"], figures["delta_ci_high"] = delta_interval_from_p(figures["delta"], figures["p"])
                figures["delta_ci_from"] = "recovered from the stored delta and p (paired DeLong z-test)"
        summary["family"] = family
        summary["sentence"] = summary_sentence(summary)
        runs.atomic_write_json(path, summary)
    return paths


def summary_sentence(summary: dict[str, Any]) -> str:
    """One plain sentence on what the model reads, from the background-only (lesion removed) view."""
    background, lesion = summary["background_only"], summary["lesion_only"]
    if background.get("auc") is None:
        return "Too few images had a usable lesion mask to tell what this model reads."
    chance = background["ci_low"] <= 0.5 <= background["ci_high"]
    lesion_chance = lesion.get("auc") is not None and lesion["ci_low"] <= 0.5 <= lesion["ci_high"]
    if chance and lesion_chance:
        sentence = (f"With the lesion removed its AUC falls to {auc_text(background)}, near chance, and on the lesion "
                    "alone it is near chance too: it reads neither part alone, only the whole image.")
    elif chance:
        sentence = (f"With the lesion removed its AUC falls to {auc_text(background)}, near chance: "
                    "it reads the lesion.")
    else:
        sentence = (f"This model keeps AUC {auc_text(background)} with the lesion painted over in the skin's colour "
                    "(background only; the patch keeps the lesion's outline and size): it also reads the surroundings.")
    family = summary.get("family")
    if family is not None:
        sentence += f" Lesion removed: {_p_text(background, family)}."
    if lesion.get("auc") is not None:
        sentence += f" On the lesion alone: AUC {auc_text(lesion)} ({_p_text(lesion, family)})."
    return sentence


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The CLI's short human summary."""
    def view(name: str) -> str:
        figures = summary[name]
        if figures["auc"] is None:
            return f"{name.replace('_', ' ')}: n/a (too few usable masks)"
        return (f"{name.replace('_', ' ')}: AUC {auc_text(figures)} "
                f"(delta {figures['delta']:+.2f}, {formatting.p_value(figures['p'])})")

    lines = [f"full: AUC {auc_text(summary['full'])} on {summary['n']} images ({summary['n_malignant']} malignant)",
             f"{view('lesion_only')}; {view('background_only')} "
             f"({summary['n_masked']} masked, {len(summary['mask_failures'])} mask failures)"]
    lines += [f"  {name}: AUC {figures['auc']:.2f}, probability change mean {figures['mean_abs_change']:.3f}, "
              f"max {figures['max_abs_change']:.3f}" for name, figures in summary["perturbations"].items()]
    lines.append(summary_sentence(summary))
    return lines
