"""Child processes that end with their parent, so that killing a parent never leaves work running.

Linux sends a child a chosen signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``); the setting
survives ``exec``. Elsewhere ``tie_to_parent`` does nothing and children may outlive a killed parent.

- ``melanet reproduce`` starts each stage with ``preexec_fn=parent_death_signal(SIGTERM)``: the
  stage then stops as it does on the dashboard's Stop (status 'stopped', resumable).
- The image-decoding workers of ``melanet.data.parallel`` call ``tie_to_parent(SIGKILL)`` and
  ``end_with(owner)`` when they start: they hold nothing worth saving, and their parent may be a
  multiprocessing forkserver, which outlives a killed owner.

Jobs started by the dashboard (``melanet.runs.jobs``) are detached on purpose and are not tied.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved once, before any fork: a forked child then only makes the call.
_PRCTL = _load_prctl()


def tie_to_parent(death_signal: int = signal.SIGTERM, parent_pid: int | None = None) -> bool:
    """Ask the kernel to send ``death_signal`` to this process when its parent dies.

    ``parent_pid``: the parent this process was started by; when it is already gone (it died
    between the fork and this call), the signal is sent at once. Returns False where unsupported.
    """
    if _PRCTL is None or _PRCTL(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0) != 0:
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), death_signal)
    return True


def parent_death_signal(death_signal: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``death_signal`` when this process dies."""
    parent_pid = os.getpid()

    def tie() -> None:
        tie_to_parent(death_signal, parent_pid)

    return tie


def end_with(process_id: int, death_signal: int = signal.SIGKILL, interval_seconds: float = 1.0) -> None:
    """Send ``death_signal`` to this process once process ``process_id`` (any ancestor) has ended.

    A daemon thread checks every ``interval_seconds``; for processes whose parent is not the one
    that matters (a forkserver's children).
    """
    def watch() -> None:
        while _exists(process_id):
            time.sleep(interval_seconds)
        os.kill(os.getpid(), death_signal)

    threading.Thread(target=watch, name=f"end-with-{process_id}", daemon=True).start()


def _exists(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process stays a zombie until its own parent reaps it
        with open(f"/proc/{process_id}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
