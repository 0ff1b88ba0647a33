"""Run a per-image function over many files on every core, in chunks, with progress.

Worker processes are forked from the calling process (fast, nothing re-imported) while it is
single-threaded. Forking a process that runs other threads (TensorFlow starts thread pools) can
copy a lock that some thread holds and deadlock the child, so then the ``forkserver`` start method
is used instead: a clean server process with only numpy and PIL imported forks the workers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from melanet.runs import children
from melanet.runs.progress import Progress

Item = TypeVar("Item")

_PRELOAD = ["numpy", "PIL.Image", "melanet.data.preprocess"]


def worker_count(requested: int) -> int:
    """``requested`` processes, or every core this process may use when 0."""
    if requested > 0:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def map_chunks(
    function: Callable[..., list[Any]],
    items: Sequence[Item],
    *arguments: Any,
    workers: int = 0,
    progress: Progress | None = None,
    message: str = "",
) -> list[Any]:
    """``function(chunk, *arguments)`` over chunks of ``items``; one result per item, in order.

    ``function`` must be a module-level function returning a list as long as its chunk. With one
    worker (or very few items) it runs in this process. ``progress(done, total, message)`` is
    called as chunks finish.
    """
    total = len(items)
    processes = min(worker_count(workers), max(1, total // 4))
    if progress:
        progress(0, total, message)
    if processes <= 1:
        results: list[Any] = []
        step = max(1, min(16, total))
        for start in range(0, total, step):
            results.extend(function(items[start:start + step], *arguments))
            if progress:
                progress(len(results), total, message)
        return results
    # small chunks keep both cores busy to the end and the progress bar moving
    size = max(1, min(32, total // (processes * 6)))
    chunks = [list(items[start:start + size]) for start in range(0, total, size)]
    context = _context()
    done = 0
    by_chunk: dict[int, list[Any]] = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=processes, mp_context=context,
                                                initializer=_start_worker, initargs=(os.getpid(),)) as executor:
        futures = {executor.submit(function, chunk, *arguments): index for index, chunk in enumerate(chunks)}
        for future in concurrent.futures.as_completed(futures):
            by_chunk[futures[future]] = future.result()
            done += len(chunks[futures[future]])
            if progress:
                progress(done, total, message)
    return [result for index in range(len(chunks)) for result in by_chunk[index]]


def _start_worker(owner_pid: int) -> None:
    """Worker initializer: the worker ends when its owner does, so a killed run leaves no decoder behind."""
    children.tie_to_parent(signal.SIGKILL)  # the direct parent: the owner (fork) or the forkserver
    children.end_with(owner_pid, signal.SIGKILL)  # the forkserver outlives a killed owner


def _context() -> multiprocessing.context.BaseContext:
    if threading.active_count() == 1 and "tensorflow" not in sys.modules:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context
