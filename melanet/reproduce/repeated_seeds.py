"""A repeated reproduction: the whole of ``melanet reproduce`` once per seed, then a summary over seeds.

Seeds are ``config.seed + 0 .. N-1``. Layout of the results folder (``docs/run-folders.md``)::

    config.yaml         the configuration every seed starts from (its own seed = the first one)
    status.json         stage 'reproduce-seeds': seeds, scope, one entry per seed
    seed-<S>/           a complete ``melanet reproduce`` results folder with ``seed: S``
    seeds.md  seeds.csv  seeds.json     the summary (melanet.reproduce.reproduction.seeds_summary)

Each seed runs through :func:`melanet.reproduce.reproduction.reproduce`, so a finished seed is skipped and an
interrupted one resumes from its checkpoints; running the same command again continues.
With ``scope="classifiers"`` only the first seed trains a GAN; every later seed's classifiers use it
(the classifiers' seeds differ; the summary table says which GAN each seed used).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from melanet import config as config_module
from melanet.runs import layout, lifecycle, runs
from melanet.reproduce import reproduction
from melanet.evaluation import compare
from melanet.reproduce import seeds_summary
from melanet.runs.progress import Progress

logger = logging.getLogger(__name__)

STAGE = "reproduce-seeds"
SCOPES = ("all", "classifiers")  # what a seed varies: GAN and classifiers, or the classifiers over one GAN


def seed_values(config: config_module.Config, count: int) -> list[int]:
    """``config.seed``, ``config.seed + 1``, ... (``count`` of them)."""
    if count < 1:
        raise config_module.ConfigError(f"--seeds must be >= 1, got {count}")
    return [config.seed + offset for offset in range(count)]


def seed_is_finished(folder: Path) -> bool:
    """True when a seed's reproduction ended 'done' with its table and all four evaluations written."""
    status = runs.Run(folder).status() if (folder / runs.STATUS_FILE).is_file() else {}
    evaluated = all((child / runs.METRICS_FILE).is_file() for child in compare.reproduce_folders(folder))
    return status.get("state") == "done" and (folder / layout.TABLE_MARKDOWN_FILE).is_file() and evaluated


def _prepare(
    results: Path, config: config_module.Config | None, count: int | None, scope: str | None, resume: bool
) -> tuple[runs.Run, config_module.Config, int, str]:
    if count is not None and count < 1:
        raise config_module.ConfigError(f"--seeds must be >= 1, got {count}")  # before the folder is made
    run, config = reproduction.prepare_results(results, config, resume=resume, stage=STAGE)
    status = run.status()
    count = count if count is not None else status.get("seeds")
    scope = scope if scope is not None else status.get("scope", "all")
    if count is None:
        raise runs.RunError(f"{results}: status.json does not say how many seeds; give --seeds N")
    if scope not in SCOPES:
        raise config_module.ConfigError(f"--seeds-scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if status.get("scope") not in (None, scope):
        raise runs.RunError(f"{results}: was started with --seeds-scope {status.get('scope')}, not {scope}")
    return run, config, int(count), scope


def _seed_config(
    results: Path, config: config_module.Config, values: list[int], index: int, scope: str
) -> tuple[config_module.Config, Path | None]:
    """(config of seed ``values[index]``, the shared stage-1 run or None).

    Scope ``classifiers``: every seed after the first uses the first seed's GAN, and every seed keeps
    the first seed's validation split (``data.split_seed``): that GAN trained on the split's training
    part, so another split would validate on its images (``melanet.classifier.gan_match`` refuses it).
    """
    seeded = dataclasses.replace(config, seed=values[index])
    if scope != "classifiers":
        return seeded, None
    seeded = dataclasses.replace(seeded, data=dataclasses.replace(config.data, split_seed=values[0]))
    shared_gan = (seeds_summary.seed_folder(results, values[0]) / reproduction.GAN_FOLDER).resolve() if index > 0 else None
    return seeded, shared_gan


def reproduce_seeds(
    results: str | Path,
    config: config_module.Config | None = None,
    count: int | None = None,
    *,
    scope: str | None = None,
    resume: bool = False,
    child_options: Sequence[str] = (),
    program: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run (or continue) ``count`` seeded reproductions in ``results`` and write the summary; returns it.

    ``resume``: continue with the folder's saved config, seed count and scope (``count`` may raise the
    count). Raises ``reproduce.StageFailed`` naming the seed and stage whose process failed.
    """
    run, config, count, scope = _prepare(Path(results), config, count, scope, resume)
    results = run.path
    values = seed_values(config, count)
    states = {seed: "done" if seed_is_finished(seeds_summary.seed_folder(results, seed)) else "pending" for seed in values}

    def entries() -> list[dict[str, Any]]:
        return [{"seed": seed, "run": seeds_summary.seed_folder(results, seed).name, "state": states[seed]} for seed in values]

    with lifecycle.stage_session(run, STAGE):
        run.update_status(seeds=count, scope=scope, seed_values=values, runs=entries())
        for index, seed in enumerate(values):
            if states[seed] == "done":
                logger.info("seed %d: already finished, skipped", seed)
                continue
            message = f"seed {seed} ({index + 1}/{count})"
            states[seed] = "running"
            run.update_status(step=index + 1, steps=count, progress=round(index / count, 4), message=message,
                              runs=entries())
            if progress is not None:
                progress(index, count, message)
            seed_config, shared_gan = _seed_config(results, config, values, index, scope)
            try:
                reproduction.reproduce(seeds_summary.seed_folder(results, seed), seed_config, child_options=child_options,
                                    program=program, shared_gan=shared_gan)
            except BaseException as error:
                stopped = isinstance(error, (lifecycle.StopRequested, KeyboardInterrupt))
                states[seed] = "stopped" if stopped else "failed"
                run.update_status(runs=entries())
                raise
            states[seed] = "done"
            run.update_status(progress=round((index + 1) / count, 4), runs=entries())
        summary = seeds_summary.summarize_folder(results)
        run.update_status(step=count, steps=count, progress=1.0, message="seeds summary written", runs=entries())
        if progress is not None:
            progress(count, count, "done")
    return summary
