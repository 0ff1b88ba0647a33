"""The progress callback every long-running library function accepts.

``progress(done, total, message)``: ``done`` of ``total`` units (images, batches, stages) finished,
``message`` a short note for people. The CLI passes a tqdm bar (``melanet.cli.common.progress_bar``),
training stages also write progress to ``status.json`` (``melanet.runs.lifecycle.EpochReporter``), and
``None`` means nobody is watching.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]
