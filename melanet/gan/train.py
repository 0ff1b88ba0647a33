"""Stage 1 training: the epoch loop of Algorithm 1 with history, status, samples and checkpoints.

Per epoch: draw a balanced set of (benign, malignant) pairs, run the compiled CycleGAN step on
every batch, append the mean losses to ``history.csv``, write ``figures/samples_epoch_NNN.png`` and
an atomic checkpoint. ``resume=True`` restores the newest checkpoint, drops history rows past it
and continues to ``config.gan.epochs``. The final generators are saved as ``.keras`` files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from melanet import config as config_module
from melanet.runs import distribute, lifecycle, runs
from melanet.data import disk_images
from melanet.gan import dataset, masking, model, samples

logger = logging.getLogger(__name__)

STAGE = "train-gan"
HISTORY_COLUMNS = ("epoch", *model.LOSS_NAMES, "seconds")
GENERATOR_NAMES = ("generator_benign_to_malignant", "generator_malignant_to_benign")


def generator_path(run: runs.Run, name: str) -> Path:
    """Where the final generator ``name`` (one of ``GENERATOR_NAMES``) is saved."""
    return run.file(f"{name}.keras")


def sample_path(run: runs.Run, epoch: int) -> Path:
    return run.figures_dir / f"samples_epoch_{epoch:03d}.png"


class CompiledTrainStep:
    """The training step compiled once (``tf.function``), run on every replica, losses summed on device."""

    def __init__(self, cyclegan: model.CycleGan, strategy: tf.distribute.Strategy):
        self.cyclegan = cyclegan
        self.strategy = strategy
        self.sums = tf.Variable(tf.zeros([len(model.LOSS_NAMES)]), trainable=False, name="loss_sums")
        self.steps = 0
        self._function = tf.function(self._step)

    def _step(self, batch: tuple[tf.Tensor, tf.Tensor]) -> None:
        per_replica = self.strategy.run(self.cyclegan.train_step, args=(batch,))
        means = [
            self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica[name], axis=None)
            for name in model.LOSS_NAMES
        ]
        self.sums.assign_add(tf.stack(means))

    def __call__(self, batch: tuple[tf.Tensor, tf.Tensor]) -> None:
        """One update of all four networks from a (distributed) ``(benign, malignant)`` batch."""
        self._function(batch)
        self.steps += 1

    def reset(self) -> None:
        self.sums.assign(tf.zeros_like(self.sums))
        self.steps = 0

    def mean_losses(self) -> dict[str, float]:
        """Mean of each loss over the steps since ``reset``."""
        values = self.sums.numpy() / max(1, self.steps)
        return {name: float(value) for name, value in zip(model.LOSS_NAMES, values)}


def run_epoch(step: CompiledTrainStep, pairs: tf.data.Dataset, on_step: Callable[[int], None]) -> dict[str, float]:
    """Train on every batch of ``pairs`` (from ``dataset.epoch_dataset``); returns the mean losses.

    ``on_step(index)`` runs after each step (progress reporting); it must stay cheap.
    """
    step.reset()
    for index, batch in enumerate(step.strategy.experimental_distribute_dataset(pairs), start=1):
        step(batch)
        on_step(index)
    return step.mean_losses()


def split_domains(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 + (N,) labels (0 benign, 1 malignant) -> (benign images, malignant images).

    Images on disk give lazy views (nothing is read here)."""
    labels = np.asarray(labels)
    if disk_images.is_on_disk(images):
        return images.take(np.flatnonzero(labels == 0)), images.take(np.flatnonzero(labels == 1))
    return images[labels == 0], images[labels == 1]


def fixed_sample_indices(benign_count: int, sample_count: int, seed: int) -> np.ndarray:
    """The benign images shown in every epoch's sample grid (same for a resumed run)."""
    generator = np.random.default_rng([seed, 0xC1C1E])
    return np.sort(generator.choice(benign_count, size=min(sample_count, benign_count), replace=False))


def translate_and_reconstruct(cyclegan: model.CycleGan, benign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, S, S, 3) uint8 benign -> (translations, reconstructions), both (R, S, S, 3) uint8.

    With ``cyclegan.mask_padding`` both carry the input's padding bars exactly.
    """
    masks = masking.padding_masks(benign) if cyclegan.mask_padding else None
    translated, reconstructed = masking.translate_and_reconstruct(
        cyclegan.generator_benign_to_malignant, cyclegan.generator_malignant_to_benign,
        dataset.to_model_range(benign), masks,
    )
    return dataset.to_uint8(translated), dataset.to_uint8(reconstructed)


def save_generators(run: runs.Run, cyclegan: model.CycleGan) -> None:
    """Write both generators as ``.keras`` files atomically (temp file + rename)."""
    for name in GENERATOR_NAMES:
        final = generator_path(run, name)
        temporary = final.with_name(f".{final.stem}.{os.getpid()}.keras")
        cyclegan.network(name).save(temporary)
        os.replace(temporary, final)


def train(
    run: runs.Run,
    config: config_module.Config,
    *,
    resume: bool = False,
    progress: lifecycle.Progress | None = None,
) -> runs.Run:
    """Train (or, with ``resume``, continue) the CycleGAN of ``config`` in ``run``.

    Holds the run's lock for the whole stage (a second process gets ``RunBusyError``) and writes
    ``config.yaml`` once it holds it. ``lifecycle.check_folder`` refuses, before anything is written,
    another stage's folder and a fresh start on a finished run or one with checkpoints, so that two
    trainings never mix in one folder. With ``distribute: multi_worker`` only the chief writes ``run``;
    another worker trains in a temporary folder and, on ``resume``, restores ``run``'s checkpoint.
    """
    distribute.start(config.distribute)  # before any other TensorFlow op
    with distribute.writing_run(run, config.distribute) as writer:
        with lifecycle.stage_session(writer, STAGE, resume=resume and writer is run):
            writer.write_config(config)
            _train_holding_lock(writer, config, resume=resume, progress=progress, restore_from=run)
    return run


def _load_training_images(run: runs.Run, config: config_module.Config, progress) -> tuple[np.ndarray, np.ndarray]:
    from melanet.data import splits  # the data layer imports PIL & co.; only needed here

    run.update_status(message="loading training images")
    training_set, _ = splits.training_and_validation(config.data, config.seed, progress=progress)
    run.record_skipped(training_set.skipped)
    benign, malignant = split_domains(training_set.images, training_set.labels)
    logger.info("stage 1 training images: %d benign, %d malignant", len(benign), len(malignant))
    if len(benign) == 0 or len(malignant) == 0:
        raise runs.RunError(
            f"{config.data.root}: the training split needs benign and malignant images, "
            f"found {len(benign)} benign and {len(malignant)} malignant"
        )
    return benign, malignant


def _train_holding_lock(run, config, *, resume, progress, restore_from: runs.Run) -> None:
    gan = config.gan
    benign, malignant = _load_training_images(run, config, progress)
    steps = dataset.steps_per_epoch(len(benign), len(malignant), gan.batch_size)
    if steps < 1:
        raise config_module.ConfigError(
            f"config: key 'gan.batch_size'={gan.batch_size} is larger than the {min(len(benign), len(malignant))} "
            "images per domain and epoch"
        )
    keras.utils.set_random_seed(config.seed)
    distribute.set_precision(config.mixed_precision)
    try:
        _train_epochs(run, config, benign, malignant, steps, resume=resume, progress=progress,
                      restore_from=restore_from)
    finally:
        distribute.set_precision(False)


def _train_epochs(run, config, benign, malignant, steps, *, resume, progress, restore_from: runs.Run) -> None:
    gan = config.gan
    strategy = distribute.strategy_for(config.distribute)
    if gan.batch_size % strategy.num_replicas_in_sync:
        raise config_module.ConfigError(
            f"config: key 'gan.batch_size'={gan.batch_size} must be a multiple of the "
            f"{strategy.num_replicas_in_sync} replicas of distribute={config.distribute}"
        )
    with strategy.scope():
        cyclegan = model.from_config(gan, config.data.image_size, augment_seed=config.seed,
                                     projection_seed=config.seed)
    epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = cyclegan.checkpoint(epoch=epoch_variable)
    epochs_done = lifecycle.restore_checkpoint(checkpoint, restore_from) if resume else 0
    if epochs_done:
        try:
            cyclegan.check_frozen_weights()
        except model.FrozenWeightsChanged as error:
            raise runs.RunError(f"{restore_from.path}: {error}") from None
    distribute.agree_on_epoch(strategy, epochs_done)
    if epochs_done:
        logger.info("resuming %s after epoch %d of %d", run.path, epochs_done, gan.epochs)
    run.truncate_history(epochs_done)
    step = CompiledTrainStep(cyclegan, strategy)
    reporter = lifecycle.EpochReporter(run, gan.epochs, steps, first_epoch=epochs_done + 1, progress=progress)
    sample_inputs = benign[fixed_sample_indices(len(benign), gan.sample_count, config.seed)]
    for epoch in range(epochs_done + 1, gan.epochs + 1):
        reporter.start_epoch(epoch)
        cyclegan.augmenter.reset(epoch)  # DiffAugment's draws are a function of (seed, epoch): resumable
        pairs = dataset.epoch_dataset(
            benign, malignant, seed=config.seed, epoch=epoch, batch_size=gan.batch_size, flip=gan.flip,
            masks=gan.mask_padding,
        )
        losses = run_epoch(step, pairs, lambda index: reporter.batch_done(epoch, index))
        if not all(np.isfinite(value) for value in losses.values()):
            raise FloatingPointError(f"epoch {epoch}: non-finite CycleGAN loss {losses}")
        reporter.end_epoch(epoch, losses)
        translations, reconstructions = translate_and_reconstruct(cyclegan, sample_inputs)
        samples.write_sample_grid(sample_path(run, epoch), sample_inputs, translations, reconstructions)
        epoch_variable.assign(epoch)
        lifecycle.save_checkpoint(checkpoint, run, epoch)
    save_generators(run, cyclegan)
