"""Class activation maps (Grad-CAM, Grad-CAM++, Score-CAM) for the malignant class.

Pure computation: images in, maps out. Rendering lives in ``melanet.explain.overlay``.
tf-keras-vis needs a flat functional model (``keras.Model(backbone.input, head(backbone.output))``),
which is what every classifier run saves as ``model.keras``.
"""

from __future__ import annotations

import logging
import warnings
import weakref
from typing import Any

import keras
import numpy as np

from melanet.common import choices
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

METHODS = choices.GRADCAM_METHODS
MALIGNANT = 1  # output index of the malignant class in the (N, 2) softmax


def spatial_layers(model: keras.Model) -> list[str]:
    """Names of the model's layers with a 4-D output (N, h, w, C): the possible Grad-CAM targets."""
    names = []
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and not isinstance(layer, keras.layers.InputLayer):
            names.append(layer.name)
    return names


def convolution_layers(model: keras.Model) -> list[str]:
    """Names of the model's Conv2D layers, in order."""
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def find_target_layer(model: keras.Model, layer_name: str) -> keras.layers.Layer:
    """The layer called ``layer_name``; ValueError listing the convolution layers when it is absent
    or has no spatial (N, h, w, C) output."""
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        hint = (
            f" (the model nests sub-models {', '.join(nested)}; Grad-CAM needs a flat functional model)"
            if nested
            else ""
        )
        raise ValueError(
            f"layer '{layer_name}' not found in model '{model.name}'{hint}; "
            f"convolution layers: {', '.join(convolution_layers(model)) or 'none'}"
        )
    if layer_name not in spatial_layers(model):
        raise ValueError(
            f"layer '{layer_name}' has no spatial (N, h, w, C) output; "
            f"convolution layers: {', '.join(convolution_layers(model)) or 'none'}"
        )
    return model.get_layer(layer_name)


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max scale each (H, W) map of (N, H, W) to [0, 1]; a constant map becomes all zeros."""
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    safe_span = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (maps - low) / safe_span, 0.0).astype(np.float32).clip(0.0, 1.0)


class ActivationMapper:
    """Computes class activation maps of one model, target layer and method.

    Building the tf-keras-vis visualiser clones the model once (to make its softmax linear);
    reuse one mapper for many batches.
    """

    def __init__(
        self,
        model: keras.Model,
        layer: str = "block5_conv3",
        method: str = "gradcam",
        class_index: int = MALIGNANT,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown Grad-CAM method '{method}'; expected one of {', '.join(METHODS)}")
        # a fold ensemble (melanet.classifier.predict.Ensemble): one mapper per member, their maps averaged
        self._members = [ActivationMapper(member, layer, method, class_index)
                         for member in getattr(model, "members", [])]
        if self._members:
            self.model, self.layer, self.method = model, layer, method
            return
        find_target_layer(model, layer)
        # Imported here: tf-keras-vis pulls in scipy and tf.keras at import time, and 0.8.7 imports
        # scipy.ndimage.interpolation, which warns on every import.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="tf_keras_vis")
            warnings.filterwarnings("ignore", message=".*scipy.ndimage.interpolation.*")
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.scorecam import Scorecam
            from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
            from tf_keras_vis.utils.scores import CategoricalScore

        self.model = model
        self.layer = layer
        self.method = method
        self.score = CategoricalScore(class_index)
        if method == "scorecam":
            # Score-CAM weighs channels by the softmax score of masked inputs: keep the softmax.
            self._visualizer = Scorecam(model)
        else:
            # Gradients of the pre-softmax score avoid the saturation of a confident softmax.
            visualizer_class = Gradcam if method == "gradcam" else GradcamPlusPlus
            self._visualizer = visualizer_class(model, model_modifier=ReplaceToLinear(), clone=True)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Maps for one batch.

        Args:
            images: (N, H, W, 3) float32 in [0, 1] (the classifier's input scaling).
        Returns:
            (N, H, W) float32 in [0, 1], bilinearly resized to the input's H, W; for an ensemble the
            mean of its members' maps (each normalised to [0, 1] first).
        """
        if self._members:
            return np.mean([mapper(images) for mapper in self._members], axis=0).astype(np.float32)
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (N, H, W, C), got {images.shape}")
        arguments = dict(penultimate_layer=self.layer, seek_penultimate_conv_layer=False, normalize_cam=False)
        if self.method == "scorecam":
            arguments["batch_size"] = 32
        interactive = keras.config.is_interactive_logging_enabled()
        keras.config.disable_interactive_logging()  # Score-CAM calls model.predict, which draws bars
        try:
            with warnings.catch_warnings():
                # tf-keras-vis passes single inputs as a list; Keras 3 warns about the structure.
                warnings.filterwarnings("ignore", message="The structure of `inputs`")
                maps = self._visualizer(self.score, images, **arguments)
        finally:
            if interactive:
                keras.config.enable_interactive_logging()
        maps = np.asarray(maps, dtype=np.float32).reshape(images.shape[:3])
        return normalize_maps(np.maximum(maps, 0.0))


_MAPPERS: "weakref.WeakKeyDictionary[Any, dict[tuple[str, str, int], ActivationMapper]]" = weakref.WeakKeyDictionary()


def _mapper(model: Any, layer: str, method: str, class_index: int) -> "ActivationMapper":
    """For a fold ensemble (``melanet.classifier.predict.Ensemble``, loaded and never trained further), one
    ``ActivationMapper`` per layer, method and class, kept while the ensemble lives: building one clones every
    member and traces its gradient, which costs more than the maps of one upload (Predict page). Any other
    model gets a new mapper each call (the clone copies the weights, which training may still change)."""
    if not hasattr(model, "members"):
        return ActivationMapper(model, layer=layer, method=method, class_index=class_index)
    try:
        per_model = _MAPPERS.setdefault(model, {})
    except TypeError:  # not weakly referable: build one each time
        return ActivationMapper(model, layer=layer, method=method, class_index=class_index)
    key = (layer, method, class_index)
    if key not in per_model:
        per_model[key] = ActivationMapper(model, layer=layer, method=method, class_index=class_index)
    return per_model[key]


def compute_maps(
    model: keras.Model,
    images: np.ndarray,
    *,
    layer: str = "block5_conv3",
    method: str = "gradcam",
    class_index: int = MALIGNANT,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> np.ndarray:
    """Class activation maps of ``class_index`` (default malignant) on ``layer``.

    Args:
        model: flat functional classifier, input (N, H, W, 3) float32 in [0, 1], output (N, 2) softmax.
        images: (N, H, W, 3) uint8 in [0, 255] or float in [0, 1].
        layer: target layer name (``block5_conv3`` for VGG16); ValueError lists the conv layers if absent.
        method: "gradcam", "gradcam++" or "scorecam".
    Returns:
        (N, H, W) float32 in [0, 1]; a map with no positive evidence is all zeros.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = np.asarray(images)
    scaled = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    mapper = _mapper(model, layer, method, class_index)
    total = len(scaled)
    maps = np.zeros(scaled.shape[:3], dtype=np.float32)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        maps[start:stop] = mapper(scaled[start:stop])
        if progress is not None:
            progress(stop, total, f"{method} on {layer}")
    return maps
