"""Numbers as a person reads them: p-values, percents, intervals and plain figures.

One home for the spellings that tables, model cards, the CLI and the dashboard share, so that a
p-value never reads ``p = 0.000`` in one place and ``<0.001`` in another. Each function takes a
figure that may be missing (``None``) and returns text; none of them rounds what is stored.
"""

from __future__ import annotations

import math
from typing import Any

NOT_AVAILABLE = "n/a"


def p_value(value: float | None, digits: int = 3) -> str:
    """A p-value as a sentence reads it: ``"p = 0.0517"``, ``"p < 0.001"`` (never ``"p = 0.000"``), ``"p = n/a"``.

    Below 0.1 ``digits`` significant figures, from 0.1 up ``digits`` decimals without trailing zeros.
    """
    if value is None or not math.isfinite(value):
        return f"p = {NOT_AVAILABLE}"
    if value < 0.001:
        return "p < 0.001"
    return f"p = {value:.{digits}g}" if value < 0.1 else f"p = {value:.{digits}f}".rstrip("0").rstrip(".")


def p_cell(value: float | None) -> str:
    """A p-value in a table cell: ``"<0.001"`` or three decimals (``"0.042"``); ``"n/a"`` when missing."""
    if value is None:
        return NOT_AVAILABLE
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def number(value: Any, digits: int = 3, missing: str = NOT_AVAILABLE) -> str:
    """``value`` with ``digits`` decimals (``"0.552"``), or ``missing``."""
    return missing if value is None else f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 1, *, unit: str = "%", missing: str = NOT_AVAILABLE) -> str:
    """A proportion in [0, 1] as a percent: ``"83.3%"`` (``unit=" %"``: ``"83.3 %"``, ``unit=""``: ``"83.3"``),
    or ``missing``."""
    if value is None:
        return missing
    return f"{100 * value:.{digits}f}{unit}"


def percent_bounds(low: float | None, high: float | None, digits: int = 1) -> str:
    """An interval of proportions in percent points, with a leading space: ``" [43.6, 97.0]"``; ``""`` when
    either bound is missing (so it can follow a figure directly)."""
    if low is None or high is None:
        return ""
    return f" [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"
