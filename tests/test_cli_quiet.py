"""What a person sees on the terminal: a real ``python -m melanet evaluate`` subprocess on a tiny run.

No TensorFlow C++ start-up line (absl preamble, oneDNN, CUDA drivers, cuInit), no log line glued to a
progress bar, figures in log lines rounded; with ``-q`` nothing but real warnings and the result.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from melanet.cli import native_stderr
from test_evaluation_evaluate import TEST_LEVELS, write_folder_dataset
from test_evaluation_external import make_run

REPO = Path(__file__).resolve().parents[1]
NOISE = ("absl::InitializeLog", "oneDNN", "cuda drivers", "cuInit", "cudart_stub", "port.cc")
LONG_FIGURE = re.compile(r"\d\.\d{6,}")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("quiet")
    write_folder_dataset(folder / "own", TEST_LEVELS, seed=0)
    return make_run(folder, folder / "own")


def melanet(*arguments: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "melanet", *arguments], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_command_prints_no_tensorflow_start_up_lines_and_keeps_log_lines_out_of_the_bars(tiny_run: Path) -> None:
    result = melanet("evaluate", "--run", str(tiny_run))
    assert result.returncode == 0, result.stderr
    assert "AUC" in result.stdout and "results written to" in result.stdout
    for noise in NOISE:
        assert noise not in result.stderr, result.stderr
    assert "test images" in result.stderr  # the progress bar is still drawn
    assert not LONG_FIGURE.search(result.stderr), result.stderr  # "AUC 0.552", never "AUC 0.5520361990950226"
    assert re.search(r"INFO melanet\.evaluation\.evaluate: AUC \d\.\d{3}, sensitivity", result.stderr), result.stderr
    for segment in re.split(r"[\r\n]", result.stderr):  # every log line starts its own line, above the bars
        assert "INFO" not in segment or segment.startswith("INFO"), result.stderr


def test_quiet_shows_the_result_and_no_chatter(tiny_run: Path) -> None:
    result = melanet("-q", "evaluate", "--run", str(tiny_run))
    assert result.returncode == 0, result.stderr
    assert "AUC" in result.stdout
    assert result.stderr.strip() == "", result.stderr


MID_BAR_SCRIPT = """
import logging
from melanet import cli
from melanet.cli import common, evaluation_commands

def handler(args):
    update = common.progress_bar("work")
    update(1, 3)
    logging.getLogger("melanet.example").warning("a real warning, halfway")
    update(3, 3)
    return 0

evaluation_commands._evaluate = handler
raise SystemExit(cli.console_main(["evaluate", "--run", "anything"]))
"""


def test_a_warning_logged_while_a_bar_is_drawn_gets_its_own_line() -> None:
    result = subprocess.run([sys.executable, "-c", MID_BAR_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    segments = [segment for segment in re.split(r"[\r\n]", result.stderr) if "a real warning" in segment]
    assert segments == ["WARNING melanet.example: a real warning, halfway"], repr(result.stderr)
    assert "work: 100%" in result.stderr


def test_user_errors_and_real_warnings_still_reach_stderr(tmp_path: Path) -> None:
    result = melanet("-q", "evaluate", "--run", str(tmp_path / "missing"))
    assert result.returncode == 2 and "melanet evaluate: error:" in result.stderr


def test_the_filter_drops_start_up_chatter_only() -> None:
    assert native_stderr.is_noise(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert native_stderr.is_noise(b"I0000 00:00:1796560494.587773   17076 port.cc:153] oneDNN custom operations are on.")
    assert native_stderr.is_noise(b"E0000 00:00:1796560498.478939   17076 cuda_platform.cc:52] failed call to cuInit: "
                                  b"INTERNAL: CUDA error")
    assert native_stderr.is_noise(b"E0000 00:00:1796594932.093615   19687 util.cc:131] oneDNN supports DT_UINT8 only on "
                                  b"platforms with AVX-512. Falling back to the default Eigen-based implementation if present.")
    assert native_stderr.is_noise(b"E0000 00:00:1796624219.784827    2840 meta_optimizer.cc:967] remapper failed: "
                                  b"INVALID_ARGUMENT: Mutation::Apply error: fanout 'gradient_tape/x/LeakyReluGrad' "
                                  b"exist for missing node 'x/BiasAdd'.")
    assert not native_stderr.is_noise(b"E0000 00:00:1796624219.784827    2840 meta_optimizer.cc:967] layout failed: "
                                      b"OUT_OF_RANGE: something else")
    assert not native_stderr.is_noise(b"E0000 00:00:1796560498.478939   17076 op_kernel.cc:1830] OP_REQUIRES failed")
    assert not native_stderr.is_noise(b"WARNING melanet.evaluation.evaluate: 1 of the 73 evaluated images duplicate")
    assert not native_stderr.is_noise(b"test images: 100%|##########| 9/9")
