"""Grad-CAM maps: shape, range, and that they point at what a trained model actually uses."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from melanet.explain import gradcam, overlay

SIZE = 32
SIDE = 8


def bright_square_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dark noisy (count, 32, 32, 3) uint8 images; odd-indexed ones (label 1) carry a bright 8x8 square.

    Returns images, labels (count,) and boxes (count, 4) as (top, left, bottom, right) of the square
    (drawn only when the label is 1).
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 90, (count, SIZE, SIZE, 3)).astype(np.uint8)
    labels = np.arange(count) % 2
    boxes = np.zeros((count, 4), dtype=int)
    for index in range(count):
        top, left = rng.integers(0, SIZE - SIDE + 1, 2)
        boxes[index] = top, left, top + SIDE, left + SIDE
        if labels[index]:
            images[index, top : top + SIDE, left : left + SIDE] = rng.integers(220, 256, (SIDE, SIDE, 3))
    return images, labels, boxes


def tiny_classifier(pool: bool = True) -> keras.Model:
    """Flat functional model shaped like VGG-GAP: convs (VGG names) -> GAP -> Dense(2, softmax)."""
    inputs = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(inputs)
    if pool:
        features = keras.layers.MaxPooling2D(name="block1_pool")(features)
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block5_conv3")(features)
    pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(features)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def square_model() -> keras.Model:
    """A tiny model trained (about a second) to say 'malignant' when the bright square is present."""
    keras.utils.set_random_seed(0)
    model = tiny_classifier()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels, _ = bright_square_images(256, seed=0)
    model.fit(images / 255.0, labels, epochs=10, batch_size=32, verbose=0)
    return model


@pytest.mark.parametrize("method", gradcam.METHODS)
def test_maps_have_input_size_and_unit_range(method: str) -> None:
    keras.utils.set_random_seed(1)
    images, _, _ = bright_square_images(5, seed=1)
    maps = gradcam.compute_maps(tiny_classifier(), images, method=method, batch_size=2)
    assert maps.shape == (5, SIZE, SIZE)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0


def test_square_model_learned_the_task(square_model: keras.Model) -> None:
    images, labels, _ = bright_square_images(40, seed=2)
    predicted = square_model.predict(images / 255.0, verbose=0).argmax(axis=1)
    assert (predicted == labels).mean() >= 0.95


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_map_mass_lies_inside_the_square(square_model: keras.Model, method: str) -> None:
    images, labels, boxes = bright_square_images(20, seed=3)
    positives = np.flatnonzero(labels == 1)
    maps = gradcam.compute_maps(square_model, images[positives], method=method)
    inside = []
    for activation_map, (top, left, bottom, right) in zip(maps, boxes[positives]):
        # One pixel of margin: the pooled 16x16 map is upsampled bilinearly.
        inside.append(activation_map[max(top - 1, 0) : bottom + 1, max(left - 1, 0) : right + 1].sum() / activation_map.sum())
    # The square (with margin) covers 100 / 1024 ~ 10 % of the image; a map that ignored it would hold ~10 %.
    assert np.median(inside) > 0.6, np.round(inside, 2)
    assert min(inside) > 0.4, np.round(inside, 2)


def test_missing_layer_lists_the_convolution_layers() -> None:
    model = tiny_classifier()
    with pytest.raises(ValueError, match="block1_conv1, block5_conv3") as raised:
        gradcam.compute_maps(model, np.zeros((1, SIZE, SIZE, 3), np.uint8), layer="block4_conv3")
    assert "block4_conv3" in str(raised.value)


def test_non_spatial_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="no spatial"):
        gradcam.ActivationMapper(tiny_classifier(), layer="global_average_pooling")


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="gradcam, gradcam\\+\\+, scorecam"):
        gradcam.ActivationMapper(tiny_classifier(), method="saliency")


def test_all_zero_maps_stay_zero_without_nan() -> None:
    maps = np.zeros((2, 4, 4), np.float32)
    maps[1] = np.arange(16).reshape(4, 4)
    normalized = gradcam.normalize_maps(maps)
    assert np.array_equal(normalized[0], np.zeros((4, 4)))
    assert normalized[1].min() == 0.0 and normalized[1].max() == 1.0


def test_model_with_no_positive_evidence_gives_zero_maps() -> None:
    """Zero conv kernels: every activation is 0, so Grad-CAM has nothing; the map is zeros, not NaN."""
    model = tiny_classifier()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([np.zeros_like(weight) for weight in layer.get_weights()])
    maps = gradcam.compute_maps(model, bright_square_images(2, seed=4)[0])
    assert np.array_equal(maps, np.zeros_like(maps))


def test_overlay_has_the_image_size() -> None:
    image = np.full((48, 64, 3), 100, np.uint8)
    activation_map = np.zeros((6, 8), np.float32)
    activation_map[0, 0] = 1.0
    rendered = overlay.overlay(image, activation_map, opacity=0.5)
    assert rendered.shape == (48, 64, 3) and rendered.dtype == np.uint8
    # jet: 1.0 is dark red, 0.0 dark blue; opacity 0.5 mixes half of it into the grey image.
    assert tuple(rendered[0, 0]) == (114, 50, 50)
    assert tuple(rendered[-1, -1]) == (50, 50, 114)
    assert np.array_equal(overlay.overlay(image, activation_map, opacity=0.0), image)


def test_overlay_rejects_bad_arguments() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="opacity"):
        overlay.overlay(image, np.zeros((8, 8)), opacity=1.5)
    with pytest.raises(ValueError, match="colour map"):
        overlay.overlay(image, np.zeros((8, 8)), colour_map="rainbow")


def _direct_gradcam(model: keras.Model, images: np.ndarray, layer: str) -> np.ndarray:
    """Grad-CAM written out with a GradientTape: ReLU(sum_c mean_hw(d logit_malignant / dA) * A_c)."""
    import tensorflow as tf

    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.get_layer("global_average_pooling").output])
    kernel, bias = model.get_layer("predictions").get_weights()
    with tf.GradientTape() as tape:
        activations, pooled = probe(images)
        malignant_logit = tf.matmul(pooled, kernel[:, 1:]) + bias[1]  # the score before the softmax
    gradients = tape.gradient(malignant_logit, activations)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)).numpy()
    return gradcam.normalize_maps(maps)


def test_gradcam_on_a_non_default_layer_matches_a_direct_gradient_tape_computation() -> None:
    keras.utils.set_random_seed(3)
    model = tiny_classifier(pool=False)  # block1_conv1 keeps the input size: no resizing in the comparison
    images = np.random.default_rng(3).random((3, SIZE, SIZE, 3)).astype(np.float32)
    maps = gradcam.compute_maps(model, images, layer="block1_conv1", method="gradcam")
    expected = _direct_gradcam(model, images, "block1_conv1")
    assert maps.shape == (3, SIZE, SIZE) and expected.max() > 0
    np.testing.assert_allclose(maps, expected, atol=2e-4)
    default_layer = gradcam.compute_maps(model, images, method="gradcam")
    np.testing.assert_allclose(default_layer, _direct_gradcam(model, images, "block5_conv3"), atol=2e-4)
    assert not np.allclose(maps, default_layer, atol=1e-2)
