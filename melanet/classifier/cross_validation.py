"""K-fold training of stage 2 (``classifier.folds`` = K > 1): cross-validated choices and a fold ensemble.

The steps of ``train_cross_validated``:
1. read the whole training part (training split + any official validation split) and assign K
   stratified, grouped folds (``melanet.data.folds``), recorded as ``folds.csv``;
2. build the training set once from the whole part (original / augment5x / augment10x / synthetic) and
   compute the frozen prefix's activations once per row and per view; every fold reads them;
3. train fold k (k = 1..K) in ``folds/fold-k/`` on the rows whose source image is not in fold k (so a held-out
   benign image's synthetic translation and augmented copies are dropped with it), for the full
   ``classifier.epochs``: no early stopping and no learning-rate plateaus on the held-out fold. After every
   epoch it writes its held-out images' probabilities (``heldout_epochs.csv``, with ``evaluation.tta``'s
   views), a snapshot of its trained weights and a checkpoint; ``done.json`` marks a finished fold, so a
   resumed run keeps finished folds and continues the interrupted one from its last epoch;
4. choose ONE epoch count for all folds: the epoch with the highest fold-averaged held-out AUC (the
   earliest of ties);
5. each fold's model at that epoch becomes a member (``folds/fold-k/model.keras``, listed in
   ``ensemble.json``: the run's model is the members' mean, ``predict.Ensemble``); the out-of-fold
   probabilities at that epoch are written as ``validation_predictions.csv``, where every later choice
   (thresholds, operating points, calibration, the similar cases' k) reads them; ``cross_validation.json``
   says so (``selection: out_of_fold``, K, and how many benign and malignant images).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from melanet.runs import layout, lifecycle, runs
from melanet.classifier import model as model_module
from melanet.classifier import fitting, losses, predict, training_sets
from melanet.config import Config, ConfigError
from melanet.data import disk_images, folds, splits
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

FOLDS_FOLDER = layout.FOLDS_FOLDER
HELDOUT_FILE = layout.FOLD_HELDOUT_FILE
SNAPSHOTS_FOLDER = layout.FOLD_SNAPSHOTS_FOLDER
DONE_FILE = layout.FOLD_DONE_FILE
TRAINING_IMAGES_FILE = layout.FOLD_TRAINING_IMAGES_FILE
CROSS_VALIDATION_FILE = layout.CROSS_VALIDATION_FILE
SELECTION = "out_of_fold"


def fold_folder(run_path: str | Path, fold: int) -> Path:
    """``<run>/folds/fold-<fold>`` (folds numbered from 1)."""
    return Path(run_path) / FOLDS_FOLDER / f"fold-{fold}"


def train_cross_validated(run: runs.Run, config: Config, *, resume: bool = False,
                          progress: Progress | None = None) -> dict[str, Any]:
    """Steps 1-5 of the module docstring in ``run`` (lock held by the caller); returns the summary of
    ``train.fit_classifier`` with ``monitor: out_of_fold_auc``."""
    settings = config.classifier
    if config.distribute != "none":
        raise ConfigError("classifier.folds > 1 trains on one device: set distribute: none")
    run.update_status(message="loading data")
    full, groups = folds.whole_training_part(config.data, progress=progress)
    run.record_skipped(full.skipped)
    assignment = folds.assign_folds(full.labels, groups, settings.folds, splits.split_seed(config.data, config.seed))
    if not resume:
        shutil.rmtree(run.path / FOLDS_FOLDER, ignore_errors=True)  # a fresh start replaces any earlier folds
    elif run.file(folds.FOLDS_FILE).is_file() and folds.read_folds(run.file(folds.FOLDS_FILE)) != dict(
            zip(full.ids, assignment.tolist())):
        raise runs.RunError(f"{run.file(folds.FOLDS_FILE)}: the data now give other folds than the interrupted run's; "
                            "start the run again without --resume")
    folds.write_folds(run.file(folds.FOLDS_FILE), full.ids, full.labels, assignment, groups)

    run.update_status(message=f"building training set '{settings.training_set}'")
    from melanet.data import prepare

    training_set = training_sets.build_training_set(
        settings.training_set, full, seed=config.seed, cache_dir=prepare.cache_directory(config.data),
        gan_run=settings.gan_run, synthetic_keep=settings.synthetic_keep,
        color_constancy=config.data.color_constancy, progress=progress)
    fold_of = dict(zip(full.ids, assignment.tolist()))
    row_folds = np.asarray([fold_of[training_sets.source_id(row_id, fold_of)] for row_id in training_set.ids])
    if list(training_set.ids[:len(full.ids)]) != list(full.ids):  # build_training_set puts the originals first
        raise RuntimeError("the training set does not start with the training part's images")

    keras.utils.set_random_seed(config.seed)
    prefix = None
    if settings.trainable_from:
        prefix, _ = model_module.split_at(fitting.build_compiled_model(config), settings.trainable_from)
    training_views = fitting.training_views(settings.augment)
    test_views = predict.TTA_VIEWS[config.evaluation.tta]
    run.update_status(message="computing the inputs of every view once")
    inputs = _inputs(prefix, training_set, len(full.ids), training_views, test_views, settings.batch_size,
                     prepare.cache_directory(config.data))

    for fold in range(1, settings.folds + 1):
        _train_fold(run, config, fold, inputs, training_set.labels, training_set.ids, row_folds, full, assignment, prefix is not None,
                    resume=resume, progress=progress)
    return _choose_and_finish(run, config, full, assignment, row_folds, training_views, test_views)


def _inputs(prefix: keras.Model | None, training_set: Any, originals_count: int,
            training_views: tuple, test_views: tuple, batch_size: int, cache_dir: Path) -> dict[str, Any]:
    """``stacked``: the training views of every row, view-major (V * R rows); ``held_out``: per test view,
    the inputs of the original images (the first ``originals_count`` rows, in ``full`` order).

    With a frozen prefix, the activations of the original images and of the added rows (augmented copies,
    synthetic images) are cached apart in ``cache_dir``, per view, so every run with the same frozen weights
    reads them: the GAP baseline's originals serve MelaNet and Augment-5x/10x, and every seed and fold.
    """
    rows = len(training_set.labels)
    parts = [training_set.subset(np.arange(originals_count)).images]
    if rows > originals_count:
        parts.append(training_set.subset(np.arange(originals_count, rows)).images)

    def inputs_of(view: tuple) -> list[Any]:
        return [fitting.view_inputs(prefix, part, batch_size, (view,), cache_dir=cache_dir if prefix is not None else None)[0]
                for part in parts]

    per_view = []
    for view in training_views:
        pieces = inputs_of(view)
        per_view.append(pieces[0] if len(pieces) == 1 else disk_images.concatenate(pieces))
    held_out = [inputs_of(view)[0] if view not in training_views else None for view in test_views]
    held_out = [per_view[training_views.index(view)] if piece is None else piece
                for view, piece in zip(test_views, held_out)]
    held_out = [piece[:originals_count] if not disk_images.is_on_disk(piece) else piece.take(np.arange(originals_count))
                for piece in held_out]
    stacked = per_view[0] if len(per_view) == 1 else disk_images.concatenate(per_view)
    return {"stacked": stacked, "views": len(training_views), "rows": rows, "held_out": held_out}


def _build(config: Config, has_prefix: bool) -> tuple[keras.Model, keras.Model]:
    """(full model, the part that trains) with the run's seed: every fold starts from the same weights."""
    settings = config.classifier
    keras.utils.set_random_seed(config.seed)
    model = fitting.build_compiled_model(config)
    if not has_prefix:
        return model, model
    _, suffix = model_module.split_at(model, settings.trainable_from)
    model_module.compile_classifier(suffix, settings.optimizer, settings.learning_rate,
                                    losses.effective_alpha(settings.focal_alpha, settings.focal_alpha_mode),
                                    settings.focal_gamma)
    suffix.optimizer.build(suffix.trainable_variables)
    return model, suffix


def _train_fold(run: runs.Run, config: Config, fold: int, inputs: dict[str, Any], row_labels: np.ndarray,
                row_ids: list[str], row_folds: np.ndarray, full: Any, assignment: np.ndarray, has_prefix: bool, *, resume: bool,
                progress: Progress | None) -> None:
    """Step 3 for one fold; returns at once when the fold has ``done.json``."""
    settings = config.classifier
    folder = fold_folder(run.path, fold)
    fold_run = runs.Run(folder)
    if resume and fold_run.file(DONE_FILE).is_file():
        logger.info("fold %d of %d: finished earlier, kept", fold, settings.folds)
        return
    folder.mkdir(parents=True, exist_ok=True)
    model, trained = _build(config, has_prefix)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=trained.optimizer)
    first_epoch = lifecycle.restore_checkpoint(checkpoint, fold_run) if resume else 0
    if first_epoch:
        logger.info("fold %d of %d: resuming after epoch %d", fold, settings.folds, first_epoch)
    else:
        shutil.rmtree(fold_run.checkpoint_dir, ignore_errors=True)
    fold_run.truncate_history(first_epoch)
    _truncate_heldout(folder, first_epoch)

    train_rows = np.flatnonzero(row_folds != fold)  # rows whose source image is held out go with it
    held = np.flatnonzero(assignment == fold)
    runs.atomic_write_text(fold_run.file(TRAINING_IMAGES_FILE), "".join(f"{row_ids[row]}\n" for row in train_rows))
    weights = np.ones(inputs["rows"], dtype=np.float32)
    if settings.class_weight == "balanced":
        weights[train_rows] = fitting.balanced_sample_weights(row_labels[train_rows])
    length, steps = fitting.epoch_length(len(train_rows), settings)
    orders = fitting.augmented_orders(train_rows, inputs["views"], inputs["rows"], [config.seed, fold], first_epoch,
                                    settings.epochs, length)
    tiled_labels = np.tile(row_labels, inputs["views"])
    dataset = fitting.make_dataset(inputs["stacked"], tiled_labels, settings.batch_size,
                                 sample_weights=np.tile(weights, inputs["views"]), orders=orders)
    held_inputs = [view.take(held) if disk_images.is_on_disk(view) else view[held] for view in inputs["held_out"]]
    reporter = lifecycle.EpochReporter(fold_run, settings.epochs, steps, first_epoch=first_epoch + 1)
    callback = FoldCallback(run, fold_run, fold, settings.folds, trained, checkpoint, reporter, held_inputs,
                            [full.ids[index] for index in held], full.labels[held], settings.batch_size, progress)
    logger.info("fold %d of %d: %d training rows (%d held-out images, %d rows dropped with them)", fold,
                settings.folds, len(train_rows), len(held), int(np.sum(row_folds == fold)))
    if first_epoch < settings.epochs:
        trained.fit(dataset, epochs=settings.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                    callbacks=[callback], shuffle=False, verbose=0)
    runs.atomic_write_json(fold_run.file(DONE_FILE), {"fold": fold, "epochs": settings.epochs,
                                                      "training_rows": int(len(train_rows)),
                                                      "held_out_images": int(len(held)),
                                                      "finished_at": runs.now_iso()})


class FoldCallback(keras.callbacks.Callback):
    """After every epoch of one fold: held-out probabilities, a weight snapshot, history, checkpoint."""

    def __init__(self, run: runs.Run, fold_run: runs.Run, fold: int, folds_total: int, trained: keras.Model,
                 checkpoint: tf.train.Checkpoint, reporter: lifecycle.EpochReporter, held_inputs: list[Any],
                 held_ids: list[str], held_labels: np.ndarray, batch_size: int, progress: Progress | None):
        super().__init__()
        self.run, self.fold_run, self.fold, self.folds_total = run, fold_run, fold, folds_total
        self.trained, self.checkpoint, self.reporter = trained, checkpoint, reporter
        self.held_inputs, self.held_ids, self.held_labels = held_inputs, held_ids, held_labels
        self.batch_size, self.progress = batch_size, progress
        self.epoch_number = 1

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_number = epoch + 1
        self.reporter.start_epoch(self.epoch_number)
        self.run.update_status(message=f"fold {self.fold}/{self.folds_total}, epoch {self.epoch_number}",
                               fold=self.fold, folds=self.folds_total)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.reporter.batch_done(self.epoch_number, batch + 1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        number = epoch + 1
        probabilities = held_out_probabilities(self.trained, self.held_inputs, self.batch_size)
        _append_heldout(self.fold_run.path, number, self.held_ids, self.held_labels, probabilities)
        snapshots = self.fold_run.path / SNAPSHOTS_FOLDER
        snapshots.mkdir(exist_ok=True)
        weights = self.trained.get_weights()
        runs.atomic_write_with(snapshots / f"epoch-{number:04d}.npz",
                               lambda stream: np.savez(stream, *weights))
        auc = _auc(self.held_labels, probabilities)
        values = {"loss": float((logs or {}).get("loss", float("nan"))), "heldout_auc": auc}
        self.reporter.end_epoch(number, values)
        lifecycle.save_checkpoint(self.checkpoint, self.fold_run, number)


def held_out_probabilities(trained: keras.Model, view_inputs: list[Any], batch_size: int) -> np.ndarray:
    """(n,) float64: the mean over the test-time views of ``trained``'s malignant probability of each held-out
    image; ``view_inputs`` one (n, ...) input per view. Views held in memory go through in one call."""
    if not any(disk_images.is_on_disk(inputs) for inputs in view_inputs):
        stacked = np.concatenate([np.asarray(inputs) for inputs in view_inputs])
        if stacked.dtype == np.uint8:
            stacked = stacked.astype(np.float32) / 255.0
        columns = np.asarray(trained.predict(stacked, batch_size=batch_size, verbose=0)[:, 1], dtype=np.float64)
        return columns.reshape(len(view_inputs), -1).mean(axis=0)
    return np.mean([np.asarray(trained.predict(_batches(inputs, batch_size), verbose=0)[:, 1], dtype=np.float64)
                    for inputs in view_inputs], axis=0)


def _batches(inputs: Any, batch_size: int) -> tf.data.Dataset:
    if disk_images.is_on_disk(inputs):
        return disk_images.batches(inputs, tf.data.Dataset.range(len(inputs)).batch(batch_size))
    if inputs.dtype == np.uint8:
        return predict.scaled_batches(inputs, batch_size)
    return tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)


def _auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(roc_auc_score(labels, probabilities)) if len(set(np.asarray(labels).tolist())) == 2 else float("nan")


def _append_heldout(folder: Path, epoch: int, ids: list[str], labels: np.ndarray, probabilities: np.ndarray) -> None:
    """Add epoch ``epoch``'s rows to ``heldout_epochs.csv`` (rewritten atomically: a kill leaves whole epochs)."""
    rows = _read_heldout(folder)
    rows = [row for row in rows if int(row["epoch"]) < epoch]
    rows += [{"epoch": epoch, "image": image_id, "label": int(label), "prob_malignant": f"{probability:.8f}"}
             for image_id, label, probability in zip(ids, labels, probabilities)]
    runs.atomic_write_csv(folder / HELDOUT_FILE, rows, ["epoch", "image", "label", "prob_malignant"])


def _read_heldout(folder: Path) -> list[dict[str, str]]:
    import csv

    path = folder / HELDOUT_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _truncate_heldout(folder: Path, epochs_done: int) -> None:
    """Keep the held-out rows and snapshots of epochs 1..``epochs_done`` (those of the checkpoint resumed)."""
    rows = [row for row in _read_heldout(folder) if int(row["epoch"]) <= epochs_done]
    if (folder / HELDOUT_FILE).is_file():
        runs.atomic_write_csv(folder / HELDOUT_FILE, rows, ["epoch", "image", "label", "prob_malignant"])
    snapshots = folder / SNAPSHOTS_FOLDER
    if snapshots.is_dir():
        for path in snapshots.glob("epoch-*.npz"):
            if int(path.stem.split("-")[1]) > epochs_done:
                path.unlink()


def heldout_table(run_path: str | Path, folds_total: int) -> dict[int, dict[int, tuple[list[str], np.ndarray, np.ndarray]]]:
    """``{fold: {epoch: (ids, labels (n,), probabilities (n,))}}`` from every fold's ``heldout_epochs.csv``."""
    table: dict[int, dict[int, tuple[list[str], np.ndarray, np.ndarray]]] = {}
    for fold in range(1, folds_total + 1):
        by_epoch: dict[int, list[dict[str, str]]] = {}
        for row in _read_heldout(fold_folder(run_path, fold)):
            by_epoch.setdefault(int(row["epoch"]), []).append(row)
        table[fold] = {epoch: ([row["image"] for row in rows], np.asarray([int(row["label"]) for row in rows]),
                               np.asarray([float(row["prob_malignant"]) for row in rows]))
                       for epoch, rows in by_epoch.items()}
    return table


def choose_epoch(table: dict[int, dict[int, tuple[list[str], np.ndarray, np.ndarray]]]) -> tuple[int, list[float]]:
    """(the epoch with the highest fold-averaged held-out AUC, earliest of ties; that mean per epoch 1..E).

    Only epochs every fold reached count."""
    epochs = sorted(set.intersection(*(set(by_epoch) for by_epoch in table.values())))
    if not epochs:
        raise runs.RunError("no epoch was finished by every fold")
    means = [float(np.mean([_auc(by_epoch[epoch][1], by_epoch[epoch][2]) for by_epoch in table.values()]))
             for epoch in epochs]
    best = epochs[int(np.nanargmax(means))]
    return best, means


def _choose_and_finish(run: runs.Run, config: Config, full: Any, assignment: np.ndarray, row_folds: np.ndarray,
                       training_views: tuple, test_views: tuple) -> dict[str, Any]:
    """Steps 4-5: the epoch, the members, the out-of-fold predictions, ``cross_validation.json``."""
    settings = config.classifier
    table = heldout_table(run.path, settings.folds)
    epoch, means = choose_epoch(table)
    probability_of: dict[str, float] = {}
    fold_aucs = []
    for fold, by_epoch in table.items():
        ids, labels, probabilities = by_epoch[epoch]
        fold_aucs.append(_auc(labels, probabilities))
        for image_id, probability in zip(ids, probabilities):
            if image_id in probability_of:
                raise runs.RunError(f"{image_id} is held out by two folds")
            probability_of[image_id] = float(probability)
        model, trained = _build(config, bool(settings.trainable_from))
        snapshot = fold_folder(run.path, fold) / SNAPSHOTS_FOLDER / f"epoch-{epoch:04d}.npz"
        with np.load(snapshot) as stored:
            trained.set_weights([stored[f"arr_{index}"] for index in range(len(stored.files))])
        fitting.save_model_atomically(model, fold_folder(run.path, fold) / predict.MODEL_FILE)
        shutil.rmtree(snapshot.parent, ignore_errors=True)
        shutil.rmtree(runs.Run(fold_folder(run.path, fold)).checkpoint_dir, ignore_errors=True)
    runs.atomic_write_csv(
        run.file(layout.VALIDATION_PREDICTIONS_FILE),
        [{"image": image_id, "label": int(label), "prob_malignant": f"{probability_of[image_id]:.6f}"}
         for image_id, label in zip(full.ids, full.labels)],
        ["image", "label", "prob_malignant"])
    counts = np.bincount(np.asarray(full.labels, dtype=np.int64), minlength=2)
    summary = {
        "selection": SELECTION, "folds": settings.folds, "epoch": epoch,
        "n_benign": int(counts[0]), "n_malignant": int(counts[1]),
        "fold_auc_at_epoch": fold_aucs, "mean_fold_auc_by_epoch": means,
        "held_out_per_fold": [int(np.sum(assignment == fold)) for fold in range(1, settings.folds + 1)],
        "training_rows_dropped_per_fold": [int(np.sum(row_folds == fold)) for fold in range(1, settings.folds + 1)],
        "training_views": [predict.view_name(view) for view in training_views],
        "test_time_views": [predict.view_name(view) for view in test_views],
        "steps_per_epoch": fitting.epoch_length(1, settings)[1] if settings.steps_per_epoch else "one pass",
    }
    runs.atomic_write_json(run.file(CROSS_VALIDATION_FILE), summary)
    runs.atomic_write_json(run.file(predict.ENSEMBLE_FILE), {
        "members": [f"{FOLDS_FOLDER}/fold-{fold}" for fold in range(1, settings.folds + 1)],
        "combine": "mean of the members' malignant probabilities", "epoch": epoch})
    run.truncate_history(0)
    for index, mean in enumerate(means, start=1):
        losses_at = [float(runs.Run(fold_folder(run.path, fold)).history()[index - 1].get("loss", "nan"))
                     for fold in table]
        run.append_history({"epoch": index, "loss": float(np.mean(losses_at)), "val_auc": mean})
    run.update_status(message=f"{settings.folds} folds; epoch {epoch} chosen on the fold-averaged out-of-fold AUC "
                              f"{means[epoch - 1]:.4g} ({counts[0]} benign, {counts[1]} malignant)")
    return {"monitor": "out_of_fold_auc", "best_value": means[epoch - 1], "best_epoch": epoch,
            "epochs_run": len(means), "stopped_early": False, "selection": SELECTION, "folds": settings.folds}
