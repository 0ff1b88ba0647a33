"""Configuration: defaults, presets, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from melanet import config

PRESETS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.stem)
def test_every_preset_loads(preset: Path) -> None:
    loaded = config.load_config(preset)
    assert isinstance(loaded, config.Config)


def test_paper_preset_has_the_papers_hyper_parameters() -> None:
    paper = config.load_config(Path(__file__).resolve().parents[1] / "configs" / "paper.yaml")
    assert paper.data.image_size == 256
    assert paper.data.resize == "pad"  # the paper pads to square (its code stretches)
    assert paper.gan.epochs == 500
    assert (paper.gan.generator_filters, paper.gan.generator_levels) == (32, 4)
    assert paper.gan.discriminator_filters == 64
    assert (paper.gan.learning_rate, paper.gan.beta_1, paper.gan.batch_size) == (2e-4, 0.5, 1)
    assert paper.gan.cycle_weight == 10.0
    assert paper.classifier.backbone == "vgg16" and paper.classifier.weights == "imagenet"
    assert (paper.classifier.focal_alpha, paper.classifier.focal_gamma) == (0.25, 2.0)
    assert (paper.classifier.optimizer, paper.classifier.learning_rate) == ("adadelta", 1e-3)
    assert paper.classifier.batch_size == 16


def test_overrides_apply_in_order_and_coerce_types(tmp_path: Path) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text("seed: 7\ngan:\n  epochs: 3\n")
    loaded = config.load_config(preset, ["gan.epochs=5", "data.image_size=64", "gan.flip=false", "seed=9"])
    assert loaded.gan.epochs == 5
    assert loaded.data.image_size == 64
    assert loaded.gan.flip is False
    assert loaded.seed == 9
    assert loaded.gan.learning_rate == config.GanConfig().learning_rate


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["gan.bogus=1"], "unknown key 'gan.bogus'"),
        (["nosection.key=1"], "unknown key 'nosection'"),
        (["gan.epochs=two"], "'gan.epochs' expects an integer"),
        (["gan.epochs=2.5"], "'gan.epochs' expects an integer"),
        (["classifier.training_set=augment3x"], "must be one of baseline, augment5x, augment10x, synthetic"),
        (["gan.epochs"], "expected section.key=value"),
        (["gan.epochs=0"], "'gan.epochs' must be >= 1"),
        (["data.resize=squash"], "'data.resize' must be one of pad, stretch, crop"),
        (["data.image_size=32", "gan.generator_levels=6"], "gan.generator_levels"),
    ],
)
def test_bad_overrides_name_the_key(overrides: list[str], fragment: str) -> None:
    with pytest.raises(config.ConfigError, match=None) as caught:
        config.load_config(None, overrides)
    assert fragment in str(caught.value)


def test_unknown_key_in_yaml_names_file_and_key(tmp_path: Path) -> None:
    preset = tmp_path / "bad.yaml"
    preset.write_text("classifier:\n  epochs: 2\n  learning_rat: 0.1\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load_config(preset)
    assert str(preset) in str(caught.value)
    assert "classifier.learning_rat" in str(caught.value)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    preset = tmp_path / "broken.yaml"
    preset.write_text("gan:\n  epochs: 3\n bad indent: [\n")
    with pytest.raises(config.ConfigError, match=r"broken\.yaml: line \d+"):
        config.load_config(preset)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="cannot read config file"):
        config.load_config(tmp_path / "absent.yaml")


def test_round_trip_through_yaml_is_identity(tmp_path: Path) -> None:
    original = config.load_config(None, ["gan.epochs=7", "classifier.gan_run=runs/x", "classifier.focal_gamma=1.5",
                                         "seed=9", "data.root=dir with spaces/x"])
    saved = tmp_path / "config.yaml"
    saved.write_text(config.dump_yaml(original), encoding="utf-8")
    assert "focal_gamma: 1.5" in saved.read_text()
    assert config.load_config(saved) == original
    assert config.from_dict(config.read_yaml(saved)) == original


def test_default_monitor_is_a_validation_metric() -> None:
    # best weights, learning-rate plateaus and early stopping must never look at training metrics
    assert config.Config().classifier.monitor == "val_auc"
    for preset in PRESETS:
        assert config.load_config(preset).classifier.monitor.startswith("val_"), preset.name
    with pytest.raises(config.ConfigError, match="classifier.monitor"):
        config.load_config(None, ["classifier.monitor=auc"])


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    preset = tmp_path / "latin1.yaml"
    preset.write_bytes("data:\n  root: /données/isic\n".encode("latin-1"))
    with pytest.raises(config.ConfigError, match=r"latin1\.yaml: not a UTF-8"):
        config.load_config(preset)


@pytest.mark.parametrize(("override", "key"), [
    ("gan.learning_rate=nan", "gan.learning_rate"), ("gan.learning_rate=.inf", "gan.learning_rate"),
    ("gan.learning_rate=-0.1", "gan.learning_rate"), ("gan.learning_rate=0", "gan.learning_rate"),
    ("classifier.learning_rate=.nan", "classifier.learning_rate"), ("classifier.focal_gamma=-1", "focal_gamma"),
    ("gan.cycle_weight=-10", "gan.cycle_weight"), ("gan.identity_weight=nan", "gan.identity_weight"),
    ("evaluation.threshold=nan", "evaluation.threshold"), ("classifier.reduce_lr_factor=0", "reduce_lr_factor"),
    ("evaluation.bootstrap_samples=0", "bootstrap_samples"), ("data.image_size=17", "data.image_size"),
    ("data.image_size=40", "divisible by 2\\*\\*gan.generator_levels = 16"),
])
def test_non_finite_negative_and_indivisible_numbers_are_refused(override: str, key: str) -> None:
    with pytest.raises(config.ConfigError, match=key):
        config.load_config(None, [override])


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.0])
def test_focal_gamma_from_the_config_reaches_the_compiled_loss(gamma: float) -> None:
    import math

    import numpy as np

    from melanet.classifier import train

    chosen = config.load_config(None, ["data.image_size=32", "classifier.backbone=vgg16-narrow",
                                       "classifier.width=0.0625", "classifier.weights=none",
                                       f"classifier.focal_gamma={gamma}", "classifier.focal_alpha=0.25"])
    model = train.build_compiled_model(chosen)
    softmax = np.array([[0.2, 0.8], [0.7, 0.3]], dtype=np.float32)  # malignant p = 0.8 (label 1), 0.3 (label 0)
    per_example = np.asarray(model.loss(np.array([1, 0]), softmax))
    expected = [-0.25 * 0.2**gamma * math.log(0.8), -0.75 * 0.3**gamma * math.log(0.7)]
    assert float(np.mean(per_example)) == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        config.Config().seed = 3  # type: ignore[misc]


def test_a_saved_run_config_without_a_later_key_keeps_the_behaviour_it_was_trained_with(tmp_path):
    """An older run folder (the shipped demo's GAN) has no gan.mask_padding: it trained without masks,
    so reading it back must not report (or resume with) today's default of masks on."""
    from melanet.runs import runs

    run_dir = tmp_path / "old-gan"
    run_dir.mkdir()
    saved = config.to_dict(config.load_config("configs/smoke.yaml"))
    del saved["gan"]["mask_padding"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    assert config.Config().gan.mask_padding is True  # today's default differs from the old behaviour
    assert runs.Run(run_dir).config().gan.mask_padding is False
    saved["gan"]["mask_padding"] = True  # a file that says so keeps its value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    assert runs.Run(run_dir).config().gan.mask_padding is True
