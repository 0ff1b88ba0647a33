"""A MelaNet classifier is refused when its stage-1 run drew another training/validation split."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.runs import runs
from melanet.classifier import gan_match
from melanet.data import splits

REPOSITORY = Path(__file__).resolve().parents[1]


def gan_run(folder: Path, overrides: list[str]) -> Path:
    runs.Run.create(folder, config_module.load_config(None, overrides), "train-gan")
    return folder


def classifier_config(gan: Path, overrides: list[str]) -> config_module.Config:
    return config_module.load_config(None, ["classifier.training_set=synthetic", f"classifier.gan_run={gan}", *overrides])


@pytest.mark.parametrize(("gan_overrides", "classifier_overrides", "named"), [
    (["seed=42"], ["seed=43"], "split seed 42 (this classifier: 43)"),
    (["data.root=data/sample"], ["data.root=data/other"], "data.root"),
    (["data.val_fraction=0.15"], ["data.val_fraction=0.2"], "data.val_fraction 0.15 (this classifier: 0.2)"),
    (["seed=42"], ["seed=43", "data.split_seed=44"], "split seed 42 (this classifier: 44)"),
])
def test_another_split_is_refused(tmp_path: Path, gan_overrides: list[str], classifier_overrides: list[str],
                                  named: str) -> None:
    gan = gan_run(tmp_path / "gan", gan_overrides)
    with pytest.raises(config_module.ConfigError, match="may have trained on this classifier's validation images") as error:
        gan_match.check(classifier_config(gan, classifier_overrides))
    assert named in str(error.value)


def test_the_same_split_passes_even_with_another_seed(tmp_path: Path) -> None:
    gan = gan_run(tmp_path / "gan", ["seed=42"])
    gan_match.check(classifier_config(gan, ["seed=42"]))
    # another seed for the classifier's weights, the GAN's split kept (reproduce --seeds-scope classifiers)
    kept = classifier_config(gan, ["seed=43", "data.split_seed=42"])
    gan_match.check(kept)
    assert splits.split_seed(kept.data, kept.seed) == 42
    # other training sets do not use the GAN
    gan_match.check(config_module.load_config(None, ["seed=7", f"classifier.gan_run={gan}"]))


def test_train_classifier_refuses_before_touching_the_folder(tmp_path: Path) -> None:
    gan = gan_run(tmp_path / "gan", ["seed=42"])
    run_folder = tmp_path / "melanet"
    result = subprocess.run(
        [sys.executable, "-m", "melanet", "train-classifier", "--run", str(run_folder), "--config",
         str(REPOSITORY / "configs" / "smoke.yaml"), "--set", "seed=43", "--set", "classifier.training_set=synthetic",
         "--set", f"classifier.gan_run={gan}"],
        capture_output=True, text=True, cwd=REPOSITORY)
    assert result.returncode == 2, result.stderr
    assert "split seed 42 (this classifier: 43)" in result.stderr
    assert not run_folder.exists()


@pytest.mark.parametrize("content", [None, "data: [unclosed\n", "data:\n  image_size: many\n"])
def test_a_gan_whose_config_cannot_be_read_is_refused_in_one_line(tmp_path: Path, content: str | None) -> None:
    gan = tmp_path / "gan"
    gan.mkdir()
    if content is not None:
        (gan / "config.yaml").write_text(content)
    with pytest.raises(config_module.ConfigError) as error:
        gan_match.check(classifier_config(gan, []))
    message = str(error.value)
    assert "config.yaml" in message and str(gan) in message and "\n" not in message
