"""Images that stay on disk: a cache file written a block at a time and read a batch at a time.

A prepared split is an ``.npy`` file of (N, S, S, 3) uint8. :class:`NpyWriter` writes one without ever
holding more than a block of images in memory (the header's row count is rewritten when the last block
is in, so images refused while decoding leave no gap). :class:`DiskImages` reads rows of such a file with
``os.pread``: a batch costs its own bytes, and nothing is memory-mapped, so the process's resident memory
does not grow with the data set (the kernel's page cache, shared and reclaimable, does the caching).

``DiskImages`` behaves like a read-only uint8 array where the code needs one: ``shape``, ``dtype``,
``ndim``, ``len()``, indexing (which reads the rows and returns an ``ndarray``) and ``np.asarray`` (which
reads everything: for the few consumers that need all images at once). ``take(indices)`` makes a lazy
view of some rows (a training or validation split) without reading them. :func:`batches` turns one into a
``tf.data`` pipeline that reads each batch from disk on tf.data's threads.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_MAGIC = b"\x93NUMPY\x01\x00"
HEADER_BYTES = 128  # magic + version + 2-byte length + the header dict padded with spaces; a multiple of 64


def _header(shape: tuple[int, ...]) -> bytes:
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    room = HEADER_BYTES - len(_MAGIC) - 2
    body = text.ljust(room - 1).encode("latin1") + b"\n"
    if len(body) != room:
        raise ValueError(f"shape {shape} does not fit a {HEADER_BYTES}-byte .npy header")
    return _MAGIC + room.to_bytes(2, "little") + body


class NpyWriter:
    """Append (B, S, S, 3) uint8 blocks to an open binary stream as one ``.npy`` array.

    ``finish()`` writes the final row count into the header (the stream must be seekable). The file
    is an ordinary ``.npy``: ``np.load`` reads it.
    """

    def __init__(self, stream: BinaryIO, image_size: int) -> None:
        self.stream = stream
        self.row_shape = (image_size, image_size, 3)
        self.rows = 0
        stream.write(_header((0, *self.row_shape)))

    def append(self, block: np.ndarray) -> None:
        if block.dtype != np.uint8 or tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"expected (B, {', '.join(map(str, self.row_shape))}) uint8, got {block.shape} {block.dtype}")
        self.stream.write(np.ascontiguousarray(block).tobytes())
        self.rows += len(block)

    def finish(self) -> tuple[int, ...]:
        end = self.stream.tell()
        self.stream.seek(0)
        self.stream.write(_header((self.rows, *self.row_shape)))
        self.stream.seek(end)
        return (self.rows, *self.row_shape)


def read_header(path: str | Path) -> tuple[tuple[int, ...], int]:
    """(shape, data offset) of a C-ordered uint8 ``.npy`` file; ValueError for anything else."""
    with open(path, "rb") as stream:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path}: unsupported .npy version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read(stream)
        offset = stream.tell()
    if dtype != np.uint8 or fortran_order or len(shape) != 4:
        raise ValueError(f"{path}: expected a C-ordered (N, S, S, 3) uint8 array, got {shape} {dtype}")
    return tuple(shape), offset


class DiskImages:
    """Rows of an (N, S, S, 3) uint8 ``.npy`` file, read on demand (see the module docstring).

    ``rows`` picks and orders the file's rows this view shows (None = all, in file order).
    """

    def __init__(self, path: str | Path, rows: np.ndarray | None = None,
                 header: tuple[tuple[int, ...], int] | None = None) -> None:
        self.path = Path(path)
        self.file_shape, self.offset = header or read_header(self.path)
        if header is None and self.path.stat().st_size < self.offset + int(np.prod(self.file_shape)):
            raise ValueError(f"{self.path}: shorter than its header's {self.file_shape} (truncated?)")
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.row_bytes = int(np.prod(self.file_shape[1:]))
        self._descriptor: tuple[int, int] | None = None  # (pid, fd): a forked child opens its own

    # -- the array face ---------------------------------------------------------------------------
    dtype = np.dtype(np.uint8)
    ndim = 4

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.file_shape[1:])

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def __len__(self) -> int:
        return self.file_shape[0] if self.rows is None else len(self.rows)

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

    def take(self, indices: Sequence[int] | np.ndarray) -> "DiskImages":
        """A lazy view of rows ``indices`` of this view (nothing is read)."""
        indices = np.asarray(indices, dtype=np.int64)
        rows = indices if self.rows is None else self.rows[indices]
        return DiskImages(self.path, rows, (self.file_shape, self.offset))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_descriptor": None}

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
        out = np.empty((len(file_rows), *self.file_shape[1:]), dtype=np.uint8)
        if len(file_rows) == 0:
            return out
        order = np.argsort(file_rows, kind="stable")
        flat = out.reshape(len(file_rows), self.row_bytes)
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


def is_on_disk(images: Any) -> bool:
    return isinstance(images, DiskImages)


def batches(images: DiskImages, batch_indices: Any, extra: Sequence[np.ndarray] = ()) -> Any:
    """A ``tf.data.Dataset`` of ``(uint8 (B, S, S, 3), *extra rows)`` (the pixels alone without ``extra``)
    read from disk per batch.

    ``batch_indices`` is a ``tf.data.Dataset`` of int64 index vectors (one per batch) into ``images``;
    ``extra`` arrays (labels, weights) are gathered in memory. Reads run on tf.data's threads, in order.
    """
    import tensorflow as tf  # the data layer stays importable without TensorFlow

    tensors = tuple(tf.convert_to_tensor(part) for part in extra)
    row_shape = images.file_shape[1:]

    def read(indices: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, ...]:
        pixels = tf.numpy_function(images.read, [indices], tf.uint8, stateful=False)
        pixels = tf.ensure_shape(pixels, (None, *row_shape))
        return (pixels, *(tf.gather(tensor, indices) for tensor in tensors)) if tensors else pixels

    return batch_indices.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
