"""``melanet embed``: UMAP of a classifier run's GAP features (the paper's Figure 9).

Two panels, each its own 2-D UMAP (seed = the run's ``seed``):

- ``original``: the run's training split (training images minus the validation split), tagged
  benign / malignant;
- ``balanced``: the same originals plus the synthetic malignant images of the stage-1 run named by
  ``classifier.gan_run`` (only those made from images of this training split), tagged synthetic.
  Without a ``gan_run`` there is no second panel.

Writes ``<run>/embedding/umap.csv`` (``panel, image, tag, x, y``) and ``<run>/embedding/umap.png``;
with synthetic images also ``<run>/embedding/separability.json``: how well a cross-validated linear
read-out of the same features tells synthetic from real lesions (:mod:`melanet.audits.separability`).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from melanet.runs import layout, lifecycle, runs
from melanet.explain import embedding, features
from melanet.audits import separability

logger = logging.getLogger(__name__)

STAGE = "embed"
EMBEDDING_FOLDER = layout.EMBEDDING_FOLDER
COLUMNS = ("panel", "image", "tag", "x", "y")
PANEL_TITLES = {
    "original": "(a) original training images",
    "balanced": "(b) originals + synthetic malignant",
}

Progress = lifecycle.Progress


def tags_for(labels: np.ndarray) -> list[str]:
    """(N,) labels 0/1 -> 'benign' / 'malignant'."""
    return ["malignant" if int(label) == 1 else "benign" for label in labels]


def embed_panels(
    original_features: np.ndarray,
    original_ids: Sequence[str],
    original_labels: np.ndarray,
    synthetic_features: np.ndarray | None,
    synthetic_ids: Sequence[str] = (),
    *,
    seed: int,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    progress: Progress | None = None,
) -> list[dict[str, object]]:
    """UMAP rows of the panels.

    Args:
        original_features: (N, C) GAP features of the original images; original_labels (N,) 0/1.
        synthetic_features: (M, C) features of synthetic malignant images, or None for panel (a) only.
    Returns:
        rows with ``panel``, ``image``, ``tag``, ``x``, ``y``: N rows of panel ``original``, then
        N + M rows of panel ``balanced`` when synthetic features are given.
    """
    if len(original_features) != len(original_ids) or len(original_ids) != len(original_labels):
        raise ValueError("original features, ids and labels must have the same length")
    panels = [("original", np.asarray(original_features), list(original_ids), tags_for(original_labels))]
    if synthetic_features is not None:
        if len(synthetic_features) != len(synthetic_ids):
            raise ValueError("synthetic features and ids must have the same length")
        panels.append(
            (
                "balanced",
                np.concatenate([original_features, synthetic_features], axis=0),
                list(original_ids) + list(synthetic_ids),
                tags_for(original_labels) + ["synthetic"] * len(synthetic_ids),
            )
        )
    rows: list[dict[str, object]] = []
    for number, (panel, panel_features, ids, tags) in enumerate(panels):
        if progress is not None:
            progress(number, len(panels), f"UMAP {panel} ({len(ids)} points)")
        coordinates = embedding.umap_embedding(panel_features, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
        rows.extend(
            {"panel": panel, "image": image_id, "tag": tag, "x": float(x), "y": float(y)}
            for image_id, tag, (x, y) in zip(ids, tags, coordinates)
        )
    if progress is not None:
        progress(len(panels), len(panels), "UMAP done")
    return rows


def render_rows(rows: Sequence[dict[str, object]]):
    """The two-panel PNG (a ``PIL.Image``) of ``umap.csv`` rows."""
    panels = []
    for panel in ("original", "balanced"):
        members = [row for row in rows if row["panel"] == panel]
        if members:
            panels.append(
                {
                    "title": PANEL_TITLES[panel],
                    "coordinates": np.array([[float(row["x"]), float(row["y"])] for row in members]),
                    "tags": [str(row["tag"]) for row in members],
                }
            )
    return embedding.render_panels(panels)


def resolve_gan_run(gan_run: str, classifier_run: Path) -> Path:
    """The stage-1 run folder named by ``classifier.gan_run`` (``melanet.runs.runs.linked_gan_run``); RunError when
    it cannot be found."""
    found = runs.linked_gan_run(classifier_run)
    if found is None:
        raise runs.RunError(f"{classifier_run}: classifier.gan_run '{gan_run}' not found (no stage-1 run with "
                            f"{layout.SYNTHETIC_MANIFEST_FILE} there, beside the run or in its results folder)")
    return found


def embed_run(run_path: str | Path, *, progress: Progress | None = None) -> Path:
    """GAP features -> UMAP for a classifier run; writes ``embedding/umap.csv`` and ``umap.png`` (and
    ``separability.json`` with synthetic images), returns the CSV path. The run's ``status.json``
    keeps an ``embedding`` entry (running/done/failed)."""
    from melanet.classifier import predict as classifier_predict
    from melanet.data import splits

    run = runs.Run.open(run_path)
    lifecycle.check_folder(run, STAGE)
    config = run.config()
    if runs.model_file(run.path) is None:
        raise runs.RunError(f"{run.path}: no trained model ({' or '.join(layout.MODEL_FILES)}); "
                            "embed a finished train-classifier run")
    with lifecycle.step_session(run, STAGE) as entry:
        training_split, _ = splits.training_and_validation(config.data, config.seed, progress=progress)
        model = classifier_predict.load_model(run.path)
        original, synthetic_features, synthetic_ids = _features(run, config, model, training_split, progress)
        rows = embed_panels(
            original, training_split.ids, training_split.labels, synthetic_features, synthetic_ids,
            seed=config.seed, n_neighbors=config.explain.umap_neighbors, min_dist=config.explain.umap_min_dist,
            progress=progress,
        )
        gap = _write_separability(run, original, training_split.labels, synthetic_features, config.seed,
                                  ids=(training_split.ids, synthetic_ids))
        _write_umap(run, rows)
        entry.update(panels=sorted({str(row["panel"]) for row in rows}), points=len(rows))
        if gap and gap["synthetic_vs_real_malignant"] is not None:
            entry.update(synthetic_vs_real_malignant_auc=round(gap["synthetic_vs_real_malignant"]["auc"], 4))
    return run.files.umap_csv


def _features(run: runs.Run, config, model, training_split, progress: Progress | None):
    """(original (N, C), synthetic (M, C) or None, synthetic ids) GAP features for the two panels."""
    batch_size = config.classifier.batch_size
    original = features.extract_features(
        model, training_split.images, batch_size=batch_size, progress=progress, message="features (originals)"
    )
    if not config.classifier.gan_run:
        logger.warning("%s: classifier.gan_run is not set, so there are no synthetic images: "
                       "only panel (a), the original training images", run.path)
        return original, None, []
    synthetic = _synthetic_for(run.path, config, training_split)
    synthetic_features = features.extract_features(
        model, synthetic.images, batch_size=batch_size, progress=progress, message="features (synthetic)"
    )
    return original, synthetic_features, synthetic.ids


def _write_separability(run: runs.Run, original: np.ndarray, labels: np.ndarray,
                        synthetic_features: np.ndarray | None, seed: int,
                        ids: tuple[list[str], list[str]] | None = None) -> dict | None:
    """Write ``embedding/separability.json`` (or remove an earlier one without synthetic images).

    ``ids``: (original ids (N,), synthetic ids (M,)); folds then keep each synthetic image with its source.
    """
    path = run.files.separability
    if synthetic_features is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # from an earlier embedding with synthetic images
        return None
    group_ids = None
    if ids is not None:
        original_ids = np.asarray(ids[0], dtype=object)
        group_ids = {"benign": list(original_ids[labels == 0]), "malignant": list(original_ids[labels == 1]),
                     "synthetic": list(ids[1])}
    gap = separability.domain_gap(
        {"benign": original[labels == 0], "malignant": original[labels == 1], "synthetic": synthetic_features},
        seed=seed, ids=group_ids,
    )
    runs.atomic_write_json(path, {
        "features": "global average pooling of the classifier (the UMAP input)",
        "method": f"{separability.FOLDS}-fold cross-validated logistic regression, ROC AUC of held-out scores"
                  + ("; folds grouped: a synthetic image and its benign source always in the same fold" if ids else ""),
        "reading": "0.5 = indistinguishable, 1.0 = fully separable",
        **gap,
    })
    return gap


def _write_umap(run: runs.Run, rows: list[dict[str, object]]) -> None:
    """``embedding/umap.csv`` and the two-panel ``embedding/umap.png``."""
    runs.atomic_write_csv(run.files.umap_csv,
                          [{**row, "x": f"{row['x']:.6f}", "y": f"{row['y']:.6f}"} for row in rows], COLUMNS)
    buffer = io.BytesIO()
    render_rows(rows).save(buffer, format="PNG")
    runs.atomic_write_bytes(run.files.umap_figure, buffer.getvalue())


def _synthetic_for(classifier_run: Path, config, training):
    """The synthetic images of the stage-1 run that this classifier trained on: its own rule
    (``melanet.classifier.training_sets.synthetic_images``: only those made from its images, the share
    ``classifier.synthetic_keep`` keeps, colour-corrected as its real images are)."""
    from melanet.classifier import training_sets

    gan_run = str(resolve_gan_run(config.classifier.gan_run, classifier_run))
    return training_sets.synthetic_images(training, gan_run, keep=config.classifier.synthetic_keep,
                                          color_constancy=config.data.color_constancy)
