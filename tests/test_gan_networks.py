"""Stage-1 networks, losses and the input pipeline at tiny sizes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from melanet.gan import dataset, losses, model, networks


@pytest.mark.parametrize(("image_size", "levels"), [(32, 2), (32, 3), (64, 4)])
def test_generator_keeps_image_shape_and_range(image_size, levels):
    generator = networks.build_generator(image_size, filters=4, levels=levels)
    images = tf.random.uniform((2, image_size, image_size, 3), -1.0, 1.0)
    output = generator(images).numpy()
    assert output.shape == (2, image_size, image_size, 3)
    assert output.dtype == np.float32
    assert output.min() >= -1.0 and output.max() <= 1.0


@pytest.mark.parametrize(("image_size", "levels", "patches"), [(32, 2, 8), (64, 3, 8), (256, 4, 16)])
def test_discriminator_gives_a_patch_map(image_size, levels, patches):
    discriminator = networks.build_discriminator(image_size, filters=4, levels=levels)
    scores = discriminator(tf.zeros((1, image_size, image_size, 3))).numpy()
    assert scores.shape == (1, patches, patches, 1)
    assert networks.patch_map_size(image_size, levels) == patches


def test_paper_networks_follow_the_authors_layout():
    generator = networks.build_generator(256, filters=32, levels=4)
    down_widths = [generator.get_layer(f"down{level}_conv").filters for level in range(1, 5)]
    up_widths = [generator.get_layer(f"up{level}_conv").filters for level in range(1, 4)]
    assert down_widths == [32, 64, 128, 256] and up_widths == [128, 64, 32]
    assert generator.get_layer("up1_skip").output.shape[-1] == 128 + 128
    discriminator = networks.build_discriminator(256, filters=64, levels=4)
    widths = [discriminator.get_layer(f"block{level}_conv").filters for level in range(1, 5)]
    assert widths == [64, 128, 256, 512]
    norms = [layer.name for layer in discriminator.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms == ["block2_norm", "block3_norm", "block4_norm"]  # none after the first block
    # instance normalisation = one group per channel
    for layer in generator.layers:
        if isinstance(layer, keras.layers.GroupNormalization):
            assert layer.groups == layer.input.shape[-1], layer.name


@pytest.mark.parametrize(
    ("image_size", "filters", "levels"), [(30, 4, 2), (32, 0, 2), (32, 4, 0), (8, 4, 4)]
)
def test_builders_reject_impossible_sizes(image_size, filters, levels):
    with pytest.raises(ValueError, match="build_generator"):
        networks.build_generator(image_size, filters, levels)
    with pytest.raises(ValueError, match="build_discriminator"):
        networks.build_discriminator(image_size, filters, levels)


def test_losses_match_hand_computed_values():
    scores = tf.constant([[[[0.0]], [[2.0]]]])  # patch scores 0 and 2
    assert losses.generator_adversarial_loss(scores).numpy() == pytest.approx(1.0)  # ((0-1)^2 + (2-1)^2) / 2
    real, translated = tf.constant([1.0, 0.0]), tf.constant([0.0, 1.0])
    assert losses.discriminator_loss(real, translated).numpy() == pytest.approx(0.5 * (0.5 + 0.5))
    assert losses.discriminator_loss(tf.ones(3), tf.zeros(3)).numpy() == pytest.approx(0.0)
    assert losses.l1_loss(tf.constant([1.0, -1.0]), tf.constant([0.5, 0.0])).numpy() == pytest.approx(0.75)


def test_scaling_round_trips_uint8():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    scaled = dataset.to_model_range(images).numpy()
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    np.testing.assert_array_equal(dataset.to_uint8(scaled), images)
    assert dataset.to_uint8(np.array([-3.0, 3.0])).tolist() == [0, 255]


def test_each_epoch_draws_a_fresh_balanced_set():
    first = dataset.epoch_draw(20, 6, seed=3, epoch=1)
    second = dataset.epoch_draw(20, 6, seed=3, epoch=2)
    assert len(first["benign"]) == len(first["malignant"]) == 6
    assert len(set(first["benign"].tolist())) == 6 and set(first["malignant"].tolist()) == set(range(6))
    assert first["benign"].tolist() != second["benign"].tolist()
    again = dataset.epoch_draw(20, 6, seed=3, epoch=1)  # a resumed run draws the same epoch again
    assert first["benign"].tolist() == again["benign"].tolist()
    assert first["flips"].tolist() == again["flips"].tolist()


def test_epoch_dataset_batches_scaled_pairs():
    benign = np.zeros((10, 8, 8, 3), np.uint8)
    malignant = np.full((3, 8, 8, 3), 255, np.uint8)
    malignant[:, :, :4] = 0  # left half black: a flip shows up
    batches = list(dataset.epoch_dataset(benign, malignant, seed=0, epoch=1, batch_size=2))
    assert len(batches) == dataset.steps_per_epoch(10, 3, 2) == 1
    benign_batch, malignant_batch = (tensor.numpy() for tensor in batches[0])
    assert benign_batch.shape == malignant_batch.shape == (2, 8, 8, 3)
    assert benign_batch.dtype == np.float32 and np.all(benign_batch == -1.0)
    assert set(np.unique(malignant_batch)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="lower gan.batch_size"):
        dataset.epoch_dataset(benign, malignant, seed=0, epoch=1, batch_size=4)


def test_flips_follow_the_draw():
    malignant = np.zeros((64, 4, 4, 3), np.uint8)
    malignant[:, :, :2] = 255
    pairs = dataset.epoch_dataset(malignant.copy(), malignant, seed=5, epoch=1, batch_size=64)
    benign_batch, _ = next(iter(pairs))
    flipped = benign_batch.numpy()[:, 0, 0, 0] < 0  # left column became dark
    assert 10 < flipped.sum() < 54
    unflipped = dataset.epoch_dataset(malignant.copy(), malignant, seed=5, epoch=1, batch_size=64, flip=False)
    assert np.all(next(iter(unflipped))[0].numpy()[:, 0, 0, 0] > 0)


def test_model_sizes_come_from_config():
    from melanet import config as config_module

    gan = config_module.load_config("configs/smoke.yaml").gan
    cyclegan = model.from_config(gan, 32)
    assert cyclegan.generator_benign_to_malignant.get_layer("down1_conv").filters == gan.generator_filters
    assert cyclegan.discriminator_benign.output.shape[1] == 32 // 2**gan.discriminator_levels
