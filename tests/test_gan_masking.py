"""Padding masks: derived from real padded JPEGs, bars pasted back exactly, no gradient through bar pixels."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from melanet.data import preprocess
from melanet.gan import dataset, losses, masking, model, train

SIZES = model.CycleGanSizes(image_size=32, generator_filters=4, generator_levels=2,
                            discriminator_filters=4, discriminator_levels=2)


def padded_sample_images(sample_root, count: int = 4, size: int = 32) -> np.ndarray:
    """Real landscape ISIC JPEGs padded to (count, S, S, 3) uint8, as the data cache holds them."""
    folder = sample_root / "ISBI2016_ISIC_Part3_Training_Data"
    paths = sorted(folder.glob("*.jpg"))[:count]
    return np.stack([preprocess.preprocess_image(path, size, resize="pad") for path in paths])


def test_masks_of_real_padded_images_mark_exactly_the_black_bars(sample_root):
    images = padded_sample_images(sample_root)
    masks = masking.padding_masks(images).numpy()
    assert masks.shape == (*images.shape[:3], 1)
    bars = masks[..., 0] == 0
    assert bars.any(), "the sample's 4:3 images should have bars at 32 px"
    assert np.all(images[bars] == 0)
    # every bar line is a whole row at the top or bottom edge; the rows between hold the photograph
    for image, mask in zip(images, masks[..., 0]):
        bar_rows = np.flatnonzero(mask.min(axis=1) == 0)
        photo_rows = np.flatnonzero(mask.min(axis=1) == 1)
        assert photo_rows.size and np.all(np.diff(photo_rows) == 1)
        assert all(row < photo_rows[0] or row > photo_rows[-1] for row in bar_rows)
        assert np.any(image[photo_rows[0]] != 0) and np.any(image[photo_rows[-1]] != 0)


def test_stretched_images_and_interior_black_have_no_bars():
    image = np.full((1, 8, 8, 3), 120, np.uint8)
    image[0, 3:5, :, :] = 0  # a black stripe across the middle is not padding
    image[0, :, 0, 1] = 0  # an edge column black in one channel only is not padding
    assert masking.padding_masks(image).numpy().min() == 1.0


def test_a_generated_image_has_exactly_the_sources_bars(sample_root):
    keras.utils.set_random_seed(0)
    cyclegan = model.CycleGan(SIZES, mask_padding=True)
    benign = padded_sample_images(sample_root)
    translations, reconstructions = train.translate_and_reconstruct(cyclegan, benign)
    bars = masking.padding_masks(benign).numpy()[..., 0] == 0
    assert np.array_equal(translations[bars], benign[bars])
    assert np.array_equal(reconstructions[bars], benign[bars])
    assert np.any(translations[~bars] != benign[~bars])  # the lesion itself is translated
    unmasked, _ = train.translate_and_reconstruct(model.CycleGan(SIZES, mask_padding=False), benign)
    assert not np.array_equal(unmasked[bars], benign[bars])


def test_a_change_in_the_bar_pixels_moves_no_gradient_through_the_masked_losses(sample_root):
    """The generator's output on a bar gets zero gradient from cycle, identity and adversarial terms."""
    keras.utils.set_random_seed(0)
    cyclegan = model.CycleGan(SIZES, mask_padding=True)
    images = padded_sample_images(sample_root, 2)
    inputs, masks = dataset.to_model_range(images), masking.padding_masks(images)
    raw = tf.Variable(tf.random.uniform(inputs.shape, -1.0, 1.0, seed=1))  # a generator's raw output
    with tf.GradientTape() as tape:
        generated = masking.paste_bars(raw, inputs, masks)
        scores = cyclegan.discriminator_malignant(generated, training=True)
        total = (losses.l1_loss(generated, inputs, masks) + losses.generator_adversarial_loss(scores)
                 + losses.l1_loss(cyclegan.generator_malignant_to_benign(generated, training=True), inputs, masks))
    gradient = tape.gradient(total, raw).numpy()
    bars = np.broadcast_to(masks.numpy() == 0, gradient.shape)
    assert np.all(gradient[bars] == 0)
    assert np.any(gradient[~bars] != 0)
    # and the loss value itself ignores whatever the generator put on the bars
    changed = raw.numpy().copy()
    changed[bars] = 0.7
    assert float(losses.l1_loss(masking.paste_bars(tf.constant(changed), inputs, masks), inputs, masks)) == (
        float(losses.l1_loss(masking.paste_bars(raw, inputs, masks), inputs, masks)))


def test_masked_l1_is_the_mean_over_valid_pixels():
    images = tf.constant(np.full((1, 2, 2, 3), 0.5, np.float32))
    targets = tf.zeros((1, 2, 2, 3))
    masks = tf.constant(np.array([1, 0, 0, 0], np.float32).reshape(1, 2, 2, 1))
    assert float(losses.l1_loss(images * tf.constant([[[[1.0]], [[3.0]]]]), targets, masks)) == 0.5
    assert float(losses.l1_loss(images, targets)) == 0.5


def test_a_training_step_with_masks_gives_finite_losses_and_every_weight_a_gradient(sample_root):
    keras.utils.set_random_seed(0)
    cyclegan = model.CycleGan(SIZES, mask_padding=True, diff_augment=True)
    images = padded_sample_images(sample_root, 4)
    batch = next(iter(dataset.epoch_dataset(images[:2], images[2:], seed=0, epoch=1, batch_size=2, masks=True)))
    assert len(batch) == 4 and batch[2].shape == (2, 32, 32, 1)
    values, gradients = cyclegan.compute_gradients(*batch)
    assert all(np.isfinite(value.numpy()) for value in values.values())
    for name in model.NETWORK_NAMES:
        assert all(gradient is not None and np.any(gradient.numpy() != 0) for gradient in gradients[name]), name


def test_dataset_masks_follow_the_flip(sample_root):
    images = padded_sample_images(sample_root, 4)
    # make the bars asymmetric so that a flip shows: black out the left three columns of every image
    images[:, :, :3] = 0
    batch = next(iter(dataset.epoch_dataset(images, images, seed=3, epoch=1, batch_size=4, masks=True)))
    for scaled, masks in ((batch[0], batch[2]), (batch[1], batch[3])):
        recomputed = masking.padding_masks(dataset.to_uint8(scaled))
        assert np.array_equal(masks.numpy(), recomputed.numpy())
