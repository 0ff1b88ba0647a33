"""Device strategy and precision for both training stages (imports TensorFlow)."""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


def strategy_for(distribute: str) -> tf.distribute.Strategy:
    """``"none"`` -> the default strategy; ``"mirrored"`` -> MirroredStrategy over all visible GPUs
    (or, with no GPU, over all logical CPU devices, which is how the tests exercise it)."""
    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [device.name for device in gpus] or [device.name for device in tf.config.list_logical_devices("CPU")]
        logger.info("MirroredStrategy over %s", devices)
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ValueError(f"distribute must be 'none' or 'mirrored', got {distribute!r}")


def set_precision(mixed_precision: bool) -> None:
    """``mixed_float16`` on request (GPUs); float32 otherwise. Outputs stay float32 in the models."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def split_cpu(count: int = 2) -> None:
    """Split the physical CPU into ``count`` logical devices (tests of 'mirrored' on a CPU machine).
    Must run before TensorFlow initialises its devices."""
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
