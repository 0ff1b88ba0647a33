"""The statistics of the synthesis audit: KID, nearest neighbours, and a per-image realism score.

All functions work on feature vectors, (N, C) float arrays (GAP features of a classifier or of a
frozen backbone); ``melanet.audits.synthesis_stage`` computes those and writes the results.

- **KID** (Binkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy
  with the cubic polynomial kernel ``k(x, y) = (x . y / C + 1)^3``. 0 when the two sets come from
  the same distribution (it can come out slightly negative then, being unbiased). Its interval is
  a subset bootstrap: ``subsets`` draws, without replacement, of ``subset_size`` rows from each
  set; the interval is the percentile range of the subset estimates. Subsets are smaller than the
  sets (half the smaller one by default), so the interval is wider than a full-sample one would be:
  conservative.
- **Memorisation**: every synthetic image's nearest real image (Euclidean distance in the same
  features), read against every real image's nearest *other* real image: a synthetic image much
  closer to a real one than real images are to each other is a near-copy.
- **Realism**: the held-out probability that a synthetic image is a real malignant one, from the
  domain-gap probe (``melanet.audits.separability``: standardised, L2-regularised logistic
  regression) fitted by grouped, stratified k-fold cross-validation. Groups keep every image made
  from one benign source in one fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from melanet.audits import separability

SUBSETS = 100
MAX_SUBSET_SIZE = 1000  # Binkowski et al.'s subset size; smaller sets use half the smaller set
CONFIDENCE = 0.95
NEIGHBOUR_CHUNK = 512  # query rows per distance block: bounds memory at chunk x references floats
KERNEL_CACHE_LIMIT = 4_000_000  # kernel entries kept for the subsets (32 MB per matrix at most); beyond: per subset


def _as_features(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be (N, C) features, got shape {array.shape}")
    return array


def feature_scale(features: np.ndarray) -> float:
    """Root mean square of the entries of (N, C) ``features`` (1.0 when they are all zero)."""
    value = float(np.sqrt(np.mean(np.square(_as_features(features, "features")))))
    return value if value > 0 else 1.0


def polynomial_kernel(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """KID's cubic kernel ``(x . y / C + 1)^3``: (N, C) x (M, C) -> (N, M) float64."""
    dimension = first.shape[1]
    return (first @ second.T / dimension + 1.0) ** 3


def unbiased_mmd2(first: np.ndarray, second: np.ndarray) -> float:
    """Unbiased MMD^2 of two feature sets (N >= 2, M >= 2 rows, same C) with ``polynomial_kernel``.

    ``sum_{i != j} k(x_i, x_j) / (N (N - 1)) + sum_{i != j} k(y_i, y_j) / (M (M - 1))
    - 2 sum_{i, j} k(x_i, y_j) / (N M)``.
    """
    first, second = _as_features(first, "first"), _as_features(second, "second")
    if first.shape[1] != second.shape[1]:
        raise ValueError(f"feature sets differ in width: {first.shape[1]} vs {second.shape[1]}")
    count_first, count_second = len(first), len(second)
    if count_first < 2 or count_second < 2:
        raise ValueError(f"KID needs at least 2 rows per set, got {count_first} and {count_second}")
    return _mmd2_from_kernels(polynomial_kernel(first, first), polynomial_kernel(second, second),
                              polynomial_kernel(first, second))


def _mmd2_from_kernels(within_first: np.ndarray, within_second: np.ndarray, across: np.ndarray) -> float:
    """Unbiased MMD^2 from the kernel matrices (N, N), (M, M) and (N, M)."""
    count_first, count_second = len(within_first), len(within_second)
    term_first = (within_first.sum() - np.trace(within_first)) / (count_first * (count_first - 1))
    term_second = (within_second.sum() - np.trace(within_second)) / (count_second * (count_second - 1))
    return float(term_first + term_second - 2.0 * across.mean())


def kernel_inception_distance(
    first: np.ndarray,
    second: np.ndarray,
    *,
    seed: int,
    subsets: int = SUBSETS,
    subset_size: int | None = None,
    confidence: float = CONFIDENCE,
) -> dict[str, float | int]:
    """KID of ``first`` (N, C) vs ``second`` (M, C) with a subset-bootstrap interval.

    Returns ``kid`` (on the full sets), ``low``/``high`` (the ``confidence`` percentile range of
    the ``subsets`` subset estimates), ``subset_mean``, ``subset_size``, ``subsets``, ``n_first``,
    ``n_second``. The same ``seed`` gives the same interval.
    """
    first, second = _as_features(first, "first"), _as_features(second, "second")
    smaller = min(len(first), len(second))
    size = subset_size if subset_size is not None else min(MAX_SUBSET_SIZE, max(2, smaller // 2))
    if not 2 <= size <= smaller:
        raise ValueError(f"subset size must be in [2, {smaller}], got {size}")
    if subsets < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need subsets >= 1 and confidence in (0, 1), got {subsets} and {confidence}")
    generator = np.random.default_rng(seed)
    draws = [(generator.choice(len(first), size, replace=False), generator.choice(len(second), size, replace=False))
             for _ in range(subsets)]
    if max(len(first), len(second)) ** 2 <= KERNEL_CACHE_LIMIT:
        # a subset's kernel matrices are blocks of the full ones: compute those once
        kernels = (polynomial_kernel(first, first), polynomial_kernel(second, second), polynomial_kernel(first, second))
        estimates = np.array([
            _mmd2_from_kernels(kernels[0][np.ix_(rows, rows)], kernels[1][np.ix_(columns, columns)],
                               kernels[2][np.ix_(rows, columns)])
            for rows, columns in draws
        ])
    else:
        estimates = np.array([unbiased_mmd2(first[rows], second[columns]) for rows, columns in draws])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return {"kid": unbiased_mmd2(first, second), "low": float(low), "high": float(high),
            "subset_mean": float(estimates.mean()), "subset_size": int(size), "subsets": int(subsets),
            "n_first": len(first), "n_second": len(second), "confidence": confidence}


def nearest_neighbours(
    queries: np.ndarray, references: np.ndarray, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row its nearest reference row by Euclidean distance.

    ``queries`` (N, C), ``references`` (M, C). With ``exclude_self`` the two are the same set and
    row i never matches itself (the real-to-real yardstick). Returns (indices (N,) int64, distances
    (N,) float64); ties go to the lower reference index. Computed in blocks of ``NEIGHBOUR_CHUNK``
    queries, so memory stays at one block of distances.
    """
    queries, references = _as_features(queries, "queries"), _as_features(references, "references")
    if queries.shape[1] != references.shape[1]:
        raise ValueError(f"queries and references differ in width: {queries.shape[1]} vs {references.shape[1]}")
    if len(references) < (2 if exclude_self else 1):
        raise ValueError("not enough reference rows for a nearest neighbour")
    if exclude_self and len(queries) != len(references):
        raise ValueError("exclude_self needs the queries to be the references")
    reference_norms = np.einsum("ij,ij->i", references, references)
    indices = np.empty(len(queries), dtype=np.int64)
    distances = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), NEIGHBOUR_CHUNK):
        block = queries[start : start + NEIGHBOUR_CHUNK]
        squared = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * block @ references.T + reference_norms[None]
        squared = np.maximum(squared, 0.0)
        if exclude_self:
            rows = np.arange(len(block))
            squared[rows, start + rows] = np.inf
        best = np.argmin(squared, axis=1)
        indices[start : start + len(block)] = best
        distances[start : start + len(block)] = np.sqrt(squared[np.arange(len(block)), best])
    return indices, distances


def distance_summary(distances: np.ndarray) -> dict[str, float | int]:
    """``n``, ``mean``, ``min``, and the 5/25/50/75/95 % quantiles of a distance array."""
    values = np.asarray(distances, dtype=np.float64)
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantiles = np.quantile(values, levels) if len(values) else [np.nan] * len(levels)
    return {"n": len(values), "mean": float(values.mean()) if len(values) else float("nan"),
            "min": float(values.min()) if len(values) else float("nan"),
            **{f"q{round(level * 100):02d}": float(value) for level, value in zip(levels, quantiles)}}


def realism_scores(
    synthetic: np.ndarray,
    real: np.ndarray,
    synthetic_groups: Sequence[str],
    real_groups: Sequence[str],
    *,
    seed: int,
    folds: int = separability.FOLDS,
) -> tuple[np.ndarray, dict[str, float | int]]:
    """Held-out probability of "real malignant" for every synthetic image.

    ``synthetic`` (N, C) and ``real`` (M, C) features; ``*_groups`` one group name per row (a
    synthetic image's benign source id; a real image's own id), so that all rows of a group are
    held out together. Returns (scores (N,) float64 in [0, 1], probe summary ``{auc, n_synthetic,
    n_real, folds}``: the held-out ROC AUC of real vs synthetic, 0.5 = indistinguishable).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    synthetic, real = _as_features(synthetic, "synthetic"), _as_features(real, "real")
    if len(synthetic_groups) != len(synthetic) or len(real_groups) != len(real):
        raise ValueError("one group name per feature row is needed")
    folds = min(folds, len(set(synthetic_groups)), len(set(real_groups)))
    if folds < 2:
        raise ValueError(f"the realism probe needs at least 2 groups per class, got {len(synthetic)} synthetic "
                         f"and {len(real)} real images")
    features = np.concatenate([synthetic, real])
    labels = np.r_[np.zeros(len(synthetic), dtype=np.int64), np.ones(len(real), dtype=np.int64)]
    # rows with the same name share a fold: e.g. two synthetic images of one source, or a synthetic
    # image and its source when the source is among the real rows
    groups = np.array([str(name) for name in (*synthetic_groups, *real_groups)])
    probabilities = np.empty(len(labels), dtype=np.float64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_index, test_index in splitter.split(features, labels, groups):
        probe = make_pipeline(StandardScaler(), LogisticRegression(
            C=separability.REGULARISATION_C, class_weight="balanced", max_iter=5000))
        probe.fit(features[train_index], labels[train_index])
        probabilities[test_index] = probe.predict_proba(features[test_index])[:, 1]
    summary = {"auc": float(roc_auc_score(labels, probabilities)), "n_synthetic": len(synthetic),
               "n_real": len(real), "folds": folds}
    return probabilities[: len(synthetic)], summary
