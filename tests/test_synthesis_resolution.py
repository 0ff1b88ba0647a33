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
