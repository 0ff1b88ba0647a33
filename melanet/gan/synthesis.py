"""Synthesis: every benign training image -> ``generator_benign_to_malignant`` -> a synthetic malignant lesion.

Writes into the stage-1 run folder::

    synthetic/images/syn_<source_id>.png            the translation, (S, S, 3) uint8 = (x + 1) * 127.5
    synthetic/reconstructions/syn_<source_id>.png   generator_malignant_to_benign of the translation
    synthetic/manifest.csv                          synthetic_id, source_id, path, reconstruction_path

With ``gan.mask_padding`` every translation and reconstruction carries its source's padding bars
exactly (``melanet.gan.masking``). With ``gan.composite: lesion`` only the lesion is taken from the
translation and the skin is the source's own (``melanet.gan.composite``); the manifest's
``composite`` column says, per image, which was done.

Per image and resumable: images whose two PNGs already exist are skipped. The benign images are the
training part of the run's own config and seed (the same split stage 1 trained on; never validation
or test). ``load_synthetic`` reads the result back as an ``ImageSet`` for stage 2.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from melanet import config as config_module
from melanet.runs import layout, lifecycle, runs
from melanet.data import errors as data_errors
from melanet.data import prepare

logger = logging.getLogger(__name__)

STAGE = "synthesize"
SYNTHETIC_FOLDER = layout.SYNTHETIC_FOLDER
MANIFEST_FILE = layout.SYNTHETIC_MANIFEST_FILE
MANIFEST_COLUMNS = ("synthetic_id", "source_id", "path", "reconstruction_path")
COMPOSITE_COLUMN = "composite"  # written by synthesize (none | lesion | whole (mask failed)); older manifests lack it
SYNTHETIC_PREFIX = layout.SYNTHETIC_PREFIX


def synthetic_id(source_id: str) -> str:
    """``syn_<source_id>``; refuses ids that could not be a file name."""
    if not source_id or any(character in source_id for character in "/\\\0") or source_id in (".", ".."):
        raise ValueError(f"image id {source_id!r} cannot name a file")
    return f"{SYNTHETIC_PREFIX}{source_id}"


def manifest_row(source_id: str, composite: str = "none") -> dict[str, str]:
    """The manifest row (paths relative to the run folder) for the synthetic image of ``source_id``."""
    identifier = synthetic_id(source_id)
    return {
        "synthetic_id": identifier,
        "source_id": source_id,
        "path": f"{layout.SYNTHETIC_IMAGES_FOLDER}/{identifier}.png",
        "reconstruction_path": f"{layout.SYNTHETIC_RECONSTRUCTIONS_FOLDER}/{identifier}.png",
        COMPOSITE_COLUMN: composite,
    }


def load_generators(run: runs.Run, config: config_module.Config):
    """(generator_benign_to_malignant, generator_malignant_to_benign) of ``run``.

    The final ``.keras`` files when training finished; else the newest checkpoint (with a warning),
    so a stopped run can still be looked at. ``RunError`` when there is neither.
    """
    import keras

    from melanet.gan import model, train

    paths = [train.generator_path(run, name) for name in train.GENERATOR_NAMES]
    if all(path.is_file() for path in paths):
        return tuple(keras.saving.load_model(path, compile=False) for path in paths)
    info = lifecycle.latest_checkpoint(run)
    if info is None:
        raise runs.RunError(f"{run.path}: no trained generators (run `melanet train-gan` first)")
    logger.warning(
        "%s: training has not finished; synthesizing with the checkpoint of epoch %s", run.path, info["epoch"]
    )
    cyclegan = model.from_config(config.gan, config.data.image_size)
    lifecycle.restore_checkpoint(cyclegan.checkpoint(), run)
    return tuple(cyclegan.network(name) for name in train.GENERATOR_NAMES)


def _write_png(path: Path, image: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    runs.atomic_write_bytes(path, buffer.getvalue())


def synthesize(
    run: runs.Run, *, batch_size: int = 16, progress: lifecycle.Progress | None = None
) -> Path:
    """Translate every benign training image of ``run``'s config; returns the manifest path.

    Holds the run's lock (``RunBusyError`` while it trains) and reports progress in ``status.json``
    under stage ``synthesize``.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    with lifecycle.stage_session(run, STAGE):
        return _synthesize_holding_lock(run, batch_size, progress)


def _synthesize_holding_lock(run: runs.Run, batch_size: int, progress) -> Path:
    from melanet.data import lesion_mask, splits
    from melanet.gan import composite, dataset

    config = run.config()
    run.update_status(message="loading training images")
    training_set, _ = splits.training_and_validation(config.data, config.seed, progress=progress)
    benign_indices = np.flatnonzero(training_set.labels == 0)
    lesion_only = config.gan.composite == composite.LESION
    # the composite of each image follows from its source alone: known before any translation (the mask test
    # only; translate_batch builds the grown, feathered weights of the images it translates)
    failed = {index for index in benign_indices
              if lesion_only and lesion_mask.mask_or_failure(training_set.images[index])[1]}
    rows = [manifest_row(training_set.ids[index], composite.NONE if not lesion_only else
                         composite.WHOLE_MASK_FAILED if index in failed else composite.LESION)
            for index in benign_indices]
    pending = [
        position for position, row in enumerate(rows)
        if not ((run.path / row["path"]).is_file() and (run.path / row["reconstruction_path"]).is_file())
    ]
    logger.info("synthesis: %d benign training images, %d already done", len(rows), len(rows) - len(pending))
    batches = [pending[start : start + batch_size] for start in range(0, len(pending), batch_size)]
    reporter = lifecycle.EpochReporter(run, 1, len(batches), progress=progress)
    reporter.start_epoch(1)
    if batches:
        to_malignant, to_benign = load_generators(run, config)
        for number, batch in enumerate(batches, start=1):
            images = training_set.images[benign_indices[batch]]
            translated, reconstructed = translate_batch(to_malignant, to_benign, images, config.gan)
            for position, translation, reconstruction in zip(
                batch, dataset.to_uint8(translated), dataset.to_uint8(reconstructed)
            ):
                _write_png(run.path / rows[position]["path"], translation)
                _write_png(run.path / rows[position]["reconstruction_path"], reconstruction)
            reporter.batch_done(1, number, message=f"synthesized {min(len(pending), number * batch_size)}/{len(pending)}")
    manifest = run.file(MANIFEST_FILE)
    runs.atomic_write_csv(manifest, rows, (*MANIFEST_COLUMNS, COMPOSITE_COLUMN))
    if failed:
        logger.warning("synthesis: the lesion mask failed on %d of %d sources; their whole translations are kept "
                       "(manifest column %r)", len(failed), len(rows), COMPOSITE_COLUMN)
    run.update_status(message=f"synthesized {len(rows)} images", synthetic_images=len(rows),
                      composite=config.gan.composite, composite_mask_failures=len(failed))
    return manifest


def translate_batch(to_malignant, to_benign, images: np.ndarray, gan_config) -> tuple[np.ndarray, np.ndarray]:
    """(translations, reconstructions), (N, S, S, 3) float32 in [-1, 1], of (N, S, S, 3) uint8 benign ``images``
    as ``gan_config`` asks: padding bars pasted back (``mask_padding``), and with ``composite: lesion`` the
    translation blended onto its source by the source's lesion weights and reconstructed from that blend."""
    from melanet.gan import composite, dataset, masking

    masks = masking.padding_masks(images) if gan_config.mask_padding else None
    inputs = dataset.to_model_range(images)
    if gan_config.composite != composite.LESION:
        translated, reconstructed = masking.translate_and_reconstruct(to_malignant, to_benign, inputs, masks)
        return np.asarray(translated), np.asarray(reconstructed)
    weights = np.stack([composite.lesion_weights(image)[0] for image in images])
    translated = composite.blend(masking.paste_bars(to_malignant(inputs, training=False), inputs, masks), inputs, weights)
    reconstructed = masking.paste_bars(to_benign(translated, training=False), inputs, masks)
    return translated, composite.blend(reconstructed, inputs, weights)


def read_manifest(run_path: str | Path) -> list[dict[str, str]]:
    """Rows of ``synthetic/manifest.csv``; ``RunError`` when synthesis has not run, ``DataError`` on bad rows."""
    path = Path(run_path) / MANIFEST_FILE
    if not path.is_file():
        raise runs.RunError(f"{path}: no synthetic images (run `melanet synthesize --run {run_path}` first)")
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = [column for column in MANIFEST_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise data_errors.DataError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if not row["synthetic_id"] or not row["path"]:
            raise data_errors.DataError(f"{path}: line {line}: empty synthetic_id or path")
    return rows


def load_synthetic(
    run_path: str | Path, image_size: int, color_constancy: str = "none", *, cache_dir: str | Path | None = None,
) -> prepare.ImageSet:
    """The synthetic malignant images of a stage-1 run as an ``ImageSet``.

    ``images`` (N, image_size, image_size, 3) uint8 (resized when the run used another size; with
    ``color_constancy`` (``data.color_constancy`` of the reader) corrected as real images are),
    ``labels`` (N,) int64 all 1 (malignant), ``ids`` ``syn_<source_id>`` in manifest order.
    With ``cache_dir`` the decoded images are written there once, a block at a time, and returned as
    ``DiskImages`` (keyed by the manifest, each PNG's size and modification time, the size and the
    colour constancy); without it, or when the folder cannot be written, they are held in memory.
    """
    from melanet.data import disk_images

    run_path = Path(run_path)
    rows = read_manifest(run_path)
    labels = np.ones(len(rows), dtype=np.int64)
    ids = [row["synthetic_id"] for row in rows]
    decoded = (_decode_synthetic(run_path, index, row, image_size, color_constancy) for index, row in enumerate(rows))
    if cache_dir is not None:
        path = Path(cache_dir) / f"synthetic-{image_size}px-{_synthetic_key(run_path, rows, image_size, color_constancy)}.npy"

        def fill(writer: disk_images.NpyWriter) -> None:
            block: list[np.ndarray] = []
            for image in decoded:
                block.append(image)
                if len(block) == SYNTHETIC_CACHE_BLOCK:
                    writer.append(np.stack(block))
                    block.clear()
            if block:
                writer.append(np.stack(block))

        images = disk_images.cached(path, len(rows), image_size, fill)
        if images is not None:
            return prepare.ImageSet(images=images, labels=labels, ids=ids)
    images = np.empty((len(rows), image_size, image_size, 3), dtype=np.uint8)
    for index, image in enumerate(decoded):
        images[index] = image
    return prepare.ImageSet(images=images, labels=labels, ids=ids)


SYNTHETIC_CACHE_BLOCK = 256  # images decoded before a block is written to the cache


def _decode_synthetic(run_path: Path, index: int, row: dict[str, str], image_size: int,
                      color_constancy: str) -> np.ndarray:
    from melanet.data import preprocess

    path = run_path / row["path"]
    if not path.is_file():
        raise data_errors.DataError(f"{run_path / MANIFEST_FILE}: line {index + 2}: {path} not found")
    try:
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
    except (OSError, ValueError) as error:  # truncated or not an image: say which file, not "cannot cache"
        raise data_errors.DataError(f"{run_path / MANIFEST_FILE}: line {index + 2}: {path} is not a readable "
                                    f"image ({type(error).__name__}); rerun `melanet synthesize`") from None
    if image.shape[:2] != (image_size, image_size):
        image = preprocess.preprocess_image(path, image_size)
    return preprocess.apply_color_constancy(image, color_constancy)


def _synthetic_key(run_path: Path, rows: list[dict[str, str]], image_size: int, color_constancy: str) -> str:
    from melanet.data import preprocess

    digest = hashlib.sha256()
    digest.update(f"v{preprocess.PREPROCESSING_VERSION}-{image_size}-{color_constancy}-{run_path.resolve()}".encode())
    digest.update((run_path / MANIFEST_FILE).read_bytes())
    for row in rows:
        with contextlib.suppress(OSError):  # a missing PNG is reported when it is decoded
            stat = (run_path / row["path"]).stat()
            digest.update(f"{row['path']}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]
