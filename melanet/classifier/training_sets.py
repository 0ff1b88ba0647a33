"""The four training sets of Table 1, built from the training part of the training split.

- ``original``: the training images as they are (VGG-GAP).
- ``augment5x`` / ``augment10x``: the originals plus 5 / 10 offline-augmented copies of each
  (the paper's 900 -> 5400 / 9900 images); made once and cached on disk, keyed by the images, the seed
  and the multiplier.
- ``synthetic``: the originals plus the synthesized malignant lesions of a stage-1 run (MelaNet);
  ``classifier.synthetic_keep: top_fraction=F`` keeps only the share F of them that the synthesis
  audit (``melanet audit-synthesis``, ``audit/realism.csv``) scored most realistic.

Memory does not grow with the data set: with a cache folder the augmented copies are written to it a
block at a time and the synthetic PNGs are decoded into it once, and the set joins them to the originals
lazily (``disk_images.ConcatRows``), so training reads each batch from disk. Without a cache folder
(or when it cannot be written) everything is held in memory as before.

The validation split is never touched here: it stays the untouched images carved from training.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from melanet import config as config_module
from melanet.common import training_sets as registry
from melanet.runs import layout
from melanet.classifier import augment
from melanet.config import ConfigError
from melanet.data import disk_images
from melanet.data.prepare import ImageSet
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

SYNTHETIC_PREFIX = layout.SYNTHETIC_PREFIX


def build_training_set(
    kind: str,
    originals: ImageSet,
    *,
    seed: int,
    cache_dir: Path | None = None,
    gan_run: str = "",
    synthetic_keep: str = config_module.SYNTHETIC_KEEP_ALL,
    color_constancy: str = "none",
    progress: Progress | None = None,
    match_resolution: bool = False,
) -> ImageSet:
    """The ``kind`` training set (a key of ``melanet.common.training_sets``; ``original`` reads as ``baseline``).

    Args:
        originals: the training part of the training split (images (N, S, S, 3) uint8).
        seed: augmentation seed.
        cache_dir: where augmented sets are cached (None: no cache).
        gan_run: stage-1 run folder for ``synthetic``.
        synthetic_keep: ``classifier.synthetic_keep`` (``all`` or ``top_fraction=F``).
        color_constancy: ``data.color_constancy``, applied to the synthetic images as to the real ones.
        match_resolution: ``classifier.match_resolution``: with a stage-1 run at a lower size, the real images of
            a ``synthetic`` set go down to its size and back up (``melanet.gan.resolution``), as its images do.
    """
    try:
        entry = registry.get(kind)
    except ValueError as error:
        raise ConfigError(f"classifier.training_set: {error}") from None
    if entry.augment_copies:
        copies = augmented_copies(originals, entry.augment_copies, seed, cache_dir, progress)
        return concatenate(originals, copies)
    if entry.synthetic:
        synthetic = synthetic_images(originals, gan_run, keep=synthetic_keep, color_constancy=color_constancy,
                                     cache_dir=cache_dir, match_resolution=match_resolution)
        gan_size = _gan_size(gan_run)
        if match_resolution and gan_size is not None and gan_size < originals.images.shape[1]:
            from melanet.gan import resolution

            logger.info("classifier.match_resolution: real training images down to %d px and back up", gan_size)
            originals = ImageSet(images=resolution.down_and_up(originals.images, gan_size), labels=originals.labels,
                                 ids=originals.ids)
        return concatenate(originals, synthetic)
    return originals


def source_id(row_id: str, originals: Any) -> str:
    """The original image a training-set row comes from: itself, ``<id>_aug<k>`` -> ``<id>``,
    ``syn_<id>`` -> ``<id>``. ``originals``: the original ids (a set or mapping); ValueError for a row
    whose source is not among them."""
    if row_id in originals:
        return row_id
    candidates = []
    if row_id.startswith(SYNTHETIC_PREFIX):
        candidates.append(row_id[len(SYNTHETIC_PREFIX):])
    stem, marker, copy = row_id.rpartition("_aug")
    if marker and copy.isdigit():
        candidates.append(stem)
    for candidate in candidates:
        if candidate in originals:
            return candidate
    raise ValueError(f"training-set row {row_id!r} comes from no image of the training part")


def concatenate(first: ImageSet, second: ImageSet) -> ImageSet:
    """``first`` then ``second``; lazily joined (nothing read) when either's images are on disk."""
    return ImageSet(
        images=disk_images.concatenate([first.images, second.images]),
        labels=np.concatenate([first.labels, second.labels]).astype(np.int64),
        ids=list(first.ids) + list(second.ids),
    )


def _augmentation_key(originals: ImageSet, copies: int, seed: int) -> str:
    digest = hashlib.sha256()
    digest.update(f"v{augment.AUGMENTATION_VERSION}-copies{copies}-seed{seed}-{originals.images.shape}".encode())
    _hash_rows(digest, originals.images)
    digest.update(np.asarray(originals.labels, dtype=np.int64).tobytes())
    digest.update("\n".join(originals.ids).encode())
    return digest.hexdigest()[:24]


def _hash_rows(digest: Any, images: Any) -> None:
    """Feed the pixels of ``images`` to ``digest`` a block at a time (rows on disk are never all read at once)."""
    blocks = images.blocks() if disk_images.is_on_disk(images) else [images]
    for block in blocks:
        digest.update(np.ascontiguousarray(block).tobytes())


def augmented_copies(
    originals: ImageSet,
    copies: int,
    seed: int,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> ImageSet:
    """``copies`` augmented versions of every original (labels kept; ids ``<id>_aug<k>``).

    With ``cache_dir`` the copies are written there a block at a time as an ``.npy`` file (reused by
    the next run with the same images, seed and count) and returned as ``DiskImages``; without it, or
    when the folder cannot be written, they are made in memory.
    """
    size = originals.images.shape[1]
    labels = np.tile(np.asarray(originals.labels, dtype=np.int64), copies)
    ids = [f"{image_id}_aug{copy + 1}" for copy in range(copies) for image_id in originals.ids]
    if cache_dir is not None:
        path = Path(cache_dir) / f"augmented-{size}px-{copies}x-{_augmentation_key(originals, copies, seed)}.npy"
        images = disk_images.cached(path, copies * len(originals.ids), size, lambda writer: [
            writer.append(block) for _, block in augment.augmented_blocks(originals.images, copies, seed,
                                                                            progress=progress)])
        if images is not None:
            return ImageSet(images, labels, ids)
    return ImageSet(augment.augment_images(originals.images, copies, seed, progress=progress), labels, ids)


def synthetic_images(
    originals: ImageSet, gan_run: str, *, keep: str = config_module.SYNTHETIC_KEEP_ALL, color_constancy: str = "none",
    cache_dir: Path | None = None, match_resolution: bool = False,
) -> ImageSet:
    """The synthetic malignant images of stage-1 run ``gan_run`` (label 1), resized to the originals' size.

    Only images synthesized from benign images of ``originals`` are kept: one made from a validation
    image would leak that image into training. ``keep`` = ``top_fraction=F`` then keeps the most
    realistic share F of those (``most_realistic``). With ``cache_dir`` the decoded images stay on disk
    there (``synthesis.load_synthetic``).
    """
    if not gan_run:
        raise ConfigError("classifier.training_set=synthetic needs classifier.gan_run (a stage-1 run folder)")
    from melanet.gan import synthesis

    if not match_resolution:  # else build_training_set sends the real images down and up too
        check_synthesis_resolution(gan_run, originals.images.shape[1])
    synthetic = synthesis.load_synthetic(gan_run, originals.images.shape[1], color_constancy, cache_dir=cache_dir)
    allowed = {f"{SYNTHETIC_PREFIX}{image_id}" for image_id in originals.ids}
    keep_rule = keep
    keep = [index for index, image_id in enumerate(synthetic.ids) if image_id in allowed]
    if len(keep) < len(synthetic.ids):
        logger.info("synthetic: kept %d of %d images (the others come from images outside this training part)",
                    len(keep), len(synthetic.ids))
    if not keep:
        raise ConfigError(f"classifier.gan_run={gan_run}: none of its synthetic images comes from this training part")
    fraction = config_module.synthetic_keep_fraction(keep_rule)
    if fraction is not None:
        scores = read_realism_scores(gan_run, set(originals.ids))
        chosen = most_realistic([synthetic.ids[index] for index in keep], scores, fraction)
        logger.info("synthetic: kept the %d most realistic of %d (classifier.synthetic_keep=%s)",
                    len(chosen), len(keep), keep_rule)
        keep = [keep[position] for position in chosen]
    chosen_images = synthetic.images.take(keep) if disk_images.is_on_disk(synthetic.images) else synthetic.images[keep]
    return ImageSet(
        images=chosen_images,
        labels=np.ones(len(keep), dtype=np.int64),
        ids=[synthetic.ids[index] for index in keep],
    )


def _gan_size(gan_run: str | Path) -> int | None:
    """``data.image_size`` of stage-1 run ``gan_run``; None when its config cannot be read."""
    from melanet.runs import runs

    try:
        return runs.Run(Path(gan_run)).config().data.image_size
    except (runs.RunError, ConfigError, OSError):
        return None


def check_synthesis_resolution(gan_run: str | Path, classifier_size: int) -> None:
    """ConfigError when stage 1 synthesized at a lower resolution than the classifier trains at.

    Upscaled synthetic images beside sharp originals differ from them in blur alone, a shortcut the
    classifier learns instead of "malignant". A GAN at a higher resolution (downscaled here) is fine.
    A run whose config cannot be read is left to ``gan_match`` (which refuses it).
    """
    from melanet.runs import runs

    try:
        gan_size = runs.Run(Path(gan_run)).config().data.image_size
    except (runs.RunError, ConfigError, OSError):
        return
    if gan_size < classifier_size:
        raise ConfigError(
            f"classifier.gan_run={gan_run}: stage 1 synthesized {gan_size} px images but the classifier trains at "
            f"data.image_size={classifier_size}; upscaled synthetic images beside sharp originals are a shortcut "
            f"(blur means 'synthetic'). Train stage 1 at data.image_size={classifier_size}, or the classifier at {gan_size}, "
            "or set classifier.match_resolution=true (real images take the same down-and-up path)"
        )


def most_realistic(ids: list[str], scores: dict[str, float], fraction: float) -> list[int]:
    """Positions in ``ids`` of the ``round(fraction * len(ids))`` (at least 1) highest-scoring ids.

    ``scores``: realism per synthetic id (higher = more like a real malignant lesion). Ties go to
    the id that comes first in ``ids``; the positions are returned in ``ids`` order. ``ConfigError``
    naming an id without a score.
    """
    missing = [image_id for image_id in ids if image_id not in scores]
    if missing:
        raise ConfigError(
            f"classifier.synthetic_keep: the synthesis audit has no realism score for {len(missing)} synthetic "
            f"image(s), e.g. {missing[0]}; rerun `melanet audit-synthesis` on the GAN run"
        )
    count = min(len(ids), max(1, math.floor(fraction * len(ids) + 0.5)))
    order = sorted(range(len(ids)), key=lambda position: (-scores[ids[position]], position))
    return sorted(order[:count])


def read_realism_scores(gan_run: str | Path, training_ids: set[str]) -> dict[str, float]:
    """``synthetic_id -> realism`` from ``audit/realism.csv`` of ``gan_run``.

    The scores must come from training images only: ``ConfigError`` when the audit is missing or
    when its probe used a real image that is not in ``training_ids`` (e.g. a validation image of
    this classifier's split).
    """
    from melanet.runs import audit_files

    try:
        summary = audit_files.read_summary(gan_run)
        scores = audit_files.read_realism(gan_run)
    except (OSError, ValueError) as error:
        raise ConfigError(f"classifier.synthetic_keep needs the synthesis audit of {gan_run}: {error}") from None
    outside = sorted(set(summary.get("probe_real_ids", [])) - training_ids)
    if outside:
        raise ConfigError(
            f"classifier.synthetic_keep: the realism scores of {Path(gan_run) / layout.AUDIT_FILE} used "
            f"{len(outside)} real image(s) outside this classifier's training part (e.g. {outside[0]}); "
            "audit with the same data, seed and validation fraction"
        )
    return scores
