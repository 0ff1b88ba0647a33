"""Preprocessing of real images: every mode to RGB, EXIF orientation, aspect-keeping padding, bad files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from melanet.data import preprocess
from melanet.data.errors import BadImageError, DataError

LESION = Path(__file__).resolve().parents[1] / "data/sample/ISBI2016_ISIC_Part3_Training_Data/ISIC_0000000.jpg"


def _encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lesion() -> Image.Image:
    """A real 256x192 RGB dermoscopy image."""
    with Image.open(LESION) as image:
        return image.convert("RGB")


def test_output_shape_type_and_black_padding(lesion):
    width, height = lesion.size
    assert width * 3 == height * 4, "the sample's first image is 4:3 landscape"
    array = preprocess.preprocess_image(LESION, 64)
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8
    # 4:3 -> 64x48, centred: 8 black rows above and below, none at the sides
    assert array[:8].max() == 0 and array[-8:].max() == 0
    assert array[8:56].mean(axis=(0, 2)).min() > 5
    reference = np.asarray(lesion.resize((64, 48), Image.Resampling.LANCZOS))
    assert np.abs(array[8:56].astype(int) - reference).mean() < 2.0


def test_portrait_image_is_padded_left_and_right(lesion):
    portrait = lesion.transpose(Image.Transpose.ROTATE_90)  # portrait 3:4
    array = preprocess.preprocess_image(_encode(portrait, "PNG"), 32)
    assert array[:, :4].max() == 0 and array[:, -4:].max() == 0 and array[:, 4:28].mean() > 20


def test_stretch_fills_the_square_with_the_whole_image(lesion):
    array = preprocess.preprocess_image(LESION, 64, resize="stretch")
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8
    assert array.mean(axis=(1, 2)).min() > 5, "no black rows: nothing is padded"
    reference = np.asarray(lesion.resize((64, 64), Image.Resampling.LANCZOS))
    assert np.abs(array.astype(int) - reference).mean() < 2.0


def test_crop_keeps_the_centred_square_undistorted(lesion):
    array = preprocess.preprocess_image(LESION, 48, resize="crop")
    assert array.shape == (48, 48, 3)
    # landscape: the centred square of the short side, e.g. 512x384 -> x from 64 to 448
    width, height = lesion.size
    left = (width - height) // 2
    reference = np.asarray(lesion.crop((left, 0, left + height, height)).resize((48, 48), Image.Resampling.LANCZOS))
    assert np.abs(array.astype(int) - reference).mean() < 2.0
    assert not np.array_equal(array, preprocess.preprocess_image(LESION, 48, resize="stretch"))
    portrait = lesion.transpose(Image.Transpose.ROTATE_90)  # portrait: cut top and bottom instead
    rotated = preprocess.preprocess_image(_encode(portrait, "PNG"), 48, resize="crop")
    assert np.abs(rotated.astype(int) - np.rot90(reference)).mean() < 2.0


def test_draft_decoding_keeps_the_short_side_for_stretch_and_crop(lesion):
    # 4:1, so scaling the long side to 64 would let the decoder shrink the short side to 32 (1/8): the
    # result would be upsampled and blurred; stretch and crop must keep the short side at >= 64
    wide = lesion.resize((1024, 256), Image.Resampling.BICUBIC)
    encoded = _encode(wide, "JPEG", quality=95)
    for mode, full in (("stretch", preprocess.stretch_resize(wide, 64)), ("crop", preprocess.crop_and_resize(wide, 64))):
        drafted = preprocess.preprocess_image(encoded, 64, resize=mode)
        assert np.abs(drafted.astype(int) - full).mean() < 1.0, mode  # 0.46 / 0.65; from 32 rows: 1.42 / 2.01


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match="resize must be one of pad, stretch, crop, got 'squash'"):
        preprocess.preprocess_image(LESION, 32, resize="squash")


def test_sources_path_bytes_and_file_object_agree(lesion):
    data = LESION.read_bytes()
    from_path = preprocess.preprocess_image(str(LESION), 48)
    with open(LESION, "rb") as stream:
        from_stream = preprocess.preprocess_image(stream, 48)
    assert np.array_equal(from_path, preprocess.preprocess_image(data, 48))
    assert np.array_equal(from_path, from_stream)


def _gray16(lesion: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(lesion.convert("L"), dtype=np.uint16) * 257)


@pytest.mark.parametrize("name,make,image_format", [
    ("L", lambda im: im.convert("L"), "PNG"),
    ("LA", lambda im: im.convert("LA"), "PNG"),
    ("RGBA", lambda im: im.convert("RGBA"), "PNG"),
    ("P", lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
    ("CMYK", lambda im: im.convert("CMYK"), "JPEG"),
    ("I;16", _gray16, "PNG"),
    ("1", lambda im: im.convert("1"), "PNG"),
])
def test_every_mode_becomes_rgb(lesion, name, make, image_format):
    encoded = _encode(make(lesion), image_format)
    assert Image.open(io.BytesIO(encoded)).mode == name
    array = preprocess.preprocess_image(encoded, 32)
    expected = preprocess.preprocess_image(_encode(lesion, "PNG"), 32).astype(int)
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8
    if name in ("L", "LA", "I;16"):
        assert np.abs(array.astype(int) - expected.mean(axis=2, keepdims=True)).mean() < 6
        assert np.array_equal(array[..., 0], array[..., 2])  # gray stays gray
    elif name != "1":  # a 1-bit image is dithered: only its shape and padding are comparable
        assert np.abs(array.astype(int) - expected).mean() < 6
    assert array[:4].max() == 0


def test_sixteen_bit_uses_the_full_range(lesion):
    array = preprocess.preprocess_image(_encode(_gray16(lesion), "PNG"), 32)
    assert 40 < array[8:24].mean() < 200  # PIL's own convert would clip nearly everything to 255


def test_transparent_pixels_become_the_pad_colour(lesion):
    rgba = lesion.convert("RGBA")
    rgba.putalpha(0)
    array = preprocess.preprocess_image(_encode(rgba, "PNG"), 32)
    assert array.max() == 0


@pytest.mark.parametrize("orientation,transpose", [(6, Image.Transpose.ROTATE_90), (3, Image.Transpose.ROTATE_180),
                                                  (8, Image.Transpose.ROTATE_270), (2, Image.Transpose.FLIP_LEFT_RIGHT)])
def test_exif_orientation_is_applied(lesion, orientation, transpose):
    # store the pixels turned the other way and let the EXIF tag turn them back
    stored = lesion.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    encoded = _encode(stored, "JPEG", quality=95, exif=exif)
    array = preprocess.preprocess_image(encoded, 64)
    upright = preprocess.preprocess_image(_encode(lesion, "JPEG", quality=95), 64)
    assert np.abs(array.astype(int) - upright).mean() < 4
    assert array[:8].max() == 0  # landscape again: padded top and bottom


def test_large_jpeg_uses_draft_decoding_and_matches_a_full_decode(lesion):
    big = lesion.resize((2048, 1536), Image.Resampling.BICUBIC)
    encoded = _encode(big, "JPEG", quality=92)
    with Image.open(io.BytesIO(encoded)) as probe:
        probe.draft(None, (64, 48))
        assert probe.size == (256, 192)  # the decoder itself scales by 1/8
    drafted = preprocess.preprocess_image(encoded, 64)
    full = preprocess.pad_and_resize(big, 64)
    assert np.abs(drafted.astype(int) - full).mean() < 3


def test_zero_byte_truncated_and_non_image_files(tmp_path):
    empty, truncated, text = tmp_path / "empty.jpg", tmp_path / "truncated.jpg", tmp_path / "notes.jpg"
    empty.write_bytes(b"")
    data = LESION.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text.write_text("this is not an image\n")
    for path, reason in ((empty, "empty file"), (truncated, "truncated or corrupt"), (text, "not an image")):
        with pytest.raises(BadImageError, match=reason) as caught:
            preprocess.preprocess_image(path, 32)
        assert caught.value.file == str(path) and str(path) in str(caught.value)
        assert isinstance(caught.value, DataError)
        with pytest.raises(BadImageError, match=reason):
            preprocess.inspect_image(path)
    with Image.open(LESION) as image:  # the size PIL reads from the untouched file
        expected = image.size
    assert preprocess.inspect_image(LESION) == expected


def _png_bomb(side: int) -> bytes:
    """A valid grayscale PNG of side x side black pixels, streamed so the test never holds it decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_by_header_size():
    bomb = _png_bomb(12000)  # 144 M pixels in ~150 kB
    assert len(bomb) < 1_000_000
    with pytest.warns(Image.DecompressionBombWarning), Image.open(io.BytesIO(bomb)) as probe:
        assert probe.size == (12000, 12000)  # PIL alone would only warn, then decode 144 MB
    with pytest.raises(BadImageError, match=r"12000x12000 = 144000000 pixels exceeds data.max_image_pixels=100000000"):
        preprocess.preprocess_image(bomb, 32)
    with pytest.raises(BadImageError, match="exceeds data.max_image_pixels=1000"):
        preprocess.preprocess_image(LESION, 32, max_pixels=1000)


def test_pils_own_bomb_protection_stays_on():
    # 9500 x 9500 = 90 M pixels: under data.max_image_pixels, over PIL's warning limit
    bomb = _png_bomb(9500)
    with pytest.warns(Image.DecompressionBombWarning):
        assert preprocess.read_dimensions(bomb) == (9500, 9500)
    with pytest.raises(BadImageError, match="exceeds data.max_image_pixels=1000"):
        preprocess.read_dimensions(LESION, max_pixels=1000)
