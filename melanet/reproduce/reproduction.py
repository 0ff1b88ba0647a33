"""Reproduce Table 1: stage 1, synthesis, the four classifiers, their evaluation, the comparison table.

Every stage runs as a child process of the same command line a person would type
(``python -m melanet train-gan --run RESULTS/gan --config RESULTS/config.yaml``), so each stage is
isolated (its own TensorFlow, its own lock and status) and resumable on its own. The results
folder (layout in ``docs/run-folders.md``)::

    config.yaml   the resolved configuration every stage starts from
    status.json   stage 'reproduce': state, step/steps, progress, message, and one entry per stage
    gan/  baseline/  augment5x/  augment10x/  melanet/     run folders (an older folder's vgg_gap/ for baseline/)
    table.md  table.csv                                     Table 1 with confidence intervals

A stage whose run is already finished is skipped, and an interrupted training stage continues
from its checkpoint, so running ``reproduce`` again on the same folder picks up where it stopped.
The test split is read only by the four evaluations, after all training is over.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet import config as config_module
from melanet.common import training_sets
from melanet.runs import children, layout, lifecycle, runs, stages
from melanet.evaluation import compare, paired
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

STAGE = "reproduce"
GAN_FOLDER = layout.REPRODUCE_GAN_FOLDER
POLL_SECONDS = 1.0
# a child stopped on request (SIGTERM) or by Ctrl-C; negative: killed by that signal
STOPPED_EXIT_CODES = (stages.STOPPED_EXIT_CODE, stages.INTERRUPTED_EXIT_CODE, -signal.SIGTERM, -signal.SIGINT)


@dataclasses.dataclass
class ChildStage:
    """One child process of the reproduction."""

    name: str  # shown in status.json, e.g. "train-classifier augment5x"
    verb: str  # melanet CLI verb
    folder: Path  # the run folder the verb works on
    overrides: tuple[str, ...] = ()  # --set values for configurable verbs
    configurable: bool = False  # takes --config/--set (and --resume)

    def is_done(self) -> bool:
        """True when a previous reproduction already finished this step."""
        run = runs.Run(self.folder)
        status = run.status()
        if self.verb == "train-gan":
            finished = run.files.generator(layout.GENERATOR_NAMES[0]).is_file()
            return finished and not (status.get("stage") == "train-gan" and status.get("state") != "done")
        if self.verb == "synthesize":
            finished = run.files.synthetic_manifest.is_file()
            return finished and not (status.get("stage") == "synthesize" and status.get("state") != "done")
        if self.verb == "audit-synthesis":  # done when audited after the latest synthesis
            files = run.files
            return (
                (status.get("audit") or {}).get("state") == "done" and files.audit.is_file()
                and files.synthetic_manifest.is_file()
                and files.audit.stat().st_mtime >= files.synthetic_manifest.stat().st_mtime
            )
        # A shared run may hold its model in compact form (melanet.classifier.compact), or, once
        # evaluated, none at all (the shipped demo drops the baselines' weights): never retrain it.
        model_path = runs.model_file(self.folder)
        metrics_path = run.files.metrics
        if self.verb == "train-classifier":
            return status.get("state") == "done" and (model_path is not None or metrics_path.is_file())
        if self.verb == "evaluate":
            evaluation = status.get("evaluation") or {}
            return (
                metrics_path.is_file() and evaluation.get("state") == "done"
                and (model_path is None or metrics_path.stat().st_mtime >= model_path.stat().st_mtime)
            )
        return False

    def arguments(self, config_path: Path) -> list[str]:
        """CLI arguments: resume an interrupted training run from its checkpoint, else start it."""
        run = runs.Run(self.folder)
        if stages.get(self.verb).resumable and run.exists() and run.checkpoint_dir.is_dir():
            return [self.verb, "--resume", str(self.folder)]
        arguments = [self.verb, "--run", str(self.folder)]
        if self.configurable:
            arguments += ["--config", str(config_path)]
            for override in self.overrides:
                arguments += ["--set", override]
        return arguments


def plan(results: Path, shared_gan: Path | None = None) -> list[ChildStage]:
    """Every step of the reproduction, in order; the evaluations come after all training.

    ``shared_gan``: a finished stage-1 run (with its synthetic lesions) to use instead of training
    one in ``results/gan`` (a repeated reproduction that varies only the classifiers).
    """
    gan = results / GAN_FOLDER if shared_gan is None else Path(shared_gan)
    steps = [] if shared_gan is not None else [
        ChildStage("train-gan", "train-gan", gan, configurable=True),
        ChildStage("synthesize", "synthesize", gan),
        ChildStage("audit-synthesis", "audit-synthesis", gan),  # KID, memorisation, realism (classifier.synthetic_keep)
    ]
    # one classifier per training set, in Table 1 order (an older results folder keeps its vgg_gap/)
    classifiers = [(entry, entry.folder_in(results)) for entry in training_sets.REGISTRY.values()]
    for entry, folder in classifiers:
        overrides = [f"classifier.training_set={entry.key}"]
        if entry.synthetic:
            overrides.append(f"classifier.gan_run={portable_path(gan)}")
        steps.append(ChildStage(f"train-classifier {folder.name}", "train-classifier", folder,
                                tuple(overrides), configurable=True))
    steps += [ChildStage(f"evaluate {folder.name}", "evaluate", folder) for _, folder in classifiers]
    return steps


def portable_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it (e.g. ``models/demo/gan``, so a
    shipped results folder names its GAN the same on every clone), else absolute."""
    resolved, here = path.resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)


def prepare_results(
    results: str | Path,
    config: config_module.Config | None,
    *,
    resume: bool,
    stage: str = STAGE,
) -> tuple[runs.Run, config_module.Config]:
    """Create (or reopen) the results folder and return it with the configuration to use.

    ``resume``: continue with the saved config (``config`` must be None). Otherwise a folder that
    already holds a reproduction is continued only when its saved config equals ``config``.
    ``stage``: what the folder's status calls it (``reproduce``, or ``reproduce-seeds`` for the
    folder of a repeated reproduction).
    """
    results = Path(results)
    saved_path = results / runs.CONFIG_FILE
    if resume:
        if config is not None:
            raise config_module.ConfigError("--resume uses the results folder's saved config; drop --config/--set")
        run = runs.Run.open(results)
        if run.status().get("stage") != stage:
            raise runs.RunError(f"{results}: not a '{stage}' results folder (status stage "
                                f"{run.status().get('stage')!r})")
        return run, run.config()
    if config is None:
        config = config_module.Config()
    if saved_path.is_file():
        saved_stage = runs.Run(results).status().get("stage")
        if saved_stage != stage:
            raise runs.RunError(f"{results}: is a {saved_stage or 'run'} folder, not a '{stage}' results folder; "
                                "choose another --out folder")
        saved = runs.Run(results).config()
        if saved != config:
            raise runs.RunError(
                f"{results}: already holds a reproduction with a different config; continue it with "
                f"`melanet reproduce --resume {results}` or choose another --out folder"
            )
    return runs.Run.create(results, config, stage), config


def _stage_entries(steps: Sequence[ChildStage], states: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": step.name, "run": step.folder.name, "state": states.get(step.name, "pending")} for step in steps]


def reproduce(
    results: str | Path,
    config: config_module.Config | None = None,
    *,
    resume: bool = False,
    child_options: Sequence[str] = (),
    program: Sequence[str] | None = None,
    progress: Progress | None = None,
    shared_gan: Path | None = None,
) -> list[dict[str, Any]]:
    """Run (or continue) the whole reproduction in ``results``; returns the table rows.

    ``child_options`` go before the verb of every child (e.g. ``["-q"]``); ``program`` defaults to
    ``[python, -m, melanet]``. ``shared_gan``: use this finished stage-1 run instead of training
    one (see ``plan``). Raises ``StageFailed`` naming the stage whose process failed.
    """
    run, config = prepare_results(results, config, resume=resume)
    results = run.path
    config_path = run.file(runs.CONFIG_FILE)
    program = list(program or [sys.executable, "-m", "melanet"])
    # a folder that once used a shared GAN keeps using it when resumed on its own
    shared_gan = shared_gan or (Path(run.status()["shared_gan"]) if run.status().get("shared_gan") else None)
    if shared_gan is not None:
        run.update_status(shared_gan=str(shared_gan))
    steps = plan(results, shared_gan)
    states = {step.name: "done" for step in steps if step.is_done()}
    with lifecycle.stage_session(run, STAGE):
        for index, step in enumerate(steps):
            if states.get(step.name) == "done":
                logger.info("%s: already done, skipped", step.name)
                continue
            states[step.name] = "running"
            message = f"{step.name} ({index + 1}/{len(steps)})"
            run.update_status(step=index + 1, steps=len(steps), progress=round(index / len(steps), 4),
                              message=message, stages=_stage_entries(steps, states))
            if progress is not None:
                progress(index, len(steps), message)
            command = program + list(child_options) + step.arguments(config_path)
            logger.info("%s: %s", step.name, " ".join(command))
            try:
                return_code = _run_child(command, step, run, index, len(steps))
            except BaseException:
                states[step.name] = "stopped"
                run.update_status(stages=_stage_entries(steps, states))
                raise
            if return_code in STOPPED_EXIT_CODES:
                # the child was stopped (SIGTERM to the process group, or Ctrl-C): so is the reproduction
                states[step.name] = "stopped"
                run.update_status(stages=_stage_entries(steps, states))
                raise lifecycle.StopRequested()
            if return_code != 0:
                states[step.name] = "failed"
                run.update_status(stages=_stage_entries(steps, states))
                raise StageFailed(f"{step.name} failed (exit code {return_code}); see {step.folder}/status.json; "
                                  f"continue later with `melanet reproduce --resume {results}`")
            states[step.name] = "done"
            run.update_status(progress=round((index + 1) / len(steps), 4), stages=_stage_entries(steps, states))
        evaluated = compare.reproduce_folders(results)
        rows = compare.load_rows(evaluated)
        compare.write_tables(rows, results)
        if not paired.without_predictions(evaluated):
            paired.write_comparison(paired.compare_runs(evaluated), results)
        run.update_status(step=len(steps), steps=len(steps), progress=1.0, message="table written",
                          stages=_stage_entries(steps, states))
        if progress is not None:
            progress(len(steps), len(steps), "done")
    return rows


class StageFailed(runs.RunError):
    """A child stage of the reproduction exited with an error."""


def start_child(command: list[str]) -> subprocess.Popen:
    """Start one stage; it gets SIGTERM (and stops, resumable) if this process dies, even by SIGKILL."""
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=children.parent_death_signal(signal.SIGTERM))


def _run_child(command: list[str], step: ChildStage, run: runs.Run, index: int, total: int) -> int:
    """Run one child and fold its progress into the results folder's status until it exits."""
    child = start_child(command)
    try:
        while True:
            try:
                return child.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            child_progress = runs.Run(step.folder).status().get("progress") if step.configurable else None
            if isinstance(child_progress, (int, float)) and 0 <= child_progress <= 1:
                run.update_status(progress=round((index + child_progress) / total, 4))
    except BaseException:
        # Stop (SIGTERM) or Ctrl-C: the child usually got the same signal from its process group;
        # give it time to save its state as 'stopped', then make sure it ends.
        _stop_child(child)
        raise


def _stop_child(child: subprocess.Popen) -> None:
    for send, grace in ((None, 5.0), (signal.SIGTERM, 60.0), (signal.SIGKILL, 10.0)):
        if send is not None and child.poll() is None:
            os.kill(child.pid, send)
        deadline = time.monotonic() + grace
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if child.poll() is not None:
            return
