"""Shades of Gray colour constancy and flip test-time augmentation, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from melanet import config as config_module
from melanet.config import DataConfig
from melanet.data import prepare, preprocess


def test_shades_of_gray_by_hand():
    # two pixels: (60, 120, 240) and (0, 0, 0) (a padding pixel)
    image = np.array([[[60, 120, 240], [0, 0, 0]]], dtype=np.uint8)
    p = 6
    illuminant = np.array([(60**p / 2) ** (1 / p), (120**p / 2) ** (1 / p), (240**p / 2) ** (1 / p)])
    unit = illuminant / np.sqrt(np.sum(illuminant**2))
    expected = np.clip(np.rint(np.array([60, 120, 240]) / (np.sqrt(3) * unit)), 0, 255)
    # the illuminant is (60, 120, 240) / 2^(1/6): direction (1, 2, 4) / sqrt(21); gains sqrt(21) / (sqrt(3) * (1, 2, 4))
    np.testing.assert_allclose(expected, np.rint(np.array([60, 60, 60]) * np.sqrt(7)), atol=0)
    corrected = preprocess.shades_of_gray(image)
    np.testing.assert_array_equal(corrected[0, 0], expected.astype(np.uint8))
    np.testing.assert_array_equal(corrected[0, 1], [0, 0, 0])  # padding stays black


def test_shades_of_gray_uses_the_sixth_power_norm():
    # the same channel means but different spreads: p = 6 weighs the bright pixel far more than p = 1
    image = np.array([[[100, 100, 100], [100, 10, 100], [100, 190, 100]]], dtype=np.uint8)
    green = (np.mean(np.array([100.0, 10.0, 190.0]) ** 6)) ** (1 / 6)
    illuminant = np.array([100.0, green, 100.0])
    gains = 1 / (np.sqrt(3) * illuminant / np.linalg.norm(illuminant))
    expected = np.clip(np.rint(image.astype(float) * gains), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(preprocess.shades_of_gray(image), expected)
    assert not np.array_equal(expected, image)  # with p = 1 the image would stay as it is


def test_a_grey_world_image_is_left_alone_and_padding_does_not_move_the_estimate():
    generator = np.random.default_rng(0)
    image = generator.integers(20, 200, (16, 16, 3)).astype(np.uint8)
    padded = np.zeros((24, 16, 3), np.uint8)
    padded[4:20] = image
    np.testing.assert_array_equal(preprocess.shades_of_gray(padded)[4:20], preprocess.shades_of_gray(image))
    grey = np.repeat(generator.integers(0, 256, (8, 8, 1)), 3, axis=2).astype(np.uint8)
    np.testing.assert_array_equal(preprocess.shades_of_gray(grey), grey)


def test_color_constancy_is_applied_when_decoding_and_is_part_of_the_cache_key(tiny_isic, tmp_path):
    plain = DataConfig(root=str(tiny_isic), image_size=32, cache_dir=str(tmp_path / "cache"), workers=1)
    corrected = DataConfig(root=str(tiny_isic), image_size=32, cache_dir=str(tmp_path / "cache"), workers=1,
                           color_constancy="shades_of_gray")
    first = prepare.load_split(plain, "test")
    second = prepare.load_split(corrected, "test")
    assert not second.from_cache and first.cache_path != second.cache_path
    for raw, image in zip(first.images, second.images):
        np.testing.assert_array_equal(image, preprocess.shades_of_gray(raw))
    assert prepare.load_split(corrected, "test").from_cache and prepare.load_split(plain, "test").from_cache
    with pytest.raises(config_module.ConfigError, match="data.color_constancy"):
        config_module.load_config(None, ["data.color_constancy=grey_world"])


def test_flip_tta_averages_the_four_flips_by_hand():
    import keras

    from melanet.classifier import predict

    size = 4
    inputs = keras.Input((size, size, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    generator = np.random.default_rng(1)
    kernel = generator.normal(0, 3, (size * size * 3, 2)).astype(np.float32)
    model.layers[-1].set_weights([kernel, np.zeros(2, np.float32)])
    images = generator.integers(0, 256, (3, size, size, 3)).astype(np.uint8)

    def by_hand(batch):
        logits = (batch.astype(np.float64) / 255.0).reshape(len(batch), -1) @ kernel.astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp[:, 1] / exp.sum(axis=1)

    views = [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]
    expected = np.mean([by_hand(view) for view in views], axis=0)
    np.testing.assert_allclose(predict.predict_probabilities(model, images, 2, tta="flips"), expected, rtol=1e-5)
    np.testing.assert_allclose(predict.predict_probabilities(model, images, 2), by_hand(images), rtol=1e-5)
    assert not np.allclose(expected, by_hand(images), rtol=1e-3)
    with pytest.raises(ValueError, match="tta"):
        predict.predict_probabilities(model, images, tta="rotations")
