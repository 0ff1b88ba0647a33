"""The stage registry refuses what it does not know (issue 21 item 15).

An unknown stage name must never resolve to a default (``train-classifier`` or any other): a
folder whose ``status.json`` names a stage of a newer or older version is "unknown" until its files
say otherwise, and a verb the registry does not list is refused with the known ones named. The
expected mapping below is written out by hand from the pipeline (stage 1 folders, stage 2 folders).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.runs import jobs, layout, lifecycle, runs, stages

# which folder each stage works on, by hand: steps of stage 1 and stage 2 keep their run's folder
FOLDER_OF = {
    "train-gan": "train-gan",
    "synthesize": "train-gan",
    "audit-synthesis": "train-gan",
    "train-classifier": "train-classifier",
    "compact": "train-classifier",
    "evaluate": "train-classifier",
    "explain": "train-classifier",
    "audit-shortcuts": "train-classifier",
    "embed": "train-classifier",
    "reproduce": "reproduce",
    "reproduce-seeds": "reproduce-seeds",
}
# each step's own entry in its run's status.json, as shipped runs carry them
STATUS_KEY_OF = {"evaluate": "evaluation", "explain": "explain", "embed": "embedding",
                 "audit-shortcuts": "shortcuts", "audit-synthesis": "audit"}
UNKNOWN_NAMES = ["train-classifer", "Train-Classifier", "nonsense", "", "None", "train_gan"]


@pytest.mark.parametrize("name", sorted(FOLDER_OF))
def test_every_stage_maps_to_its_folder(name: str) -> None:
    assert stages.folder_stage_of(name) == FOLDER_OF[name]
    assert stages.get(name).name == name


def test_the_step_status_keys_and_the_folder_groups() -> None:
    for name, key in STATUS_KEY_OF.items():
        assert stages.STEP_STATUS_KEYS[name] == key
        assert stages.get(name).status_key == key
    for name in ("train-gan", "train-classifier", "reproduce", "synthesize", "compact"):
        assert name not in stages.STEP_STATUS_KEYS  # training stages (and these steps) have no entry of their own
    assert set(stages.GAN_STAGES) == {name for name, folder in FOLDER_OF.items() if folder == "train-gan"}
    assert {name for name, folder in FOLDER_OF.items() if folder == "train-classifier"} <= set(stages.CLASSIFIER_STAGES)
    assert not set(stages.GAN_STAGES) & set(stages.CLASSIFIER_STAGES)
    assert {"train-gan", "train-classifier", "reproduce", "reproduce-seeds"} <= set(stages.TRAINING_STAGES)
    assert not {"evaluate", "explain", "embed", "synthesize"} & set(stages.TRAINING_STAGES)


@pytest.mark.parametrize("name", UNKNOWN_NAMES)
def test_an_unknown_stage_name_resolves_to_nothing(name: str) -> None:
    assert stages.folder_stage_of(name) is None
    with pytest.raises(ValueError, match="unknown stage") as caught:
        stages.get(name)
    assert repr(name) in str(caught.value) and "train-gan" in str(caught.value)
    with pytest.raises(ValueError, match="unknown stage"):
        jobs.stage_arguments(name, "somewhere")


def test_a_missing_stage_resolves_to_nothing() -> None:
    assert stages.folder_stage_of(None) is None


def _run_with_stage(path: Path, recorded: str) -> runs.Run:
    run = runs.Run.create(path, config_module.Config(), "train-gan")
    run.update_status(stage=recorded, state="done")
    return run


def test_a_folder_recording_an_unknown_stage_is_judged_by_its_files(tmp_path: Path) -> None:
    bare = _run_with_stage(tmp_path / "bare", "train-gan-v0")
    assert lifecycle.folder_stage(bare) is None
    assert "unknown" in lifecycle.describe_folder(bare)
    # neither stage's folder: both may start on it (nothing of theirs is there to overwrite)
    lifecycle.check_folder(bare, "train-gan")
    lifecycle.check_folder(bare, "train-classifier")

    generators = _run_with_stage(tmp_path / "generators", "train-gan-v0")
    (generators.path / layout.GENERATOR_FILES[0]).parent.mkdir(parents=True, exist_ok=True)
    (generators.path / layout.GENERATOR_FILES[0]).write_bytes(b"weights")
    assert lifecycle.folder_stage(generators) == "train-gan"
    with pytest.raises(lifecycle.ForeignFolderError, match="not a train-classifier run"):
        lifecycle.check_folder(generators, "evaluate")

    model = _run_with_stage(tmp_path / "model", "classifier-v0")
    (model.path / layout.MODEL_FILE).write_bytes(b"weights")
    assert lifecycle.folder_stage(model) == "train-classifier"
    with pytest.raises(lifecycle.ForeignFolderError, match="not a train-gan run"):
        lifecycle.check_folder(model, "synthesize")
    lifecycle.check_folder(model, "evaluate")  # a step on its own stage's folder is let through
    lifecycle.check_folder(generators, "synthesize")

    table = _run_with_stage(tmp_path / "table", "reproduce-v0")
    (table.path / layout.TABLE_MARKDOWN_FILE).write_text("| method | AUC |\n")
    assert lifecycle.folder_stage(table) == "reproduce"


def test_checking_a_folder_for_an_unknown_stage_is_refused(tmp_path: Path) -> None:
    run = runs.Run.create(tmp_path / "run", config_module.Config(), "train-classifier")
    with pytest.raises(ValueError, match="unknown stage 'train-classifer'"):
        lifecycle.check_folder(run, "train-classifer")
    with pytest.raises(ValueError, match="unknown stage"):
        with lifecycle.step_session(run, "evaluation"):  # the status key, not the stage name
            pass
