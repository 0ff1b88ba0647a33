"""Images that stay on disk: a cache file written a block at a time and read a batch at a time.

A prepared split is an ``.npy`` file of (N, S, S, 3) uint8. :class:`NpyWriter` writes one without ever
holding more than a block of images in memory (the header's row count is rewritten when the last block
is in, so images refused while decoding leave no gap). :class:`DiskImages` reads rows of such a file with
``os.pread``: a batch costs its own bytes, and nothing is memory-mapped, so the process's resident memory
does not grow with the data set (the kernel's page cache, shared and reclaimable, does the caching).

``DiskImages`` behaves like a read-only array where the code needs one: ``shape``, ``dtype``,
``ndim``, ``len()``, indexing (which reads the rows and returns an ``ndarray``) and ``np.asarray`` (which
reads everything: for the few consumers that need all images at once). ``take(indices)`` makes a lazy
view of some rows (a training or validation split) without reading them. :class:`ConcatRows` joins such
views (and small in-memory arrays) end to end without copying them: a training set made of the originals
and their augmented or synthetic additions. :func:`batches` turns either into a ``tf.data`` pipeline that
reads each batch on tf.data's threads.

Images are (N, S, S, 3) uint8; the same files and views also hold other C-ordered rows (the classifier's
frozen float32 features, ``DiskImages(path, dtype=np.float32)``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

logger = logging.getLogger(__name__)

_MAGIC = b"\x93NUMPY\x01\x00"
HEADER_BYTES = 128  # magic + version + 2-byte length + the header dict padded with spaces; a multiple of 64


def _header(shape: tuple[int, ...], dtype: np.dtype = np.dtype(np.uint8)) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(shape)})
    room = HEADER_BYTES - len(_MAGIC) - 2
    body = text.ljust(room - 1).encode("latin1") + b"\n"
    if len(body) != room:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte .npy header")
    return _MAGIC + room.to_bytes(2, "little") + body


class NpyWriter:
    """Append (B, S, S, 3) uint8 blocks to an open binary stream as one ``.npy`` array.

    ``image_size`` gives the (S, S, 3) rows of images; ``row_shape`` and ``dtype`` other rows (e.g.
    (h, w, c) float32 features). ``finish()`` writes the final row count into the header (the stream
    must be seekable). The file is an ordinary ``.npy``: ``np.load`` reads it.
    """

    def __init__(self, stream: BinaryIO, image_size: int | None = None, *,
                 row_shape: tuple[int, ...] | None = None, dtype: Any = np.uint8) -> None:
        if (image_size is None) == (row_shape is None):
            raise ValueError("give image_size or row_shape")
        self.stream = stream
        self.row_shape = (image_size, image_size, 3) if row_shape is None else tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        stream.write(_header((0, *self.row_shape), self.dtype))

    def append(self, block: np.ndarray) -> None:
        if block.dtype != self.dtype or tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"expected (B, {', '.join(map(str, self.row_shape))}) {self.dtype}, "
                             f"got {block.shape} {block.dtype}")
        self.stream.write(np.ascontiguousarray(block).tobytes())
        self.rows += len(block)

    def finish(self) -> tuple[int, ...]:
        end = self.stream.tell()
        self.stream.seek(0)
        self.stream.write(_header((self.rows, *self.row_shape), self.dtype))
        self.stream.seek(end)
        return (self.rows, *self.row_shape)


def read_header(path: str | Path, dtype: Any = np.uint8) -> tuple[tuple[int, ...], int]:
    """(shape, data offset) of a C-ordered ``.npy`` file of ``dtype`` rows; ValueError for anything else.

    uint8 files must be images, (N, S, S, 3).
    """
    with open(path, "rb") as stream:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path}: unsupported .npy version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, stored = read(stream)
        offset = stream.tell()
    wanted = np.dtype(dtype)
    if wanted == np.uint8 and (stored != np.uint8 or fortran_order or len(shape) != 4):
        raise ValueError(f"{path}: expected a C-ordered (N, S, S, 3) uint8 array, got {shape} {stored}")
    if stored != wanted or fortran_order or len(shape) < 1:
        raise ValueError(f"{path}: expected a C-ordered {wanted} array, got {shape} {stored}")
    return tuple(shape), offset


class LazyRows:
    """What :class:`DiskImages` and :class:`ConcatRows` share: an array face over ``read(positions)``.

    Subclasses set ``dtype`` and ``row_shape`` and define ``__len__``, ``read`` and ``take``.
    """

    dtype: np.dtype
    row_shape: tuple[int, ...]

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def take(self, indices: Sequence[int] | np.ndarray) -> "LazyRows":
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    @property
    def nbytes(self) -> int:
        return len(self) * int(np.prod(self.row_shape)) * self.dtype.itemsize

    def __getitem__(self, key: Any) -> np.ndarray:
        positions = np.arange(len(self))[key] if not isinstance(key, tuple) else None
        if positions is None:  # (rows, pixels...) keys: read the rows, then index the rest in memory
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        if np.ndim(positions) == 0:
            return self.read(np.array([positions]))[0]
        return self.read(positions)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        images = self.read(np.arange(len(self)))
        return images if dtype is None else images.astype(dtype)

    def blocks(self, size: int = 512) -> Iterator[np.ndarray]:
        """The rows in order, ``size`` at a time (memory: one block)."""
        for start in range(0, len(self), size):
            yield self.read(np.arange(start, min(start + size, len(self))))


class DiskImages(LazyRows):
    """Rows of an (N, S, S, 3) uint8 ``.npy`` file, read on demand (see the module docstring).

    ``rows`` picks and orders the file's rows this view shows (None = all, in file order). ``dtype``:
    the file's element type (uint8 images by default; float32 for cached features).
    """

    def __init__(self, path: str | Path, rows: np.ndarray | None = None,
                 header: tuple[tuple[int, ...], int] | None = None, *, dtype: Any = np.uint8) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.file_shape, self.offset = header or read_header(self.path, self.dtype)
        self.row_shape = tuple(self.file_shape[1:])
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        if header is None and self.path.stat().st_size < self.offset + self.file_shape[0] * self.row_bytes:
            raise ValueError(f"{self.path}: shorter than its header's {self.file_shape} (truncated?)")
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._descriptor: tuple[int, int] | None = None  # (pid, fd): a forked child opens its own

    def __len__(self) -> int:
        return self.file_shape[0] if self.rows is None else len(self.rows)

    def take(self, indices: Sequence[int] | np.ndarray) -> "DiskImages":
        """A lazy view of rows ``indices`` of this view (nothing is read)."""
        indices = np.asarray(indices, dtype=np.int64)
        rows = indices if self.rows is None else self.rows[indices]
        return DiskImages(self.path, rows, (self.file_shape, self.offset), dtype=self.dtype)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_descriptor": None}

    def __del__(self, _getpid=os.getpid, _close=os.close) -> None:  # bound now: at exit ``os`` may be gone
        descriptor = getattr(self, "_descriptor", None)
        if descriptor is not None and descriptor[0] == _getpid():
            try:
                _close(descriptor[1])
            except OSError:
                pass

    # -- reading ----------------------------------------------------------------------------------
    def _fd(self) -> int:
        if self._descriptor is None or self._descriptor[0] != os.getpid():
            self._descriptor = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._descriptor[1]

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` of this view as (B, S, S, 3) uint8, in the order given.

        Consecutive file rows are read with one ``pread`` each run; thread-safe (no shared offset).
        """
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        file_rows = positions if self.rows is None else self.rows[positions]
        out = np.empty((len(file_rows), *self.row_shape), dtype=self.dtype)
        if len(file_rows) == 0:
            return out
        order = np.argsort(file_rows, kind="stable")
        flat = out.reshape(len(file_rows), -1).view(np.uint8)
        descriptor = self._fd()
        start = 0
        while start < len(order):
            end = start + 1  # extend the run while the next row is the next file row
            while end < len(order) and file_rows[order[end]] == file_rows[order[end - 1]] + 1 \
                    and order[end] == order[end - 1] + 1:
                end += 1
            first = int(file_rows[order[start]])
            count = end - start
            data = os.pread(descriptor, count * self.row_bytes, self.offset + first * self.row_bytes)
            if len(data) != count * self.row_bytes:
                raise OSError(f"{self.path}: file ends before row {first + count} (truncated cache entry?)")
            flat[order[start]:order[start] + count] = np.frombuffer(data, np.uint8).reshape(count, self.row_bytes)
            start = end
        return out


class ConcatRows(LazyRows):
    """``parts`` (lazy views or in-memory arrays with the same row shape and dtype) end to end.

    Like ``np.concatenate(parts)`` without the copy: ``read`` gathers each part's rows from that part.
    ``rows`` picks and orders the joined rows this view shows (None = all).
    """

    def __init__(self, parts: Sequence[Any], rows: np.ndarray | None = None) -> None:
        if not parts:
            raise ValueError("ConcatRows needs at least one part")
        first = parts[0]
        for part in parts[1:]:
            if tuple(part.shape[1:]) != tuple(first.shape[1:]) or np.dtype(part.dtype) != np.dtype(first.dtype):
                raise ValueError(f"cannot join rows {tuple(part.shape[1:])} {part.dtype} to "
                                 f"{tuple(first.shape[1:])} {first.dtype}")
        self.parts = list(parts)
        self.dtype = np.dtype(first.dtype)
        self.row_shape = tuple(first.shape[1:])
        self.starts = np.cumsum([0] + [len(part) for part in self.parts])
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1]) if self.rows is None else len(self.rows)

    def take(self, indices: Sequence[int] | np.ndarray) -> "ConcatRows":
        indices = np.asarray(indices, dtype=np.int64)
        return ConcatRows(self.parts, indices if self.rows is None else self.rows[indices])

    def read(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        joined = positions if self.rows is None else self.rows[positions]
        if len(joined) and (joined.min() < 0 or joined.max() >= self.starts[-1]):
            raise IndexError(f"row index out of range for {int(self.starts[-1])} rows")
        out = np.empty((len(joined), *self.row_shape), dtype=self.dtype)
        owner = np.searchsorted(self.starts, joined, side="right") - 1
        for number, part in enumerate(self.parts):
            mine = np.flatnonzero(owner == number)
            if len(mine):
                local = joined[mine] - self.starts[number]
                out[mine] = part.read(local) if isinstance(part, LazyRows) else np.asarray(part)[local]
        return out


def cached(path: Path, count: int, size: int, fill: Callable[[NpyWriter], Any]) -> DiskImages | None:
    """``DiskImages`` of the cache file ``path`` with ``count`` rows of ``size`` px: the existing file, or
    a new one that ``fill(writer)`` writes (atomically). None when the file can be neither read nor written."""
    if path.is_file():
        try:
            images = DiskImages(path)
            if images.shape == (count, size, size, 3):
                logger.info("from cache %s", path)
                return images
            logger.warning("ignoring cache file %s: %s rows, expected %s", path, images.shape, (count, size, size, 3))
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable cache file %s (%s)", path, error)

    def write(stream: Any) -> None:
        writer = NpyWriter(stream, size)
        fill(writer)
        if writer.finish()[0] != count:
            raise ValueError(f"{path}: wrote {writer.rows} rows, expected {count}")

    from melanet.runs import runs

    try:
        runs.atomic_write_with(path, write)
    except OSError as error:
        logger.warning("cannot cache in %s (%s); holding the images in memory instead", path.parent, error)
        return None
    logger.info("cached %d images in %s", count, path)
    return DiskImages(path)


def is_on_disk(images: Any) -> bool:
    """True for rows read on demand (a cache file or a join of them), False for an in-memory array."""
    return isinstance(images, LazyRows)


def concatenate(parts: Sequence[Any]) -> Any:
    """``parts`` joined end to end: lazily (:class:`ConcatRows`) when any part is on disk, else in memory."""
    if any(is_on_disk(part) for part in parts):
        return ConcatRows(parts)
    return np.concatenate(parts)


def batches(images: LazyRows, batch_indices: Any, extra: Sequence[np.ndarray] = ()) -> Any:
    """A ``tf.data.Dataset`` of ``(rows (B, S, S, 3), *extra rows)`` (the pixels alone without ``extra``)
    read from disk per batch.

    ``batch_indices`` is a ``tf.data.Dataset`` of int64 index vectors (one per batch) into ``images``;
    ``extra`` arrays (labels, weights) are gathered in memory. Reads run on tf.data's threads, in order.
    """
    import tensorflow as tf  # the data layer stays importable without TensorFlow

    tensors = tuple(tf.convert_to_tensor(part) for part in extra)
    row_shape = images.row_shape
    element = tf.as_dtype(images.dtype)

    def read(indices: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, ...]:
        pixels = tf.numpy_function(images.read, [indices], element, stateful=False)
        pixels = tf.ensure_shape(pixels, (None, *row_shape))
        return (pixels, *(tf.gather(tensor, indices) for tensor in tensors)) if tensors else pixels

    return batch_indices.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
