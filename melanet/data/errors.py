"""Errors a user's data can cause."""

from __future__ import annotations


class DataError(ValueError):
    """The data cannot be used as it is; the message names the file (and line) and what was expected."""
