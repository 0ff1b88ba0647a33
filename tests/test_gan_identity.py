"""``gan.generator: identity``: the arms' floor runs the usual synthesis path and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from melanet.runs import runs
from melanet.cli import main
from melanet.data import splits
from melanet.gan import synthesis


@pytest.mark.slow
@pytest.mark.parametrize("composite", ["lesion", "none"])
def test_the_identity_generator_synthesizes_each_source_unchanged(tmp_path, tiny_isic, composite) -> None:
    run_dir = tmp_path / "identity"
    assert main(["-q", "train-gan", "--config", "configs/smoke.yaml", "--run", str(run_dir),
                 "--set", f"data.root={tiny_isic}", "--set", "gan.generator=identity",
                 "--set", f"gan.composite={composite}"]) == 0
    assert not (run_dir / "history.csv").is_file()  # nothing was trained
    assert main(["-q", "synthesize", "--run", str(run_dir)]) == 0
    config = runs.Run(run_dir).config()
    training, _ = splits.training_and_validation(config.data, config.seed)
    rows = synthesis.read_manifest(run_dir)
    assert len(rows) == int((training.labels == 0).sum()) > 0
    for row in rows:
        source = training.images[training.ids.index(row["source_id"])]
        synthetic = np.asarray(Image.open(run_dir / row["path"]).convert("RGB"))
        # uint8 -> [-1, 1] -> uint8 and the composite's float blend may move a value by one step at most
        assert np.abs(synthetic.astype(int) - source.astype(int)).max() <= 1
        assert row["composite"] in ({"lesion", "whole (mask failed)"} if composite == "lesion" else {"none"})


def test_an_unknown_generator_is_refused_naming_the_key(tmp_path, capsys) -> None:
    assert main(["-q", "train-gan", "--config", "configs/smoke.yaml", "--run", str(tmp_path / "run"),
                 "--set", "gan.generator=mirror"]) == 2
    error = capsys.readouterr().err
    assert "gan.generator" in error and "identity" in error


@pytest.mark.slow
def test_the_arms_picture_shows_the_identity_arms_difference_as_black(tmp_path, tiny_isic) -> None:
    """scripts/gan_arms.py --picture: sources, then per arm its synthetic row and its difference row (x 4)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gan_arms", Path(__file__).resolve().parents[1] / "scripts" / "gan_arms.py")
    gan_arms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gan_arms)
    run_dir = tmp_path / "arms" / "identity" / "seed-1" / "gan"
    assert main(["-q", "train-gan", "--config", "configs/smoke.yaml", "--run", str(run_dir),
                 "--set", f"data.root={tiny_isic}", "--set", "gan.generator=identity"]) == 0
    assert main(["-q", "synthesize", "--run", str(run_dir)]) == 0
    path = gan_arms.picture(tmp_path / "arms", ["identity"], 1, tmp_path / "picture.png", count=3, difference=True)
    grid = np.asarray(Image.open(path).convert("RGB")).astype(int)
    size = 32  # configs/smoke.yaml
    assert grid.shape == (3 * size, 3 * size, 3)  # sources, the identity arm's synthetic row, its difference row
    assert np.abs(grid[size:2 * size] - grid[:size]).max() <= 1
    assert grid[2 * size:].max() <= 4  # |synthetic - source| x 4 of an identity map: black up to one grey level
