"""Stage-1 training step: finite losses, gradients everywhere, learning on two toy domains, checkpoints."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from melanet.runs import distribute, lifecycle, runs
from melanet.gan import dataset, model, train

SIZES = model.CycleGanSizes(image_size=32, generator_filters=4, generator_levels=2,
                            discriminator_filters=4, discriminator_levels=2)


def toy_domains(count: int = 16, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Benign: grey blobs on grey; malignant: the same blobs, strongly red-tinted. uint8 (N, S, S, 3)."""
    generator = np.random.default_rng(0)
    rows, columns = np.mgrid[:size, :size]
    grey = np.empty((count, size, size, 3), np.uint8)
    for index in range(count):
        centre = generator.uniform(size * 0.3, size * 0.7, 2)
        radius = generator.uniform(size * 0.15, size * 0.3)
        inside = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 < radius**2
        level = np.where(inside, 70, 170) + generator.integers(-10, 10, (size, size))
        grey[index] = level[..., None]
    red = grey.astype(np.int16)
    red[..., 0] = np.minimum(255, red[..., 0] + 70)
    red[..., 1:] = red[..., 1:] * 0.5
    return grey, red.astype(np.uint8)


def test_one_step_gives_finite_losses_and_a_gradient_for_every_weight():
    keras.utils.set_random_seed(0)
    cyclegan = model.CycleGan(SIZES)
    benign, malignant = toy_domains(2)
    losses, gradients = cyclegan.compute_gradients(dataset.to_model_range(benign), dataset.to_model_range(malignant))
    assert set(losses) == set(model.LOSS_NAMES)
    assert all(np.isfinite(value.numpy()) and value.numpy() > 0 for value in losses.values())
    for name in model.NETWORK_NAMES:
        variables = cyclegan.network(name).trainable_variables
        assert len(gradients[name]) == len(variables) > 0
        for variable, gradient in zip(variables, gradients[name]):
            assert gradient is not None, f"{name}/{variable.path} gets no gradient"
            values = gradient.numpy()
            assert np.all(np.isfinite(values)) and np.any(values != 0), f"{name}/{variable.path}"


def test_identity_weight_zero_skips_the_identity_term():
    cyclegan = model.CycleGan(SIZES, identity_weight=0.0)
    benign, malignant = toy_domains(2)
    losses, _ = cyclegan.compute_gradients(dataset.to_model_range(benign), dataset.to_model_range(malignant))
    assert losses["identity"].numpy() == 0.0


def red_excess(images: np.ndarray) -> float:
    """Mean red minus mean green, uint8 images: ~0 for grey, large for the red-tinted domain."""
    return float(images[..., 0].astype(float).mean() - images[..., 1].astype(float).mean())


@pytest.mark.slow
def test_short_training_closes_the_cycle_and_moves_translations_toward_red():
    keras.utils.set_random_seed(1)
    benign, malignant = toy_domains(16)
    cyclegan = model.CycleGan(SIZES, learning_rate=2e-3)
    step = train.CompiledTrainStep(cyclegan, tf.distribute.get_strategy())
    translated_before, _ = train.translate_and_reconstruct(cyclegan, benign[:8])
    cycle_by_epoch = []
    for epoch in range(1, 16):
        step.reset()
        for batch in dataset.epoch_dataset(benign, malignant, seed=0, epoch=epoch, batch_size=4):
            step(batch)
        cycle_by_epoch.append(step.mean_losses()["cycle"])
    translated_after, reconstructed = train.translate_and_reconstruct(cyclegan, benign[:8])
    assert cycle_by_epoch[-1] < 0.6 * cycle_by_epoch[0], cycle_by_epoch
    assert red_excess(malignant) > 60 and abs(red_excess(benign)) < 1
    # the translation of grey inputs has become clearly red, most of the way to the target domain
    assert red_excess(translated_after) > red_excess(translated_before) + 25, (
        red_excess(translated_before), red_excess(translated_after))
    # and the reconstruction is back near grey
    assert abs(red_excess(reconstructed)) < abs(red_excess(translated_after))


def test_checkpoint_restores_weights_and_optimizer_state(tmp_path):
    keras.utils.set_random_seed(2)
    benign, malignant = toy_domains(4)
    cyclegan = model.CycleGan(SIZES)
    step = train.CompiledTrainStep(cyclegan, tf.distribute.get_strategy())
    for batch in dataset.epoch_dataset(benign, malignant, seed=0, epoch=1, batch_size=2):
        step(batch)
    run = runs.Run(tmp_path / "run")
    epoch = tf.Variable(0, dtype=tf.int64)
    epoch.assign(1)
    lifecycle.save_checkpoint(cyclegan.checkpoint(epoch=epoch), run, 1)

    keras.utils.set_random_seed(3)
    restored = model.CycleGan(SIZES)
    restored_epoch = tf.Variable(0, dtype=tf.int64)
    assert lifecycle.restore_checkpoint(restored.checkpoint(epoch=restored_epoch), run) == 1
    assert int(restored_epoch.numpy()) == 1
    for name in model.NETWORK_NAMES:
        for original, copy in zip(cyclegan.network(name).weights, restored.network(name).weights):
            np.testing.assert_array_equal(original.numpy(), copy.numpy())
        original_optimizer, restored_optimizer = cyclegan.optimizers[name], restored.optimizers[name]
        assert int(restored_optimizer.iterations.numpy()) == int(original_optimizer.iterations.numpy()) == 2
        for original, copy in zip(original_optimizer.variables, restored_optimizer.variables):
            np.testing.assert_array_equal(original.numpy(), copy.numpy())


TWO_REPLICAS_SCRIPT = """
import sys
sys.path.insert(0, "tests")
from melanet.runs import distribute
distribute.split_cpu(2)
import json, keras, numpy as np, tensorflow as tf
from melanet.gan import dataset, model, train
from test_gan_training import SIZES, toy_domains
benign, malignant = toy_domains(8)
pairs = dataset.epoch_dataset(benign, malignant, seed=0, epoch=1, batch_size=4)
results = []
for strategy in (distribute.strategy_for("mirrored"), tf.distribute.get_strategy()):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        cyclegan = model.CycleGan(SIZES)
    losses = train.run_epoch(train.CompiledTrainStep(cyclegan, strategy), pairs, lambda index: None)
    weights = [weight.numpy() for name in model.NETWORK_NAMES for weight in cyclegan.network(name).weights]
    results.append((strategy.num_replicas_in_sync, losses, weights))
(replicas, losses, weights), (_, single_losses, single_weights) = results
print(json.dumps({"replicas": replicas, "losses": losses, "single_losses": single_losses,
                  "weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(weights, single_weights))}))
"""


@pytest.mark.slow
def test_two_replicas_train_exactly_like_one_device():
    """MirroredStrategy over two logical CPUs: same losses and weights as one device (gradient scaling)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repository = Path(__file__).resolve().parents[1]
    completed = subprocess.run([sys.executable, "-c", TWO_REPLICAS_SCRIPT], cwd=repository,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for name in model.LOSS_NAMES:
        assert result["losses"][name] == pytest.approx(result["single_losses"][name], rel=1e-5)
    assert result["weight_difference"] < 1e-6


def test_mixed_precision_keeps_float32_outputs_and_finite_losses():
    benign, malignant = toy_domains(2)
    distribute.set_precision(True)
    try:
        mixed = model.CycleGan(SIZES)
        assert isinstance(mixed.optimizers["discriminator_benign"], keras.optimizers.LossScaleOptimizer)
        assert mixed.generator_benign_to_malignant.get_layer("down1_conv").compute_dtype == "float16"
        output = mixed.generator_benign_to_malignant(dataset.to_model_range(benign[:1]))
        assert output.dtype == tf.float32
        assert mixed.discriminator_benign(output).dtype == tf.float32
        step = train.CompiledTrainStep(mixed, tf.distribute.get_strategy())
        step((dataset.to_model_range(benign), dataset.to_model_range(malignant)))
        assert all(np.isfinite(list(step.mean_losses().values())))
    finally:
        distribute.set_precision(False)


def _train_in_process(run_dir, config, *, resume=False, stop_after=None, monkeypatch) -> list[int]:
    """``train.train`` in this process; returns the epochs it checkpointed (stop_after: stop there)."""
    saved = []
    original = lifecycle.save_checkpoint

    def recording_save(checkpoint, run, epoch, extra=None):
        path = original(checkpoint, run, epoch, extra=extra)
        saved.append(epoch)
        if epoch == stop_after:
            raise lifecycle.StopRequested()
        return path

    monkeypatch.setattr(lifecycle, "save_checkpoint", recording_save)
    try:
        train.train(runs.Run(run_dir), config, resume=resume)
    except lifecycle.StopRequested:
        assert stop_after is not None
    finally:
        monkeypatch.setattr(lifecycle, "save_checkpoint", original)
    return saved


def _checkpoint_weights(run: runs.Run, config) -> list[np.ndarray]:
    cyclegan = model.from_config(config.gan, config.data.image_size)
    lifecycle.restore_checkpoint(cyclegan.checkpoint(epoch=tf.Variable(0, dtype=tf.int64)), run)
    return [weight.numpy() for name in model.NETWORK_NAMES for weight in cyclegan.network(name).weights]


def test_stopped_and_resumed_training_equals_an_uninterrupted_one(tmp_path, tiny_isic, monkeypatch):
    from melanet import config as config_module

    config = config_module.load_config("configs/smoke.yaml", [f"data.root={tiny_isic}", "gan.epochs=2",
                                                             "gan.batch_size=1", "seed=3"])
    assert _train_in_process(tmp_path / "whole", config, monkeypatch=monkeypatch) == [1, 2]
    assert _train_in_process(tmp_path / "resumed", config, stop_after=1, monkeypatch=monkeypatch) == [1]
    resumed = runs.Run(tmp_path / "resumed")
    rows_before_stop = resumed.history()
    grid_before_stop = train.sample_path(resumed, 1).read_bytes()
    weights_before_stop = _checkpoint_weights(resumed, config)

    # the resumed process trains epoch 2 only, from the weights saved after epoch 1
    assert _train_in_process(tmp_path / "resumed", config, resume=True, monkeypatch=monkeypatch) == [2]
    assert resumed.history()[:1] == rows_before_stop
    assert train.sample_path(resumed, 1).read_bytes() == grid_before_stop
    assert [row["epoch"] for row in resumed.history()] == ["1", "2"]
    whole = runs.Run(tmp_path / "whole")
    for whole_row, resumed_row in zip(whole.history(), resumed.history()):
        for name in model.LOSS_NAMES:
            assert float(resumed_row[name]) == pytest.approx(float(whole_row[name]), rel=1e-4, abs=1e-6), name
    final_whole, final_resumed = _checkpoint_weights(whole, config), _checkpoint_weights(resumed, config)
    for expected, actual in zip(final_whole, final_resumed):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
    assert any(not np.allclose(before, after) for before, after in zip(weights_before_stop, final_resumed))


class AffineStub(keras.layers.Layer):
    """A stand-in network: ``scale * x + shift`` (generator) or ``scale * mean_c(x) + shift`` (discriminator)."""

    def __init__(self, scale: float, shift: float, patch_scores: bool, **kwargs):
        super().__init__(**kwargs)
        self.patch_scores = patch_scores
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(scale), name="scale")
        self.shift = self.add_weight(shape=(), initializer=keras.initializers.Constant(shift), name="shift")

    def call(self, images, training=None):
        if self.patch_scores:
            images = tf.reduce_mean(images, axis=-1, keepdims=True)
        return self.scale * images + self.shift


STUB_PARAMETERS = {
    "generator_benign_to_malignant": (0.5, 0.1),
    "generator_malignant_to_benign": (0.8, -0.2),
    "discriminator_malignant": (0.7, 0.3),
    "discriminator_benign": (-0.4, 0.6),
}


def _stub_cyclegan(identity_weight: float) -> model.CycleGan:
    cyclegan = model.CycleGan(SIZES, cycle_weight=10.0, identity_weight=identity_weight)
    for name, (scale, shift) in STUB_PARAMETERS.items():
        stub = AffineStub(scale, shift, patch_scores=name.startswith("discriminator"), name=name)
        stub.build((None, 8, 8, 3))
        setattr(cyclegan, name, stub)
    return cyclegan


def _reference_objective(benign, malignant, identity_weight):
    """Objective (1)-(5) written out independently; returns (losses, gradients per stub parameter)."""
    parameters = {name: [tf.Variable(scale), tf.Variable(shift)] for name, (scale, shift) in STUB_PARAMETERS.items()}

    def generator(name, images):
        scale, shift = parameters[name]
        return scale * images + shift

    def discriminator(name, images):
        scale, shift = parameters[name]
        return scale * tf.reduce_mean(images, axis=-1, keepdims=True) + shift

    def mean_absolute(a, b):
        return tf.reduce_mean(tf.abs(a - b))

    with tf.GradientTape(persistent=True) as tape:
        fake_malignant = generator("generator_benign_to_malignant", benign)   # G_B(b)
        fake_benign = generator("generator_malignant_to_benign", malignant)   # G_M(m)
        cycle = (mean_absolute(generator("generator_malignant_to_benign", fake_malignant), benign)
                 + mean_absolute(generator("generator_benign_to_malignant", fake_benign), malignant))
        identity = (mean_absolute(generator("generator_benign_to_malignant", malignant), malignant)
                    + mean_absolute(generator("generator_malignant_to_benign", benign), benign))
        adversarial_to_malignant = tf.reduce_mean((discriminator("discriminator_malignant", fake_malignant) - 1) ** 2)
        adversarial_to_benign = tf.reduce_mean((discriminator("discriminator_benign", fake_benign) - 1) ** 2)
        generators = adversarial_to_malignant + adversarial_to_benign + 10.0 * cycle + identity_weight * identity
        discriminator_malignant = 0.5 * (tf.reduce_mean((discriminator("discriminator_malignant", malignant) - 1) ** 2)
                                         + tf.reduce_mean(discriminator("discriminator_malignant", fake_malignant) ** 2))
        discriminator_benign = 0.5 * (tf.reduce_mean((discriminator("discriminator_benign", benign) - 1) ** 2)
                                      + tf.reduce_mean(discriminator("discriminator_benign", fake_benign) ** 2))
    losses = {"adversarial_benign_to_malignant": adversarial_to_malignant,
              "adversarial_malignant_to_benign": adversarial_to_benign, "cycle": cycle,
              "identity": identity if identity_weight > 0 else tf.constant(0.0),
              "discriminator_malignant": discriminator_malignant, "discriminator_benign": discriminator_benign}
    objectives = {"generator_benign_to_malignant": generators, "generator_malignant_to_benign": generators,
                  "discriminator_malignant": discriminator_malignant, "discriminator_benign": discriminator_benign}
    gradients = {name: tape.gradient(objectives[name], parameters[name]) for name in STUB_PARAMETERS}
    return losses, gradients


@pytest.mark.parametrize("identity_weight", [0.5, 0.0])
def test_cyclegan_objective_matches_a_hand_written_reference_with_stub_networks(identity_weight):
    generator = np.random.default_rng(4)
    benign = tf.constant(generator.uniform(-1, 1, (2, 8, 8, 3)), tf.float32)
    malignant = tf.constant(generator.uniform(-1, 1, (2, 8, 8, 3)) * 0.5 + 0.3, tf.float32)
    cyclegan = _stub_cyclegan(identity_weight)
    losses, gradients = cyclegan.compute_gradients(benign, malignant)
    expected_losses, expected_gradients = _reference_objective(benign, malignant, identity_weight)
    for name in model.LOSS_NAMES:
        assert float(losses[name]) == pytest.approx(float(expected_losses[name]), rel=1e-5), name
    for name in model.NETWORK_NAMES:
        stub = cyclegan.network(name)
        by_variable = {variable.name: gradient for variable, gradient in zip(stub.trainable_variables, gradients[name])}
        np.testing.assert_allclose([float(by_variable["scale"]), float(by_variable["shift"])],
                                   [float(value) for value in expected_gradients[name]], rtol=1e-4, err_msg=name)
