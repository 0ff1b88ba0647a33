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
