"""Errors a user's data can cause."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class DataError(ValueError):
    """The data cannot be used as it is; the message names the file (and line) and what was expected."""


class BadImageError(DataError):
    """One image cannot be used (empty, truncated, not an image, too many pixels)."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


def problem(file: object, reason: str, *, line: int | None = None, split: str = "") -> dict[str, Any]:
    """One bad input as the data layer reports it: ``file``, ``line`` (CSV line or None), ``reason``, ``split``."""
    return {"file": str(file), "line": line, "reason": reason, "split": split}


def describe_problem(item: Mapping[str, Any]) -> str:
    """'file:line: reason' (line left out when there is none)."""
    line = item.get("line")
    where = f"{item['file']}:{line}" if line not in (None, "") else str(item["file"])
    return f"{where}: {item['reason']}"


def problems_error(summary: str, problems: Sequence[Mapping[str, Any]]) -> DataError:
    """One DataError whose message lists every bad item, one per line, and how to go on past them."""
    lines = [f"{summary} ({len(problems)} bad item{'s' if len(problems) != 1 else ''}):"]
    lines += [f"  {describe_problem(item)}" for item in problems]
    lines.append("fix or remove these files, or pass --skip-bad (data.skip_bad=true) to skip and record them")
    return DataError("\n".join(lines))
