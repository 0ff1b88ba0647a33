"""Shared pieces of the command line: stage arguments, config resolution, progress bars."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from melanet import config as config_module
from melanet.runs import runs, stages
from melanet.data import errors as data_errors
from melanet.runs.progress import Progress

# Exceptions a user can cause; the CLI prints them as one line and exits 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    config_module.ConfigError,
    runs.RunError,
    data_errors.DataError,
    FileNotFoundError,
)

_quiet = False


def set_quiet(value: bool) -> None:
    global _quiet
    _quiet = value


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML preset (configs/paper.yaml, configs/demo.yaml, ...)")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="override one setting, e.g. --set gan.epochs=5 (repeatable)",
    )


def add_stage_arguments(parser: argparse.ArgumentParser, *, resume: bool = True) -> None:
    """--config, --set and --run (and --resume) as every stage command takes them."""
    add_config_arguments(parser)
    parser.add_argument(
        "--run", metavar="DIR", help="run folder to write (default: a new timestamped folder under runs/)"
    )
    if resume:
        parser.add_argument(
            "--resume",
            metavar="RUN",
            help="continue an interrupted run from its last checkpoint (uses the run's saved config)",
        )


def resolve_config(args: argparse.Namespace) -> config_module.Config:
    return config_module.load_config(args.config, args.overrides)


def resume_config(args: argparse.Namespace, run: runs.Run, stage: str) -> config_module.Config:
    """The run's saved config for ``--resume``, changed only by the ``--set`` keys the stage's registry
    entry allows (``stages.Stage.resume_overridable``, e.g. ``gan.epochs`` to train longer)."""
    if args.config:
        raise config_module.ConfigError("--resume uses the run's saved config.yaml; do not pass --config")
    if getattr(args, "run", None):
        raise config_module.ConfigError("--resume RUN names the run folder; do not pass --run as well")
    allowed = stages.get(stage).resume_overridable
    for text in args.overrides:
        key = text.split("=", 1)[0].strip()
        if key not in allowed:
            may_change = f"only {', '.join(allowed)} may change" if allowed else "no --set may change it"
            raise config_module.ConfigError(f"--set {text}: a resumed run keeps its saved config; {may_change}")
    return config_module.with_overrides(run.config(), args.overrides)  # RunError without config.yaml


def stopped(verb: str, how_to_continue: str) -> int:
    """Tell the person the stage stopped on request and how to go on; returns the stopped exit code."""
    print(f"melanet {verb}: stopped; {how_to_continue}", file=sys.stderr)
    return stages.STOPPED_EXIT_CODE


def run_folder(args: argparse.Namespace, stage: str) -> Path:
    """The folder a stage writes: --resume RUN, else --run DIR, else a new one under runs/."""
    if getattr(args, "resume", None):
        return Path(args.resume)
    if args.run:
        return Path(args.run)
    return runs.default_run_dir(stage)


def progress_bar(description: str) -> Progress:
    """A progress callback ``(done, total, message)`` that draws a tqdm bar on stderr."""
    if _quiet:
        return lambda done, total, message="": None
    from tqdm import tqdm

    state: dict[str, tqdm] = {}
    finished_totals: set[int] = set()

    def update(done: int, total: int, message: str = "") -> None:
        bar = state.get("bar")
        if bar is None and done >= total and total in finished_totals:
            return  # a repeated 'done' after the bar closed would draw a second, finished bar
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=description, file=sys.stderr, dynamic_ncols=True, leave=True)
            state["bar"] = bar
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()
            state.pop("bar", None)
            finished_totals.add(total)

    return update


def announce_run(path: Path) -> None:
    """Every stage command prints its run folder first, on stdout, so scripts can capture it."""
    print(f"run folder: {path}", flush=True)
