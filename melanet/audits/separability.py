"""How far apart synthetic and real lesions lie in a classifier's feature space: a domain-gap check.

MelaNet adds synthetic malignant images to the training set. They help only if the classifier
cannot tell them from real ones by some GAN artefact: when it can, "synthetic" becomes a class of
its own and the added images teach the artefact rather than melanoma. The UMAP plot shows this
by eye; this module puts a number on it.

For two groups of GAP feature vectors, a standardised, L2-regularised logistic regression is
scored by stratified k-fold cross-validation (every image is scored by a model that never saw
it), and the figure is the ROC AUC of those held-out scores: 0.5 = the groups cannot be told
apart by a linear read-out of the features, 1.0 = they are fully separable. Three pairs are
reported so that the numbers can be read against each other:

- ``synthetic_vs_real_malignant``: the one that matters; ideally near 0.5;
- ``synthetic_vs_real_benign``: how far the translation moved the benign images it started from;
- ``real_malignant_vs_real_benign``: the real task, as a yardstick for both.

Folds are grouped when the images' ids are given: a synthetic image (``syn_<source id>``) and its
benign source always fall in the same fold. Otherwise a model could score a synthetic image after
training on its own source (or the reverse) and read the pair's likeness as "indistinguishable",
or learn the pair's differences from one and recognise the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from melanet.runs import layout

FOLDS = 5
REGULARISATION_C = 0.1  # strong L2: feature dimensions (512) exceed the images per group in the demo
PAIRS = {
    "synthetic_vs_real_malignant": ("synthetic", "malignant"),
    "synthetic_vs_real_benign": ("synthetic", "benign"),
    "real_malignant_vs_real_benign": ("malignant", "benign"),
}


def source_group(image_id: str) -> str:
    """The fold group of an image: a synthetic ``syn_<source id>`` belongs with its source."""
    return image_id[len(layout.SYNTHETIC_PREFIX):] if image_id.startswith(layout.SYNTHETIC_PREFIX) else image_id


def fold_indices(labels: np.ndarray, groups: Sequence[str] | None, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs: stratified by ``labels`` (N,), never splitting a group when given."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(labels, labels))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(labels, labels, groups=np.asarray(groups, dtype=object)))


def held_out_auc(
    first: np.ndarray, second: np.ndarray, *, seed: int, folds: int = FOLDS,
    groups: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, float | int] | None:
    """Cross-validated ROC AUC of telling ``first`` (N, C) from ``second`` (M, C).

    ``groups``: (N names, M names) of fold groups (see ``source_group``); rows sharing a name are
    always held out together. Returns ``{"auc", "n_first", "n_second", "folds", "grouped"}``, where
    ``auc`` is computed once on the pooled held-out scores, or None when a side has fewer than 2
    rows (or groups): no fold could hold one out.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(f"expected two (N, C) feature arrays with the same C, got {first.shape} and {second.shape}")
    if groups is not None and (len(groups[0]) != len(first) or len(groups[1]) != len(second)):
        raise ValueError(f"groups must name every row: {len(groups[0])} and {len(groups[1])} names for "
                         f"{len(first)} and {len(second)} rows")
    all_groups = None if groups is None else list(groups[0]) + list(groups[1])
    sizes = (len(first), len(second)) if groups is None else (len(set(groups[0])), len(set(groups[1])))
    folds = min(folds, *sizes)
    if folds < 2:
        return None
    features = np.concatenate([first, second])
    labels = np.r_[np.ones(len(first), dtype=np.int64), np.zeros(len(second), dtype=np.int64)]
    scores = np.empty(len(labels), dtype=np.float64)
    for train_index, test_index in fold_indices(labels, all_groups, folds, seed):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=REGULARISATION_C, class_weight="balanced", max_iter=5000)
        )
        model.fit(features[train_index], labels[train_index])
        scores[test_index] = model.decision_function(features[test_index])
    return {"auc": float(roc_auc_score(labels, scores)), "n_first": len(first), "n_second": len(second),
            "folds": folds, "grouped": groups is not None}


def domain_gap(
    groups: Mapping[str, np.ndarray], *, seed: int, ids: Mapping[str, Sequence[str]] | None = None
) -> dict[str, dict[str, float | int] | None]:
    """``held_out_auc`` of each pair in ``PAIRS`` from ``groups`` = {"benign", "malignant", "synthetic"}: (N, C).

    ``ids``: the image ids of each group's rows; then folds are grouped by ``source_group`` (a
    synthetic image and its benign source always in the same fold).
    """
    missing = {name for pair in PAIRS.values() for name in pair} - set(groups)
    if missing:
        raise ValueError(f"domain_gap needs feature groups {sorted(missing)}")
    result = {}
    for name, (first, second) in PAIRS.items():
        fold_groups = None
        if ids is not None:
            fold_groups = ([source_group(image_id) for image_id in ids[first]],
                           [source_group(image_id) for image_id in ids[second]])
        result[name] = held_out_auc(groups[first], groups[second], seed=seed, groups=fold_groups)
    return result
