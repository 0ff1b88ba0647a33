"""Compact model files: keep only the trained layers when the frozen ones can be rebuilt.

A classifier trained with ``classifier.trainable_from`` leaves every layer before that name exactly
as the configured weight source gave it (``hed``, ``imagenet`` or a file). Such a run can be shared
as ``model.trained.npz`` instead of a full ``model.keras``: loading rebuilds the model from the run's
config and the same weight source, checks a SHA-256 fingerprint of the frozen weights, and sets the
trained layers.

Trained backbone layers started from the same source, and fine-tuning moves them little, so they are
stored as float16 *differences* from the source (about 1e-3 of the weights' scale, kept to ~5e-4 of
itself); the head, which started random, is stored in float32. Predictions then match the full model
to about 1e-5; ``compact_run`` checks 1e-4 on probe images and refuses otherwise. Evaluate a run after
compacting it (``melanet reproduce --resume`` does so) so that its metrics are those of the shared file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import keras
import numpy as np

from melanet.runs import lifecycle, runs
from melanet.classifier import backbones, model as model_module

logger = logging.getLogger(__name__)

STAGE = "compact"
FULL_FILE, COMPACT_FILE = runs.MODEL_FILES[:2]
_FINGERPRINT_KEY = "__frozen_sha256__"
_SEPARATOR = "::"
_DELTA_MARK = "delta16"  # key suffix: float16 difference from the rebuilt source weights
_ABSOLUTE_MARK = "value"
PREDICTION_TOLERANCE = 1e-4


def _rebuild(config) -> keras.Model:
    return model_module.build_from_config(config)


def _cut(model: keras.Model, layer_name: str) -> int:
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer {layer_name!r} in the model")
    return names.index(layer_name)


def frozen_fingerprint(model: keras.Model, layer_name: str) -> str:
    """SHA-256 over every weight of the layers before ``layer_name`` (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for layer in model.layers[: _cut(model, layer_name)]:
        for index, weight in enumerate(layer.get_weights()):
            array = np.ascontiguousarray(weight)
            digest.update(f"{layer.name}/{index}/{array.dtype}/{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def compact_run(run_path: str | Path) -> Path:
    """Replace ``model.keras`` of a finished run by ``model.trained.npz``; returns the new file.

    Raises ``RunError`` when the run cannot be compacted (nothing frozen, random frozen weights, or
    frozen layers that differ from the configured weight source). The full file is removed only
    after the compact one has been written and gives the same predictions. Another stage's folder,
    or a run another process works on, is refused before anything is written.
    """
    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)
    with run.lock(STAGE):
        return _compact_holding_lock(run)


def _compact_holding_lock(run: runs.Run) -> Path:
    config = run.config()
    settings = config.classifier
    if not settings.trainable_from:
        raise runs.RunError(f"{run.path}: every layer was trained (classifier.trainable_from is empty); "
                            "nothing can be rebuilt, keep model.keras")
    if settings.weights == "none":
        raise runs.RunError(f"{run.path}: the frozen layers are random (classifier.weights=none) and cannot be "
                            "rebuilt; keep model.keras")
    full_path = run.file(FULL_FILE)
    if not full_path.is_file():
        raise runs.RunError(f"{full_path}: not found (train the run first)")
    try:
        trained_model = keras.models.load_model(full_path, compile=False)
    except (OSError, ValueError) as error:
        raise runs.RunError(f"{full_path}: cannot be read as a Keras model ({error})") from None
    reference = _rebuild(config)
    fingerprint = frozen_fingerprint(reference, settings.trainable_from)
    if frozen_fingerprint(trained_model, settings.trainable_from) != fingerprint:
        raise runs.RunError(f"{run.path}: the frozen layers of model.keras differ from classifier.weights="
                            f"{settings.weights!r}; keep model.keras")
    arrays: dict[str, np.ndarray] = {_FINGERPRINT_KEY: np.array(fingerprint)}
    from_source = backbones.source_layers(reference)
    for layer in trained_model.layers[_cut(trained_model, settings.trainable_from):]:
        initial = reference.get_layer(layer.name).get_weights()
        for index, weight in enumerate(layer.get_weights()):
            if layer.name in from_source:
                arrays[f"{layer.name}{_SEPARATOR}{index}{_SEPARATOR}{_DELTA_MARK}"] = (
                    (weight - initial[index]).astype(np.float16))
            else:
                arrays[f"{layer.name}{_SEPARATOR}{index}{_SEPARATOR}{_ABSOLUTE_MARK}"] = weight
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    compact_path = run.file(COMPACT_FILE)
    runs.atomic_write_bytes(compact_path, buffer.getvalue())

    probe = np.random.default_rng(0).uniform(0, 1, (2, *trained_model.input_shape[1:])).astype("float32")
    expected = trained_model.predict(probe, verbose=0)
    rebuilt = load_compact(run.path)
    difference = float(np.abs(rebuilt.predict(probe, verbose=0) - expected).max())
    if difference > PREDICTION_TOLERANCE:
        compact_path.unlink()
        raise runs.RunError(f"{run.path}: the compact model's probabilities differ from model.keras by "
                            f"{difference:.2g} (> {PREDICTION_TOLERANCE}); kept model.keras")
    os.unlink(full_path)
    logger.info("%s: %s (%.1f MB) replaces %s", run.path, COMPACT_FILE, compact_path.stat().st_size / 1e6, FULL_FILE)
    return compact_path


def load_compact(run_path: str | Path) -> keras.Model:
    """Rebuild a compacted run's model: input (N, S, S, 3) float32 in [0, 1], output (N, 2) softmax."""
    run = runs.Run.open(run_path)
    config = run.config()
    path = run.file(COMPACT_FILE)
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    model = _rebuild(config)
    if frozen_fingerprint(model, config.classifier.trainable_from) != str(arrays.pop(_FINGERPRINT_KEY)):
        raise runs.RunError(
            f"{path}: the frozen layers rebuilt from classifier.weights={config.classifier.weights!r} are not the "
            "ones this model was trained on (a different weights file or package version?)"
        )
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for key, value in arrays.items():
        layer_name, index, mark = key.split(_SEPARATOR)
        if mark == _DELTA_MARK:
            value = model.get_layer(layer_name).get_weights()[int(index)] + value.astype(np.float32)
        by_layer.setdefault(layer_name, {})[int(index)] = value
    for layer_name, weights in by_layer.items():
        layer = model.get_layer(layer_name)
        layer.set_weights([weights[index] for index in range(len(weights))])
    return model
