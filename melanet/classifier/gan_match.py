"""Refuse a MelaNet classifier whose stage-1 run saw its validation images.

A CycleGAN trains on the training part of its own training/validation split. A classifier that
draws a *different* split (another data folder, split seed or validation fraction) validates on
images that GAN may have trained on, and its synthetic images may be translations of them: model
selection then leaks. The classifier must use the split its ``classifier.gan_run`` used.

A cross-validated classifier (``classifier.folds`` > 1) holds out every training image once, so the
CycleGAN has seen (as a training image) some image of every held-out fold whatever its split: only the
data and labels must match. Each fold still drops the synthetic translations of its held-out images
(``melanet.classifier.cross_validation``); the CycleGAN's own knowledge of them is stated in docs/fidelity.md.
"""

from __future__ import annotations

from pathlib import Path

from melanet.common import training_sets
from melanet import config as config_module
from melanet.runs import layout, runs
from melanet.data import splits


def _split_settings(config: config_module.Config, *, folds: bool = False) -> dict[str, object]:
    """What decides the training/validation split of a run (with ``folds``: only which images and labels
    there are, since a cross-validated classifier holds out every training image once and the stage-1 run
    trained on the training images whichever its split was)."""
    if folds:
        return {"data.root": str(Path(config.data.root).expanduser().resolve()),
                "data.malignant_classes": config.data.malignant_classes}
    return {
        "data.root": str(Path(config.data.root).expanduser().resolve()),
        "split seed": splits.split_seed(config.data, config.seed),
        "data.val_fraction": config.data.val_fraction,
        "data.malignant_classes": config.data.malignant_classes,
    }


def check(config: config_module.Config) -> None:
    """Raise ConfigError naming each differing setting when ``config`` trains on synthetic images of a
    stage-1 run whose split differs, or (one line naming the file) when that run's config cannot be
    read: a split that cannot be checked is never passed silently. Other training sets pass."""
    if config.classifier.training_set != training_sets.SYNTHETIC or not config.classifier.gan_run:
        return
    gan_path = Path(config.classifier.gan_run)
    try:
        gan_config = runs.Run(gan_path).config()
    except (runs.RunError, config_module.ConfigError, OSError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise config_module.ConfigError(
            f"classifier.gan_run={gan_path}: cannot read the stage-1 run's config ({gan_path / layout.CONFIG_FILE}: "
            f"{detail}), so its training/validation split cannot be checked against this classifier's") from None
    cross_validated = config.classifier.folds > 1
    mine, theirs = _split_settings(config, folds=cross_validated), _split_settings(gan_config, folds=cross_validated)
    differences = [f"{key} {theirs[key]!r} (this classifier: {mine[key]!r})" for key in mine if mine[key] != theirs[key]]
    if differences:
        raise config_module.ConfigError(
            f"classifier.gan_run={gan_path}: that stage-1 run drew its training/validation split with "
            f"{'; '.join(differences)}, so it may have trained on this classifier's validation images; "
            "train the classifier with the same data.root, seed (or data.split_seed) and data.val_fraction, "
            "or train a stage-1 run with this classifier's")
