"""The torch-free ``.pth`` reader against hostile pickles assembled here opcode by opcode.

``tests/test_efficientnet_lite.py`` checks that a pickle naming ``os.system`` directly is refused. An
attacker does not need that global: with ``builtins.getattr`` allowed, the reader's own allowed
function ``torch._utils._rebuild_tensor_v2`` (our ``_rebuild_tensor``) leads through its
``__globals__`` to the reader's module, its ``zipfile`` import, ``zipfile.os`` and ``os.system``. The
pickles below are written by hand (pickletools opcode names in the comments), put in a zip ``.pth``
laid out as ``torch.save`` writes it (``archive/data.pkl``, ``archive/data/<key>``, ``byteorder``,
``version``; stored, not compressed) or in the legacy five-pickle layout, and the reader must refuse
them before anything runs: the side effect (a marker file) must not appear.
"""

from __future__ import annotations

import io
import shlex
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from melanet.classifier import torch_weights
from melanet.classifier.vgg16 import WeightsError

WEIGHT = np.array([1.5, -2.0, 3.25, 0.125], dtype="<f4")  # exact in float32: what a correct read gives back


class _Pickle:
    """A protocol-4 pickle written opcode by opcode."""

    def __init__(self) -> None:
        self.code = bytearray(b"\x80\x04")  # PROTO 4

    def raw(self, opcodes: bytes) -> _Pickle:
        self.code += opcodes
        return self

    def text(self, value: str) -> _Pickle:
        encoded = value.encode()
        assert len(encoded) < 256
        return self.raw(b"\x8c" + bytes([len(encoded)]) + encoded)  # SHORT_BINUNICODE

    def number(self, value: int) -> _Pickle:
        return self.raw(b"J" + struct.pack("<i", value))  # BININT

    def stack_global(self, module: str, name: str) -> _Pickle:
        return self.text(module).text(name).raw(b"\x93")  # STACK_GLOBAL

    def old_global(self, module: str, name: str) -> _Pickle:
        return self.raw(b"c" + f"{module}\n{name}\n".encode())  # GLOBAL (protocol 0-2 form)

    def call(self, function, *arguments) -> _Pickle:
        """``function(*arguments)``: each a callable that writes one value onto the stack."""
        function()
        self.raw(b"(")  # MARK
        for argument in arguments:
            argument()
        return self.raw(b"tR")  # TUPLE, REDUCE

    def getattr_of(self, inner, name: str) -> _Pickle:
        return self.call(lambda: self.stack_global("builtins", "getattr"), inner, lambda: self.text(name))

    def tensor(self, key: str, count: int) -> _Pickle:
        """What torch writes for a 1-D float32 tensor of ``count`` elements on storage ``key``:
        ``_rebuild_tensor_v2(persistent ('storage', FloatStorage, key, 'cpu', count), 0, (count,), (1,),
        False, OrderedDict())``."""
        def storage():
            self.raw(b"(").text("storage").stack_global("torch", "FloatStorage").text(key).text("cpu").number(count)
            self.raw(b"tQ")  # TUPLE, BINPERSID

        return self.call(lambda: self.stack_global("torch._utils", "_rebuild_tensor_v2"), storage,
                         lambda: self.number(0), lambda: self.raw(b"(").number(count).raw(b"t"),
                         lambda: self.raw(b"(").number(1).raw(b"t"), lambda: self.raw(b"\x89"),  # NEWFALSE
                         lambda: self.stack_global("collections", "OrderedDict").raw(b")R"))  # EMPTY_TUPLE, REDUCE

    def state_dict(self, entries) -> bytes:
        """``OrderedDict`` of ``entries`` [(key, writer)], then STOP."""
        self.stack_global("collections", "OrderedDict").raw(b")R(")  # an empty OrderedDict, MARK
        for key, write_value in entries:
            self.text(key)
            write_value()
        return bytes(self.raw(b"u.").code)  # SETITEMS, STOP


def _system_through_the_readers_globals(pickle_: _Pickle, command: str) -> None:
    """``getattr(getattr(getattr(getattr(_rebuild_tensor_v2, '__globals__'), 'get')('zipfile'), 'os'),
    'system')(command)``: only allowed globals and ``builtins.getattr``."""
    def module_globals():
        pickle_.getattr_of(lambda: pickle_.stack_global("torch._utils", "_rebuild_tensor_v2"), "__globals__")

    def zipfile_module():
        pickle_.call(lambda: pickle_.getattr_of(module_globals, "get"), lambda: pickle_.text("zipfile"))

    def system():
        pickle_.getattr_of(lambda: pickle_.getattr_of(zipfile_module, "os"), "system")

    pickle_.call(system, lambda: pickle_.text(command))


def _touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _write_zip(path: Path, data_pkl: bytes, storages: dict[str, np.ndarray]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, values in storages.items():
            archive.writestr(f"archive/data/{key}", np.asarray(values, dtype="<f4").tobytes())
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/.data/serialization_id", "0123456789")
    return path


def _write_legacy(path: Path, state_pkl: bytes, storages: dict[str, np.ndarray], magic_pkl: bytes | None = None) -> Path:
    import pickle

    body = magic_pkl if magic_pkl is not None else pickle.dumps(torch_weights.LEGACY_MAGIC, protocol=2)
    body += pickle.dumps(1001, protocol=2) + pickle.dumps({"little_endian": True}, protocol=2) + state_pkl
    body += pickle.dumps(list(storages), protocol=2)
    for values in storages.values():
        array = np.asarray(values, dtype="<f4")
        body += struct.pack("<q", array.size) + array.tobytes()
    path.write_bytes(body)
    return path


def _hostile_state(marker: Path) -> bytes:
    """A real state dict (``weight``) with one more entry whose value is ``os.system('touch marker')``."""
    pickle_ = _Pickle()
    return pickle_.state_dict([("weight", lambda: pickle_.tensor("0", 4)),
                               ("bias", lambda: _system_through_the_readers_globals(pickle_, _touch(marker)))])


def _benign_state() -> bytes:
    pickle_ = _Pickle()
    return pickle_.state_dict([("weight", lambda: pickle_.tensor("0", 4))])


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_the_hand_assembled_files_read_back(tmp_path: Path, layout: str) -> None:
    """The control: the same assembler and containers without the payload give the tensor written."""
    write = _write_zip if layout == "zip" else _write_legacy
    state = torch_weights.read_state_dict(write(tmp_path / "benign.pth", _benign_state(), {"0": WEIGHT}))
    assert list(state) == ["weight"]
    np.testing.assert_array_equal(state["weight"], [1.5, -2.0, 3.25, 0.125])


@pytest.mark.parametrize("layout", ["zip", "legacy", "legacy magic number"])
def test_getattr_through_the_readers_own_globals_is_refused_and_nothing_runs(tmp_path: Path, layout: str) -> None:
    marker = tmp_path / "it-ran"
    path = tmp_path / "evil.pth"
    if layout == "zip":
        _write_zip(path, _hostile_state(marker), {"0": WEIGHT})
    elif layout == "legacy":
        _write_legacy(path, _hostile_state(marker), {"0": WEIGHT})
    else:  # the payload in the first of the five pickles, read before anything else
        payload = _Pickle()
        _system_through_the_readers_globals(payload, _touch(marker))
        _write_legacy(path, _benign_state(), {"0": WEIGHT}, magic_pkl=bytes(payload.raw(b".").code))
    with pytest.raises(WeightsError) as error:
        torch_weights.read_state_dict(path)
    message = str(error.value)
    assert str(path) in message and "builtins.getattr" in message and "\n" not in message
    assert not marker.exists()


def test_the_hostile_pickle_is_live_once_getattr_is_allowed(tmp_path: Path, monkeypatch) -> None:
    """The control: the refusal above is the allow-list's doing. With ``builtins.getattr`` added, the same
    bytes run ``os.system`` (the marker appears) and the reader only notices afterwards that ``bias``
    is no tensor."""
    marker = tmp_path / "it-ran"
    path = _write_zip(tmp_path / "evil.pth", _hostile_state(marker), {"0": WEIGHT})
    monkeypatch.setitem(torch_weights.ALLOWED_GLOBALS, ("builtins", "getattr"), getattr)
    with pytest.raises(WeightsError, match="'bias' is not a tensor"):
        torch_weights.read_state_dict(path)
    assert marker.exists()


def test_the_allow_list_holds_no_callable_that_reaches_attributes_or_modules() -> None:
    """Each allowed global is a dict class, a tensor rebuild function of ours or a storage stand-in."""
    for (module, name), value in torch_weights.ALLOWED_GLOBALS.items():
        if (module, name) == ("collections", "OrderedDict"):
            continue
        if module == "torch._utils":
            assert name.startswith("_rebuild_") and value.__module__ == torch_weights.__name__, (module, name)
        else:
            assert module == "torch" and name.endswith("Storage") and not callable(value), (module, name)


@pytest.mark.parametrize(("module", "name", "arguments"), [
    ("builtins", "eval", lambda marker: [f"__import__('os').system({_touch(marker)!r})"]),
    ("builtins", "exec", lambda marker: [f"__import__('os').system({_touch(marker)!r})"]),
    ("builtins", "__import__", lambda marker: ["os"]),
    ("importlib", "import_module", lambda marker: ["os"]),
    ("posix", "system", lambda marker: [_touch(marker)]),
    ("subprocess", "check_call", lambda marker: [_touch(marker)]),
    ("operator", "attrgetter", lambda marker: ["__globals__"]),
    ("operator", "methodcaller", lambda marker: ["get", "zipfile"]),
    ("functools", "partial", lambda marker: ["os"]),
    ("numpy", "load", lambda marker: ["x.npy"]),
])
@pytest.mark.parametrize("opcode", ["STACK_GLOBAL", "GLOBAL"])
def test_other_gadgets_are_refused_by_name(tmp_path: Path, module: str, name: str, arguments, opcode: str) -> None:
    marker = tmp_path / "it-ran"
    pickle_ = _Pickle()
    find = pickle_.stack_global if opcode == "STACK_GLOBAL" else pickle_.old_global
    values = [lambda value=value: pickle_.text(value) for value in arguments(marker)]
    state = pickle_.state_dict([("weight", lambda: pickle_.tensor("0", 4)),
                                ("bias", lambda: pickle_.call(lambda: find(module, name), *values))])
    path = _write_zip(tmp_path / "evil.pth", state, {"0": WEIGHT})
    with pytest.raises(WeightsError, match=f"refused to load: the pickle asks for {module}.{name} "):
        torch_weights.read_state_dict(path)
    assert not marker.exists()


def test_a_pickle_that_rewrites_a_storage_type_is_refused_and_later_files_read_the_same(tmp_path: Path) -> None:
    """BUILD (``obj.__dict__.update(state)``) on the shared ``torch.FloatStorage`` stand-in would change the
    dtype of every later read in the process: float32 weights would come back as float64 garbage."""
    eight = np.arange(1, 9, dtype="<f4")
    honest = _write_zip(tmp_path / "honest.pth", _benign_state(), {"0": eight})  # a storage longer than its tensor
    np.testing.assert_array_equal(torch_weights.read_state_dict(honest)["weight"], [1, 2, 3, 4])
    pickle_ = _Pickle()
    pickle_.stack_global("torch", "FloatStorage").raw(b"}").text("dtype").text("<f8").raw(b"sb0")  # SETITEM, BUILD, POP
    hostile = _write_zip(tmp_path / "hostile.pth", pickle_.state_dict([("weight", lambda: pickle_.tensor("0", 4))]),
                         {"0": eight})
    with pytest.raises(WeightsError, match=r"hostile.pth: refused to load: .*torch.FloatStorage"):
        torch_weights.read_state_dict(hostile)
    again = torch_weights.read_state_dict(honest)["weight"]
    assert again.dtype == np.float32
    np.testing.assert_array_equal(again, [1, 2, 3, 4])
