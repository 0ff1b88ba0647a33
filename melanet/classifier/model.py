"""The VGG-GAP classifier: VGG16 convolutions -> global average pooling -> Dense(2, softmax).

One flat functional model (no nested sub-models), so Grad-CAM tools reach ``block5_conv3`` by name.
Input (N, S, S, 3) float32 in [0, 1] (the paper's scaling); output (N, 2) float32 softmax
[benign, malignant]. With ``hed`` weights a fixed ``vgg16_preprocessing`` layer sits right after the
input, so the [0, 1] contract is the same for every weight source.
"""

from __future__ import annotations

import keras
from keras import ops

from melanet.classifier import backbone as backbone_module
from melanet.classifier import losses

BACKBONES = ("vgg16", "vgg16-narrow")


def build_classifier(
    image_size: int,
    backbone: str = "vgg16",
    width: float = 1.0,
    weights: str = "imagenet",
    trainable_from: str = "",
) -> keras.Model:
    """Build VGG-GAP.

    Args:
        image_size: input side S in pixels (>= 32).
        backbone: ``vgg16`` (the paper, width 1) or ``vgg16-narrow`` (filters x ``width``, CPU demos/tests).
        width: filter multiplier of ``vgg16-narrow`` in (0, 1].
        weights: ``imagenet`` | ``hed`` (NOT ImageNet: VGG16 edge-detector weights) | ``none`` | path.
        trainable_from: "" trains every layer (the paper); a layer name such as ``block4_conv1`` freezes
            every layer before it (a faster CPU demo).
    Returns:
        Uncompiled flat model, input (N, S, S, 3) float32 in [0, 1], output (N, 2) softmax.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 (five 2x2 poolings), got {image_size}")
    if not 0.0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    width = 1.0 if backbone == "vgg16" else width
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = inputs
    if backbone_module.needs_vgg_preprocessing(weights):
        features = backbone_module.vgg_preprocessing(features)
    features = backbone_module.apply_vgg16(features, width)
    pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(features)
    # float32 softmax even under mixed precision: probabilities near 0/1 need the range.
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float32", name="predictions")(pooled)
    model = keras.Model(inputs, outputs, name="vgg_gap")
    backbone_module.load_backbone_weights(model, weights, width, image_size)
    freeze_before(model, trainable_from)
    return model


def freeze_before(model: keras.Model, layer_name: str) -> None:
    """Make every layer before ``layer_name`` non-trainable ("" keeps all trainable)."""
    if not layer_name:
        return
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        convolutions = ", ".join(backbone_module.conv_layer_names())
        raise ValueError(f"trainable_from: no layer {layer_name!r} in the model (convolutions: {convolutions})")
    for layer in model.layers[: names.index(layer_name)]:
        layer.trainable = False


def split_at(model: keras.Model, layer_name: str) -> tuple[keras.Model, keras.Model]:
    """Cut the VGG-GAP chain before ``layer_name`` into (frozen prefix, trainable suffix).

    Both halves share ``model``'s layers (and so its weights): training the suffix trains ``model``.
    The prefix maps images (N, S, S, 3) in [0, 1] to the activations entering ``layer_name``; the
    suffix maps those activations to the (N, 2) softmax. Valid because VGG-GAP is a plain chain.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer {layer_name!r} in the model")
    cut = names.index(layer_name)
    if cut < 1:
        raise ValueError(f"cannot split before the input layer {layer_name!r}")
    prefix = keras.Model(model.input, model.layers[cut - 1].output, name="frozen_prefix")
    suffix_input = keras.Input(tuple(prefix.output.shape[1:]), name="frozen_features")
    features = suffix_input
    for layer in model.layers[cut:]:
        features = layer(features)
    suffix = keras.Model(suffix_input, features, name="trainable_suffix")
    return prefix, suffix


@keras.saving.register_keras_serializable(package="melanet")
class MalignantAUC(keras.metrics.AUC):
    """ROC AUC of the malignant probability: ``y_true`` (N,) labels 0/1, ``y_pred`` (N, 2) softmax.

    (Keras's AUC on a 2-column softmax would pool both columns.) Class-level sample weights, such as
    'balanced' class weights, leave AUC unchanged.
    """

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(ops.reshape(y_true, (-1,)), ops.cast(y_pred, "float32")[:, 1], sample_weight)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """``adadelta`` (the paper, lr 1e-3) or ``adam``."""
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate=learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(f"optimizer must be 'adadelta' or 'adam', got {name!r}")


def compile_classifier(
    model: keras.Model, optimizer: str, learning_rate: float, focal_alpha: float, focal_gamma: float
) -> None:
    """Focal loss + the chosen optimizer + ``auc`` (malignant ROC AUC) as the metric."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=losses.FocalLoss(alpha=focal_alpha, gamma=focal_gamma),
        metrics=[MalignantAUC(name="auc")],
    )
