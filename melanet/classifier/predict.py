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
ENSEMBLE_FILE = layout.ENSEMBLE_FILE
ENSEMBLE_STACK_LIMIT = 256  # images x views up to which an ensemble predicts all views of all images in one call


class Ensemble:
    """The K fold models of a cross-validated run (``classifier.folds`` > 1), used as one model.

    ``predict`` and calling it give the mean of the members' softmax outputs, (N, 2) float32, so
    ``predict_probabilities`` / ``predict_with_views`` average the members of every view (the mean over
    views of the mean over members: both are means, the order does not matter). Grad-CAM
    (``melanet.explain.gradcam.compute_maps``) averages the members' maps; GAP features
    (``melanet.explain.features.extract_features``) concatenate the members' (K * C columns), since
    separately trained members do not share a feature space.
    """

    def __init__(self, members: list[keras.Model]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shapes = {tuple(member.input_shape[1:]) for member in members}
        if len(shapes) != 1:
            raise ValueError(f"the ensemble's members take different inputs: {sorted(shapes)}")
        self.members = list(members)

    @property
    def input_shape(self) -> tuple:
        return self.members[0].input_shape

    @property
    def name(self) -> str:
        return f"ensemble_of_{len(self.members)}_{self.members[0].name}"

    def predict(self, inputs, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Mean of the members' ``predict`` on ``inputs`` (an array or a ``tf.data.Dataset``): (N, 2)."""
        outputs = [np.asarray(member.predict(inputs, batch_size=batch_size, verbose=verbose)) for member in self.members]
        return np.mean(outputs, axis=0)

    def __call__(self, inputs, training: bool = False):
        return tf.add_n([member(inputs, training=training) for member in self.members]) / len(self.members)


def load_ensemble(run_path: str | Path) -> Ensemble:
    """The members named in ``ensemble.json`` of a cross-validated run, each loaded as ``load_model`` does."""
    from melanet.classifier import compact

    folder = Path(run_path)
    listing = runs.read_json(folder / ENSEMBLE_FILE)
    members = []
    for name in listing.get("members", []):
        member = folder / name
        if (member / MODEL_FILE).is_file():
            members.append(_load_keras_file(member / MODEL_FILE))
        elif (member / compact.COMPACT_FILE).is_file():
            members.append(compact.load_compact(member))
        else:
            raise runs.RunError(f"{folder / ENSEMBLE_FILE}: member {name} has no trained model")
    return Ensemble(members)


def load_model(run_path: str | Path) -> keras.Model | Ensemble:
    """The selected (best validation) model of a stage-2 run, uncompiled; the ``Ensemble`` of its fold
    models for a cross-validated run (``ensemble.json``).

    Input (N, S, S, 3) float32 in [0, 1]; output (N, 2) softmax [benign, malignant].
    Reads ``model.keras``, else a compact ``model.trained.npz`` (see ``melanet.classifier.compact``).
    Raises ``RunError`` when the run has no trained model yet.
    """
    from melanet.classifier import compact

    path = Path(run_path) / MODEL_FILE
    if (Path(run_path) / ENSEMBLE_FILE).is_file():
        return load_ensemble(run_path)
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


# A view of an image: (transpose, axes of (N, S, S, 3) to reverse); transposing first, then flipping, gives the
# 90- and 270-degree rotations and the diagonal mirror images.
View = tuple[bool, tuple[int, ...]]
_FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (1,), (1, 2))  # as is, left-right, up-down, both (180 degrees)
# The 8 symmetries of the square (the dihedral group: flips and 90-degree rotations); the first four are the
# flips, the transposed four add the 90- and 270-degree rotations and the two diagonal mirror images. A lesion
# has no up, down, left or right, so a model's answer should not change between them; how much it does is
# ``melanet.evaluation.uncertainty``'s spread.
DIHEDRAL_VIEWS: tuple[View, ...] = tuple((transpose, axes) for transpose in (False, True) for axes in _FLIPS)
# evaluation.tta: the views of each image whose probabilities are averaged
TTA_VIEWS: dict[str, tuple[View, ...]] = {
    "none": DIHEDRAL_VIEWS[:1],
    "flips": DIHEDRAL_VIEWS[:4],
    "dihedral": DIHEDRAL_VIEWS,
}


def view_name(view: View) -> str:
    """A view in words: 'as is', 'left-right', 'up-down', 'both flips', each with 'transposed, ' in front."""
    transpose, axes = view
    flip = {(): "as is", (2,): "left-right", (1,): "up-down", (1, 2): "both flips"}[tuple(axes)]
    return f"transposed, {flip}" if transpose else flip


def apply_view(images: np.ndarray, view: View) -> np.ndarray:
    """``images`` (N, S, S, C) under ``view`` (numpy; the same pixels ``scaled_batches`` gives for it)."""
    transpose, axes = view
    moved = np.transpose(images, (0, 2, 1, 3)) if transpose else images
    return np.flip(moved, axis=axes) if axes else moved


def predict_probabilities(
    model: keras.Model, images: np.ndarray, batch_size: int = 32, *, tta: str = "none"
) -> np.ndarray:
    """Probability of malignant for each image.

    Args:
        model: a VGG-GAP model (see ``load_model``).
        images: (N, S, S, 3) uint8 RGB in [0, 255], S the model's input size.
        tta: ``evaluation.tta``: ``none``, ``flips`` (the mean of the probabilities of the image,
            its left-right and up-down mirror images and both flips together) or ``dihedral`` (all 8 views).
    Returns:
        (N,) float64 in [0, 1].
    """
    _check_inputs(model, images, tta)
    return np.mean(_view_probabilities(model, images, batch_size, TTA_VIEWS[tta]), axis=1)


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
    chosen = [DIHEDRAL_VIEWS.index(view) for view in TTA_VIEWS[tta]]
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
    if isinstance(model, Ensemble) and len(images) * len(views) <= ENSEMBLE_STACK_LIMIT:
        # an upload or a few images: every view in one array, so each member runs once, not once per view
        stacked = np.concatenate([apply_view(np.asarray(images), view) for view in views]).astype(np.float32) / 255.0
        probabilities = np.asarray(model.predict(stacked, batch_size=batch_size)[:, 1], dtype=np.float64)
        return probabilities.reshape(len(views), len(images)).T
    columns = [np.asarray(model.predict(scaled_batches(images, batch_size, axes, transpose=transpose), verbose=0)[:, 1],
                          dtype=np.float64) for transpose, axes in views]
    return np.stack(columns, axis=1)
