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
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FOLDS = 5
REGULARISATION_C = 0.1  # strong L2: feature dimensions (512) exceed the images per group in the demo
PAIRS = {
    "synthetic_vs_real_malignant": ("synthetic", "malignant"),
    "synthetic_vs_real_benign": ("synthetic", "benign"),
    "real_malignant_vs_real_benign": ("malignant", "benign"),
}


def held_out_auc(first: np.ndarray, second: np.ndarray, *, seed: int, folds: int = FOLDS) -> dict[str, float | int] | None:
    """Cross-validated ROC AUC of telling ``first`` (N, C) from ``second`` (M, C).

    Returns ``{"auc", "n_first", "n_second", "folds"}``, where ``auc`` is computed once on the
    pooled held-out scores, or None when a group has fewer than 2 rows (no fold could hold one out).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(f"expected two (N, C) feature arrays with the same C, got {first.shape} and {second.shape}")
    folds = min(folds, len(first), len(second))
    if folds < 2:
        return None
    features = np.concatenate([first, second])
    labels = np.r_[np.ones(len(first), dtype=np.int64), np.zeros(len(second), dtype=np.int64)]
    scores = np.empty(len(labels), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_index, test_index in splitter.split(features, labels):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=REGULARISATION_C, class_weight="balanced", max_iter=5000)
        )
        model.fit(features[train_index], labels[train_index])
        scores[test_index] = model.decision_function(features[test_index])
    return {"auc": float(roc_auc_score(labels, scores)), "n_first": len(first), "n_second": len(second),
            "folds": folds}


def domain_gap(groups: Mapping[str, np.ndarray], *, seed: int) -> dict[str, dict[str, float | int] | None]:
    """``held_out_auc`` of each pair in ``PAIRS`` from ``groups`` = {"benign", "malignant", "synthetic"}: (N, C)."""
    missing = {name for pair in PAIRS.values() for name in pair} - set(groups)
    if missing:
        raise ValueError(f"domain_gap needs feature groups {sorted(missing)}")
    return {name: held_out_auc(groups[first], groups[second], seed=seed) for name, (first, second) in PAIRS.items()}
