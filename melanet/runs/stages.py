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

The choices the config validates against (training sets, Grad-CAM methods, ...) live below the
config, in ``melanet.common``. This module imports nothing from the rest of ``melanet`` except
``layout``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from melanet.runs import layout

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
