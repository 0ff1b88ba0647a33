"""One registry of training sets (``melanet.common.training_sets``), and the old names that keep loading.

The baseline's key is ``baseline`` and its reproduction folder ``baseline/``; configs that say
``original`` and results folders with ``vgg_gap/`` (the shipped demo) still load.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.common import training_sets
from melanet.evaluation import compare
from melanet.reproduce import reproduction

REPOSITORY = Path(__file__).resolve().parents[1]
DEMO = REPOSITORY / "models" / "demo"


def test_an_old_config_that_says_original_loads_as_the_baseline(tmp_path: Path) -> None:
    shipped = config_module.load_config(DEMO / "vgg_gap" / "config.yaml")
    assert shipped.classifier.training_set == "baseline"
    assert config_module.load_config(REPOSITORY / "configs" / "smoke.yaml",
                                     ["classifier.training_set=original"]).classifier.training_set == "baseline"
    with pytest.raises(config_module.ConfigError, match="classifier.training_set"):
        config_module.load_config(REPOSITORY / "configs" / "smoke.yaml", ["classifier.training_set=vgg"])


def test_table_1_names_come_from_the_registry() -> None:
    assert [training_sets.method_name(key, "vgg16") for key in training_sets.KEYS] == [
        "VGG-GAP", "VGG-GAP + Augment-5x", "VGG-GAP + Augment-10x", "MelaNet"]
    assert training_sets.method_name("original", "efficientnet-lite0") == "GAP baseline (EfficientNet-Lite0)"
    assert training_sets.method_name("augment10x", "efficientnet-lite0") == "GAP baseline (EfficientNet-Lite0) + Augment-10x"
    assert training_sets.get("original") is training_sets.get("baseline")
    with pytest.raises(ValueError, match="baseline, augment5x, augment10x, synthetic"):
        training_sets.get("vgg_gap")


def test_a_new_reproduction_writes_baseline_and_an_old_one_keeps_vgg_gap(tmp_path: Path) -> None:
    fresh = [step.folder.name for step in reproduction.plan(tmp_path / "fresh") if step.verb == "train-classifier"]
    assert fresh == ["baseline", "augment5x", "augment10x", "melanet"]
    old = tmp_path / "old"
    (old / "vgg_gap").mkdir(parents=True)
    steps = [step for step in reproduction.plan(old) if step.verb in ("train-classifier", "evaluate")]
    assert [step.folder.name for step in steps[:4]] == ["vgg_gap", "augment5x", "augment10x", "melanet"]
    assert steps[0].overrides == ("classifier.training_set=baseline",)
    assert [path.name for path in compare.reproduce_folders(DEMO)] == ["vgg_gap", "augment5x", "augment10x", "melanet"]
    assert [path.name for path in compare.expand_runs([DEMO])][:4] == ["vgg_gap", "augment5x", "augment10x", "melanet"]


def test_the_training_set_names_are_spelled_in_one_module() -> None:
    """Outside ``melanet/common/training_sets.py`` no code of the package or the dashboard spells a key,
    an old key or a reproduction folder of a training set as a string literal."""
    names = {name for entry in training_sets.REGISTRY.values()
             for name in (entry.key, entry.folder, *entry.aliases, *entry.legacy_folders)}
    # "synthetic" is also a UMAP tag and the synthetic-image folder, "original" a UMAP panel, "melanet" the
    # package: those three are checked where they name a training set (a comparison with training_set)
    ambiguous = {"synthetic", "original", "melanet"}
    pattern = re.compile(r"""training_set\s*[!=]=\s*["'](%s)["']|["'](%s)["']""" % (
        "|".join(map(re.escape, sorted(names))), "|".join(map(re.escape, sorted(names - ambiguous)))))
    # the Keras model's own name, stored inside every saved model.keras: not a training set
    allowed = {("melanet/classifier/model.py", "vgg_gap")}
    home = REPOSITORY / "melanet" / "common" / "training_sets.py"
    hits = []
    for path in [*(REPOSITORY / "melanet").rglob("*.py"), *(REPOSITORY / "pages").glob("*.py"),
                 *(REPOSITORY / "dashboard").glob("*.py"), REPOSITORY / "app.py"]:
        if path == home:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            found = pattern.search(code)
            if found and (str(path.relative_to(REPOSITORY)), found.group(1) or found.group(2)) not in allowed:
                hits.append(f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}")
    assert not hits, "spell these through melanet.common.training_sets:\n" + "\n".join(hits)
