"""Load a trained stage-2 model and predict malignant probabilities."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from melanet import runs
from melanet.classifier import losses, model as model_module  # noqa: F401  (register custom objects)

MODEL_FILE = "model.keras"


def load_model(run_path: str | Path) -> keras.Model:
    """The selected (best validation) model of a stage-2 run, uncompiled.

    Input (N, S, S, 3) float32 in [0, 1]; output (N, 2) softmax [benign, malignant].
    Reads ``model.keras``, else a compact ``model.trained.npz`` (see ``melanet.classifier.compact``).
    Raises ``RunError`` when the run has no trained model yet.
    """
    from melanet.classifier import compact

    path = Path(run_path) / MODEL_FILE
    if path.is_file():
        return keras.models.load_model(path, compile=False)
    if (Path(run_path) / compact.COMPACT_FILE).is_file():
        return compact.load_compact(run_path)
    raise runs.RunError(f"{path}: no trained model in this run (train it with 'melanet train-classifier')")


def scaled_batches(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """uint8 (N, S, S, 3) -> batches of float32 in [0, 1] (the classifier's input scaling)."""
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return dataset.map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)


def to_unit_range(batch: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]."""
    return tf.cast(batch, tf.float32) / 255.0


def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Probability of malignant for each image.

    Args:
        model: a VGG-GAP model (see ``load_model``).
        images: (N, S, S, 3) uint8 RGB in [0, 255], S the model's input size.
    Returns:
        (N,) float64 in [0, 1].
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, S, S, 3) uint8, got {images.shape} {images.dtype}")
    expected = tuple(model.input_shape[1:3])
    if tuple(images.shape[1:3]) != expected:
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} px, the model expects {expected[0]}x{expected[1]}")
    if len(images) == 0:
        return np.zeros(0, dtype=np.float64)
    probabilities = model.predict(scaled_batches(images, batch_size), verbose=0)
    return np.asarray(probabilities[:, 1], dtype=np.float64)
