"""Checks the Train page runs on a submitted form before it launches anything.

Each check returns the reason a field is refused (one sentence, shown under the field) or None. The
number fields take any integer in the browser, so an out-of-range value reaches these checks and is
named, instead of the browser silently refusing to submit. The run-name rule is ``melanet.runs.runs``'s and
the config rules ``melanet.config``'s: this module only asks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from melanet import config as config_module
from melanet.runs import runs
from melanet.data import sources
from melanet.data.errors import DataError

# (lowest, highest) a form accepts: wide enough for the paper preset, small enough to catch a typo
LIMITS = {
    "gan.epochs": (1, 5000),
    "gan.batch_size": (1, 64),
    "classifier.epochs": (1, 1000),
    "classifier.batch_size": (1, 256),
}


def run_name(runs_dir: Path, name: str) -> str | None:
    """Why ``name`` cannot be a new run folder under ``runs_dir`` (``runs.resolve_run_name``), or None."""
    try:
        runs.resolve_run_name(runs_dir, name)
    except runs.RunError as error:
        return str(error)
    return None


def number(key: str, value: float) -> str | None:
    """Why ``value`` is out of ``LIMITS[key]`` (or not a whole number), or None."""
    low, high = LIMITS[key]
    if value != int(value):
        return f"{key.split('.')[-1].replace('_', ' ')} must be a whole number"
    if not low <= value <= high:
        return f"must be between {low} and {high} (got {int(value)})"
    return None


def data_folder(path: Path, typed: str) -> str | None:
    """Why ``path`` (typed as ``typed``) is not a data folder a stage can train on, or None."""
    if not typed.strip():
        return "name a data folder (e.g. data/sample)"
    if not path.is_dir():
        return (f"folder `{typed.strip()}` not found; download ISIC-2016 with `melanet data download isic2016 "
                "--dest data/isic2016` or use the bundled `data/sample`")
    try:
        sources.detect_layout(path)
    except DataError as error:
        return str(error).splitlines()[0]
    return None


def config(preset: Path, overrides: Sequence[str]) -> str | None:
    """Why the preset with ``overrides`` is not a valid config (``melanet.config``'s message), or None."""
    try:
        config_module.load_config(preset, list(overrides))
    except config_module.ConfigError as error:
        return str(error)
    return None
