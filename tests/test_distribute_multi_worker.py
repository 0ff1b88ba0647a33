"""`distribute: multi_worker`: two real worker processes on 127.0.0.1 (TF_CONFIG), both stages.

The chief (worker 0) writes the run folder; worker 1 trains in a temporary folder of its own under
its TMPDIR, deleted at the end, and never writes the run folder. A chief killed mid-training is
resumed by restarting both workers with ``--resume RUN`` (they share this machine's file system).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from melanet import config as config_module
from melanet.runs import distribute, layout, lifecycle, runs
from melanet.data import splits

REPOSITORY = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 900  # two TensorFlow processes on a busy 2-core machine


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _options(data_root: Path) -> list[str]:
    return ["--config", "configs/smoke.yaml", "--set", f"data.root={data_root}", "--set", "distribute=multi_worker"]


def _warm_cache(data_root: Path) -> None:
    """Decode the images once, so that two workers do not prepare the same cache at the same time."""
    config = config_module.load_config(REPOSITORY / "configs/smoke.yaml", [f"data.root={data_root}"])
    splits.training_and_validation(config.data, config.seed)


def _start_workers(tmp_path: Path, arguments: list[str], attempt: str) -> list[subprocess.Popen]:
    """Worker 0 (the chief) and worker 1, each with its own TMPDIR, running ``melanet ARGUMENTS``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        temporary = tmp_path / f"{attempt}-tmp{index}"
        temporary.mkdir()
        environment = {**os.environ, "TMPDIR": str(temporary), "CUDA_VISIBLE_DEVICES": "-1",
                       distribute.TF_CONFIG_VARIABLE: json.dumps({"cluster": cluster,
                                                                  "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"{attempt}-worker{index}.log", "w")
        processes.append(subprocess.Popen([sys.executable, "-m", "melanet", *arguments], cwd=REPOSITORY,
                                          env=environment, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return processes


def _log(tmp_path: Path, attempt: str, index: int) -> str:
    return (tmp_path / f"{attempt}-worker{index}.log").read_text(errors="replace")


def _finish(tmp_path: Path, processes: list[subprocess.Popen], attempt: str) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        for index, process in enumerate(processes):
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert code == 0, f"worker {index} exited {code}:\n{_log(tmp_path, attempt, index)[-3000:]}"
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _check_worker_cleaned_up(tmp_path: Path, attempt: str) -> None:
    """Worker 1 trained in a temporary folder of its own (its log names it), deleted at the end."""
    assert "this worker writes" in _log(tmp_path, attempt, 1)
    assert not list((tmp_path / f"{attempt}-tmp1").glob(f"{distribute.WORKER_FOLDER_PREFIX}*"))
    assert not list((tmp_path / f"{attempt}-tmp0").iterdir()), "the chief writes no temporary run folder"


def _check_chief_folder(run_dir: Path, stage: str, chief: subprocess.Popen, epochs: int) -> runs.Run:
    run = runs.Run.open(run_dir)
    status = run.status()
    assert (status["stage"], status["state"]) == (stage, "done")
    assert status["pid"] == chief.pid, "only the chief writes status.json"
    assert run.config().distribute == "multi_worker"
    assert [int(row["epoch"]) for row in run.history()] == list(range(1, epochs + 1))
    assert lifecycle.latest_checkpoint(run)["epoch"] == epochs
    # no temp file of any other process was left in the folder
    assert not [path for path in run_dir.rglob("*") if runs._writer_pid(path.name) not in (None, chief.pid)]
    return run


@pytest.mark.slow
def test_two_workers_train_the_gan_and_only_the_chief_writes_the_run(tmp_path, tiny_isic):
    _warm_cache(tiny_isic)
    run_dir = tmp_path / "gan"
    processes = _start_workers(tmp_path, ["train-gan", *_options(tiny_isic), "--set", "gan.epochs=1",
                                          "--set", "gan.batch_size=2", "--run", str(run_dir)], "gan")
    _finish(tmp_path, processes, "gan")
    run = _check_chief_folder(run_dir, "train-gan", processes[0], epochs=1)
    files = layout.RunLayout(run.path)
    assert all(files.generator(name).is_file() for name in layout.GENERATOR_NAMES)
    assert (run.figures_dir / "samples_epoch_001.png").is_file()
    _check_worker_cleaned_up(tmp_path, "gan")
    first_epoch = run.history()[0]

    # train one epoch longer: both workers restore the chief's checkpoint of epoch 1
    longer = _start_workers(tmp_path, ["train-gan", "--resume", str(run_dir), "--set", "gan.epochs=2"], "longer")
    _finish(tmp_path, longer, "longer")
    run = _check_chief_folder(run_dir, "train-gan", longer[0], epochs=2)
    assert run.history()[0] == first_epoch
    assert "after epoch 1 of 2" in _log(tmp_path, "longer", 1), "worker 1 restored the checkpoint"
    assert (run.figures_dir / "samples_epoch_002.png").is_file()
    _check_worker_cleaned_up(tmp_path, "longer")


@pytest.mark.slow
def test_two_workers_train_the_classifier_and_resume_after_the_chief_is_killed(tmp_path, tiny_isic):
    _warm_cache(tiny_isic)
    run_dir = tmp_path / "classifier"
    epochs = 12
    arguments = ["train-classifier", *_options(tiny_isic), "--set", f"classifier.epochs={epochs}",
                 "--set", "classifier.early_stopping_patience=100", "--run", str(run_dir)]
    processes = _start_workers(tmp_path, arguments, "first")
    latest = run_dir / "checkpoints" / lifecycle.LATEST_FILE
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while not latest.is_file():
            assert processes[0].poll() is None, f"the chief ended early:\n{_log(tmp_path, 'first', 0)[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.05)
        os.kill(processes[0].pid, signal.SIGKILL)  # the chief dies; the other worker is stopped as well
    finally:
        for process in processes:
            process.kill()
            process.wait()
    killed_at = lifecycle.latest_checkpoint(runs.Run(run_dir))["epoch"]
    assert 1 <= killed_at < epochs, "the kill must land mid-training"
    assert runs.Run(run_dir).status()["state"] == "running"
    rows_before = runs.Run(run_dir).history()[:killed_at]

    resumed = _start_workers(tmp_path, ["train-classifier", "--resume", str(run_dir)], "resumed")
    _finish(tmp_path, resumed, "resumed")
    run = _check_chief_folder(run_dir, "train-classifier", resumed[0], epochs=epochs)
    assert run.history()[:killed_at] == rows_before, "the epochs before the kill are kept, not trained again"
    assert f"resuming after epoch {killed_at}" in _log(tmp_path, "resumed", 1), "worker 1 restored the checkpoint"
    assert run.files.model.is_file() and run.file("validation_predictions.csv").is_file()
    _check_worker_cleaned_up(tmp_path, "resumed")


# -- the roles, without TensorFlow processes -----------------------------------------------------------


def _tf_config(task_type: str, index: int, chief: bool = False) -> dict[str, str]:
    cluster = {"worker": ["a:1", "b:1"], **({"chief": ["c:1"]} if chief else {})}
    return {distribute.TF_CONFIG_VARIABLE: json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_the_chief_is_worker_0_unless_the_cluster_names_a_chief():
    assert distribute.worker_role(_tf_config("worker", 0)).is_chief
    assert not distribute.worker_role(_tf_config("worker", 1)).is_chief
    assert not distribute.worker_role(_tf_config("worker", 0, chief=True)).is_chief
    role = distribute.worker_role(_tf_config("chief", 0, chief=True))
    assert role.is_chief and role.workers == 3


@pytest.mark.parametrize("text, expected", [
    ("", "needs the environment variable TF_CONFIG"),
    ("{not json", "environment variable TF_CONFIG: expected JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "environment variable TF_CONFIG: expected JSON"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "task worker 3 is not"),
])
def test_a_missing_or_malformed_tf_config_is_one_clear_error(text, expected):
    with pytest.raises(config_module.ConfigError, match=expected):
        distribute.worker_role({distribute.TF_CONFIG_VARIABLE: text})


def test_a_non_chief_worker_writes_a_temporary_folder_deleted_at_the_end(tmp_path, monkeypatch):
    run = runs.Run(tmp_path / "run")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setenv(distribute.TF_CONFIG_VARIABLE, _tf_config("worker", 1)[distribute.TF_CONFIG_VARIABLE])
    with distribute.writing_run(run, "multi_worker") as writer:
        assert writer.path != run.path and writer.path.parent == tmp_path and writer.path.is_dir()
        writer.update_status(state="running")
    assert not writer.path.exists() and not run.path.exists()
    with distribute.writing_run(run, "none") as writer:
        assert writer is run
    monkeypatch.setenv(distribute.TF_CONFIG_VARIABLE, _tf_config("worker", 0)[distribute.TF_CONFIG_VARIABLE])
    with distribute.writing_run(run, "multi_worker") as writer:
        assert writer is run
