"""`melanet train-gan` (stage 1: CycleGAN benign <-> malignant) and `melanet synthesize`."""

from __future__ import annotations

import argparse
from pathlib import Path

from melanet import config as config_module
from melanet.runs import lifecycle, runs
from melanet.cli import common


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the top-level parser."""
    train_gan = subparsers.add_parser(
        "train-gan",
        help="stage 1: train the CycleGAN benign <-> malignant on the training split",
        description=(
            "Train the CycleGAN of paper Section 2.1 on the training part of data.root (never the "
            "validation or test images). Each epoch draws as many benign images as there are malignant "
            "ones, then writes history.csv, status.json, figures/samples_epoch_NNN.png and a checkpoint; "
            "the end writes generator_benign_to_malignant.keras and generator_malignant_to_benign.keras. "
            "--resume RUN continues a stopped or killed run from its last checkpoint with the run's saved "
            "config (only --set gan.epochs=N may change it) up to gan.epochs."
        ),
    )
    common.add_stage_arguments(train_gan)
    train_gan.set_defaults(handler=run_train_gan)

    synthesize = subparsers.add_parser(
        "synthesize",
        help="stage 1: translate every benign training image into a synthetic malignant one",
        description=(
            "Run generator_benign_to_malignant of a stage-1 run on every benign image of its training "
            "part. Writes RUN/synthetic/images/syn_<id>.png, their cycle reconstructions in "
            "RUN/synthetic/reconstructions/ and RUN/synthetic/manifest.csv (synthetic_id, source_id, "
            "path, reconstruction_path). Images already written are kept, so an interrupted synthesis "
            "can simply be started again."
        ),
    )
    synthesize.add_argument("--run", required=True, metavar="RUN", help="a stage-1 (train-gan) run folder")
    synthesize.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per generator call")
    synthesize.set_defaults(handler=run_synthesize)


def run_train_gan(args: argparse.Namespace) -> int:
    from melanet.gan import train

    path = common.run_folder(args, train.STAGE)
    common.announce_run(path)
    if args.resume:
        run = runs.Run.open(path)
        config = common.resume_config(args, run, train.STAGE)
    else:
        run = runs.Run(path)
        config = common.resolve_config(args)
    try:
        train.train(run, config, resume=bool(args.resume), progress=common.progress_bar(train.STAGE))
    except lifecycle.StopRequested:
        return common.stopped(train.STAGE, f"continue with: melanet {train.STAGE} --resume {path}")
    print(f"generators: {train.generator_path(run, train.GENERATOR_NAMES[0])}, "
          f"{train.generator_path(run, train.GENERATOR_NAMES[1])}", flush=True)
    return 0


def run_synthesize(args: argparse.Namespace) -> int:
    from melanet.gan import synthesis

    if args.batch_size < 1:
        raise config_module.ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    path = Path(args.run)
    common.announce_run(path)
    run = runs.Run.open(path)
    try:
        manifest = synthesis.synthesize(run, batch_size=args.batch_size, progress=common.progress_bar("synthesize"))
    except lifecycle.StopRequested:
        return common.stopped(synthesis.STAGE, f"start it again to finish: melanet {synthesis.STAGE} --run {path}")
    print(f"manifest: {manifest} ({len(synthesis.read_manifest(path))} synthetic images)", flush=True)
    return 0
