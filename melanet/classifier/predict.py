"""Load a trained stage-2 model and predict malignant probabilities (optionally averaged over flips)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from melanet.runs import layout, runs
from melanet.data import disk_images
from melanet.classifier import losses, model as model_module  # noqa: F401  (register custom objects)

MODEL_FILE = layout.MODEL_FILE


def load_model(run_path: str | Path) -> keras.Model:
    """The selected (best validation) model of a stage-2 run, uncompiled.

    Input (N, S, S, 3) float32 in [0, 1]; output (N, 2) softmax [benign, malignant].
    Reads ``model.keras``, else a compact ``model.trained.npz`` (see ``melanet.classifier.compact``).
    Raises ``RunError`` when the run has no trained model yet.
    """
    from melanet.classifier import compact

    path = Path(run_path) / MODEL_FILE
    if path.is_file():
        return _load_keras_file(path)
    if (Path(run_path) / compact.COMPACT_FILE).is_file():
        return compact.load_compact(run_path)
    raise runs.RunError(f"{path}: no trained model in this run (train it with 'melanet train-classifier')")


def _load_keras_file(path: Path) -> keras.Model:
    """``keras.models.load_model``, with ``RunError`` naming the file when it is empty, cut short or corrupt."""
    size = path.stat().st_size
    # Keras answers every unreadable file with "File not found"; say what is really wrong
    problem = "empty file (0 bytes)" if size == 0 else None if zipfile.is_zipfile(path) else "not a .keras zip archive"
    if problem is None:
        try:
            return keras.models.load_model(path, compile=False)
        except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
            problem = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else 'unreadable'}"
    raise runs.RunError(f"{path}: cannot load the trained model ({problem}; {size} bytes); the file is damaged, "
                        "retrain the run or copy the file again")


def scaled_batches(images: np.ndarray, batch_size: int, flip_axes: tuple[int, ...] = (), *,
                   transpose: bool = False) -> tf.data.Dataset:
    """uint8 (N, S, S, 3) -> batches of float32 in [0, 1] (the classifier's input scaling).

    Images on disk (``melanet.data.disk_images.DiskImages``) are read a batch at a time.
    ``flip_axes``: axes of (N, S, S, 3) to reverse (1 = up-down, 2 = left-right), applied to each batch,
    so a flipped view of the data set is never held in memory. ``transpose``: swap rows and columns
    first (with a flip, a 90-degree rotation).
    """
    if disk_images.is_on_disk(images):
        dataset = disk_images.batches(images, tf.data.Dataset.range(len(images)).batch(batch_size))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    axes = list(flip_axes)

    def scale(batch: tf.Tensor) -> tf.Tensor:
        if transpose:
            batch = tf.transpose(batch, [0, 2, 1, 3])
        return to_unit_range(tf.reverse(batch, axes) if axes else batch)

    return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def to_unit_range(batch: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return tf.cast(batch, tf.float32) / 255.0


# evaluation.tta: the views of each image whose probabilities are averaged (axes of (N, S, S, 3) to reverse)
TTA_VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "flips": ((), (2,), (1,), (1, 2)),  # as is, left-right, up-down, both (= rotated by 180 degrees)
}
# The 8 symmetries of the square (the dihedral group: flips and 90-degree rotations) as (transpose, axes to
# reverse); the first four are the flips of TTA_VIEWS, the transposed four add the 90- and 270-degree
# rotations and the two diagonal mirror images. A lesion has no up, down, left or right, so a model's
# answer should not change between them; how much it does is ``melanet.evaluation.uncertainty``'s spread.
DIHEDRAL_VIEWS: tuple[tuple[bool, tuple[int, ...]], ...] = tuple(
    (transpose, axes) for transpose in (False, True) for axes in TTA_VIEWS["flips"])


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int = 32, *, tta: str = "none"
) -> np.ndarray:
    """Probability of malignant for each image.

    Args:
        model: a VGG-GAP model (see ``load_model``).
        images: (N, S, S, 3) uint8 RGB in [0, 255], S the model's input size.
        tta: ``evaluation.tta``: ``none``, or ``flips`` (the mean of the probabilities of the image,
            its left-right and up-down mirror images and both flips together).
    Returns:
        (N,) float64 in [0, 1].
    """
    _check_inputs(model, images, tta)
    return np.mean(_view_probabilities(model, images, batch_size, [(False, axes) for axes in TTA_VIEWS[tta]]), axis=1)


def predict_with_views(
    model: keras.Model, images: np.ndarray, batch_size: int = 32, *, tta: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """The probability of malignant as ``predict_probabilities`` gives it, and of each of the 8 views.

    Args: as ``predict_probabilities``.
    Returns:
        (N,) float64 in [0, 1], the mean over the ``tta`` views (the same numbers as
        ``predict_probabilities``), and (N, 8) float64 in [0, 1], one column per ``DIHEDRAL_VIEWS`` entry.
        Each view is predicted once: the ``tta`` views are among the 8.
    """
    _check_inputs(model, images, tta)
    views = _view_probabilities(model, images, batch_size, DIHEDRAL_VIEWS)
    chosen = [DIHEDRAL_VIEWS.index((False, axes)) for axes in TTA_VIEWS[tta]]
    return np.mean(views[:, chosen], axis=1), views


def _check_inputs(model: keras.Model, images: np.ndarray, tta: str) -> None:
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, S, S, 3) uint8, got {images.shape} {images.dtype}")
    expected = tuple(model.input_shape[1:3])
    if tuple(images.shape[1:3]) != expected:
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} px, the model expects {expected[0]}x{expected[1]}")


def _view_probabilities(model: keras.Model, images: np.ndarray, batch_size: int,
                        views: list[tuple[bool, tuple[int, ...]]] | tuple[tuple[bool, tuple[int, ...]], ...]) -> np.ndarray:
    """(N, V) float64: the malignant probability of each image under each (transpose, axes) view."""
    if len(images) == 0:
        return np.zeros((0, len(views)), dtype=np.float64)
    columns = [np.asarray(model.predict(scaled_batches(images, batch_size, axes, transpose=transpose), verbose=0)[:, 1],
                          dtype=np.float64) for transpose, axes in views]
    return np.stack(columns, axis=1)
