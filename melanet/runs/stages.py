"""The stage registry: every pipeline stage and step, its CLI verb, inputs, resume rule and choices.

One entry per verb that works on a run folder. The CLI (``melanet.cli``), the job launcher
(``melanet.runs.jobs``), the reproduction (``melanet.reproduce.reproduction``), the lifecycle's folder check and the
dashboard's Train page read this table; a new stage (an audit, a reader study) is one new entry here
plus its CLI verb. ``tests/test_stages.py`` walks the table against the CLI parser, ``jobs`` and the
Train page.

Two kinds of entry:

- ``training``: owns its run folder. Its ``status.json`` ``stage``/``state`` are the run's own
  (``train-gan``, ``train-classifier``, ``reproduce``).
- ``step``: works on a finished run of ``folder_stage`` and keeps its own entry ``status_key`` in that
  run's ``status.json`` (``evaluate`` -> ``evaluation``), leaving the run's stage and state alone;
  ``synthesize`` is the exception that records itself as the run's stage (it predates the entries).

Choices that the config validates against are ``Literal`` types here (``TrainingSet``,
``GradCamMethod``, ...); their tuples (``TRAINING_SETS``, ...) are what forms and parsers offer.

This module imports nothing from the rest of ``melanet`` except ``layout``, so ``config`` can
import it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from melanet.runs import layout

# -- choices ----------------------------------------------------------------------------------------
TrainingSet = Literal["original", "augment5x", "augment10x", "synthetic"]
TRAINING_SETS: tuple[TrainingSet, ...] = typing.get_args(TrainingSet)
SYNTHETIC_TRAINING_SET: TrainingSet = "synthetic"  # the one that needs classifier.gan_run
# How Table 1 names the classifier trained on each training set.
METHOD_NAMES: dict[str, str] = {
    "original": "VGG-GAP",
    "augment5x": "VGG-GAP + Augment-5x",
    "augment10x": "VGG-GAP + Augment-10x",
    "synthetic": "MelaNet",
}
# What each training set holds, as the Train page offers it.
TRAINING_SET_DESCRIPTIONS: dict[str, str] = {
    "original": "originals only (VGG-GAP)",
    "augment5x": "originals + offline augmentation to 5x (Augment-5x)",
    "augment10x": "originals + offline augmentation to 10x (Augment-10x)",
    "synthetic": "originals + CycleGAN synthetic malignant lesions (MelaNet)",
}

GradCamMethod = Literal["gradcam", "gradcam++", "scorecam"]
GRADCAM_METHODS: tuple[GradCamMethod, ...] = typing.get_args(GradCamMethod)

Backbone = Literal["vgg16", "vgg16-narrow", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
BACKBONES: tuple[Backbone, ...] = typing.get_args(Backbone)
BACKBONE_DISPLAY: dict[str, str] = {"vgg16": "VGG16", "vgg16-narrow": "VGG16 (narrow)",
                                    "efficientnet-lite0": "EfficientNet-Lite0", "efficientnet-lite1": "EfficientNet-Lite1",
                                    "efficientnet-lite2": "EfficientNet-Lite2"}


def baseline_name(backbone: str) -> str:
    """What Table 1 calls the GAP classifier trained on originals: ``VGG-GAP`` only where VGG16 ran,
    otherwise e.g. ``GAP baseline (EfficientNet-Lite0)``."""
    if backbone.startswith("vgg16") or backbone not in BACKBONE_DISPLAY:
        return "VGG-GAP"
    return f"GAP baseline ({BACKBONE_DISPLAY[backbone]})"


def method_name(training_set: str, backbone: str = "vgg16") -> str:
    """Table 1's name of a classifier trained on ``training_set`` with ``backbone``."""
    base = baseline_name(backbone)
    names = {"original": base, "augment5x": f"{base} + Augment-5x", "augment10x": f"{base} + Augment-10x",
             "synthetic": "MelaNet"}
    return names.get(training_set, training_set)

Optimizer = Literal["adadelta", "adam"]
OPTIMIZERS: tuple[Optimizer, ...] = typing.get_args(Optimizer)

Distribute = Literal["none", "mirrored", "multi_worker"]
DISTRIBUTE_CHOICES: tuple[Distribute, ...] = typing.get_args(Distribute)

# evaluation.calibration: a monotone map fitted on the validation predictions (melanet.evaluation.calibration)
Calibration = Literal["none", "temperature", "platt"]
CALIBRATIONS: tuple[Calibration, ...] = typing.get_args(Calibration)

# classifier.class_weight: 'balanced' (the paper's intent) | 'none' (what the authors' Keras 2 code ran)
ClassWeight = Literal["balanced", "none"]
CLASS_WEIGHTS: tuple[ClassWeight, ...] = typing.get_args(ClassWeight)

# classifier.focal_alpha_mode: 'paper' (alpha for malignant, 1 - alpha for benign, equation (6)) |
# 'authors' (their one-hot two-column loss: alpha cancels, an unweighted focal loss halved)
FocalAlphaMode = Literal["paper", "authors"]
FOCAL_ALPHA_MODES: tuple[FocalAlphaMode, ...] = typing.get_args(FocalAlphaMode)

# Outcomes of a thresholded prediction, in the order the explain index lists them: mistakes first.
Outcome = Literal["FN", "FP", "TP", "TN"]
OUTCOMES: tuple[Outcome, ...] = typing.get_args(Outcome)

# -- exit codes of the CLI ------------------------------------------------------------------------
USER_ERROR_EXIT_CODE = 2  # bad input, bad config, refused folder: one line on stderr
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT (Ctrl-C)
STOPPED_EXIT_CODE = 143  # 128 + SIGTERM: stopped on request (the dashboard's Stop), resumable

StageKind = Literal["training", "step"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One verb that works on a run folder.

    ``name`` is what ``status.json`` calls it (``stage``) and ``verb`` its CLI verb (the same for
    every stage today). ``folder_stage`` is the stage whose folder it may work on.
    ``resume_overridable``: the ``--set`` keys a ``--resume`` may change (e.g. train longer).
    ``finished_file``: a file whose presence means the stage's output is complete.
    """

    name: str
    verb: str
    kind: StageKind
    summary: str
    inputs: tuple[str, ...]
    folder_stage: str
    configurable: bool = False  # takes --config / --set
    resumable: bool = False  # takes --resume RUN (continue from the last checkpoint)
    resume_overridable: tuple[str, ...] = ()
    launchable: bool = True  # the dashboard may start it through melanet.runs.jobs
    status_key: str | None = None  # a step's own entry in the run's status.json
    finished_file: str | None = None
    continues_own_folder: bool = False  # a fresh start on its own folder continues it (reproduce)

    @property
    def is_step(self) -> bool:
        return self.kind == "step"


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("train-gan", "train-gan", "training", "stage 1: CycleGAN benign <-> malignant",
              inputs=("data.root training split",), folder_stage="train-gan",
              configurable=True, resumable=True, resume_overridable=("gan.epochs",),
              finished_file=layout.GENERATOR_FILES[0]),
        Stage("synthesize", "synthesize", "step", "stage 1: synthetic malignant lesions from benign ones",
              inputs=("a finished train-gan run",), folder_stage="train-gan",
              finished_file=layout.SYNTHETIC_MANIFEST_FILE),
        Stage("audit-synthesis", "audit-synthesis", "step",
              "synthesis audit: KID, nearest real images, per-image realism",
              inputs=("a train-gan run with synthetic images", "optionally a finished train-classifier run"),
              folder_stage="train-gan", launchable=False, status_key="audit", finished_file=layout.AUDIT_FILE),
        Stage("train-classifier", "train-classifier", "training", "stage 2: VGG-GAP with focal loss",
              inputs=("data.root training split", "classifier.gan_run for the synthetic set"),
              folder_stage="train-classifier", configurable=True, resumable=True,
              finished_file=layout.MODEL_FILE),
        Stage("compact", "compact", "step", "keep only the trained layers of a finished classifier",
              inputs=("a finished train-classifier run",), folder_stage="train-classifier",
              launchable=False, finished_file=layout.COMPACT_MODEL_FILE),
        Stage("evaluate", "evaluate", "step", "test-set metrics",
              inputs=("a finished train-classifier run", "a data folder's test split"),
              folder_stage="train-classifier", status_key="evaluation", finished_file=layout.METRICS_FILE),
        Stage("explain", "explain", "step", "Grad-CAM maps",
              inputs=("a finished train-classifier run", "a data folder's test split"),
              folder_stage="train-classifier", status_key="explain", finished_file=layout.EXPLAIN_INDEX_FILE),
        Stage("audit-shortcuts", "audit-shortcuts", "step",
              "shortcut audit: AUC on lesion-only and background-only images, robustness to perturbations",
              inputs=("a finished train-classifier run", "a data folder's test split"),
              folder_stage="train-classifier", launchable=False, status_key="shortcuts",
              finished_file=layout.SHORTCUTS_FILE),
        Stage("similar", "similar", "step",
              "similar cases: retrieval index of the training images, AUC of the similar-cases vote",
              inputs=("a finished train-classifier run", "its data folder's training, validation and test splits"),
              folder_stage="train-classifier", launchable=False, status_key="retrieval",
              finished_file=layout.RETRIEVAL_INDEX_FILE),
        Stage("embed", "embed", "step", "UMAP embedding",
              inputs=("a finished train-classifier run", "its classifier.gan_run"),
              folder_stage="train-classifier", status_key="embedding", finished_file=layout.UMAP_CSV_FILE),
        Stage("reproduce", "reproduce", "training", "every stage of Table 1 in one results folder",
              inputs=("data.root",), folder_stage="reproduce", configurable=True, resumable=True,
              finished_file=layout.TABLE_MARKDOWN_FILE, continues_own_folder=True),
        Stage("reproduce-seeds", "reproduce", "training",
              "reproduce once per seed (seed-<S>/ folders), then mean +- SD over seeds",
              inputs=("data.root", "--seeds N"), folder_stage="reproduce-seeds", configurable=True,
              resumable=True, launchable=False, finished_file=layout.SEEDS_JSON_FILE, continues_own_folder=True),
    )
}

TRAINING_STAGES = tuple(name for name, stage in STAGES.items() if stage.kind == "training")
RESUMABLE_STAGES = tuple(name for name, stage in STAGES.items() if stage.resumable)
LAUNCHABLE_STAGES = tuple(name for name, stage in STAGES.items() if stage.launchable)
# status.json key of each step that keeps its own entry: {"evaluate": "evaluation", ...}
STEP_STATUS_KEYS = {name: stage.status_key for name, stage in STAGES.items() if stage.status_key}
# stages whose folders hold a stage-1 (CycleGAN) run / a stage-2 (classifier) run
GAN_STAGES = tuple(name for name, stage in STAGES.items() if stage.folder_stage == "train-gan")
CLASSIFIER_STAGES = tuple(name for name, stage in STAGES.items() if stage.folder_stage == "train-classifier")


def get(name: str) -> Stage:
    """The registry entry of ``name``; ``ValueError`` naming the known stages otherwise."""
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(STAGES)}") from None


def folder_stage_of(stage_name: str | None) -> str | None:
    """Which folder a ``status.json`` ``stage`` value means: ``"evaluate"`` -> ``"train-classifier"``.

    None for an unknown or missing stage.
    """
    stage = STAGES.get(str(stage_name))
    return None if stage is None else stage.folder_stage
