"""Lesion-only synthesis (``gan.composite: lesion``): the weights cover the lesion and not the skin, a dark
vignette corner or the padding; the blend keeps the source's pixels outside; a failed mask keeps the whole
translation and the manifest says so; the option is refused when misspelt."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from melanet import config as config_module
from melanet.cli import main
from melanet.gan import composite, synthesis

SIZE = 64
SKIN = (205, 165, 145)
LESION = (70, 45, 35)


def _lesion_image(radius: int = 10, vignette: bool = True, bars: int = 8) -> np.ndarray:
    """Skin with a dark disk at the centre, a dark vignette in the top-left corner and black bars
    above and below (``data.resize: pad``)."""
    rows, columns = np.indices((SIZE, SIZE))
    image = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    image[:] = SKIN
    image[np.hypot(rows - SIZE / 2, columns - SIZE / 2) <= radius] = LESION
    if vignette:
        image[(rows < bars + 6) & (columns < 6)] = LESION
    image[:bars] = 0
    image[SIZE - bars:] = 0
    return image


def test_the_weights_cover_the_lesion_and_its_margin_only():
    image = _lesion_image()
    weights, failed = composite.lesion_weights(image)
    assert not failed and weights.shape == (SIZE, SIZE) and weights.dtype == np.float32
    rows, columns = np.indices((SIZE, SIZE))
    distance = np.hypot(rows - SIZE / 2, columns - SIZE / 2)
    assert np.all(weights[distance <= 10] == 1.0)  # the lesion itself is wholly generated
    margin, sigma = composite.MARGIN * SIZE, composite.FEATHER * SIZE
    far = distance > 10 + margin + 4 * sigma + 1
    assert weights[far & (image.max(axis=-1) > 0)].max() < 1e-3  # the skin stays the source's
    assert np.all(weights[:8] == 0) and np.all(weights[SIZE - 8:] == 0)  # padding bars
    assert weights[8:14, :6].max() < 1e-3  # the dark corner is not central: not a lesion
    assert 0.0 <= weights.min() and weights.max() <= 1.0


def test_a_failed_mask_keeps_the_whole_translation():
    flat = np.full((SIZE, SIZE, 3), SKIN, dtype=np.uint8)  # no lesion: Otsu has nothing to separate
    flat[:4] = 0
    weights, failed = composite.lesion_weights(flat)
    assert failed
    assert np.array_equal(weights, (flat.max(axis=-1) > 0).astype(np.float32))


def test_the_blend_is_the_weighted_mean_pixel_by_pixel():
    generated = np.full((1, 2, 2, 3), 1.0, dtype=np.float32)
    source = np.full((1, 2, 2, 3), -1.0, dtype=np.float32)
    weights = np.array([[[1.0, 0.0], [0.25, 0.5]]], dtype=np.float32)
    blended = composite.blend(generated, source, weights)
    # by hand: w * 1 + (1 - w) * (-1) = 2w - 1
    assert np.allclose(blended[0, ..., 0], [[1.0, -1.0], [-0.5, 0.0]])
    assert np.allclose(blended[..., 0], blended[..., 2])


def test_translate_batch_takes_the_lesion_from_the_generator_and_the_rest_from_the_source():
    images = np.stack([_lesion_image(), _lesion_image(radius=14, vignette=False)])

    def negate(inputs, training=False):  # a stand-in generator: every pixel visibly changed
        return -np.asarray(inputs)

    plain = config_module.GanConfig(mask_padding=True)
    lesion = config_module.GanConfig(mask_padding=True, composite="lesion")
    inputs = images.astype(np.float32) / 127.5 - 1.0
    whole, _ = synthesis.translate_batch(negate, negate, images, plain)
    bars = images.max(axis=-1) == 0
    assert np.allclose(whole[~bars], -inputs[~bars]) and np.allclose(whole[bars], inputs[bars])

    translated, reconstructed = synthesis.translate_batch(negate, negate, images, lesion)
    for index, image in enumerate(images):
        weights, _ = composite.lesion_weights(image)
        outside, inside = weights == 0, weights == 1
        assert np.array_equal(translated[index][outside], inputs[index][outside])  # the source's own skin
        assert np.allclose(translated[index][inside], -inputs[index][inside])
        # reconstructed from the blend b = (1 - 2w) x and blended again: w * (-b) + (1 - w) x = (2w^2 - 2w + 1) x,
        # the source itself where w is 0 or 1
        w = weights[..., None]
        assert np.allclose(reconstructed[index], (2 * w ** 2 - 2 * w + 1) * inputs[index], atol=1e-6)


def test_composite_is_a_checked_choice():
    with pytest.raises(config_module.ConfigError, match="gan.composite"):
        config_module.load_config("configs/demo.yaml", ["gan.composite=lesions"])
    assert config_module.load_config("configs/paper.yaml").gan.composite == "none"


@pytest.mark.slow
def test_synthesize_with_the_composite_writes_the_source_skin_and_says_so(tmp_path, tiny_isic):
    from PIL import Image

    from melanet.runs import runs
    from melanet.data import splits

    run_dir = tmp_path / "gan"
    assert main(["-q", "train-gan", "--config", "configs/smoke.yaml", "--run", str(run_dir),
                 "--set", f"data.root={tiny_isic}", "--set", "gan.epochs=1", "--set", "gan.batch_size=2",
                 "--set", "gan.composite=lesion"]) == 0
    assert main(["-q", "synthesize", "--run", str(run_dir)]) == 0
    with (run_dir / synthesis.MANIFEST_FILE).open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    config = runs.Run(run_dir).config()
    training_part, _ = splits.training_and_validation(config.data, config.seed)
    checked = 0
    for row in rows:
        source = training_part.images[training_part.ids.index(row["source_id"])]
        weights, failed = composite.lesion_weights(source)
        assert row["composite"] == (composite.WHOLE_MASK_FAILED if failed else composite.LESION)
        written = np.asarray(Image.open(run_dir / row["path"]).convert("RGB"))
        if not failed:
            outside = weights == 0
            # the skin is the source's, up to the [-1, 1] round trip of uint8 values
            assert np.abs(written[outside].astype(int) - source[outside].astype(int)).max() <= 1
            checked += 1
    assert checked > 0
    assert runs.Run(run_dir).status()["composite_mask_failures"] == sum(
        row["composite"] == composite.WHOLE_MASK_FAILED for row in rows)


# -- the feathered margin: a soft ring of the documented width ---------------------------------------

FEATHER_SIDE = 200
LESION_RADIUS = 40
MARGIN_PIXELS = 0.04 * FEATHER_SIDE  # the mask grows by 4 % of the side: 8 px
SIGMA_PIXELS = 0.02 * FEATHER_SIDE  # and is softened by a Gaussian of sigma 2 % of the side: 4 px
BAR = 20


def _disc_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (200, 200, 3) uint8: skin, a dark disc of radius 40 at the centre, black bars of 20 rows
    above and below; the disc (H, W) bool; each pixel's distance to the centre)."""
    rows, columns = np.indices((FEATHER_SIDE, FEATHER_SIDE))
    distance = np.hypot(rows - FEATHER_SIDE // 2, columns - FEATHER_SIDE // 2)
    disc = distance <= LESION_RADIUS
    image = np.empty((FEATHER_SIDE, FEATHER_SIDE, 3), dtype=np.uint8)
    image[:] = SKIN
    image[disc] = LESION
    image[:BAR] = 0
    image[FEATHER_SIDE - BAR:] = 0
    return image, disc, distance


def _gaussian_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """A slow separable Gaussian blur: kernel exp(-x^2 / 2 sigma^2) out to 4 sigma, normalised, the edge
    rows and columns repeated beyond the border."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-offsets**2 / (2 * sigma**2))
    kernel /= kernel.sum()
    out = values.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if index == axis else (0, 0) for index in range(2)], mode="edge")
        length = out.shape[axis]
        out = sum(weight * np.take(padded, np.arange(shift, shift + length), axis=axis)
                  for shift, weight in enumerate(kernel))
    return out


def test_the_margin_is_a_soft_ring_of_the_documented_width():
    from scipy import ndimage, stats

    image, disc, distance = _disc_image()
    weights, failed = composite.lesion_weights(image)
    assert not failed
    # the expected weights, built here: the disc grown by every pixel within 8 px of it (Euclidean distance
    # transform), blurred with sigma 4 px, 1 on the lesion itself, 0 on the bars
    grown = ndimage.distance_transform_edt(~disc) <= MARGIN_PIXELS
    expected = np.where(disc, 1.0, np.clip(_gaussian_blur(grown, SIGMA_PIXELS), 0, 1))
    expected[:BAR] = expected[FEATHER_SIDE - BAR:] = 0
    np.testing.assert_allclose(weights, expected, atol=1e-6)

    # the ring against the analytic profile of a blurred disc of radius R = 40 + 8: the chance that a point
    # drawn from N(d, sigma^2 I) falls inside it, a non-central chi-square with 2 degrees of freedom
    edge = LESION_RADIUS + MARGIN_PIXELS
    outside = ~disc & (image.max(axis=-1) > 0)
    analytic = stats.ncx2.cdf((edge / SIGMA_PIXELS) ** 2, 2, (distance / SIGMA_PIXELS) ** 2)
    ring = outside & (distance <= edge + 4 * SIGMA_PIXELS)
    assert np.abs(weights[ring] - analytic[ring]).max() < 0.05  # what is left is the pixel grid's staircase
    # strictly between 0 and 1 over the band edge +- 1.5 sigma, and still partly soft 2 sigma out
    band = outside & (np.abs(distance - edge) <= 1.5 * SIGMA_PIXELS)
    assert 0.03 < weights[band].min() and weights[band].max() < 0.97
    soft = outside & (weights > 0.01) & (weights < 0.99)
    assert distance[soft].min() < edge - 1.5 * SIGMA_PIXELS  # the band starts inside the margin...
    assert edge + 2 * SIGMA_PIXELS < distance[soft].max() < edge + 2.6 * SIGMA_PIXELS  # ...ends 2.33 sigma out
    assert weights[outside & (distance > edge + 4 * SIGMA_PIXELS)].max() < 1e-4
    # falls off monotonically along a ray from the lesion outwards
    ray = weights[FEATHER_SIDE // 2, FEATHER_SIDE // 2 + LESION_RADIUS:]
    assert np.all(np.diff(ray) <= 1e-7) and ray[0] == 1.0
