"""Serve the dashboard headless on loopback: for the browser tests, the README screenshot and the benchmark.

``start`` runs ``python -m streamlit run SCRIPT`` from the repository on a free 127.0.0.1 port and
returns once ``/_stcore/health`` answers ``ok``; ``stop`` ends it. No Streamlit import here: the server
is a child process, exactly as a user starts it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(env: dict[str, str], log_path: Path, script: str = "app.py",
          timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """``streamlit run script`` headless with environment ``env``, output to ``log_path``; (process, URL).

    RuntimeError with the log's tail when it is not healthy within ``timeout`` seconds (the process is
    killed then).
    """
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return server, url
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"streamlit did not start within {timeout:.0f} s: {Path(log_path).read_text()[-2000:]}")


def stop(server: subprocess.Popen) -> None:
    """Terminate the server; kill it when it has not ended after 15 s."""
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
