"""Keep TensorFlow's C++ start-up log off the terminal.

TensorFlow 2.21 logs through absl before ``absl::InitializeLog()`` runs, and its shared libraries each
log their own copy, so every command printed (twice) "WARNING: All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on", "Could not find cuda drivers" and, at the
first operation, "failed call to cuInit". ``TF_CPP_MIN_LOG_LEVEL`` does not reach those lines, so the
console entry points (``python -m melanet``, the ``melanet`` script) route file descriptor 2 through a
filter: C++ lines that are start-up noise are dropped, every other byte goes to the real stderr.
Python's own ``sys.stderr`` (logging, progress bars, error lines) writes to the real stderr directly.

Only the entry points call :func:`install`; ``melanet.cli.main`` called in-process (tests, scripts)
leaves file descriptors alone.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import sys
import threading

# One C++ log line: severity letter, date, time, thread id, file:line]. INFO lines are dropped whole
# (the level TF_CPP_MIN_LOG_LEVEL=2 is meant to hide); warnings and errors only when known start-up noise.
_NATIVE_LINE = re.compile(rb"^(?P<severity>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<source>[\w.]+):\d+\] (?P<text>.*)")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_CPU_GUARD_CONTINUATION = b"To enable the following instructions:"  # second line of a cpu_feature_guard note
_NOISE_TEXT = re.compile(
    rb"failed call to cuInit|Could not find cuda drivers|Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|computation placer already registered|TensorFlow binary is optimized to use available CPU instructions"
    rb"|oneDNN custom operations are on|Unable to register .* factory"
    rb"|oneDNN supports \w+ only on platforms with"  # CPUs without AVX-512: a note on kernel choice, not an error
    # Grappler's remapper declining to fuse one op pattern (the graph runs unfused): an optimisation skipped
    rb"|remapper failed: INVALID_ARGUMENT: Mutation::Apply error")

_installed = False


def is_noise(line: bytes) -> bool:
    """Whether one stderr line (without its newline) is TensorFlow's C++ start-up chatter."""
    line = line.rstrip(b"\r\n")
    if line.startswith(_ABSL_PREAMBLE) or line.startswith(_CPU_GUARD_CONTINUATION):
        return True
    match = _NATIVE_LINE.match(line)
    if match is None:
        return False
    return match["severity"] == b"I" or bool(_NOISE_TEXT.search(match["text"]))


def install() -> None:
    """Route fd 2 through the filter for the rest of the process (idempotent; a no-op where fd 2 is
    missing). ``sys.stderr`` is rebound to a duplicate of the original stderr first."""
    global _installed
    if _installed:
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):
        return
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = io.TextIOWrapper(io.FileIO(original, "w", closefd=False), encoding=encoding,
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, original), name="native-stderr-filter", daemon=True)
    thread.start()
    _installed = True

    def restore() -> None:
        try:
            sys.stderr.flush()
            os.dup2(original, 2)  # closes the pipe's write end held by fd 2: the reader sees end of file
        except (OSError, ValueError):
            return
        thread.join(timeout=2.0)

    atexit.register(restore)


def _forward(read_end: int, target: int) -> None:
    """Copy the pipe to ``target`` line by line, dropping noise; a partial line waits for its newline."""
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
        if kept:
            _write_all(target, kept)
    if pending and not is_noise(pending):
        _write_all(target, pending)
    os.close(read_end)


def _write_all(target: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(target, data):]
    except OSError:
        pass
