"""`melanet train-classifier`: stage 2, the VGG-GAP focal-loss classifier."""

from __future__ import annotations

import argparse

from melanet import config as config_module
from melanet.runs import runs
from melanet.cli import common

STAGE = "train-classifier"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-classifier`` to the top-level parser."""
    parser = subparsers.add_parser(
        STAGE,
        help="train the VGG-GAP classifier (stage 2) on one of the four training sets",
        description=(
            "Train VGG-GAP with focal loss on classifier.training_set (original | augment5x | augment10x | "
            "synthetic, the last with classifier.gan_run = a stage-1 run folder). Model selection uses a "
            "validation split carved from the training set, never the test set. Writes model.keras (best "
            "validation model), validation_predictions.csv, history.csv and a checkpoint every epoch."
        ),
    )
    common.add_stage_arguments(parser)
    parser.set_defaults(handler=train_classifier_command)

    compact = subparsers.add_parser(
        "compact",
        help="shrink a finished classifier run for sharing: keep only its trained layers",
        description=(
            "Replace RUN/model.keras by model.trained.npz: the weights of the layers that were trained "
            "(classifier.trainable_from onward) plus a fingerprint of the frozen ones, which are rebuilt from "
            "classifier.weights when the model is loaded. Checked to give the same predictions before "
            "model.keras is removed. Only for runs with frozen layers from hed/imagenet/a file."
        ),
    )
    compact.add_argument("--run", required=True, metavar="RUN", help="a finished train-classifier run folder")
    compact.set_defaults(handler=compact_command)


def train_classifier_command(args: argparse.Namespace) -> int:
    from melanet.runs import lifecycle
    from melanet.classifier import train

    if args.resume:
        run = runs.Run.open(args.resume)
        config = common.resume_config(args, run, STAGE)
    else:
        config = common.resolve_config(args)
        run = runs.Run(common.run_folder(args, STAGE))
    common.announce_run(run.path)
    try:
        summary = train.train_classifier(run, config, resume=bool(args.resume), progress=common.progress_bar(STAGE))
    except lifecycle.StopRequested:
        return common.stopped(STAGE, f"continue with: melanet {STAGE} --resume {run.path}")
    print(f"best {summary['monitor']} {summary['best_value']} at epoch {summary['best_epoch']} "
          f"({summary['epochs_run']} epochs); model: {runs.model_file(run.path) or run.files.model}")
    return 0


def compact_command(args: argparse.Namespace) -> int:
    from melanet.classifier import compact

    run = runs.Run.open(args.run)
    common.announce_run(run.path)
    path = compact.compact_run(run.path)
    print(f"compact model: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
