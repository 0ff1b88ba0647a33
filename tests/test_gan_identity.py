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
