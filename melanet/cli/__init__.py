"""The ``melanet`` command line: one verb per pipeline stage.

Each ``*_commands`` module adds its verbs with ``register(subparsers)``. User errors (bad data,
bad config, busy run) become one line on stderr and exit code 2; everything else is a bug and
keeps its traceback. What a person sees on stderr: the progress bars, log lines above them (never
inside a bar), warnings; TensorFlow's C++ start-up lines are filtered out (:mod:`melanet.cli.native_stderr`,
installed by :func:`console_main`, the entry point of ``melanet`` and ``python -m melanet``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# TensorFlow's C++ log (graph-optimizer notes such as "remapper failed") is noise for CLI users;
# set before any command module imports TensorFlow. An explicit user setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from melanet.runs import stages  # noqa: E402
from melanet.cli import (  # noqa: E402
    audit_commands,
    classifier_commands,
    common,
    data_commands,
    evaluation_commands,
    explain_commands,
    gan_commands,
    similar_commands,
    study_commands,
)

_MODULES = (data_commands, gan_commands, classifier_commands, evaluation_commands, explain_commands,
            audit_commands, similar_commands, study_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="melanet",
        description=(
            "MelaNet: CycleGAN-balanced VGG-GAP melanoma classification (ISIC-2016). "
            "Stages: data -> train-gan -> synthesize -> train-classifier -> evaluate -> explain/embed; "
            "'reproduce' runs them all. Research use only, not a medical device."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("absl").setLevel(logging.WARNING)  # TensorFlow's own INFO chatter
    common.set_quiet(args.quiet)
    from tqdm.contrib import logging as tqdm_logging

    try:
        with tqdm_logging.logging_redirect_tqdm():  # a log line goes above the bars, not into one
            return int(args.handler(args) or 0)
    except common.USER_ERRORS as error:
        print(f"melanet {args.command}: error: {error}", file=sys.stderr)
        return stages.USER_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        print(f"melanet {args.command}: interrupted; the run folder keeps its last checkpoint", file=sys.stderr)
        return stages.INTERRUPTED_EXIT_CODE


def console_main(argv: Sequence[str] | None = None) -> int:
    """The console entry point: :func:`main` with TensorFlow's C++ start-up lines filtered from stderr
    (kept with ``-v``, where a person asked to see everything)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not {"-v", "--verbose"} & set(arguments):
        from melanet.cli import native_stderr

        native_stderr.install()
    return main(arguments)
