"""The GAP classifier: backbone convolutions -> global average pooling -> Dense(2, softmax).

VGG-GAP (the paper) with ``vgg16``; the same head on EfficientNet-Lite with ``efficientnet-lite0/1/2``
(``backbones`` holds everything that differs). One flat functional model (no nested sub-models), so
Grad-CAM tools reach any layer by name. Input ``image`` (N, S, S, 3) float32 in [0, 1] (the paper's
scaling); output ``predictions`` (N, 2) float32 softmax [benign, malignant]. Where the weights expect
other input scaling, a fixed preprocessing layer sits right after the input, so the [0, 1] contract
is the same for every backbone and weight source.
"""

from __future__ import annotations

import keras
from keras import ops

from melanet.classifier import backbones
from melanet.classifier import losses

BACKBONES = backbones.BACKBONES
HEAD_ONLY = (backbones.POOLING_LAYER, backbones.HEAD_LAYER)  # trainable_from values that train the head only


def build_classifier(
    image_size: int,
    backbone: str = "vgg16",
    width: float = 1.0,
    weights: str = "imagenet",
    trainable_from: str = "",
    preprocessing: str = "",
) -> keras.Model:
    """Build the GAP classifier.

    Args:
        image_size: input side S in pixels (>= 32).
        backbone: one of ``backbones.BACKBONES``: ``vgg16`` (the paper, width 1), ``vgg16-narrow``
            (filters x ``width``, CPU tests), ``efficientnet-lite0/1/2`` (ImageNet weights offline).
        width: filter multiplier of ``vgg16-narrow`` in (0, 1] (ignored by the others).
        weights: a named source of the backbone (``imagenet``, ``hed`` for VGG16, ``none``) or a path.
        trainable_from: "" trains every layer (the paper); a layer name such as ``block5_conv3`` or
            ``block6a_expand_conv`` freezes every layer before it; ``global_average_pooling`` trains the
            head only. ValueError lists the valid names.
        preprocessing: "" (the backbone's own input scaling) or ``mean-std`` (ImageNet mean/std).
    Returns:
        Uncompiled flat model, input (N, S, S, 3) float32 in [0, 1], output (N, 2) softmax.
    """
    entry = backbones.get(backbone)
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 (five 2x downsamplings), got {image_size}")
    if not 0.0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    width = width if backbone == "vgg16-narrow" else 1.0
    backbones.check_weights_name(backbone, weights)
    inputs = keras.Input((image_size, image_size, 3), name=backbones.INPUT_LAYER)
    features = backbones.apply_preprocessing(inputs, backbone, weights, preprocessing)
    features = backbones.apply_backbone(features, backbone, width)
    pooled = keras.layers.GlobalAveragePooling2D(name=backbones.POOLING_LAYER)(features)
    # float32 softmax even under mixed precision: probabilities near 0/1 need the range.
    outputs = keras.layers.Dense(2, activation="softmax", dtype="float32", name=backbones.HEAD_LAYER)(pooled)
    name = "vgg_gap" if entry.is_vgg else f"{backbone.replace('-', '_')}_gap"
    model = keras.Model(inputs, outputs, name=name)
    backbones.load_weights(model, backbone, weights, width, image_size)
    if backbones.freezes_batch_norm(backbone):
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    freeze_before(model, trainable_from, backbone)
    return model


def build_from_config(config) -> keras.Model:
    """``build_classifier`` with a run's ``config.data.image_size`` and ``config.classifier`` settings."""
    settings = config.classifier
    return build_classifier(config.data.image_size, settings.backbone, settings.width, settings.weights,
                            trainable_from=settings.trainable_from, preprocessing=settings.preprocessing)


def valid_trainable_from(backbone: str) -> list[str]:
    """The values ``classifier.trainable_from`` may take for ``backbone`` besides ""."""
    return [*backbones.trainable_from_names(backbone), *HEAD_ONLY]


def freeze_before(model: keras.Model, layer_name: str, backbone: str | None = None) -> None:
    """Make every layer before ``layer_name`` non-trainable ("" keeps all trainable)."""
    if not layer_name:
        return
    names = [layer.name for layer in model.layers]
    allowed = valid_trainable_from(backbone) if backbone else names
    if layer_name not in names or layer_name not in allowed:
        choices = ", ".join(valid_trainable_from(backbone)) if backbone else ", ".join(names)
        raise ValueError(f"trainable_from: {layer_name!r} is not a layer training can start from "
                         f"(choose one of: {choices})")
    for layer in model.layers[: names.index(layer_name)]:
        layer.trainable = False


def split_at(model: keras.Model, layer_name: str) -> tuple[keras.Model, keras.Model]:
    """Cut the classifier before ``layer_name`` into (frozen prefix, trainable suffix).

    Both halves share ``model``'s layers (and so its weights): training the suffix trains ``model``.
    The prefix maps images (N, S, S, 3) in [0, 1] to the activations entering ``layer_name``; the
    suffix maps those activations to the (N, 2) softmax. ``layer_name`` must take a single input that
    every later layer reaches only through it (no residual connection crosses the cut): ValueError
    otherwise.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer {layer_name!r} in the model")
    if names.index(layer_name) < 1:
        raise ValueError(f"cannot split before the input layer {layer_name!r}")
    cut_input = model.get_layer(layer_name).input
    if isinstance(cut_input, (list, tuple)):
        raise ValueError(f"cannot split before {layer_name!r}: it takes {len(cut_input)} inputs")
    prefix = keras.Model(model.input, cut_input, name="frozen_prefix")
    try:
        suffix = keras.Model(cut_input, model.output, name="trainable_suffix")
    except ValueError as error:  # a later layer needs a tensor from before the cut
        raise ValueError(f"cannot split before {layer_name!r}: a connection crosses it ({error})") from None
    if len(suffix.layers) + len(prefix.layers) - 1 != len(model.layers):  # the suffix's cloned input
        raise ValueError(f"cannot split before {layer_name!r}: a connection crosses it")
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
