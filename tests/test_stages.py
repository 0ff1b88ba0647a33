"""The stage registry (``melanet.runs.stages``) is what the CLI, the job launcher, the config and the Train
page use: every verb exists, every resumable stage resumes through ``jobs``, every choice the registry
lists is the one the config validates and the page offers."""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from melanet.common import choices, training_sets
from melanet import config as config_module
from melanet.runs import jobs, layout, runs, stages
from melanet.cli import build_parser, common

REPOSITORY = Path(__file__).resolve().parents[1]
APP = str(REPOSITORY / "app.py")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("stage", list(stages.STAGES.values()), ids=list(stages.STAGES))
def test_every_stage_is_a_cli_verb_with_the_registry_options(stage: stages.Stage) -> None:
    verbs = _subparsers(build_parser())
    assert stage.verb in verbs, f"no `melanet {stage.verb}`"
    options = _options(verbs[stage.verb])
    assert ("--resume" in options) == stage.resumable
    assert stage.configurable <= ("--config" in options and "--set" in options)
    assert stages.folder_stage_of(stage.name) in stages.STAGES


def test_the_cli_offers_the_registry_choices() -> None:
    explain = _subparsers(build_parser())["explain"]
    method = next(action for action in explain._actions if "--method" in action.option_strings)
    assert tuple(method.choices) == choices.GRADCAM_METHODS


@pytest.mark.parametrize("name", stages.RESUMABLE_STAGES)
def test_every_resumable_stage_resumes_through_jobs(tmp_path: Path, name: str) -> None:
    stage = stages.STAGES[name]
    if not stage.launchable:
        pytest.skip(f"{name} is not launched by the dashboard")
    run = runs.Run.create(tmp_path / "run", config_module.Config(), name)
    run.update_status(state="stopped")
    recorder = tmp_path / "record.py"  # stands for `python -m melanet`: writes its arguments and ends
    recorder.write_text("import json, os, sys\nopen(sys.argv[1] + '.tmp', 'w').write(json.dumps(sys.argv[2:]))\n"
                        "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n")
    seen = tmp_path / "arguments.json"
    jobs.resume(run.path, program=[sys.executable, str(recorder), str(seen)])
    deadline = time.monotonic() + 30
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(seen.read_text()) == [stage.verb, "--resume", str(run.path)]
    assert build_parser().parse_args([stage.verb, "--resume", str(run.path)]).resume == str(run.path)


@pytest.mark.parametrize("name", [name for name in stages.STAGES if not stages.STAGES[name].resumable
                                  and stages.STAGES[name].launchable])
def test_a_stage_that_does_not_resume_is_refused_by_jobs(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="cannot be resumed"):
        jobs.stage_arguments(name, tmp_path, resume=True)


@pytest.mark.parametrize("name", [name for name in stages.RESUMABLE_STAGES if stages.STAGES[name].configurable])
def test_a_resume_may_change_exactly_the_registry_keys(tmp_path: Path, name: str) -> None:
    run = runs.Run.create(tmp_path / "run", config_module.Config(), name)
    allowed = stages.STAGES[name].resume_overridable
    for key in allowed:
        args = argparse.Namespace(config=None, run=None, overrides=[f"{key}=7"])
        config = common.resume_config(args, run, name)
        section, field = key.split(".")
        assert getattr(getattr(config, section), field) == 7
    args = argparse.Namespace(config=None, run=None, overrides=["classifier.batch_size=3"])
    with pytest.raises(config_module.ConfigError, match="keeps its saved config"):
        common.resume_config(args, run, name)


def test_the_config_validates_against_the_registry_literals() -> None:
    hints = typing.get_type_hints(config_module.ClassifierConfig)
    assert typing.get_args(hints["training_set"]) == training_sets.KEYS
    assert typing.get_args(typing.get_type_hints(config_module.ExplainConfig)["method"]) == choices.GRADCAM_METHODS
    for value in training_sets.KEYS:
        assert config_module.load_config(None, [f"classifier.training_set={value}"]).classifier.training_set == value
    with pytest.raises(config_module.ConfigError, match="must be one of baseline, augment5x, augment10x, synthetic"):
        config_module.load_config(None, ["classifier.training_set=augment20x"])
    with pytest.raises(config_module.ConfigError, match="must be one of gradcam, gradcam\\+\\+, scorecam"):
        config_module.load_config(None, ["explain.method=lime"])


def test_an_old_config_with_explain_which_still_loads() -> None:
    loaded = config_module.from_dict({"explain": {"which": "fn,fp"}})
    assert loaded.explain.outcomes == "fn,fp"
    assert "which" not in config_module.dump_yaml(loaded)
    shipped = config_module.load_config(REPOSITORY / "models" / "demo" / "melanet" / layout.CONFIG_FILE)
    assert shipped.explain.outcomes == "all"


def test_the_train_page_offers_exactly_the_registry_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MELANET_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MELANET_RUNS_DIR", str(tmp_path / "runs"))
    classifier = runs.Run.create(tmp_path / "runs" / "classifier", config_module.Config(), "train-classifier")
    classifier.update_status(state="done")
    classifier.files.model.write_bytes(b"a model")  # the form lists runs that hold a model file
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page("pages/train.py")
    app.run()
    assert not app.exception, [item.value for item in app.exception]
    offered = app.radio(key="classifier_training_set").options
    assert offered == [training_sets.REGISTRY[name].holds for name in training_sets.KEYS]
    steps = app.radio(key="evaluation_stage").options
    assert steps == [stages.STAGES[name].summary for name in stages.STEP_STATUS_KEYS
                     if stages.STAGES[name].launchable]
    assert len(set(steps)) == len(steps) >= 3


@pytest.mark.parametrize("status, shown, resumable", [
    ({"stage": "train-gan", "state": "stopped", "alive": False}, "stopped", True),
    ({"stage": "train-gan", "state": "running", "alive": False, "interrupted": True}, "interrupted", True),
    ({"stage": "train-gan", "state": "running", "alive": True}, "running", False),
    ({"stage": "train-gan", "state": "done", "alive": False}, "done", False),
    ({"stage": "synthesize", "state": "failed", "alive": False}, "failed", False),  # start it again instead
    ({"stage": "train-classifier", "state": "done", "alive": True, "launching": True}, "starting", False),
    ({"stage": "train-classifier", "state": "done", "alive": False, "job_stage": "evaluate",
      "evaluation": {"state": "failed"}}, "failed", False),  # a step's own state, never a resume of training
])
def test_the_dashboard_reads_state_and_resume_from_jobs(status: dict, shown: str, resumable: bool) -> None:
    assert jobs.display_state(status) == shown
    assert jobs.can_resume(status) == resumable


def test_one_linked_gan_run_lookup_for_embed_and_the_dashboard(tmp_path: Path) -> None:
    results = tmp_path / "moved" / "results"  # a reproduce folder moved after training
    gan = runs.Run.create(results / layout.REPRODUCE_GAN_FOLDER, config_module.Config(), "train-gan")
    gan.files.synthetic_manifest.parent.mkdir(parents=True)
    gan.files.synthetic_manifest.write_text("synthetic_id,source_id,path,reconstruction_path\n")
    saved = "/elsewhere/results/gan"  # the absolute path written at training time no longer exists
    classifier = runs.Run.create(results / "melanet", config_module.load_config(
        None, [f"classifier.gan_run={saved}", "classifier.training_set=synthetic"]), "train-classifier")
    assert runs.linked_gan_run(classifier.path) == results / "gan"
    from dashboard import artifacts
    from melanet.explain import embed_stage

    assert artifacts.linked_gan_run(classifier.path) == results / "gan"
    assert embed_stage.resolve_gan_run(saved, classifier.path) == results / "gan"
    plain = runs.Run.create(tmp_path / "plain", config_module.Config(), "train-classifier")
    assert runs.linked_gan_run(plain.path) is None  # names no stage-1 run
