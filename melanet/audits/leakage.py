"""Which evaluated images a run has already seen: duplicates of its training, validation or GAN images.

Both checks use the hashes of :mod:`melanet.data.duplicates` (computed from the prepare cache):

- ``duplicates_of_training`` (every ``evaluate``): the evaluated images within
  ``data.duplicate_threshold`` of an image of the run's training part or validation split, or of its
  stage-1 run's training part; ``metrics.json`` lists them and repeats the headline metrics without them
  (``without_duplicates``);
- ``overlap`` (external validation, ``evaluate --data``): how many evaluated images share an ISIC id or
  identical preprocessed pixels with the run's training part, validation split, own test split and its
  GAN's training part: ``{"train": n, "validation": n, "test": n, "gan_train": n}``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from melanet import config as config_module
from melanet.runs import runs
from melanet.data import duplicates

logger = logging.getLogger(__name__)

SOURCES = ("train", "validation", "test", "gan_train")


@dataclasses.dataclass(frozen=True)
class Reference:
    """The images of one source: ids, (N,) labels and (N, 10) duplicate records."""

    ids: list[str]
    labels: np.ndarray
    records: np.ndarray


def run_references(config: config_module.Config, run_path: Path, *, with_test: bool,
                   progress: Any = None) -> dict[str, Reference]:
    """The run's own images per source of ``SOURCES`` (``test`` only when ``with_test``; ``gan_train``
    only when the run names a stage-1 run whose config can be read)."""
    from melanet.data import prepare, splits

    references: dict[str, Reference] = {}
    training, validation = splits.training_and_validation(config.data, config.seed, progress=progress)
    for name, image_set in (("train", training), ("validation", validation)):
        references[name] = _reference(image_set, config.data.workers)
    if with_test:
        own = dataclasses.replace(config.data, skip_bad=True)
        references["test"] = _reference(prepare.load_split(own, splits.evaluation_split(own, external=False)),
                                        config.data.workers)
    gan_path = runs.linked_gan_run(run_path, require_synthesis=False) if config.classifier.gan_run else None
    if gan_path is not None:
        try:
            gan_config = runs.Run(gan_path).config()
        except (runs.RunError, config_module.ConfigError) as error:
            logger.warning("cannot read the GAN run %s (%s); its training images are not checked", gan_path, error)
        else:
            gan_data = dataclasses.replace(gan_config.data, image_size=config.data.image_size, resize=config.data.resize,
                                           color_constancy=config.data.color_constancy)
            gan_training, _ = splits.training_and_validation(gan_data, gan_config.seed, progress=progress)
            references["gan_train"] = _reference(gan_training, config.data.workers)
    return references


def _reference(image_set: Any, workers: int) -> Reference:
    return Reference(list(image_set.ids), np.asarray(image_set.labels),
                     duplicates.records_of(image_set, workers=workers))


def duplicates_of_training(ids: list[str], records: np.ndarray, references: dict[str, Reference],
                           threshold: int) -> list[dict[str, Any]]:
    """One entry per evaluated image within ``threshold`` of a train, validation or gan_train image:
    ``{"image", "duplicate_of", "source", "distance", "identical_pixels"}`` (its closest one)."""
    found: dict[int, dict[str, Any]] = {}
    for source in ("train", "validation", "gan_train"):
        reference = references.get(source)
        if reference is None or threshold < 0:
            continue
        for index, (other, distance, exact) in duplicates.matches(records, reference.records, threshold).items():
            current = found.get(index)
            if current is None or distance < current["distance"]:
                found[index] = {"image": ids[index], "duplicate_of": reference.ids[other], "source": source,
                                "distance": int(distance), "identical_pixels": bool(exact)}
    return [found[index] for index in sorted(found)]


def overlap(ids: list[str], records: np.ndarray, references: dict[str, Reference]) -> dict[str, int]:
    """Per source of ``SOURCES``, how many evaluated images share an image id or identical
    preprocessed pixels with one of its images (0 for a source that is absent)."""
    counts = {}
    for source in SOURCES:
        reference = references.get(source)
        if reference is None or not len(ids):
            counts[source] = 0
            continue
        same_id = np.isin(np.asarray(ids, dtype=object), np.asarray(reference.ids, dtype=object))
        same_pixels = np.zeros(len(ids), dtype=bool)
        if len(reference.ids):
            digests = {bytes(row) for row in reference.records[:, -2:]}
            same_pixels = np.array([bytes(row) in digests for row in records[:, -2:]])
        counts[source] = int(np.sum(same_id | same_pixels))
    return counts


def overlap_warning(counts: dict[str, int], n_images: int) -> str | None:
    """One line when any evaluated image overlaps the run's own images, else None."""
    if not any(counts.values()):
        return None
    parts = ", ".join(f"{count} with its {source.replace('_', ' ')} images" for source, count in counts.items() if count)
    return (f"the {n_images} external images overlap the run's own images (by ISIC id or identical "
            f"pixels: {parts}); this is not an external result")


def metrics_without(labels: np.ndarray, probabilities: np.ndarray, leaked: list[dict[str, Any]], ids: list[str],
                    *, threshold: float, confidence: float, bootstrap_samples: int, seed: int) -> dict[str, Any]:
    """The headline figures at ``threshold`` on the evaluated images minus the ``leaked`` ones:
    ``{"n", "n_removed", "auc", "auc_ci": {"low", "high"}, "sensitivity", "specificity", ...}``."""
    from melanet.evaluation import metrics

    removed = {entry["image"] for entry in leaked}
    keep = np.array([image_id not in removed for image_id in ids], dtype=bool)
    kept_labels, kept_probabilities = np.asarray(labels)[keep], np.asarray(probabilities)[keep]
    figures: dict[str, Any] = {"n_removed": int(np.sum(~keep))}
    if kept_labels.size == 0 or len(set(kept_labels.tolist())) < 2:
        figures.update(n=int(kept_labels.size), auc=None, note="one class or no image is left without the duplicates")
        return figures
    figures.update(metrics.classification_metrics(kept_labels, kept_probabilities, threshold))
    low, high = metrics.bootstrap_auc_interval(kept_labels, kept_probabilities, samples=bootstrap_samples,
                                               confidence=confidence, seed=seed)
    figures["auc_ci"] = {"low": low, "high": high, "level": confidence}
    return figures


NOT_CHECKED = "not checked"


def duplicates_summary(report: dict[str, Any]) -> str:
    """One phrase for a ``metrics.json`` mapping: "not checked" (written before the check, or switched
    off), "none", or "N of n (AUC without them 0.xyz)"."""
    leaked = report.get("duplicates_of_training")
    if leaked is None:
        return NOT_CHECKED
    if not leaked:
        return "none"
    without = report.get("without_duplicates") or {}
    auc = without.get("auc")
    return f"{len(leaked)} of {report.get('n')}" + ("" if auc is None else f" (AUC without them {auc:.3f})")


def overlap_summary(report: dict[str, Any]) -> str:
    """"not checked", "none", or "train 3, test 73" for an external ``metrics.json`` mapping."""
    counts = report.get("overlap")
    if counts is None:
        return NOT_CHECKED
    parts = [f"{source.replace('_', ' ')} {count}" for source, count in counts.items() if count]
    return ", ".join(parts) if parts else "none"
