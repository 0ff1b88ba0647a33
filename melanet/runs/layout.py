"""The run-folder contract: every file and folder name a run folder may hold, defined once.

Import these names instead of spelling a file name anywhere else (``tests/test_layout.py`` greps
``melanet/``, ``pages/``, ``dashboard/`` and ``app.py`` for the literals and fails when one appears
outside this module). ``docs/run-folders.md`` describes the same files for people; the same test
checks that every name here is documented there.

Two ways to use it:

- the constants (``layout.STATUS_FILE``, ``layout.SYNTHETIC_MANIFEST_FILE``, ...): names relative to
  the run folder, ``/``-separated for nested ones;
- ``RunLayout(path)``: the same files as ``Path`` properties of one folder, e.g.
  ``RunLayout(run_dir).synthetic_manifest``. ``melanet.runs.runs.Run.files`` returns one.

A new stage or step that writes a new file adds its name here (and a line to
``docs/run-folders.md``), then imports it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# -- every run ------------------------------------------------------------------------------------
CONFIG_FILE = "config.yaml"  # resolved melanet.config.Config
STATUS_FILE = "status.json"  # stage, state, progress, ... (melanet.runs.runs.Run.status)
HISTORY_FILE = "history.csv"  # one row per finished epoch
SKIPPED_FILE = "skipped.csv"  # inputs skipped with data.skip_bad
LOCK_FILE = ".lock"  # fcntl lock held while a stage works
CHECKPOINTS_FOLDER = "checkpoints"  # epoch-NNNN/ folders + latest.json
LATEST_CHECKPOINT_FILE = "latest.json"  # inside checkpoints/: names the newest complete checkpoint
CHECKPOINT_FOLDER_PREFIX = "epoch-"  # checkpoints/epoch-0007/
FIGURES_FOLDER = "figures"
JOB_FILE = "job.json"  # written by melanet.runs.jobs.launch: pid, stage, command
JOB_LOG_FILE = "job.log"  # stdout/stderr of a launched stage

# -- stage 1: train-gan, synthesize ----------------------------------------------------------------
GENERATOR_NAMES = ("generator_benign_to_malignant", "generator_malignant_to_benign")
GENERATOR_SUFFIX = ".keras"
GENERATOR_FILES = tuple(f"{name}{GENERATOR_SUFFIX}" for name in GENERATOR_NAMES)
SAMPLE_GRID_PREFIX = "samples_epoch_"  # figures/samples_epoch_NNN.png
SAMPLE_GRID_GLOB = f"{SAMPLE_GRID_PREFIX}*.png"
SYNTHETIC_FOLDER = "synthetic"
SYNTHETIC_MANIFEST_FILE = f"{SYNTHETIC_FOLDER}/manifest.csv"
SYNTHETIC_IMAGES_FOLDER = f"{SYNTHETIC_FOLDER}/images"
SYNTHETIC_RECONSTRUCTIONS_FOLDER = f"{SYNTHETIC_FOLDER}/reconstructions"
SYNTHETIC_PREFIX = "syn_"  # synthetic ids are syn_<source_id>
AUDIT_FOLDER = "audit"  # melanet audit-synthesis (melanet.audits.synthesis_stage)
AUDIT_FILE = f"{AUDIT_FOLDER}/audit.json"  # KID with intervals, memorisation summary, realism probe, per feature space
AUDIT_REALISM_FILE = f"{AUDIT_FOLDER}/realism.csv"  # per synthetic image: held-out P(real malignant), rank
AUDIT_NEAREST_FILE = f"{AUDIT_FOLDER}/nearest.csv"  # per image: nearest real malignant training image, distance
AUDIT_TRANSLATION_FILE = f"{AUDIT_FOLDER}/translation.csv"  # per judge and synthetic image: P(malignant) of it and its source

# -- stage 2: train-classifier, compact, evaluate, explain, embed ----------------------------------
MODEL_FILE = "model.keras"  # the selected model, a flat functional Keras model
COMPACT_MODEL_FILE = "model.trained.npz"  # melanet.classifier.compact's form of the same model
CROSS_VALIDATION_FILE = "cross_validation.json"  # classifier.folds > 1: folds, the chosen epoch, n per class
ENSEMBLE_FILE = "ensemble.json"  # a cross-validated run: its fold models (folds/fold-N/), averaged
MODEL_FILES = (MODEL_FILE, COMPACT_MODEL_FILE, ENSEMBLE_FILE)  # in the order a reader should try them
VALIDATION_PREDICTIONS_FILE = "validation_predictions.csv"
FOLDS_FILE = "folds.csv"  # classifier.folds > 1: image, label, fold, group (melanet.data.folds)
FOLDS_FOLDER = "folds"  # folds/fold-1/ ... folds/fold-K/: each a small run folder of its own
FOLD_HELDOUT_FILE = "heldout_epochs.csv"  # in a fold: epoch, image, label, prob_malignant of its held-out images
FOLD_SNAPSHOTS_FOLDER = "epochs"  # in a fold: epoch-NNNN.npz, its trained weights after each epoch (removed once chosen)
FOLD_DONE_FILE = "done.json"  # in a fold: written when the fold has trained every epoch
FOLD_TRAINING_IMAGES_FILE = "training_images.txt"  # in a fold: the training-set rows it trained on, one id a line
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
ISIC_PREDICTIONS_FILE = "predictions_isic.csv"
EVALUATION_SKIPPED_FILE = "evaluation_skipped.csv"
EXPLAIN_FOLDER = "explain"  # explain/ or explain/<data folder name>/
EXPLAIN_INDEX_NAME = "index.csv"  # inside an explain folder
EXPLAIN_INDEX_FILE = f"{EXPLAIN_FOLDER}/{EXPLAIN_INDEX_NAME}"
EXPLAIN_MAPS_FOLDER = "maps"  # inside an explain folder
EXPLAIN_OVERLAYS_FOLDER = "overlays"
EXPLAIN_INPUTS_FOLDER = "inputs"
LESION_FOCUS_NAME = "lesion_focus.json"  # inside an explain folder: Grad-CAM mass on the lesion
LESION_FOCUS_FILE = f"{EXPLAIN_FOLDER}/{LESION_FOCUS_NAME}"
SHORTCUTS_FOLDER = "shortcuts"  # melanet audit-shortcuts (melanet.audits.shortcut_stage)
SHORTCUTS_NAME = "shortcuts.json"  # also inside external/<name>/ for --data DIR
SHORTCUTS_FILE = f"{SHORTCUTS_FOLDER}/{SHORTCUTS_NAME}"  # AUC on full / lesion-only / background-only, perturbations
EMBEDDING_FOLDER = "embedding"
UMAP_CSV_FILE = f"{EMBEDDING_FOLDER}/umap.csv"
UMAP_FIGURE_FILE = f"{EMBEDDING_FOLDER}/umap.png"
SEPARABILITY_FILE = f"{EMBEDDING_FOLDER}/separability.json"
RETRIEVAL_FOLDER = "retrieval"  # melanet similar --build (melanet.explain.retrieval_stage): similar cases
RETRIEVAL_INDEX_FILE = f"{RETRIEVAL_FOLDER}/index.npz"  # training images only: L2-normalised float16 GAP features
RETRIEVAL_VOTES_FILE = f"{RETRIEVAL_FOLDER}/votes.csv"  # validation and test images: share malignant of k nearest
RETRIEVAL_SUMMARY_FILE = f"{RETRIEVAL_FOLDER}/retrieval.json"  # what the index holds, the vote's AUC
SUBGROUPS_FILE = "subgroups.json"  # melanet evaluate where the data has metadata (also in external/<name>/)
# external validation: `melanet evaluate --data DIR` on another data folder writes metrics.json, predictions.csv,
# predictions_isic.csv (and, launched from the dashboard, job.json/job.log) to external/<data set name>/
EXTERNAL_FOLDER = "external"
MODEL_CARD_FILE = "model_card.md"  # generated by melanet.reports.model_card from the run's own files

# -- melanet reproduce results folder ---------------------------------------------------------------
REPRODUCE_GAN_FOLDER = "gan"  # the stage-1 run of a results folder
# the classifier folders, one per training set: melanet.common.training_sets (folder, legacy_folders)
TABLE_MARKDOWN_FILE = "table.md"
TABLE_CSV_FILE = "table.csv"
COMPARISON_FILE = "comparison.json"  # paired DeLong / Holm / McNemar (melanet.evaluation.paired); also --out DIR
COMPARISON_MARKDOWN_FILE = "comparison.md"

# -- melanet reproduce --seeds N results folder: seed-<S>/ reproduce folders + the summary ---------
SEED_FOLDER_PREFIX = "seed-"  # seed-42/, seed-43/, ...: each a complete reproduce results folder
SEEDS_MARKDOWN_FILE = "seeds.md"
SEEDS_CSV_FILE = "seeds.csv"
SEEDS_JSON_FILE = "seeds.json"

# Folders inside a run that are never run folders themselves (the dashboard's discovery skips them).
INNER_FOLDERS = (CHECKPOINTS_FOLDER, FIGURES_FOLDER, SYNTHETIC_FOLDER, EXPLAIN_FOLDER, EMBEDDING_FOLDER, AUDIT_FOLDER,
                 SHORTCUTS_FOLDER, RETRIEVAL_FOLDER)
INNER_FOLDERS += (EXTERNAL_FOLDER,)  # external/<name>/ holds one evaluation's files, never a run

# Every name above that a run folder may hold, for the documentation check and the literal grep.
DOCUMENTED_NAMES = (
    CONFIG_FILE, STATUS_FILE, HISTORY_FILE, SKIPPED_FILE, CHECKPOINTS_FOLDER, LATEST_CHECKPOINT_FILE,
    FIGURES_FOLDER, JOB_FILE, JOB_LOG_FILE, *GENERATOR_FILES, SYNTHETIC_MANIFEST_FILE,
    SYNTHETIC_IMAGES_FOLDER, SYNTHETIC_RECONSTRUCTIONS_FOLDER, AUDIT_FILE, AUDIT_REALISM_FILE, AUDIT_NEAREST_FILE,
    AUDIT_TRANSLATION_FILE,
    MODEL_FILE, COMPACT_MODEL_FILE,
    VALIDATION_PREDICTIONS_FILE, METRICS_FILE, PREDICTIONS_FILE, ISIC_PREDICTIONS_FILE,
    EVALUATION_SKIPPED_FILE, EXPLAIN_INDEX_FILE, LESION_FOCUS_FILE, SHORTCUTS_FILE, UMAP_CSV_FILE, UMAP_FIGURE_FILE, SEPARABILITY_FILE,
    RETRIEVAL_INDEX_FILE, RETRIEVAL_VOTES_FILE, RETRIEVAL_SUMMARY_FILE, SUBGROUPS_FILE,
    TABLE_MARKDOWN_FILE, TABLE_CSV_FILE, MODEL_CARD_FILE, COMPARISON_FILE, COMPARISON_MARKDOWN_FILE,
    SEEDS_MARKDOWN_FILE, SEEDS_CSV_FILE, SEEDS_JSON_FILE, EXTERNAL_FOLDER,
)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """The files of one run folder as paths. Pure path arithmetic: reads nothing from disk."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # every run
    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def status(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def history(self) -> Path:
        return self.path / HISTORY_FILE

    @property
    def skipped(self) -> Path:
        return self.path / SKIPPED_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_FOLDER

    @property
    def latest_checkpoint(self) -> Path:
        return self.path / CHECKPOINTS_FOLDER / LATEST_CHECKPOINT_FILE

    @property
    def figures(self) -> Path:
        return self.path / FIGURES_FOLDER

    @property
    def job(self) -> Path:
        return self.path / JOB_FILE

    @property
    def job_log(self) -> Path:
        return self.path / JOB_LOG_FILE

    # stage 1
    def generator(self, name: str) -> Path:
        """The final generator ``name`` (one of ``GENERATOR_NAMES``)."""
        if name not in GENERATOR_NAMES:
            raise ValueError(f"unknown generator {name!r}; expected one of {', '.join(GENERATOR_NAMES)}")
        return self.path / f"{name}{GENERATOR_SUFFIX}"

    def sample_grid(self, epoch: int) -> Path:
        """``figures/samples_epoch_NNN.png`` of 1-based ``epoch``."""
        return self.figures / f"{SAMPLE_GRID_PREFIX}{epoch:03d}.png"

    @property
    def synthetic(self) -> Path:
        return self.path / SYNTHETIC_FOLDER

    @property
    def synthetic_manifest(self) -> Path:
        return self.path / SYNTHETIC_MANIFEST_FILE

    @property
    def audit(self) -> Path:
        return self.path / AUDIT_FILE

    @property
    def audit_realism(self) -> Path:
        return self.path / AUDIT_REALISM_FILE

    @property
    def audit_nearest(self) -> Path:
        return self.path / AUDIT_NEAREST_FILE

    @property
    def audit_translation(self) -> Path:
        return self.path / AUDIT_TRANSLATION_FILE

    # stage 2
    @property
    def model(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def compact_model(self) -> Path:
        return self.path / COMPACT_MODEL_FILE

    @property
    def validation_predictions(self) -> Path:
        return self.path / VALIDATION_PREDICTIONS_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def predictions(self) -> Path:
        return self.path / PREDICTIONS_FILE

    @property
    def isic_predictions(self) -> Path:
        return self.path / ISIC_PREDICTIONS_FILE

    @property
    def evaluation_skipped(self) -> Path:
        return self.path / EVALUATION_SKIPPED_FILE

    def explain_folder(self, data_name: str | None = None) -> Path:
        """``explain/`` for the run's own test split, ``explain/<data_name>/`` for ``--data DIR``."""
        folder = self.path / EXPLAIN_FOLDER
        return folder if not data_name else folder / data_name

    def explain_index(self, data_name: str | None = None) -> Path:
        return self.explain_folder(data_name) / EXPLAIN_INDEX_NAME

    @property
    def shortcuts(self) -> Path:
        return self.path / SHORTCUTS_FILE

    @property
    def embedding(self) -> Path:
        return self.path / EMBEDDING_FOLDER

    @property
    def umap_csv(self) -> Path:
        return self.path / UMAP_CSV_FILE

    @property
    def umap_figure(self) -> Path:
        return self.path / UMAP_FIGURE_FILE

    @property
    def separability(self) -> Path:
        return self.path / SEPARABILITY_FILE

    @property
    def retrieval_index(self) -> Path:
        return self.path / RETRIEVAL_INDEX_FILE

    @property
    def retrieval_votes(self) -> Path:
        return self.path / RETRIEVAL_VOTES_FILE

    @property
    def retrieval_summary(self) -> Path:
        return self.path / RETRIEVAL_SUMMARY_FILE

    @property
    def subgroups(self) -> Path:
        return self.path / SUBGROUPS_FILE

    # reproduce
    @property
    def table_markdown(self) -> Path:
        return self.path / TABLE_MARKDOWN_FILE

    @property
    def table_csv(self) -> Path:
        return self.path / TABLE_CSV_FILE
