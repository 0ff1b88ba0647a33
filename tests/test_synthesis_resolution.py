"""Stage 1 must synthesize at (at least) the classifier's resolution: no upscaled synthetic lesions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import training_sets
from melanet.data.prepare import ImageSet


def gan_run(folder: Path, size: int) -> Path:
    runs.Run.create(folder, config_module.load_config(None, [f"data.image_size={size}"]), "train-gan")
    return folder


def originals(size: int) -> ImageSet:
    return ImageSet(np.zeros((2, size, size, 3), np.uint8), np.array([0, 1]), ["ISIC_1", "ISIC_2"])


def test_a_lower_resolution_gan_is_refused_before_any_image_is_read(tmp_path: Path) -> None:
    gan = gan_run(tmp_path / "gan", 64)  # no synthetic images at all: the check must come first
    with pytest.raises(config_module.ConfigError) as error:
        training_sets.synthetic_images(originals(128), str(gan))
    message = str(error.value)
    assert "64 px" in message and "data.image_size=128" in message and str(gan) in message


def test_the_same_or_a_higher_resolution_passes_the_check(tmp_path: Path) -> None:
    for size in (128, 256):
        training_sets.check_synthesis_resolution(gan_run(tmp_path / f"gan{size}", size), 128)


def _real_images(sample_root: Path, count: int, size: int) -> np.ndarray:
    from conftest import TRAINING_CSV, TRAINING_FOLDER

    from melanet.data import preprocess

    rows = [line.split(",") for line in (sample_root / TRAINING_CSV).read_text().splitlines() if line.strip()]
    return np.stack([preprocess.preprocess_image(sample_root / TRAINING_FOLDER / f"{image_id}.jpg", size)
                     for image_id, _ in rows[:count]])


def test_the_pixel_probe_sees_the_down_and_up_path_only_when_one_side_took_it(sample_root: Path) -> None:
    """Real images at 128 px: half sharp, half down to 64 px and back (as a 64 px GAN's images are read) are told
    apart by the pixel probe; with both halves through the same path, no resolution cue is left."""
    from melanet.audits import pixel_features, separability
    from melanet.gan import resolution

    images = _real_images(sample_root, 160, 128)
    first, second = images[0::2], images[1::2]  # interleaved: the sample's ids run through acquisition eras
    sharp_first, sharp_second = (pixel_features.pixel_features(half) for half in (first, second))
    blurred_first, blurred_second = (pixel_features.pixel_features(resolution.down_and_up(half, 64))
                                     for half in (first, second))
    baseline = separability.held_out_auc(sharp_first, sharp_second, seed=0)["auc"]  # same path: 0.51 when written
    cue = separability.held_out_auc(sharp_first, blurred_second, seed=0)["auc"]  # 0.98 when written
    matched = separability.held_out_auc(blurred_first, blurred_second, seed=0)["auc"]  # 0.47 when written
    assert cue > 0.9, cue
    assert abs(matched - 0.5) < 0.12 and abs(baseline - 0.5) < 0.12, (matched, baseline)


def test_match_resolution_sends_the_real_images_down_and_up_instead_of_refusing(tmp_path: Path) -> None:
    from PIL import Image

    from melanet.runs import layout
    from melanet.gan import resolution

    gan = gan_run(tmp_path / "gan", 64)
    rng = np.random.default_rng(0)
    (gan / layout.SYNTHETIC_IMAGES_FOLDER).mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(gan / "synthetic/images/syn_ISIC_1.png")
    runs.atomic_write_csv(gan / layout.SYNTHETIC_MANIFEST_FILE, [{
        "synthetic_id": "syn_ISIC_1", "source_id": "ISIC_1", "path": "synthetic/images/syn_ISIC_1.png",
        "reconstruction_path": ""}], ("synthetic_id", "source_id", "path", "reconstruction_path"))
    real = ImageSet(rng.integers(0, 255, (2, 128, 128, 3), dtype=np.uint8), np.array([0, 1]), ["ISIC_1", "ISIC_2"])
    with pytest.raises(config_module.ConfigError, match="classifier.match_resolution"):
        training_sets.build_training_set("synthetic", real, seed=0, gan_run=str(gan))
    built = training_sets.build_training_set("synthetic", real, seed=0, gan_run=str(gan), match_resolution=True)
    assert built.ids == ["ISIC_1", "ISIC_2", "syn_ISIC_1"] and list(built.labels) == [0, 1, 1]
    np.testing.assert_array_equal(np.asarray(built.images[:2]), resolution.down_and_up(real.images, 64))
    assert not np.array_equal(np.asarray(built.images[:2]), real.images)  # the path did change them
