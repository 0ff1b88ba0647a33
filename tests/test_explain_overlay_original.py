"""Heat maps drawn over the original image in its own framing: the map lands on the original's pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from melanet.data import preprocess
from melanet.explain import overlay

SIZE = 64


def _original_with_red_patch(path: Path, width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A grey (height, width) PNG on disk with a pure red patch at box = (left, top, right, bottom)."""
    pixels = np.full((height, width, 3), 120, dtype=np.uint8)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = (255, 0, 0)
    Image.fromarray(pixels).save(path)
    return pixels


def _red(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)


@pytest.mark.parametrize("resize_mode", ["pad", "stretch", "crop"])
@pytest.mark.parametrize("width, height", [(200, 120), (90, 160)])
def test_hot_spot_over_the_model_square_lands_on_the_same_spot_of_the_original(
        tmp_path: Path, resize_mode: str, width: int, height: int) -> None:
    # a patch inside the centred square, so that crop keeps it too
    side = min(width, height)
    left, top = (width - side) // 2 + side // 4, (height - side) // 2 + side // 2
    box = (left, top, left + side // 5, top + side // 5)
    original = _original_with_red_patch(tmp_path / "lesion.png", width, height, box)
    # the hand-made CAM: hot exactly where the preprocessed square (the real pipeline) shows the red patch
    square = preprocess.preprocess_image(tmp_path / "lesion.png", SIZE, resize=resize_mode)
    cam = _red(square).astype(np.float32)
    assert cam.sum() > 4
    values, covered = overlay.map_on_original(cam, width, height, SIZE, resize_mode)
    assert values.shape == (height, width)
    hot = values > 0.5
    patch = _red(original)
    # the hot area is the patch, give or take the resampling at its border
    intersection = (hot & patch).sum() / (hot | patch).sum()
    assert intersection > 0.6, intersection
    rows, columns = np.nonzero(hot)
    assert abs(rows.mean() - (box[1] + box[3] - 1) / 2) < 2 and abs(columns.mean() - (box[0] + box[2] - 1) / 2) < 2
    if resize_mode == "crop":
        # the margins the crop cut off were never seen by the model: not covered, not tinted
        assert covered.sum() == side * side
        blended = overlay.heatmap_on_original(original, cam, resize_mode, SIZE, opacity=0.7)
        np.testing.assert_array_equal(blended[~covered], original[~covered])
    else:
        assert covered.all()


def test_padding_bars_of_a_coarse_map_are_dropped(tmp_path: Path) -> None:
    # 8x8 CAM over a 64 px square of a 2:1 original: pad puts the image in rows 16..47, i.e. map rows 2..5;
    # a map hot only on the top bar (rows 0-1) must leave nothing hot on the original
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[:2] = 1.0
    values, _ = overlay.map_on_original(cam, 200, 100, SIZE, "pad")
    assert values.max() < 0.5
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[2:6, 0:4] = 1.0  # the left half of the image's own rows
    values, _ = overlay.map_on_original(cam, 200, 100, SIZE, "pad")
    # bilinear interpolation between cell centres puts the very first and last rows of the original half-way
    # between the bar's 0 and the image's 1 (a cell's edge), so the rows a few pixels in are the ones to check
    assert values[4:-4, :90].min() > 0.5 and values[:, 110:].max() < 0.5
    assert values[:, :90].mean() > 0.8


def test_heatmap_on_original_keeps_the_original_size_and_checks_its_input() -> None:
    original = np.full((30, 50, 3), 100, dtype=np.uint8)
    cam = np.zeros((4, 4), dtype=np.float32)
    assert overlay.heatmap_on_original(original, cam, "pad", 32).shape == (30, 50, 3)
    assert np.array_equal(overlay.heatmap_on_original(original, cam, "pad", 32, opacity=0.0), original)
    with pytest.raises(ValueError, match="resize_mode"):
        overlay.heatmap_on_original(original, cam, "squash", 32)
    with pytest.raises(ValueError, match="opacity"):
        overlay.heatmap_on_original(original, cam, "pad", 32, opacity=2.0)
    with pytest.raises(ValueError, match="uint8"):
        overlay.heatmap_on_original(original.astype(np.float32), cam, "pad", 32)


def test_load_original_is_upright_and_downscaled(tmp_path: Path) -> None:
    pixels = np.zeros((300, 500, 3), dtype=np.uint8)
    pixels[:, :250] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = overlay.load_original(tmp_path / "rotated.jpg", max_side=200)
    assert loaded.shape == (200, 120, 3)
    # after the EXIF rotation the white left half is on top
    assert loaded[:80].mean() > 200 and loaded[120:].mean() < 50


def test_colour_scale_runs_low_to_high() -> None:
    bar = overlay.colour_scale(width=100, height=5, labels=False)
    assert bar.shape == (5, 100, 3)
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]  # blue on the left, red on the right
    assert overlay.colour_scale(width=300).shape[0] > 14
