"""The audit's pixel probe: hand-made features checked against hand computations and the standard
library's HSV, and the probe telling a checkerboard artefact from clean images but not two draws of one
distribution."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from melanet.audits import synthesis_measures, pixel_features


def _columns(prefix: str) -> list[int]:
    return [index for index, name in enumerate(pixel_features.describe()) if name.startswith(prefix)]


def _skin(generator: np.random.Generator, count: int, size: int = 32) -> np.ndarray:
    """Smooth random skin-coloured images: a colour per image plus low-frequency noise."""
    base = generator.uniform([150, 110, 90], [230, 180, 160], size=(count, 1, 1, 3))
    coarse = generator.normal(0, 12, size=(count, size // 8, size // 8, 3))
    noise = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    return np.clip(base + noise, 1, 254).astype(np.uint8)


def test_a_constant_colour_fills_one_histogram_bin_per_channel_and_has_its_moments():
    image = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    features = pixel_features.image_features(image)
    names = pixel_features.describe()
    assert len(features) == len(names)
    for channel, value in zip("rgb", (200, 100, 50)):
        histogram = features[_columns(f"{channel}_hist_")]
        expected = np.zeros(16)
        expected[int(value / 255 * 16)] = 1.0  # 200 -> bin 12, 100 -> bin 6, 50 -> bin 3
        assert np.array_equal(histogram, expected)
        assert features[names.index(f"{channel}_mean")] == pytest.approx(value / 255)
        assert features[names.index(f"{channel}_std")] == pytest.approx(0.0, abs=1e-12)
    assert features[names.index("laplacian_variance")] == 0.0


def test_hue_saturation_and_value_match_colorsys():
    generator = np.random.default_rng(3)
    pixels = generator.integers(0, 256, size=(500, 3)).astype(np.float64) / 255.0
    pixels[:5] = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [0, 0, 0]]  # primaries, a grey, black
    expected = np.array([colorsys.rgb_to_hsv(*pixel) for pixel in pixels])
    assert np.allclose(pixel_features._hsv(pixels), expected, atol=1e-12)


def test_a_checkerboard_puts_its_power_at_the_diagonal_nyquist_point_and_stripes_at_the_axis_ones():
    names = pixel_features.describe()
    rows, columns = np.indices((16, 16))
    checker = np.where((rows + columns) % 2 == 0, 180, 80).astype(np.uint8)
    stripes = np.where(rows % 2 == 0, 180, 80).astype(np.uint8)  # alternating rows: frequency S/2 along y
    for image, key in ((checker, "nyquist_share_diagonal"), (stripes, "nyquist_share_rows")):
        features = pixel_features.image_features(np.repeat(image[..., None], 3, axis=-1))
        shares = {name: features[names.index(name)] for name in
                  ("nyquist_share_rows", "nyquist_share_columns", "nyquist_share_diagonal")}
        assert shares.pop(key) == pytest.approx(1.0)
        assert all(value == pytest.approx(0.0, abs=1e-12) for value in shares.values())


def test_padding_bars_are_left_out_of_the_colour_features():
    generator = np.random.default_rng(4)
    content = _skin(generator, 1, 32)[0][:20]  # 20 x 32 of skin
    padded = np.zeros((32, 32, 3), dtype=np.uint8)
    padded[6:26] = content  # black bars above and below, as data.resize: pad makes them
    colour = _columns("r_hist_") + _columns("g_hist_") + _columns("b_hist_")
    assert np.allclose(pixel_features.image_features(padded)[colour],
                       pixel_features.image_features(content)[colour])


def test_the_pixel_probe_finds_a_faint_checkerboard_but_not_a_second_draw_of_the_same_images():
    generator = np.random.default_rng(5)
    real = _skin(generator, 40)
    same = _skin(generator, 40)
    rows, columns = np.indices((32, 32))
    pattern = np.where((rows + columns) % 2 == 0, 3, -3)[None, :, :, None]  # +-3 grey levels: invisible by eye
    artefact = np.clip(_skin(generator, 40).astype(np.int64) + pattern, 0, 255).astype(np.uint8)
    ids = [f"r{index}" for index in range(40)]
    groups = [f"s{index}" for index in range(40)]

    def probe(synthetic: np.ndarray) -> float:
        _, summary = synthesis_measures.realism_scores(pixel_features.pixel_features(synthetic),
                                          pixel_features.pixel_features(real), groups, ids, seed=0)
        return summary["auc"]

    assert probe(artefact) > 0.95
    assert 0.25 < probe(same) < 0.75


def test_bad_images_are_refused_with_their_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        pixel_features.image_features(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 3 x 3"):
        pixel_features.image_features(np.zeros((2, 8, 3), dtype=np.uint8))
    progress = []
    features = pixel_features.pixel_features(np.zeros((3, 8, 8, 3), dtype=np.uint8),
                                             progress=lambda done, total, message: progress.append((done, total)))
    assert features.shape == (3, len(pixel_features.describe())) and progress == [(3, 3)]
