"""melanet.runs.jobs: real child processes, real run folders, real signals.

Most tests launch a tiny stage program (written to tmp_path) that goes through the same lifecycle as
the real stages (``melanet.runs.lifecycle.stage_session`` + ``EpochReporter``) but sleeps instead of
training, so stop/resume/busy behaviour is tested in about a second. The last test launches the real
``melanet train-gan`` with the smoke preset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.runs import jobs, runs

REPO = Path(__file__).resolve().parents[1]

FAKE_STAGE = textwrap.dedent(
    """
    import argparse, sys, time
    from melanet import config; from melanet.runs import lifecycle, runs

    parser = argparse.ArgumentParser()
    parser.add_argument("stage")
    parser.add_argument("--run")
    parser.add_argument("--resume")
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    run = runs.Run(args.resume or args.run)
    if args.resume:
        cfg = run.config()
    else:
        cfg = config.load_config(args.config, args.set)
        run = runs.Run.create(run.path, cfg, args.stage)
    epochs = cfg.gan.epochs
    print("fake stage starting", flush=True)
    try:
        with lifecycle.stage_session(run, args.stage):
            done = int(run.read_json("done.json")["epoch"]) if run.file("done.json").exists() else 0
            run.truncate_history(done)
            reporter = lifecycle.EpochReporter(run, epochs, 2, first_epoch=done + 1, min_interval_seconds=0)
            for epoch in range(done + 1, epochs + 1):
                reporter.start_epoch(epoch)
                time.sleep(0.15)
                reporter.end_epoch(epoch, {"cycle": 1.0 / epoch})
                run.write_json("done.json", {"epoch": epoch})
    except lifecycle.StopRequested:
        print("stopped", flush=True)
        sys.exit(0)
    print("fake stage done", flush=True)
    """
)


@pytest.fixture()
def fake_program(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_stage.py"
    script.write_text(FAKE_STAGE)
    return [sys.executable, str(script)]


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def finished(run_dir: Path) -> bool:
    status = jobs.read_status(run_dir)
    return status.get("state") in ("done", "failed", "stopped") and not status["alive"]


def test_stage_arguments_match_the_cli_conventions() -> None:
    assert jobs.stage_arguments("train-gan", "runs/a", config="configs/smoke.yaml", overrides=["gan.epochs=3"]) == [
        "train-gan", "--run", "runs/a", "--config", "configs/smoke.yaml", "--set", "gan.epochs=3"]
    assert jobs.stage_arguments("train-classifier", "runs/b", resume=True) == [
        "train-classifier", "--resume", "runs/b"]
    assert jobs.stage_arguments("evaluate", "runs/b") == ["evaluate", "--run", "runs/b"]
    with pytest.raises(ValueError, match="unknown stage"):
        jobs.stage_arguments("train-everything", "runs/a")
    with pytest.raises(ValueError, match="saved config"):
        jobs.stage_arguments("train-gan", "runs/a", config="x.yaml", resume=True)
    with pytest.raises(ValueError, match="cannot be resumed"):
        jobs.stage_arguments("evaluate", "runs/a", resume=True)


def test_a_launched_stage_runs_to_done_and_logs(tmp_path: Path, fake_program: list[str]) -> None:
    run_dir = tmp_path / "runs" / "gan-a"
    pid = jobs.start("train-gan", run_dir, config=REPO / "configs" / "smoke.yaml", overrides=["gan.epochs=2"],
                     program=fake_program)
    assert pid > 0 and jobs.job_info(run_dir)["pid"] == pid
    wait_for(lambda: finished(run_dir))
    status = jobs.read_status(run_dir)
    assert status["state"] == "done" and status["stage"] == "train-gan"
    assert [row["epoch"] for row in runs.Run(run_dir).history()] == ["1", "2"]
    assert "fake stage done" in jobs.log_tail(run_dir)
    assert runs.Run(run_dir).config().gan.epochs == 2
    # the child is reaped: no zombie left behind in this (dashboard-like) parent
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2])


def test_busy_run_is_refused_then_stop_and_resume(tmp_path: Path, fake_program: list[str]) -> None:
    run_dir = tmp_path / "runs" / "gan-b"
    jobs.start("train-gan", run_dir, config=REPO / "configs" / "smoke.yaml", overrides=["gan.epochs=40"],
               program=fake_program)
    # refused at once, even before the child has taken the run lock
    with pytest.raises(runs.RunBusyError, match="already in use"):
        jobs.start("train-gan", run_dir, program=fake_program)
    wait_for(lambda: int(jobs.read_status(run_dir).get("epoch") or 0) >= 2)
    assert jobs.read_status(run_dir)["alive"]
    with pytest.raises(runs.RunBusyError):
        jobs.resume(run_dir, program=fake_program)

    assert jobs.stop(run_dir, wait_seconds=20)
    status = jobs.read_status(run_dir)
    assert status["state"] == "stopped" and not status["alive"] and not status["interrupted"]
    stopped_at = int(runs.read_json(run_dir / "done.json")["epoch"])
    assert 1 <= stopped_at < 40
    with pytest.raises(runs.RunError, match="nothing is running"):
        jobs.stop(run_dir)

    jobs.resume(run_dir, program=fake_program)
    wait_for(lambda: finished(run_dir), timeout=60)
    assert jobs.read_status(run_dir)["state"] == "done"
    epochs = [int(row["epoch"]) for row in runs.Run(run_dir).history()]
    assert epochs == list(range(1, 41))  # continuous, no epoch twice, ends at the configured count
    with pytest.raises(runs.RunError, match="already finished"):
        jobs.resume(run_dir, program=fake_program)


def test_a_killed_stage_reads_as_interrupted(tmp_path: Path, fake_program: list[str]) -> None:
    run_dir = tmp_path / "runs" / "gan-c"
    pid = jobs.start("train-gan", run_dir, config=REPO / "configs" / "smoke.yaml", overrides=["gan.epochs=40"],
                     program=fake_program)
    wait_for(lambda: jobs.read_status(run_dir).get("state") == "running")
    os.killpg(pid, 9)
    wait_for(lambda: not jobs.read_status(run_dir)["alive"])
    status = jobs.read_status(run_dir)
    assert status["state"] == "running" and status["interrupted"]


def test_resume_needs_a_known_resumable_stage(tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match="which stage"):
        jobs.resume(tmp_path / "nothing-here")
    run = runs.Run.create(tmp_path / "evaluated", config_module.Config(), "evaluate")
    with pytest.raises(runs.RunError, match="cannot be resumed"):
        jobs.resume(run.path)


def test_every_stage_verb_answers_help() -> None:
    # a crash on --help (an import error in a stage module) must fail here, not skip the job tests
    for verb in ("train-gan", "synthesize", "train-classifier", "evaluate", "reproduce"):
        result = subprocess.run([sys.executable, "-m", "melanet", verb, "--help"], capture_output=True, text=True,
                                cwd=REPO, timeout=120)
        assert result.returncode == 0 and "usage:" in result.stdout, f"{verb} --help: {result.stderr[-2000:]}"


@pytest.mark.slow
def test_real_train_gan_smoke_run_through_jobs(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "smoke-gan"
    jobs.start("train-gan", run_dir, config=REPO / "configs" / "smoke.yaml", overrides=["gan.epochs=1"], cwd=REPO)
    wait_for(lambda: finished(run_dir), timeout=240, interval=0.5)
    status = jobs.read_status(run_dir)
    assert status["state"] == "done", jobs.log_tail(run_dir, 40)
    assert len(runs.Run(run_dir).history()) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"state": "done", "job_stage": "train-classifier", "alive": False}, None),
        ({"state": "done", "job_stage": "evaluate", "alive": True}, "starting"),
        ({"state": "done", "job_stage": "evaluate", "alive": True, "evaluation": {"state": "running"}}, "running"),
        ({"state": "done", "job_stage": "evaluate", "alive": False, "evaluation": {"state": "done"}}, "done"),
        ({"state": "done", "job_stage": "explain", "alive": False, "explain": {"state": "running"}}, "interrupted"),
        ({"state": "done", "job_stage": "embed", "alive": False, "embedding": {"state": "failed"}}, "failed"),
        # relaunched while the old entry says done: the new process has not written yet
        ({"state": "done", "job_stage": "embed", "alive": True, "embedding": {"state": "done"}}, "starting"),
    ],
)
def test_step_state_follows_the_launched_step_not_the_training(status: dict, expected: str | None) -> None:
    result = jobs.step_state(status)
    assert (result[0] if result else None) == expected
