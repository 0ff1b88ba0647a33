"""Similar cases: the training images nearest to a query in a classifier's own GAP feature space.

A retrieval *index* holds, for every image of a run's training split (never a validation or test
image), its L2-normalised global-average-pooled features (float16, to keep shipped runs small), id,
label and ISIC diagnosis where the data folder has one. Similarity is the cosine of two feature
vectors, the dot product of the normalised ones, in [-1, 1] (1 = same direction).

The *similar-cases vote* of a query is the share of malignant images among its k nearest training
images (``votes``, k = 1..15), a score in [0, 1] whose AUC :mod:`melanet.explain.similar_cases`
sets beside the classifier's (k chosen on the validation split). Nothing here imports TensorFlow;
``melanet.explain.retrieval_stage`` extracts the features and writes the files.
"""

from __future__ import annotations

import dataclasses
import functools
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from melanet.runs import runs
from melanet.explain import similar_cases

MAX_K = similar_cases.MAX_K  # the vote is measured for k = 1..MAX_K neighbours
SHOWN = 6  # similar cases the dashboard shows
FEATURE_DTYPE = np.float16


@dataclasses.dataclass(frozen=True)
class Index:
    """Training images in feature space.

    ``features`` (N, C) float16, each row L2-normalised (a zero row stays zero); ``labels`` (N,) int64,
    0 = benign, 1 = malignant; ``ids`` and ``diagnoses`` (N,) strings ('' where the data has no diagnosis).
    """

    features: np.ndarray
    ids: list[str]
    labels: np.ndarray
    diagnoses: list[str]

    def __post_init__(self) -> None:
        lengths = {len(self.features), len(self.ids), len(self.labels), len(self.diagnoses)}
        if len(lengths) != 1:
            raise ValueError(f"index features, ids, labels and diagnoses differ in length: {sorted(lengths)}")
        if np.asarray(self.features).ndim != 2:
            raise ValueError(f"index features must be (N, C), got shape {np.asarray(self.features).shape}")

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def unit_features(self) -> np.ndarray:
        """(N, C) float64: the stored rows normalised again (float16 leaves norms off 1 by up to ~1e-3)."""
        return normalise(self.features)

    @classmethod
    def build(cls, features: np.ndarray, ids: Sequence[str], labels: Sequence[int],
              diagnoses: Sequence[str] | None = None) -> "Index":
        """An index of raw (N, C) features (normalised and stored as float16 here)."""
        return cls(normalise(features).astype(FEATURE_DTYPE), list(ids), np.asarray(labels, dtype=np.int64),
                   list(diagnoses) if diagnoses is not None else [""] * len(ids))

    def save(self, path: str | Path) -> None:
        """Write a compressed ``.npz`` atomically."""
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, features=self.features.astype(FEATURE_DTYPE), labels=self.labels,
                            ids=np.asarray(self.ids, dtype=str), diagnoses=np.asarray(self.diagnoses, dtype=str))
        runs.atomic_write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "Index":
        """Read an index written by ``save``; RunError naming the file when it is missing or unreadable."""
        path = Path(path)
        if not path.is_file():
            raise runs.RunError(f"{path}: no retrieval index; build it with `melanet similar --run "
                                f"{path.parent.parent} --build`")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(np.asarray(data["features"]), [str(value) for value in data["ids"]],
                           np.asarray(data["labels"], dtype=np.int64), [str(value) for value in data["diagnoses"]])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise runs.RunError(f"{path}: unreadable retrieval index ({type(error).__name__}: {error}); "
                                "build it again with `melanet similar --build`") from None


def normalise(features: np.ndarray) -> np.ndarray:
    """(N, C) -> (N, C) float64 rows of unit L2 norm (an all-zero row stays zero)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (N, C), got shape {features.shape}")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def nearest(index: Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar index rows of each query.

    ``queries`` (Q, C) raw features (normalised here). Returns (rows (Q, k) int64 into the index, most
    similar first; similarities (Q, k) float64 cosines). Equal similarities keep the index order.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = normalise(queries)
    if queries.shape[1] != index.features.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} features, the index {index.features.shape[1]}")
    k = min(k, len(index))
    # float64: a float32 product can swap two near-equal cosines
    similarities = queries @ index.unit_features.T  # (Q, N)
    rows = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
    return rows, np.take_along_axis(similarities, rows, axis=1)


def votes(index: Index, queries: np.ndarray, max_k: int = MAX_K) -> np.ndarray:
    """(Q, K) share of malignant images among the k nearest index images, column k-1 for k = 1..K
    (K = ``max_k``, at most the index size)."""
    rows, _ = nearest(index, queries, max_k)
    malignant = index.labels[rows].astype(np.float64)  # (Q, K)
    return np.cumsum(malignant, axis=1) / np.arange(1, rows.shape[1] + 1)


def nearest_other_similarities(index: Index, chunk: int = 1024) -> np.ndarray:
    """(N,) float64: each training image's cosine similarity to its most similar *other* index image
    (the image itself left out; an exact copy elsewhere in the index still counts, at 1.0).

    Rows are compared ``chunk`` at a time, so memory stays (chunk, N) however large the index.
    Raises ValueError for an index of fewer than 2 images.
    """
    if len(index) < 2:
        raise ValueError(f"an index needs at least 2 images to leave one out, got {len(index)}")
    unit = index.unit_features
    nearest_other = np.empty(len(index))
    for start in range(0, len(index), chunk):
        block = unit[start:start + chunk] @ unit.T  # (B, N)
        block[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = -np.inf
        nearest_other[start:start + chunk] = block.max(axis=1)
    return nearest_other


UNLIKE_PERCENTILE = 1.0  # an upload less similar to its nearest training image than 99 % of the training images are


def unlike_training_threshold(index: Index, percentile: float = UNLIKE_PERCENTILE) -> float:
    """The ``percentile``-th percentile (numpy's linear interpolation) of :func:`nearest_other_similarities`:
    an image whose nearest training image is less similar than this is unlike the training images."""
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return float(np.percentile(nearest_other_similarities(index), percentile))
