"""Exact and near-duplicate images within and across splits, by perceptual hash.

The hash of an image is 128 bits: ``imagehash.phash`` (64 bits: signs of the low-frequency DCT
coefficients of a 32 x 32 grey version) followed by ``imagehash.dhash`` (64 bits: signs of horizontal
brightness gradients of a 9 x 8 grey version), computed from the *preprocessed* image (the
``data.image_size`` square that ``prepare`` caches), so it costs no extra decoding. The distance of two
images is the Hamming distance of their hashes (0..128). Each image is also hashed mirrored left-right,
mirrored top-bottom and turned 180 degrees; two images are compared in all four orientations, so a
**flipped copy counts as a duplicate** (a mirrored photograph of a lesion is the same lesion, and
flipping is the augmentation most often used to make "new" images). Turns by 90 degrees are not
looked for.

Why phash + dhash and why ``data.duplicate_threshold = 8``: measured on the 426 real images of the
ISIC-2016 sample (``/work/shared/isic2016-sample``, 353 training + 73 test, preprocessed with
``resize: pad``) against copies of 60 of them made from the original JPEG files:

========================================  =====================  =====================
pair                                       distance at 128 px     distance at 256 px
========================================  =====================  =====================
exact copy (same file, new name)           0                      0
JPEG re-encoded at quality 75              0 - 3                  0 - 3
resized to 1/2 or 1/4 of the side          0 - 10                 0 - 9
mirrored left-right                        0                      0
distinct images, closest pair              10                     9
========================================  =====================  =====================

(the one distinct pair at distance 0 is ``ISIC_0000512`` / ``ISIC_0000477``, an exact copy under two
ids, left out of the "distinct" row). phash alone (64 bits) put re-encoded copies at up to 6 and
distinct lesions down to 4; phash with 256 bits at up to 22 and down to 26. The 128-bit pair keeps the
widest gap. The default threshold is 8, below the closest distinct pair at either size (9 - 10, two
different benign naevi, ``ISIC_0000384`` / ``ISIC_0000439``, once one is mirrored): exact copies,
re-encoded copies and flipped copies are always found, most resized copies are found, and a copy
shrunk to a quarter of its side may be missed (up to 10). A miss costs an inflated figure, a false alarm a wrongly merged group, so the threshold
leans to no false alarm. ``melanet data check --duplicate-threshold N`` (or ``data.duplicate_threshold``)
changes it; -1 skips the check. ``docs/duplicates.md`` repeats the measurement.

"Exact" means identical pixels after preprocessing (a SHA-256 of the preprocessed image), whatever
the hash distance. A duplicate pair whose labels differ is an *error*: one of the two labels is wrong.

The hashes of a cache entry ``<stem>.npy`` are cached beside it as ``<stem>.dup<V>.npy`` ((N, 10)
uint64: 4 orientations x 2 words of hash, then 2 words of the pixel digest), so a second check reads
them instead of the images. Hashing reads the entry a block of rows at a time in the decoding
workers; memory holds one block per worker, whatever the number of images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

HASH_VERSION = 1  # part of the cache file name: a change of the hash makes every cached hash a miss
HASH_BITS = 128
ORIENTATIONS = ("as is", "mirrored left-right", "mirrored top-bottom", "turned 180 degrees")
_WORDS = len(ORIENTATIONS) * 2 + 2  # uint64 words per image: 2 per orientation, then the 128-bit pixel digest
HASH_BLOCK = 256  # rows a worker reads and hashes at once
OFF = -1  # data.duplicate_threshold that skips the check


def oriented(image: np.ndarray) -> list[np.ndarray]:
    """``image`` (S, S, 3) uint8 in each of ``ORIENTATIONS``."""
    return [image, image[:, ::-1], image[::-1, :], image[::-1, ::-1]]


def image_hash(image: np.ndarray) -> np.ndarray:
    """(2,) uint64: phash then dhash (64 bits each) of ``image`` (S, S, 3) uint8 as it is."""
    import imagehash  # imported here: only the duplicate check needs it
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    words = []
    for function in (imagehash.phash, imagehash.dhash):
        bits = function(picture).hash.reshape(-1)  # 64 bools
        words.append(np.packbits(bits).view(">u8")[0])
    return np.array(words, dtype=np.uint64)


def image_record(image: np.ndarray) -> np.ndarray:
    """(10,) uint64: the hash of each orientation of ``image`` (S, S, 3) uint8, then its pixel digest."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    digest = hashlib.sha256(image.tobytes()).digest()[:16]
    parts = [image_hash(view) for view in oriented(image)]
    parts.append(np.frombuffer(digest, dtype=np.uint64).copy())
    return np.concatenate(parts)


def records_of_array(images: Any) -> np.ndarray:
    """(N, 10) uint64 records of (N, S, S, 3) uint8 ``images`` (an array or lazy rows), a block at a time."""
    out = np.zeros((len(images), _WORDS), dtype=np.uint64)
    for start in range(0, len(images), HASH_BLOCK):
        block = np.asarray(images[start:start + HASH_BLOCK])
        for offset, image in enumerate(block):
            out[start + offset] = image_record(image)
    return out


def hash_rows_chunk(ranges: list[tuple[int, int]], path: str) -> list[np.ndarray]:
    """Worker: the records of rows ``start:stop`` of cache file ``path``, per range."""
    from melanet.data import disk_images

    images = disk_images.DiskImages(path)
    return [records_of_array(images.take(np.arange(start, stop))) for start, stop in ranges]


def records_path(images_path: Path) -> Path:
    """Where the records of cache entry ``images_path`` (``<stem>.npy``) are cached."""
    return images_path.with_name(f"{images_path.stem}.dup{HASH_VERSION}.npy")


def entry_records(images_path: Path, *, workers: int = 0, progress: Progress | None = None) -> np.ndarray:
    """(N, 10) uint64 records of every row of cache entry ``images_path``, cached beside it.

    The entry's name already holds a digest of its source files (path, size, mtime) and settings, so the
    records stay valid as long as the entry does (``prepare`` removes stale entries with theirs).
    """
    from melanet.runs import runs
    from melanet.data import disk_images, parallel

    cached_path = records_path(images_path)
    count = disk_images.read_header(images_path)[0][0]
    with contextlib.suppress(OSError, ValueError):
        cached = np.load(cached_path, allow_pickle=False)
        if cached.shape == (count, _WORDS) and cached.dtype == np.uint64:
            if progress:
                progress(count, count, "hashes from cache")
            return cached
    ranges = [(start, min(count, start + HASH_BLOCK)) for start in range(0, count, HASH_BLOCK)]
    parts = parallel.map_chunks(hash_rows_chunk, ranges, str(images_path), workers=workers,
                                progress=None if progress is None else
                                (lambda done, total, message: progress(min(count, done * HASH_BLOCK), count, message)),
                                message="hashing images")
    records = np.concatenate(parts) if parts else np.zeros((0, _WORDS), dtype=np.uint64)
    try:
        runs.atomic_write_with(cached_path, lambda stream: np.save(stream, records, allow_pickle=False))
    except OSError as error:
        logger.warning("cannot cache the image hashes in %s (%s)", cached_path, error)
    return records


def records_of(image_set: Any, *, workers: int = 0, progress: Progress | None = None) -> np.ndarray:
    """(N, 10) uint64 records of a :class:`~melanet.data.prepare.ImageSet`, in its order.

    A set read from (or written to) the cache is hashed once per cache entry; others in memory.
    """
    cache_path = getattr(image_set, "cache_path", None)
    if cache_path is not None and Path(cache_path).is_file():
        meta = json.loads(Path(cache_path).with_suffix(".json").read_text(encoding="utf-8"))
        position = {image_id: index for index, image_id in enumerate(meta["ids"])}
        if all(image_id in position for image_id in image_set.ids):
            full = entry_records(Path(cache_path), workers=workers, progress=progress)
            return full[[position[image_id] for image_id in image_set.ids]]
    return records_of_array(image_set.images)


# -- comparing ------------------------------------------------------------------------------------

def distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(M, N) int16 Hamming distances (0..128) between records ``first`` (M, 10) and ``second`` (N, 10).

    The smallest over the four orientations of either image, so the distance is symmetric and a
    flipped copy is at the distance of an unflipped one.
    """
    first_columns = [np.ascontiguousarray(first[:, word])[:, None] for word in range(_WORDS)]
    second_columns = [np.ascontiguousarray(second[:, word])[None, :] for word in range(_WORDS)]
    best = np.full((len(first), len(second)), HASH_BITS, dtype=np.int16)
    for orientation in range(len(ORIENTATIONS)):
        high, low = 2 * orientation, 2 * orientation + 1
        # the first image as is against the second turned, and the first turned against the second as is
        for turned, plain in ((second_columns, first_columns), (first_columns, second_columns)):
            left, right = (plain[0], turned[high]) if turned is second_columns else (turned[high], plain[0])
            left_low, right_low = (plain[1], turned[low]) if turned is second_columns else (turned[low], plain[1])
            distance = np.bitwise_count(left ^ right).astype(np.int16) + np.bitwise_count(left_low ^ right_low)
            np.minimum(best, distance, out=best)
    return best


def identical(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(M, N) bool: the preprocessed pixels of the two images are identical (equal digests)."""
    return np.all(first[:, None, -2:] == second[None, :, -2:], axis=-1)


def close_pairs(first: np.ndarray, second: np.ndarray | None, threshold: int,
                block: int = 256) -> list[tuple[int, int, int, bool]]:
    """(i, j, distance, identical pixels) of every pair within ``threshold``, a block of rows at a time.

    ``second`` None compares ``first`` with itself (each pair once, i < j). Memory: one block of
    (block, N) distances.
    """
    pairs: list[tuple[int, int, int, bool]] = []
    if threshold < 0:
        return pairs
    other = first if second is None else second
    for start in range(0, len(first), block):
        part = first[start:start + block]
        near = distances(part, other) <= threshold
        same = identical(part, other)
        near |= same
        if second is None:
            near &= np.arange(len(other))[None, :] > np.arange(start, start + len(part))[:, None]
        for row, column in zip(*np.nonzero(near)):
            pairs.append((start + int(row), int(column), int(distances(part[row:row + 1], other[column:column + 1])[0, 0]),
                          bool(same[row, column])))
    return pairs


def group_names(records: np.ndarray, threshold: int) -> list[str | None]:
    """Per image, the name of its duplicate group (its first member's index), None when it has no duplicate."""
    parent = list(range(len(records)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for first, second, _, _ in close_pairs(records, None, threshold):
        low, high = sorted((root(first), root(second)))
        parent[high] = low
    roots = [root(index) for index in range(len(records))]
    sizes = np.bincount(roots, minlength=len(records)) if roots else np.zeros(0, dtype=np.int64)
    return [f"duplicates:{group}" if sizes[group] > 1 else None for group in roots]


def merge_groups(groups: Sequence[str | None], duplicate_groups: Sequence[str | None]) -> list[str | None]:
    """Per image, one group joining its lesion/patient group (``groups``, None = its own) with its
    duplicate group (``group_names``): images linked by either end up in the same group."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    keys = [group if group is not None else f"image:{index}" for index, group in enumerate(groups)]
    for key, duplicate in zip(keys, duplicate_groups):
        root(key)
        if duplicate is not None:
            first, second = sorted((root(key), root(duplicate)))
            parent[second] = first
    merged = [root(key) for key in keys]
    sizes: dict[str, int] = {}
    for name in merged:
        sizes[name] = sizes.get(name, 0) + 1
    return [name if sizes[name] > 1 or original is not None else None for name, original in zip(merged, groups)]


# -- reports --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Image:
    """One image of a duplicate pair."""

    split: str
    image_id: str
    label: int


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two images within ``distance`` bits; ``exact``: identical preprocessed pixels."""

    first: Image
    second: Image
    distance: int
    exact: bool

    @property
    def conflict(self) -> bool:
        """The two images carry different labels: one of them is wrong."""
        return self.first.label != self.second.label

    def to_json(self) -> dict[str, Any]:
        return {"first": dataclasses.asdict(self.first), "second": dataclasses.asdict(self.second),
                "distance": self.distance, "exact": self.exact, "different_labels": self.conflict}


@dataclasses.dataclass(frozen=True)
class DuplicateReport:
    """Every duplicate pair within and across the splits of a data folder."""

    threshold: int
    images: dict[str, int]  # split -> images hashed
    pairs: tuple[Pair, ...]
    skipped: tuple[str, ...] = ()  # splits that could not be hashed, with the reason

    @property
    def conflicts(self) -> list[Pair]:
        return [pair for pair in self.pairs if pair.conflict]

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "hash": "phash+dhash (128 bits), 4 orientations",
                "how_chosen": THRESHOLD_NOTE, "images": self.images, "n_pairs": len(self.pairs),
                "n_exact": sum(pair.exact for pair in self.pairs), "n_different_labels": len(self.conflicts),
                "across_splits": sum(pair.first.split != pair.second.split for pair in self.pairs),
                "pairs": [pair.to_json() for pair in self.pairs], "skipped": list(self.skipped)}


THRESHOLD_NOTE = ("default 8 of 128 bits, chosen on known pairs of the ISIC-2016 sample: exact, JPEG q75 (0-3), "
                  "flipped (0) and most resized copies (0-10) lie below or at it, distinct lesions at 9 or more "
                  "(docs/duplicates.md)")


def find_duplicates(splits: dict[str, tuple[Sequence[str], np.ndarray, np.ndarray]], threshold: int) -> DuplicateReport:
    """Pairs within ``threshold`` within and across ``splits``: split -> (ids, (N,) labels, (N, 10) records)."""
    names = list(splits)
    ids = [image_id for name in names for image_id in splits[name][0]]
    labels = np.concatenate([np.asarray(splits[name][1], dtype=np.int64) for name in names]) if names else np.zeros(0)
    records = (np.concatenate([splits[name][2] for name in names]) if names
               else np.zeros((0, _WORDS), dtype=np.uint64))
    split_of = [name for name in names for _ in splits[name][0]]
    pairs = []
    for first, second, distance, exact in close_pairs(records, None, threshold):
        pairs.append(Pair(Image(split_of[first], ids[first], int(labels[first])),
                          Image(split_of[second], ids[second], int(labels[second])), distance, exact))
    pairs.sort(key=lambda pair: (not pair.conflict, pair.first.split == pair.second.split, pair.distance))
    return DuplicateReport(threshold, {name: len(splits[name][0]) for name in names}, tuple(pairs))


def scan(data_config: Any, *, progress: Progress | None = None) -> DuplicateReport:
    """Hash every split of ``data_config.root`` (through the prepare cache; bad images are left out) and
    find its duplicates at ``data_config.duplicate_threshold``."""
    from melanet.data import prepare, sources
    from melanet.data.errors import DataError

    threshold = data_config.duplicate_threshold
    if threshold < 0:
        return DuplicateReport(threshold, {}, (), ("data.duplicate_threshold = -1: not checked",))
    index = sources.read_index(Path(data_config.root), malignant_classes=data_config.malignant_classes)
    lenient = dataclasses.replace(data_config, skip_bad=True)
    found: dict[str, tuple[Sequence[str], np.ndarray, np.ndarray]] = {}
    skipped = []
    for split in index.splits:
        try:
            image_set = prepare.load_split(lenient, split, progress=progress)
        except DataError as error:
            skipped.append(f"{split}: {str(error).splitlines()[0]}")
            continue
        found[split] = (image_set.ids, image_set.labels,
                        records_of(image_set, workers=data_config.workers, progress=progress))
    report = find_duplicates(found, threshold)
    return dataclasses.replace(report, skipped=tuple(skipped))


def format_report(report: DuplicateReport) -> str:
    """Lines for the terminal: the counts, how the threshold was chosen, then every pair (conflicts first)."""
    if report.threshold < 0:
        return "duplicates: not checked (data.duplicate_threshold = -1)"
    exact = sum(pair.exact for pair in report.pairs)
    across = sum(pair.first.split != pair.second.split for pair in report.pairs)
    lines = [f"duplicates: {len(report.pairs)} pair(s) within {report.threshold} of {HASH_BITS} bits "
             f"({exact} with identical pixels, {across} across splits, {len(report.conflicts)} with different "
             f"labels) among {sum(report.images.values())} images",
             f"  threshold: {THRESHOLD_NOTE}; change it with --duplicate-threshold N"]
    for pair in report.pairs:
        kind = "identical pixels" if pair.exact else f"distance {pair.distance}"
        names = ", ".join(f"{image.split} {image.image_id} ({'malignant' if image.label else 'benign'})"
                          for image in (pair.first, pair.second))
        prefix = "  ERROR different labels: " if pair.conflict else "  "
        lines.append(f"{prefix}{names}: {kind}")
    lines += [f"  not hashed: {reason}" for reason in report.skipped]
    return "\n".join(lines)


# -- a run against other images -------------------------------------------------------------------

def matches(query: np.ndarray, reference: np.ndarray, threshold: int) -> dict[int, tuple[int, int, bool]]:
    """Per query index with a duplicate in ``reference``: (reference index, distance, identical pixels)
    of its closest one."""
    best: dict[int, tuple[int, int, bool]] = {}
    for first, second, distance, exact in close_pairs(query, reference, threshold):
        current = best.get(first)
        if current is None or (distance, not exact) < (current[1], not current[2]):
            best[first] = (second, distance, exact)
    return best
