"""Does a "malignant" synthetic lesion look malignant? The translation measure of the synthesis audit.

A judge is a standardised, L2-regularised logistic regression that tells real malignant from real
benign training images, trained on REAL images only (never on synthetic ones, and never MelaNet, which
trained on them). Every image is scored out of fold: the real training images are split into
``folds`` stratified folds, each fold's images are scored by the judge fitted on the other folds, and
a synthetic image is scored by the same fold judge as its own benign source, the one that held that
source out. So a synthetic image that equals its source gets exactly its source's score.

Per judge (one per feature space: the frozen backbone's GAP features, the hand-made pixel features):

- ``mean_source``, ``mean_synthetic``, ``mean_malignant``: the mean out-of-fold P(malignant) of the
  benign sources (one per synthetic image), of the synthetic images, and of the real melanomas;
- ``share``: the translation share, ``(mean_synthetic - mean_source) / (mean_malignant - mean_source)``:
  0 for an identity map, 1 when the synthetic images score like real melanomas; with a percentile
  bootstrap interval that resamples (source, synthetic) pairs and melanomas independently;
- ``above_source``: the share of synthetic images the judge scores above their own source (0.5 = chance);
- ``judge_auc``: the judge's out-of-fold AUC of real malignant vs real benign (how much it can tell at all).

``judge_translation`` is the pure computation (features, labels and pair ids in; figures out);
``melanet.explain.run_audit`` feeds it the audit's features and writes the result into ``audit.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FOLDS = 5
REGULARISATION_C = 0.1  # as the audit's probes (melanet.explain.separability): strong L2, C >> N
RESAMPLES = 2000
CONFIDENCE = 0.95
JUDGES = {
    "backbone": "the GAP features of the frozen ImageNet backbone of the GAP baseline",
    "pixel": "hand-made pixel features (colour, gradient, spectrum); no network",
}


def _fold_of_real(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold index of every real image: stratified by label, shuffled by ``seed``."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for index, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[held_out] = index
    return fold


def _judge():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION_C, class_weight="balanced",
                                                              max_iter=5000))


def out_of_fold_scores(
    real: np.ndarray, labels: np.ndarray, real_ids: Sequence[str], synthetic: np.ndarray,
    source_ids: Sequence[str], *, seed: int, folds: int = FOLDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold P(malignant) of every real and every synthetic image, from judges fitted on real images only.

    Args:
        real: (N, C) features of real training images; ``labels`` (N,) 0 benign / 1 malignant; ``real_ids``
            their N distinct ids.
        synthetic: (M, C) features of synthetic images; ``source_ids`` (M,) the id of each one's source, a
            real image among ``real_ids``.
    Returns:
        (real scores (N,), synthetic scores (M,), fold (N,) of every real image), scores float64 in [0, 1].
        Synthetic image j is scored by the judge of fold ``fold[source j]``, which did not see its source.
    """
    real, synthetic = np.asarray(real, dtype=np.float64), np.asarray(synthetic, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"expected (N, C) real and (M, C) synthetic features, got {real.shape} and {synthetic.shape}")
    if len(labels) != len(real) or len(real_ids) != len(real) or len(source_ids) != len(synthetic):
        raise ValueError(f"one label and id per real row ({len(labels)}, {len(real_ids)} for {len(real)}) and one "
                         f"source id per synthetic row ({len(source_ids)} for {len(synthetic)}) are needed")
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError(f"labels must be 0 (benign) or 1 (malignant), got {sorted(set(labels.tolist()))}")
    position = {image_id: index for index, image_id in enumerate(real_ids)}
    if len(position) != len(real_ids):
        raise ValueError("real image ids must be distinct")
    unknown = sorted({source for source in source_ids if source not in position})
    if unknown:
        raise ValueError(f"{len(unknown)} synthetic source id(s) are not among the real images, e.g. {unknown[0]!r}")
    folds = min(folds, int(np.bincount(labels, minlength=2).min()))
    if folds < 2:
        counts = np.bincount(labels, minlength=2)
        raise ValueError(f"the judge needs at least 2 real images of each class, got {counts[0]} benign and "
                         f"{counts[1]} malignant")
    fold = _fold_of_real(labels, folds, seed)
    synthetic_fold = fold[[position[source] for source in source_ids]]
    real_scores = np.empty(len(real), dtype=np.float64)
    synthetic_scores = np.empty(len(synthetic), dtype=np.float64)
    for index in range(folds):
        held_out = fold == index
        judge = _judge().fit(real[~held_out], labels[~held_out])
        real_scores[held_out] = judge.predict_proba(real[held_out])[:, 1]
        mine = synthetic_fold == index
        if mine.any():
            synthetic_scores[mine] = judge.predict_proba(synthetic[mine])[:, 1]
    return real_scores, synthetic_scores, fold


def share_of_translation(source: np.ndarray, synthetic: np.ndarray, malignant: np.ndarray) -> float | None:
    """``(mean synthetic - mean source) / (mean malignant - mean source)``; None when melanomas do not
    score above the sources on average (the judge cannot tell the classes: no scale to read a share on)."""
    gap = float(np.mean(malignant) - np.mean(source))
    if not gap > 0:
        return None
    return float(np.mean(synthetic) - np.mean(source)) / gap


def judge_translation(
    real: np.ndarray, labels: np.ndarray, real_ids: Sequence[str], synthetic: np.ndarray,
    source_ids: Sequence[str], *, seed: int, folds: int = FOLDS, resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The translation figures of one judge (module docstring) from features, labels and pair ids.

    Arguments as ``out_of_fold_scores``. Returns ``{mean_source, mean_synthetic, mean_malignant, share,
    share_low, share_high, above_source, judge_auc, n_pairs, n_malignant, folds, resamples, confidence,
    sentence}`` and ``scores``: per synthetic image ``(p_source, p_synthetic)`` (M, 2) float64 (not JSON;
    ``run_audit`` writes it to ``translation.csv``).
    """
    from sklearn.metrics import roc_auc_score

    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need resamples >= 1 and confidence in (0, 1), got {resamples} and {confidence}")
    labels = np.asarray(labels, dtype=np.int64)
    real_scores, synthetic_scores, fold = out_of_fold_scores(real, labels, real_ids, synthetic, source_ids,
                                                              seed=seed, folds=folds)
    position = {image_id: index for index, image_id in enumerate(real_ids)}
    source_scores = real_scores[[position[source] for source in source_ids]]
    malignant_scores = real_scores[labels == 1]
    share = share_of_translation(source_scores, synthetic_scores, malignant_scores)
    generator = np.random.default_rng([seed, 0x7A5])
    draws = []
    for _ in range(resamples):
        pairs = generator.integers(0, len(source_scores), len(source_scores))
        melanomas = generator.integers(0, len(malignant_scores), len(malignant_scores))
        value = share_of_translation(source_scores[pairs], synthetic_scores[pairs], malignant_scores[melanomas])
        if value is not None:
            draws.append(value)
    tail = (1.0 - confidence) / 2.0
    low, high = (np.quantile(draws, [tail, 1.0 - tail]) if draws else (np.nan, np.nan))
    result = {
        "mean_source": float(source_scores.mean()), "mean_synthetic": float(synthetic_scores.mean()),
        "mean_malignant": float(malignant_scores.mean()), "share": share,
        "share_low": None if not draws else float(low), "share_high": None if not draws else float(high),
        "above_source": float(np.mean(synthetic_scores > source_scores)),
        "judge_auc": float(roc_auc_score(labels, real_scores)),
        "n_pairs": len(source_scores), "n_malignant": len(malignant_scores), "folds": int(fold.max() + 1),
        "resamples": int(resamples), "resamples_defined": len(draws), "confidence": confidence,
    }
    result["sentence"] = sentence(result)
    result["scores"] = np.stack([source_scores, synthetic_scores], axis=1)
    return result


def sentence(figures: dict[str, Any]) -> str:
    """One plain sentence of what a judge's figures mean."""
    share = figures.get("share")
    if share is None:
        return ("The judge cannot tell real melanomas from the benign sources (they score no higher on average), "
                "so no translation share can be read.")
    interval = ""
    if figures.get("share_low") is not None:
        interval = f" ({figures['confidence']:.0%} interval {figures['share_low']:.2f} to {figures['share_high']:.2f})"
    if share < 0.25:
        verdict = "the synthetic images are still scored like their benign sources"
    elif share < 0.75:
        verdict = "the synthetic images moved part of the way towards melanoma"
    else:
        verdict = "the synthetic images score like real melanomas"
    return (f"A judge trained on real images moves the synthetic 'malignant' images {share:.0%} of the way from their "
            f"benign sources ({figures['mean_source']:.2f} mean P(malignant)) to real melanomas "
            f"({figures['mean_malignant']:.2f}){interval}, and scores {figures['above_source']:.0%} of them above "
            f"their own source: {verdict}.")


def summary_sentence(translation: dict[str, Any]) -> str:
    """One sentence over both judges of ``audit.json``'s ``translation`` block (for the page and the card)."""
    parts = []
    for name, figures in (translation.get("judges") or {}).items():
        share = figures.get("share")
        shown = "undefined" if share is None else f"{share:.2f}"
        if share is not None and figures.get("share_low") is not None:
            shown += f" [{figures['share_low']:.2f}, {figures['share_high']:.2f}]"
        parts.append(f"{name} judge {shown} ({figures['above_source']:.0%} above their source)")
    return ("Translation share (0 = the synthetic images score like their benign sources, 1 = like real melanomas): "
            + "; ".join(parts) + ".")



def audit_translation(
    judges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], benign_ids: Sequence[str],
    malignant_ids: Sequence[str], synthetic_ids: Sequence[str], source_ids: Sequence[str], *, seed: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``translation`` block of ``audit.json`` and the rows of ``audit/translation.csv``.

    ``judges``: name (a key of ``JUDGES``) -> (real benign (B, C), real malignant (M, C), synthetic (N, C))
    features in that judge's space, rows in the order of ``benign_ids``, ``malignant_ids`` and
    ``synthetic_ids``; ``source_ids`` (N,) names each synthetic image's benign source among ``benign_ids``.
    """
    real_ids = [*benign_ids, *malignant_ids]
    labels = np.r_[np.zeros(len(benign_ids), dtype=np.int64), np.ones(len(malignant_ids), dtype=np.int64)]
    block: dict[str, Any] = {"judges": {}, "folds": FOLDS, "regularisation_c": REGULARISATION_C,
                             "trained_on": "real training images only (benign and malignant), out of fold; "
                                           "a synthetic image is scored by the fold judge that held its source out"}
    rows: list[dict[str, Any]] = []
    for name, (benign, malignant, synthetic) in judges.items():
        figures = judge_translation(np.concatenate([benign, malignant]), labels, real_ids, synthetic, source_ids,
                                    seed=seed)
        scores = figures.pop("scores")
        block["judges"][name] = {**figures, "features": JUDGES.get(name, name)}
        rows += [{"judge": name, "synthetic_id": image, "source_id": source, "p_source": float(pair[0]),
                  "p_synthetic": float(pair[1])} for image, source, pair in zip(synthetic_ids, source_ids, scores)]
    block["sentence"] = summary_sentence(block)
    return block, rows


def verdict(summary: dict[str, Any]) -> str:
    """One plain sentence of the translation share and the two probes of an ``audit.json`` summary (or "")."""
    block = summary.get("translation")
    if not block or not block.get("judges"):
        return ""
    shares = [figures.get("share") for figures in block["judges"].values()]
    realism = summary.get("realism") or {}
    backbone_probe = ((summary.get("feature_spaces") or {}).get("backbone") or {}).get("probe") or {}
    probes = [value for value in (backbone_probe.get("synthetic_vs_real_malignant"),
                                  (realism.get("pixel_probe") or {}).get("auc")) if value is not None]
    shown = " and ".join("undefined" if share is None else f"{share:.0%}" for share in shares)
    if any(share is None or share < 0.25 for share in shares):
        moved = f"The synthetic 'malignant' lesions barely move towards melanoma ({shown} of the way, by two judges)"
    elif all(share >= 0.5 for share in shares):
        moved = f"The synthetic 'malignant' lesions move most of the way towards melanoma ({shown}, by two judges)"
    else:
        moved = f"The synthetic 'malignant' lesions move part of the way towards melanoma ({shown}, by two judges)"
    if not probes:
        return moved + "."
    worst = max(probes)
    told = ("and are easily told from real melanomas" if worst > 0.9 else
            "and can still be told from real melanomas" if worst > 0.8 else
            "and are hard to tell from real melanomas")
    return f"{moved}, {told} (probe AUC {' and '.join(f'{value:.2f}' for value in probes)}; 0.5 = indistinguishable)."
