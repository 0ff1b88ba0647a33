"""Children end with their parent: killing a parent (even with SIGKILL) leaves no work running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too (its parent, here a killed process, has not reaped it yet)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def _wait_for_files(folder: Path, count: int, parent: subprocess.Popen, seconds: float = 60) -> list[int]:
    deadline = time.monotonic() + seconds
    while len(list(folder.iterdir())) < count:
        assert parent.poll() is None, parent.stderr.read()[-2000:] if parent.stderr else parent.returncode
        assert time.monotonic() < deadline, "the children did not start"
        time.sleep(0.05)
    return [int(path.name) for path in folder.iterdir()]


SLOW_DECODER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    def decode(chunk, folder):
        (Path(folder) / str(os.getpid())).touch()
        time.sleep(300)  # a decoder that is still working when its parent is killed
        return chunk
    """
)

MAP_CHUNKS_PARENT = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, sys.argv[1])
    from melanet.data import parallel
    import slow_decoder
    if sys.argv[3] == "forkserver":  # a second thread (as TensorFlow starts) makes parallel use a forkserver
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    parallel.map_chunks(slow_decoder.decode, list(range(16)), sys.argv[2], workers=2)
    """
)


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_image_decoders_end_when_their_parent_is_killed(tmp_path: Path, start_method: str) -> None:
    (tmp_path / "slow_decoder.py").write_text(SLOW_DECODER)
    started = tmp_path / "started"
    started.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", MAP_CHUNKS_PARENT, str(tmp_path), str(started), start_method],
                              cwd=REPOSITORY, stderr=subprocess.PIPE, text=True)
    try:
        workers = _wait_for_files(started, 2, parent)
        assert all(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        parent.wait()
    leftover = _wait_gone(workers, 15)
    for pid in leftover:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"decoder processes {leftover} outlived their killed parent"


STAGE_PARENT = textwrap.dedent(
    """
    import subprocess, sys
    from melanet.reproduce import reproduction
    child = [sys.executable, "-c",
             "import os, signal, sys, time, pathlib; "
             "signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path(sys.argv[1], 'stopped').touch(), sys.exit(3))); "
             "pathlib.Path(sys.argv[1], str(os.getpid())).touch(); time.sleep(300)", sys.argv[1]]
    reproduction.start_child(child).wait()
    """
)


def test_a_reproduction_killed_with_sigkill_stops_its_running_stage(tmp_path: Path) -> None:
    started = tmp_path / "started"
    started.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", STAGE_PARENT, str(started)], cwd=REPOSITORY,
                              stderr=subprocess.PIPE, text=True)
    try:
        (stage,) = _wait_for_files(started, 1, parent)
    finally:
        parent.kill()
        parent.wait()
    leftover = _wait_gone([stage], 15)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, "the stage outlived the killed reproduction"
    assert (started / "stopped").exists()  # it got SIGTERM: a stage then saves its state as 'stopped'
