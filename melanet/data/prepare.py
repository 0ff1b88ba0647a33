"""Load a split as one array of preprocessed images, decoding on every core once and caching on disk.

The cache entry of a split is a pair of files in the cache folder:
``<root tag>-<split>-<S>px-<resize>-<key>.npy`` (the (N, S, S, 3) uint8 images) and ``...json`` (ids,
labels, images refused while decoding). ``key`` hashes every source file's path, size and
modification time, its label, the image size, the resize mode, the colour constancy
(``data.color_constancy``; a method other than ``none`` is also named after the resize mode in the
file name, ``pad+shades_of_gray``), the pixel limit and
``PREPROCESSING_VERSION``, so any
change to the data or the settings is a miss. Both files are written to a temp name and renamed;
the JSON is renamed last and is what makes an entry exist, so a killed process never leaves an
entry that a reader would take for complete.

Memory does not grow with the data set: decoding writes the ``.npy`` a block at a time
(``DECODE_BLOCK_BYTES``), and a loaded split's ``images`` is a
:class:`~melanet.data.disk_images.DiskImages` that reads rows from the file when indexed; training and
evaluation stream batches from it (``disk_images.batches``). Only when the cache cannot be written are
the images decoded into memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs import runs
from melanet.config import DataConfig
from melanet.data import disk_images, parallel, preprocess, sources
from melanet.data.errors import BadImageError, DataError, problem, problems_error
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

CACHE_FOLDER_NAME = ".melanet-cache"


@dataclasses.dataclass
class ImageSet:
    """Preprocessed images of one split (or part of one).

    ``images`` (N, S, S, 3) uint8 RGB in [0, 255], an ``ndarray`` or, for a split read from or written to
    the cache, a :class:`~melanet.data.disk_images.DiskImages` that reads rows on demand (index it, or
    ``np.asarray`` it to hold every image); ``labels`` (N,) int64, 0 = benign, 1 = malignant;
    ``ids`` N image ids; ``skipped`` the problem dicts (file, line, reason, split) of inputs left out
    with ``data.skip_bad``; ``cache_path`` the cache entry's image file; ``from_cache`` whether this
    load only read the cache.
    """

    images: np.ndarray | disk_images.DiskImages
    labels: np.ndarray
    ids: list[str]
    skipped: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    cache_path: Path | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def class_counts(self) -> tuple[int, int]:
        """(benign, malignant) image counts."""
        return int(np.sum(self.labels == 0)), int(np.sum(self.labels == 1))

    def subset(self, indices: Sequence[int] | np.ndarray, *, skipped: list[dict[str, Any]] | None = None) -> "ImageSet":
        indices = np.asarray(indices, dtype=np.int64)
        # a set on disk stays on disk: the subset is a lazy view of its rows
        images = self.images.take(indices) if disk_images.is_on_disk(self.images) else self.images[indices]
        return ImageSet(
            images=images, labels=self.labels[indices], ids=[self.ids[index] for index in indices],
            skipped=list(skipped or []), cache_path=self.cache_path, from_cache=self.from_cache)


def cache_directory(data_config: DataConfig) -> Path:
    """``data.cache_dir`` if set; else ``<root>/.melanet-cache`` when writable; else ``~/.cache/melanet``."""
    if data_config.cache_dir:
        return Path(data_config.cache_dir).expanduser()
    in_root = Path(data_config.root) / CACHE_FOLDER_NAME
    with contextlib.suppress(OSError):
        in_root.mkdir(exist_ok=True)
        if in_root.is_dir() and os.access(in_root, os.W_OK | os.X_OK):
            return in_root
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "melanet"


def cache_key(
    samples: Sequence[sources.Sample], split: str, image_size: int, max_pixels: int, resize: str = "pad",
    color_constancy: str = "none",
) -> str:
    """Hex digest of the source files (path, size, mtime), labels and every setting that changes the output."""
    digest = hashlib.sha256()
    header = {"version": preprocess.PREPROCESSING_VERSION, "split": split, "size": image_size,
              "max_pixels": max_pixels, "resize": resize}
    if color_constancy != "none":  # absent for "none", so the entries cached before the option stay valid
        header["color_constancy"] = color_constancy
    digest.update(json.dumps(header, sort_keys=True).encode())
    for sample in samples:
        stat = sample.path.stat()
        digest.update(f"\n{sample.image_id}\t{sample.label}\t{os.path.abspath(sample.path)}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def load_split(data_config: DataConfig, split: str, *, progress: Progress | None = None) -> ImageSet:
    """Preprocessed images of ``split`` ('train', 'test', or 'validation' where the layout has an official one)
    of ``data_config.root``, from the cache when it is current.

    Bad inputs (structural problems of the split and images refused while decoding) raise one
    ``DataError`` listing them all, unless ``data_config.skip_bad``: then they are left out and
    returned in ``ImageSet.skipped``. A class with no usable image is always an error.
    """
    root = Path(data_config.root)
    index = sources.read_index(root, malignant_classes=data_config.malignant_classes)
    if split not in index.splits:
        raise DataError(f"{root}: this {index.title} folder has no labelled {split} split "
                        f"(it has: {', '.join(index.splits)})")
    samples = index.samples(split)
    logger.info("%s: %s layout (%s), %s split: %d labelled images", root, index.layout, index.title, split, len(samples))
    problems = index.split_problems(split)
    image_set = _cached_or_decoded(data_config, split, samples, progress)
    problems += image_set.skipped
    if problems and not data_config.skip_bad:
        raise problems_error(f"{root}: the {split} split has bad inputs", problems)
    benign, malignant = image_set.class_counts()
    if benign == 0 or malignant == 0:
        raise DataError(
            f"{root}: the {split} split has {benign} usable benign and {malignant} usable malignant images; "
            "both classes are needed" + "".join(f"\n  {item['file']}: {item['reason']}" for item in problems))
    for item in problems:
        logger.warning("skipped %s%s: %s", item["file"], f":{item['line']}" if item["line"] else "", item["reason"])
    image_set.skipped = problems
    return image_set


def _cached_or_decoded(
    data_config: DataConfig, split: str, samples: list[sources.Sample], progress: Progress | None
) -> ImageSet:
    size, max_pixels, resize = data_config.image_size, data_config.max_image_pixels, data_config.resize
    color_constancy = data_config.color_constancy
    mode_tag = resize if color_constancy == "none" else f"{resize}+{color_constancy}"
    folder = cache_directory(data_config)
    root_tag = hashlib.sha256(str(Path(data_config.root).resolve()).encode()).hexdigest()[:8]
    prefix = f"{root_tag}-{split}-{size}px-{mode_tag}-"
    stem = prefix + cache_key(samples, split, size, max_pixels, resize, color_constancy)[:24]
    images_path, meta_path = folder / f"{stem}.npy", folder / f"{stem}.json"
    cached = _read_entry(images_path, meta_path, samples)
    if cached is not None:
        logger.info("%s split: %d images from cache %s", split, len(cached), images_path)
        if progress:
            progress(len(samples), len(samples), "from cache")
        return cached
    try:
        decoded = _decode_into_cache(data_config, split, samples, images_path, meta_path, progress)
        _remove_stale(folder, prefix, stem)
        logger.info("%s split: cached %d images in %s", split, len(decoded), images_path)
        return decoded
    except OSError as error:
        logger.warning("cannot write the cache in %s (%s); decoding into memory instead", folder, error)
    results = parallel.map_chunks(
        decode_chunk, [str(sample.path) for sample in samples], size, max_pixels, resize, color_constancy,
        workers=data_config.workers, progress=progress, message=f"decoding {split}")
    kept = [index for index, (array, _) in enumerate(results) if array is not None]
    images = np.stack([results[index][0] for index in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    labels = np.array([samples[index].label for index in kept], dtype=np.int64)
    ids = [samples[index].image_id for index in kept]
    refused = [problem(samples[index].path, reason, split=split)
               for index, (array, reason) in enumerate(results) if array is None]
    return ImageSet(images, labels, ids, refused, cache_path=None, from_cache=False)


DECODE_BLOCK_BYTES = 64 << 20  # decoded pixels held in memory at once while preparing (plus one image per worker)


def _decode_into_cache(data_config: DataConfig, split: str, samples: list[sources.Sample], images_path: Path,
                       meta_path: Path, progress: Progress | None) -> ImageSet:
    """Decode ``samples`` a block at a time straight into the cache entry; the images stay on disk.

    Memory holds one block of decoded images (``DECODE_BLOCK_BYTES``), whatever the number of images.
    The returned set's ``images`` is a :class:`~melanet.data.disk_images.DiskImages` of the new entry.
    """
    size = data_config.image_size
    block = max(1, DECODE_BLOCK_BYTES // (size * size * 3))
    kept: list[int] = []
    refused: list[dict[str, Any]] = []

    def write(stream) -> None:
        writer = disk_images.NpyWriter(stream, size)
        for start in range(0, len(samples), block):
            part = samples[start:start + block]
            report = None if progress is None else (
                lambda done, _total, message, offset=start: progress(offset + done, len(samples), message))
            results = parallel.map_chunks(
                decode_chunk, [str(sample.path) for sample in part], size, data_config.max_image_pixels,
                data_config.resize, data_config.color_constancy, workers=data_config.workers,
                progress=report, message=f"decoding {split}")
            for offset, (array, reason) in enumerate(results):
                if array is None:
                    refused.append(problem(part[offset].path, reason, split=split))
                else:
                    writer.append(array[np.newaxis])
                    kept.append(start + offset)
            del results
        writer.finish()

    runs.atomic_write_with(images_path, write)
    labels = np.array([samples[index].label for index in kept], dtype=np.int64)
    ids = [samples[index].image_id for index in kept]
    meta = {"version": preprocess.PREPROCESSING_VERSION, "shape": [len(ids), size, size, 3], "ids": ids,
            "labels": labels.tolist(), "refused": refused}
    runs.atomic_write_with(meta_path, lambda stream: stream.write(json.dumps(meta).encode()))
    return ImageSet(disk_images.DiskImages(images_path), labels, ids, refused, cache_path=images_path, from_cache=False)


def decode_chunk(
    paths: list[str], image_size: int, max_pixels: int, resize: str = "pad", color_constancy: str = "none"
) -> list[tuple[np.ndarray | None, str | None]]:
    """Worker: (array, None) per decodable image, (None, reason) per refused one."""
    results: list[tuple[np.ndarray | None, str | None]] = []
    for path in paths:
        try:
            results.append((preprocess.preprocess_image(path, image_size, max_pixels, resize, color_constancy), None))
        except BadImageError as error:
            results.append((None, error.reason))
    return results


def _read_entry(images_path: Path, meta_path: Path, samples: list[sources.Sample]) -> ImageSet | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        images = disk_images.DiskImages(images_path)  # read a batch at a time, never all at once
    except (OSError, ValueError) as error:
        if meta_path.exists():
            logger.warning("ignoring unreadable cache entry %s (%s)", meta_path, error)
        return None
    if images.shape[0] != len(meta["ids"]) or len(meta["ids"]) + len(meta["refused"]) != len(samples):
        logger.warning("ignoring inconsistent cache entry %s", meta_path)
        return None
    labels = np.asarray(meta["labels"], dtype=np.int64)
    return ImageSet(images, labels, list(meta["ids"]), list(meta["refused"]), cache_path=images_path, from_cache=True)


def _remove_stale(folder: Path, prefix: str, current_stem: str) -> None:
    """Older entries of the same root, split, size and resize mode can never be hit again; nor can
    entries named before the resize mode was part of the name (``<root tag>-<split>-<S>px-<key>``)."""
    legacy = re.compile(re.escape(prefix.rsplit("-", 2)[0]) + r"-[0-9a-f]{24}")
    candidates = list(folder.glob(prefix + "*")) + [
        path for path in folder.glob(prefix.rsplit("-", 2)[0] + "-*") if legacy.fullmatch(path.stem)]
    for path in candidates:
        # <stem>.npy, <stem>.json and the image hashes <stem>.dup<V>.npy (melanet.data.duplicates)
        if path.name.split(".")[0] != current_stem and path.suffix in (".npy", ".json"):
            with contextlib.suppress(OSError):
                path.unlink()
