"""DiffAugment: one transform per (real, generated) pair, differentiable, off at inference."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pathlib import Path

from melanet import config as config_module
from melanet.gan import diff_augment, model

SIZES = model.CycleGanSizes(image_size=32, generator_filters=4, generator_levels=2,
                            discriminator_filters=4, discriminator_levels=2)


def random_batch(seed: int, count: int = 4, size: int = 32) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype(np.float32))


def test_the_same_transform_is_applied_to_a_real_generated_pair():
    augmenter = diff_augment.PairAugmenter(seed=7)
    real = random_batch(0)
    real_out, generated_out = augmenter(real, tf.identity(real), training=True)
    assert np.array_equal(real_out.numpy(), generated_out.numpy())  # same input -> same output
    assert not np.allclose(real_out.numpy(), real.numpy())  # and it did transform
    # images of the pair differ where their inputs differ, not by their augmentation: applied to
    # (real, real + delta) the outputs differ exactly by the transformed delta's linear part
    generated = random_batch(1)
    real_out, generated_out = diff_augment.PairAugmenter(seed=7)(real, generated, training=True)
    parameters = diff_augment.draw_parameters(tf.random.Generator.from_seed(7), 4, 32)
    np.testing.assert_allclose(real_out.numpy(), diff_augment.augment(real, parameters).numpy(), atol=1e-6)
    np.testing.assert_allclose(generated_out.numpy(), diff_augment.augment(generated, parameters).numpy(), atol=1e-6)


def test_each_image_of_a_batch_gets_its_own_draw():
    parameters = diff_augment.draw_parameters(tf.random.Generator.from_seed(3), 8, 32)
    assert len(set(parameters["brightness"].numpy().ravel().tolist())) == 8
    assert np.abs(parameters["shift_rows"].numpy()).max() <= 4


def test_translation_and_cutout_by_hand():
    image = tf.reshape(tf.range(1.0, 17.0), (1, 4, 4, 1)) * tf.ones((1, 1, 1, 3))
    shifted = diff_augment._shift(image, tf.constant([1]), axis=1)[0, :, :, 0].numpy()
    expected = np.vstack([np.zeros(4), np.arange(1, 13).reshape(3, 4)])
    np.testing.assert_array_equal(shifted, expected)
    left = diff_augment._shift(image, tf.constant([-2]), axis=2)[0, :, :, 0].numpy()
    np.testing.assert_array_equal(left, np.hstack([np.arange(1, 17).reshape(4, 4)[:, 2:], np.zeros((4, 2))]))
    holes = diff_augment._cutout(tf.ones((1, 8, 8, 3)), {"cutout_row": tf.constant([0]),
                                                           "cutout_column": tf.constant([7])})
    hole = holes[0, :, :, 0].numpy() == 0
    # a square of half the side (4) centred on (0, 7): only its quarter inside the image remains
    assert hole.sum() == 4 and hole[:2, 6:].all()


def test_off_at_inference_and_when_disabled():
    real, generated = random_batch(0), random_batch(1)
    cases = ((diff_augment.PairAugmenter(1), False), (diff_augment.PairAugmenter(1, enabled=False), True))
    for augmenter, training in cases:
        real_out, generated_out = augmenter(real, generated, training=training)
        assert real_out is real and generated_out is generated


def test_gradients_flow_through_the_augmentation():
    images = tf.Variable(random_batch(2))
    parameters = diff_augment.draw_parameters(tf.random.Generator.from_seed(0), 4, 32)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(diff_augment.augment(images, parameters) ** 2)
    gradient = tape.gradient(total, images).numpy()
    assert np.isfinite(gradient).all() and np.count_nonzero(gradient) > gradient.size // 2


def test_cyclegan_generators_never_see_the_augmentation():
    """With diff_augment on, inference (synthesis) is the plain generator: same output as with it off."""
    tf.keras.utils.set_random_seed(0)
    augmented = model.CycleGan(SIZES, diff_augment=True)
    plain = model.CycleGan(SIZES, diff_augment=False)
    plain.generator_benign_to_malignant.set_weights(augmented.generator_benign_to_malignant.get_weights())
    images = random_batch(3, 2)
    np.testing.assert_array_equal(augmented.generator_benign_to_malignant(images, training=False).numpy(),
                                  plain.generator_benign_to_malignant(images, training=False).numpy())
    assert augmented.augmenter.enabled and not plain.augmenter.enabled


def test_diff_augment_is_off_in_the_paper_preset_and_by_default():
    assert config_module.Config().gan.diff_augment is False
    paper = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"
    assert config_module.load_config(paper).gan.diff_augment is False
