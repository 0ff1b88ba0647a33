"""``distribute.agree_on_epoch`` with two real worker processes on 127.0.0.1 (issue 21 item 15).

Each worker builds the process's ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` and calls
``agree_on_epoch`` once per round with the epoch it "restored". Rounds where the two epochs match
must pass on both workers; rounds where they differ, by as little as one epoch (a worker one
checkpoint behind) or from 0 (a worker started without ``--resume``), must raise ``RunError`` on
both, so that neither trains on alone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from melanet.runs import distribute

REPOSITORY = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 600  # two TensorFlow start-ups on a busy 2-core machine

WORKER = """
import json, sys
from melanet.runs import distribute, runs
strategy = distribute.strategy_for("multi_worker")
answers = []
for epoch in json.loads(sys.argv[1]):
    try:
        distribute.agree_on_epoch(strategy, epoch)
        answers.append("agreed")
    except runs.RunError as error:
        answers.append(str(error))
open(sys.argv[2], "w").write(json.dumps(answers))
"""
# (worker 0, worker 1) per round: the same epoch, one apart, 0 against a resumed one, far apart, the same again
ROUNDS = [(3, 3), (3, 4), (0, 1), (0, 12), (12, 5), (7, 7)]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_workers_that_restored_different_epochs_are_refused_on_both(tmp_path: Path) -> None:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2",
                       distribute.TF_CONFIG_VARIABLE: json.dumps({"cluster": cluster,
                                                                  "task": {"type": "worker", "index": index}})}
        epochs = json.dumps([round_[index] for round_ in ROUNDS])
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append(subprocess.Popen([sys.executable, "-c", WORKER, epochs, str(tmp_path / f"answers{index}.json")],
                                          cwd=REPOSITORY, env=environment, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    try:
        for index, process in enumerate(processes):
            code = process.wait(timeout=TIMEOUT_SECONDS)
            assert code == 0, f"worker {index} exited {code}:\n{(tmp_path / f'worker{index}.log').read_text()[-3000:]}"
    finally:
        for process in processes:
            process.kill()
    for index in range(2):
        answers = json.loads((tmp_path / f"answers{index}.json").read_text())
        assert len(answers) == len(ROUNDS)
        for (first, second), answer in zip(ROUNDS, answers):
            if first == second:
                assert answer == "agreed", (first, second, answer)
            else:
                mine = (first, second)[index]
                assert answer.startswith(f"the 2 replicas restored different epochs (this worker: {mine})"), answer
                assert "--resume RUN" in answer


def test_one_machine_never_asks_the_others() -> None:
    """The default and mirrored strategies have no other workers: any epoch passes."""
    import tensorflow as tf

    for epoch in (0, 5):
        distribute.agree_on_epoch(tf.distribute.get_strategy(), epoch)
