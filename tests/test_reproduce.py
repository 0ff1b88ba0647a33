"""`melanet reproduce` orchestration with real child processes.

The children here are a small stand-in for the melanet CLI (it writes each stage's files in a
moment) so that ordering, skipping finished stages, resuming after a failure and the results
folder's status can be tested in seconds; the slow end-to-end test runs the real stages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import textwrap
from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.reproduce import reproduction
from melanet.runs import runs

REPOSITORY = Path(__file__).resolve().parents[1]

STAND_IN = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, {repository!r})
    from melanet import config as config_module; from melanet.runs import runs

    arguments = [value for value in sys.argv[1:] if value not in ("-q", "-v")]
    verb, options, overrides = arguments[0], {{}}, []
    for flag, value in zip(arguments[1::2], arguments[2::2]):
        if flag == "--set":
            overrides.append(value)
        else:
            options[flag] = value
    folder = Path(options.get("--run") or options["--resume"])
    with open(os.environ["STAND_IN_LOG"], "a") as log:
        log.write(json.dumps({{"verb": verb, "folder": folder.name, "options": options, "sets": overrides}}) + "\\n")
    if verb in ("train-gan", "train-classifier"):
        if "--resume" in options:
            run = runs.Run.open(folder)
        else:
            run = runs.Run.create(folder, config_module.load_config(options["--config"], overrides), verb)
        run.update_status(stage=verb, state="running")
        if os.environ.get("STAND_IN_SLEEP") == verb:  # stands for a long stage: stops like stage_session
            import signal, time
            def stop(signum, frame):
                run.update_status(state="stopped")
                sys.exit(143)
            signal.signal(signal.SIGTERM, stop)
            Path(os.environ["STAND_IN_LOG"] + ".started").write_text("")
            time.sleep(60)
        failure = Path(os.environ["STAND_IN_FAIL"])
        if failure.exists() and failure.read_text() == f"{{verb}} {{folder.name}}":
            failure.unlink()  # fail once, after an epoch's checkpoint
            (folder / "checkpoints" / "epoch-0001").mkdir(parents=True)
            runs.atomic_write_json(folder / "checkpoints" / "latest.json", {{"epoch": 1, "folder": "epoch-0001"}})
            run.update_status(state="failed")
            sys.exit(1)
        name = "generator_benign_to_malignant.keras" if verb == "train-gan" else "model.keras"
        (folder / name).write_bytes(b"weights")
        if verb == "train-classifier":
            (folder / "validation_predictions.csv").write_text(
                "image,label,prob_malignant\\na,0,0.1\\nb,0,0.6\\nc,1,0.4\\nd,1,0.9\\n")
        run.update_status(state="done", progress=1.0)
    elif verb == "synthesize":
        (folder / "synthetic").mkdir(exist_ok=True)
        (folder / "synthetic" / "manifest.csv").write_text("synthetic_id,source_id,path,reconstruction_path\\n")
        runs.Run(folder).update_status(stage="synthesize", state="done")
    elif verb == "audit-synthesis":
        runs.atomic_write_json(folder / "audit" / "audit.json", {{"counts": {{}}}})
        runs.Run(folder).update_status(audit={{"state": "done"}})
    elif verb == "evaluate":
        import numpy as np
        from melanet.evaluation import evaluate
        run = runs.Run.open(folder)
        strength = {{"baseline": 0.2, "augment5x": 0.25, "augment10x": 0.3, "synthetic": 0.4}}
        labels = np.array([0] * 20 + [1] * 10)
        shift = strength[run.config().classifier.training_set]
        probabilities = np.clip(np.linspace(0.05, 0.75, 30) + shift * labels, 0, 1)
        report = evaluate.report_for_predictions(labels, probabilities, run.config().evaluation, 0,
                                                 folder / "validation_predictions.csv")
        runs.atomic_write_json(folder / "metrics.json", report)
        run.update_status(evaluation={{"state": "done"}})
    """
)


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    program = tmp_path / "stand_in_melanet.py"
    program.write_text(STAND_IN.format(repository=str(REPOSITORY)))
    log = tmp_path / "calls.jsonl"
    failure = tmp_path / "fail_once"
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    monkeypatch.setenv("STAND_IN_FAIL", str(failure))
    return {"program": program, "log": log, "failure": failure}


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_plan_order_and_overrides(tmp_path: Path) -> None:
    steps = reproduction.plan(tmp_path)
    assert [step.name for step in steps] == [
        "train-gan", "synthesize", "audit-synthesis",
        "train-classifier baseline", "train-classifier augment5x", "train-classifier augment10x",
        "train-classifier melanet",
        "evaluate baseline", "evaluate augment5x", "evaluate augment10x", "evaluate melanet",
    ]
    melanet_step = steps[6]
    assert melanet_step.overrides == ("classifier.training_set=synthetic",
                                      f"classifier.gan_run={(tmp_path / 'gan').resolve()}")
    arguments = melanet_step.arguments(tmp_path / "config.yaml")
    assert arguments[:3] == ["train-classifier", "--run", str(tmp_path / "melanet")]
    assert steps[2].arguments(tmp_path / "config.yaml") == ["audit-synthesis", "--run", str(tmp_path / "gan")]
    assert steps[7].arguments(tmp_path / "config.yaml") == ["evaluate", "--run", str(tmp_path / "baseline")]


def test_reproduce_runs_every_stage_then_resumes_after_a_failure(tmp_path: Path, stand_in: dict[str, Path]) -> None:
    results = tmp_path / "results"
    config = config_module.load_config(REPOSITORY / "configs" / "smoke.yaml")
    program = [sys.executable, str(stand_in["program"])]
    stand_in["failure"].write_text("train-classifier augment5x")

    with pytest.raises(reproduction.StageFailed, match="train-classifier augment5x failed"):
        reproduction.reproduce(results, config, program=program, child_options=["-q"])
    status = runs.Run(results).status()
    assert status["stage"] == "reproduce" and status["state"] == "failed"
    states = {entry["name"]: entry["state"] for entry in status["stages"]}
    assert states["train-gan"] == states["train-classifier baseline"] == "done"
    assert states["train-classifier augment5x"] == "failed" and states["evaluate baseline"] == "pending"
    assert [call["verb"] for call in calls(stand_in["log"])] == [
        "train-gan", "synthesize", "audit-synthesis", "train-classifier", "train-classifier"]
    assert not (results / "baseline" / "metrics.json").exists()  # the test set waits for all training

    # the same command again continues: finished stages are skipped, the failed one resumes
    stand_in["log"].unlink()
    rows = reproduction.reproduce(results, config, program=program)
    second = calls(stand_in["log"])
    assert [(call["verb"], call["folder"]) for call in second] == [
        ("train-classifier", "augment5x"), ("train-classifier", "augment10x"), ("train-classifier", "melanet"),
        ("evaluate", "baseline"), ("evaluate", "augment5x"), ("evaluate", "augment10x"), ("evaluate", "melanet"),
    ]
    assert second[0]["options"] == {"--resume": str(results / "augment5x")}
    assert f"classifier.gan_run={(results / 'gan').resolve()}" in second[2]["sets"]
    assert runs.Run(results / "melanet").config().classifier.training_set == "synthetic"
    assert [row["method"] for row in rows] == ["VGG-GAP", "VGG-GAP + Augment-5x", "VGG-GAP + Augment-10x", "MelaNet"]
    assert runs.read_json(results / "melanet" / "metrics.json")["operating_point"]["available"]
    assert "| MelaNet |" in (results / "table.md").read_text()
    assert len((results / "table.csv").read_text().splitlines()) == 5
    status = runs.Run(results).status()
    assert status["state"] == "done" and status["progress"] == 1.0
    assert all(entry["state"] == "done" for entry in status["stages"])

    # a third run has nothing left to do but the table
    stand_in["log"].unlink()
    reproduction.reproduce(results, resume=True, program=program)
    assert calls(stand_in["log"]) == []


def test_results_folder_guards(tmp_path: Path) -> None:
    smoke = config_module.load_config(REPOSITORY / "configs" / "smoke.yaml")
    reproduction.prepare_results(tmp_path / "results", smoke, resume=False)
    with pytest.raises(runs.RunError, match="different config"):
        reproduction.prepare_results(tmp_path / "results", config_module.Config(), resume=False)
    run, config = reproduction.prepare_results(tmp_path / "results", None, resume=True)
    assert config == smoke
    runs.Run.create(tmp_path / "classifier", smoke, "train-classifier")
    with pytest.raises(runs.RunError, match="not a 'reproduce' results folder"):
        reproduction.prepare_results(tmp_path / "classifier", smoke, resume=False)
    with pytest.raises(runs.RunError, match="not a 'reproduce' results folder"):
        reproduction.prepare_results(tmp_path / "classifier", None, resume=True)


def test_stop_with_sigterm_to_the_process_group_ends_stopped(tmp_path: Path, stand_in: dict[str, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard's Stop: SIGTERM to the reproduction's process group stops child and parent, resumably."""
    results = tmp_path / "results"
    monkeypatch.setenv("STAND_IN_SLEEP", "train-classifier")
    code = (
        f"import sys; sys.path.insert(0, {str(REPOSITORY)!r})\n"
        "from melanet import config as config_module\nfrom melanet.runs import lifecycle\nfrom melanet.reproduce import reproduction\n"
        f"config = config_module.load_config({str(REPOSITORY / 'configs' / 'smoke.yaml')!r})\n"
        "try:\n"
        f"    reproduction.reproduce({str(results)!r}, config, program=[sys.executable, {str(stand_in['program'])!r}])\n"
        "except lifecycle.StopRequested:\n"
        "    sys.exit(143)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    started = Path(str(stand_in["log"]) + ".started")
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), "the training stand-in never started"
    os.killpg(parent.pid, signal.SIGTERM)
    assert parent.wait(timeout=30) == 143
    status = runs.Run(results).status()
    assert status["state"] == "stopped"
    states = {entry["name"]: entry["state"] for entry in status["stages"]}
    assert states["synthesize"] == "done" and states["train-classifier baseline"] == "stopped"
    assert runs.Run(results / "baseline").status()["state"] == "stopped"
    assert not runs.Run(results).is_locked()


def test_an_evaluated_classifier_shared_without_weights_is_not_retrained(tmp_path: Path) -> None:
    folder = tmp_path / "augment5x"
    run = runs.Run.create(folder, config_module.Config(), "train-classifier")
    train = reproduction.ChildStage("train-classifier augment5x", "train-classifier", folder, configurable=True)
    evaluate = reproduction.ChildStage("evaluate augment5x", "evaluate", folder)
    assert not train.is_done()  # pending, nothing trained yet
    run.update_status(state="done", evaluation={"state": "done"})
    run.write_json(runs.METRICS_FILE, {"auc": 0.7})
    assert train.is_done() and evaluate.is_done()  # weights dropped after evaluation (shipped demo)
    (folder / "model.trained.npz").write_bytes(b"newer model")
    os.utime(folder / runs.METRICS_FILE, (1, 1))
    assert train.is_done() and not evaluate.is_done()  # a model newer than its metrics is re-evaluated


def test_the_gan_a_reproduction_names_is_relative_to_the_working_directory_when_inside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shipped results folder built from the repository root names its GAN ``models/demo/gan``, the same
    on every clone; a GAN outside the working directory keeps its absolute path."""
    monkeypatch.chdir(tmp_path)
    assert reproduction.portable_path(Path("models/demo/gan")) == "models/demo/gan"
    assert reproduction.portable_path(tmp_path / "runs" / "gan") == "runs/gan"
    outside = tmp_path.parent / "elsewhere" / "gan"
    assert reproduction.portable_path(outside) == str(outside.resolve())
