"""CycleGAN networks as the authors' code builds them: U-Net generators, PatchGAN discriminators.

Instance normalisation is Keras 3's ``GroupNormalization(groups=-1)`` (one group per channel).
Builders take explicit sizes, never the configuration, so tests build them at 32 px with 4 filters.
Under a ``mixed_float16`` policy the networks compute in float16 and their outputs stay float32.
"""

from __future__ import annotations

import keras

KERNEL_SIZE = 4
LEAKY_SLOPE = 0.2
MAX_DISCRIMINATOR_MULTIPLIER = 8  # PatchGAN filters double per level up to 8x the first (64 -> 512)


def _check_sizes(image_size: int, filters: int, levels: int, what: str) -> None:
    if levels < 1:
        raise ValueError(f"{what}: levels must be >= 1, got {levels}")
    if filters < 1:
        raise ValueError(f"{what}: filters must be >= 1, got {filters}")
    if image_size < 2**levels or image_size % 2**levels:
        raise ValueError(
            f"{what}: image_size {image_size} must be a multiple of 2**levels = {2**levels} "
            f"({levels} stride-2 levels)"
        )


def _instance_norm(name: str) -> keras.layers.Layer:
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def build_identity_generator(image_size: int, name: str = "generator") -> keras.Model:
    """The identity map as a generator: (N, S, S, 3) float32 in [-1, 1] -> the same tensor (``gan.generator:
    identity``, the floor of the arms' comparison: a translation that changes nothing)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    return keras.Model(inputs, keras.layers.Identity(name="identity")(inputs), name=name)


def build_generator(image_size: int, filters: int = 32, levels: int = 4, name: str = "generator") -> keras.Model:
    """U-Net generator: (N, S, S, 3) float32 in [-1, 1] -> (N, S, S, 3) float32 in [-1, 1].

    Down path: ``levels`` blocks of Conv 4x4 stride 2 -> LeakyReLU 0.2 -> instance norm with
    ``filters * 2**i`` channels. Up path: ``levels - 1`` blocks of UpSampling2D -> Conv 4x4 ReLU ->
    instance norm -> concatenation with the down block of the same resolution. A last UpSampling2D
    and Conv 4x4 to 3 channels with tanh restore the input size.
    """
    _check_sizes(image_size, filters, levels, "build_generator")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    skips = []
    features = inputs
    for level in range(levels):
        features = keras.layers.Conv2D(
            filters * 2**level, KERNEL_SIZE, strides=2, padding="same", name=f"down{level + 1}_conv"
        )(features)
        features = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"down{level + 1}_leaky_relu")(features)
        features = _instance_norm(f"down{level + 1}_norm")(features)
        skips.append(features)
    for level in reversed(range(levels - 1)):
        block = f"up{levels - 1 - level}"
        features = keras.layers.UpSampling2D(2, name=f"{block}_upsample")(features)
        features = keras.layers.Conv2D(
            filters * 2**level, KERNEL_SIZE, padding="same", activation="relu", name=f"{block}_conv"
        )(features)
        features = _instance_norm(f"{block}_norm")(features)
        features = keras.layers.Concatenate(name=f"{block}_skip")([features, skips[level]])
    features = keras.layers.UpSampling2D(2, name="output_upsample")(features)
    outputs = keras.layers.Conv2D(
        3, KERNEL_SIZE, padding="same", activation="tanh", dtype="float32", name="output_conv"
    )(features)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(
    image_size: int, filters: int = 64, levels: int = 4, name: str = "discriminator"
) -> keras.Model:
    """PatchGAN discriminator: (N, S, S, 3) in [-1, 1] -> (N, S / 2**levels, S / 2**levels, 1) float32.

    ``levels`` blocks of Conv 4x4 stride 2 -> LeakyReLU 0.2 -> instance norm (none on the first
    block), filters ``filters * 2**i`` capped at 8x; then a linear Conv 4x4 to one channel. Each
    output value scores one patch of the input as real (1) or translated (0), least-squares style.
    At 256 px with 4 levels the map is 16 x 16.
    """
    _check_sizes(image_size, filters, levels, "build_discriminator")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = inputs
    for level in range(levels):
        width = filters * min(2**level, MAX_DISCRIMINATOR_MULTIPLIER)
        features = keras.layers.Conv2D(
            width, KERNEL_SIZE, strides=2, padding="same", name=f"block{level + 1}_conv"
        )(features)
        features = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"block{level + 1}_leaky_relu")(features)
        if level > 0:
            features = _instance_norm(f"block{level + 1}_norm")(features)
    outputs = keras.layers.Conv2D(1, KERNEL_SIZE, padding="same", dtype="float32", name="patch_scores")(features)
    return keras.Model(inputs, outputs, name=name)


def patch_map_size(image_size: int, levels: int) -> int:
    """Side of the discriminator's patch map for ``image_size`` inputs."""
    return image_size // 2**levels
