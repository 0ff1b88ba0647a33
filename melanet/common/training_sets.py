"""The one registry of training sets: key, Table 1 name, what it holds, its folder in a reproduction.

``classifier.training_set`` takes a ``key``; the config validates against ``KEYS`` (an old key in
``aliases``, e.g. ``original``, is read as its entry's key); ``melanet.classifier.training_sets``
builds each set from ``augment_copies`` / ``synthetic``; ``melanet reproduce`` trains one classifier
per entry in ``folder`` (an older results folder's ``legacy_folders`` name, e.g. ``vgg_gap/``, is used
where it exists); the Train page offers ``holds``.

Imports nothing from the rest of ``melanet`` but ``melanet.common.choices``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from melanet.common import choices



@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """One training set of Table 1.

    ``suffix``: what Table 1 appends to the baseline's name (``" + Augment-5x"``); None for a set with a
    name of its own (``own_name``, e.g. MelaNet). ``augment_copies``: offline-augmented copies per
    original (0: none). ``synthetic``: adds the stage-1 run's synthetic malignant lesions (needs
    ``classifier.gan_run``).
    """

    key: str
    holds: str
    folder: str
    suffix: str | None = ""
    own_name: str = ""
    augment_copies: int = 0
    synthetic: bool = False
    aliases: tuple[str, ...] = ()
    legacy_folders: tuple[str, ...] = ()

    def name(self, backbone: str = "vgg16") -> str:
        """Table 1's name of the classifier trained on this set with ``backbone``."""
        return self.own_name if self.suffix is None else baseline_name(backbone) + self.suffix

    def folder_in(self, results: str | Path) -> Path:
        """This set's classifier folder in a reproduce results folder: ``folder``, or an older name
        (``legacy_folders``) where only that one exists."""
        results = Path(results)
        for legacy in self.legacy_folders:
            if (results / legacy).is_dir() and not (results / self.folder).exists():
                return results / legacy
        return results / self.folder


TrainingSetKey = Literal["baseline", "augment5x", "augment10x", "synthetic"]
BASELINE: TrainingSetKey = "baseline"
SYNTHETIC: TrainingSetKey = "synthetic"  # the one that needs classifier.gan_run

REGISTRY: dict[str, TrainingSet] = {entry.key: entry for entry in (
    TrainingSet(BASELINE, "originals only (GAP baseline)", folder="baseline",
                aliases=("original",), legacy_folders=("vgg_gap",)),
    TrainingSet("augment5x", "originals + offline augmentation to 5x (Augment-5x)", folder="augment5x",
                suffix=" + Augment-5x", augment_copies=5),
    TrainingSet("augment10x", "originals + offline augmentation to 10x (Augment-10x)", folder="augment10x",
                suffix=" + Augment-10x", augment_copies=10),
    TrainingSet(SYNTHETIC, "originals + CycleGAN synthetic malignant lesions (MelaNet)", folder="melanet",
                suffix=None, own_name="MelaNet", synthetic=True),
)}
KEYS: tuple[str, ...] = tuple(REGISTRY)
# an old key -> its entry's key ({"original": "baseline"}): configs and run folders written before the rename
ALIASES: dict[str, str] = {alias: entry.key for entry in REGISTRY.values() for alias in entry.aliases}
# every folder name a reproduction's classifier may have, new and old ({"vgg_gap": "baseline", ...})
FOLDER_KEYS: dict[str, str] = {name: entry.key for entry in REGISTRY.values()
                               for name in (entry.folder, *entry.legacy_folders)}


def get(key: str) -> TrainingSet:
    """The entry of ``key`` (or of an old alias); ``ValueError`` naming the known keys otherwise."""
    entry = REGISTRY.get(ALIASES.get(key, key))
    if entry is None:
        raise ValueError(f"unknown training set {key!r}; expected one of {', '.join(KEYS)}")
    return entry


def baseline_name(backbone: str) -> str:
    """What Table 1 calls the GAP classifier trained on originals: ``VGG-GAP`` only where VGG16 ran,
    otherwise e.g. ``GAP baseline (EfficientNet-Lite0)``."""
    if backbone.startswith("vgg16") or backbone not in choices.BACKBONE_DISPLAY:
        return "VGG-GAP"
    return f"GAP baseline ({choices.BACKBONE_DISPLAY[backbone]})"


def method_name(training_set: str, backbone: str = "vgg16") -> str:
    """Table 1's name of a classifier trained on ``training_set`` with ``backbone``; an unknown set's own key."""
    key = ALIASES.get(training_set, training_set)
    return REGISTRY[key].name(backbone) if key in REGISTRY else training_set
