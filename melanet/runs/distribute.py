"""Device strategy and precision for both training stages (imports TensorFlow).

``distribute`` (the config key, choices ``melanet.common.choices.DISTRIBUTE_CHOICES``):

- ``none``: one device; ``mirrored``: every GPU of this machine (``tf.distribute.MirroredStrategy``);
- ``multi_worker``: every machine named in the standard ``TF_CONFIG`` environment variable
  (``tf.distribute.MultiWorkerMirroredStrategy``). Every worker runs the same command; the global
  batch (``gan.batch_size``, ``classifier.batch_size``) is split across all replicas of all workers.
  The chief (task ``chief``, else ``worker`` 0) writes the run folder; every other worker runs the
  same stage in a temporary folder of its own, deleted at the end (``writing_run``), and never
  takes the real folder's lock. On ``--resume`` the other workers read the run's ``config.yaml`` and
  its newest checkpoint, so they need the run folder at the same path (a shared file system, or a
  copy of ``config.yaml`` and ``checkpoints/``); ``agree_on_epoch`` refuses workers that restored
  different epochs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping

import keras
import tensorflow as tf

from melanet.runs import runs
from melanet.config import ConfigError

logger = logging.getLogger(__name__)

MULTI_WORKER = "multi_worker"
TF_CONFIG_VARIABLE = "TF_CONFIG"
WORKER_FOLDER_PREFIX = "melanet-worker-"  # a non-chief worker's temporary run folder, under the temp dir

_multi_worker_strategy: tf.distribute.Strategy | None = None


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in a ``TF_CONFIG`` cluster."""

    task_type: str
    task_index: int
    workers: int  # chief + workers
    has_chief_task: bool = False  # the cluster names a "chief" task (else worker 0 is the chief)

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and not self.has_chief_task)


def worker_role(environ: Mapping[str, str] | None = None) -> WorkerRole:
    """Parse ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...]}, "task": {"type", "index"}}``).

    ``ConfigError`` naming the variable when it is missing, not JSON, or names a task not in the cluster.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG_VARIABLE, "")
    where = f"environment variable {TF_CONFIG_VARIABLE}"
    if not text.strip():
        raise ConfigError(f"distribute={MULTI_WORKER} needs the {where}: "
                          '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}')
    try:
        parsed = json.loads(text)
        cluster, task = parsed["cluster"], parsed["task"]
        task_type, task_index = str(task["type"]), int(task["index"])
        members = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigError(f"{where}: expected JSON with 'cluster' and 'task' {{'type', 'index'}} ({error})") from None
    if task_type not in ("chief", "worker") or not 0 <= task_index < len(members.get(task_type, [])):
        raise ConfigError(f"{where}: task {task_type} {task_index} is not a chief or worker of the cluster {members}")
    workers = len(members.get("chief", [])) + len(members.get("worker", []))
    return WorkerRole(task_type, task_index, workers, has_chief_task=bool(members.get("chief")))


def start(distribute: str) -> None:
    """Create the process's multi-worker strategy now, before any other TensorFlow op runs (TensorFlow
    requires it: collective ops are configured at program start). A no-op for other choices."""
    if distribute == MULTI_WORKER:
        strategy_for(MULTI_WORKER)


def strategy_for(distribute: str) -> tf.distribute.Strategy:
    """``"none"`` -> the default strategy; ``"mirrored"`` -> MirroredStrategy over all visible GPUs
    (or, with no GPU, over all logical CPU devices, which is how the tests exercise it);
    ``"multi_worker"`` -> the process's one MultiWorkerMirroredStrategy (created at the first call)."""
    global _multi_worker_strategy
    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == MULTI_WORKER:
        if _multi_worker_strategy is None:
            role = worker_role()
            logger.info("MultiWorkerMirroredStrategy: %s %d of %d workers", role.task_type, role.task_index,
                        role.workers)
            _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
            _patch_keras_metric_reduction()
        return _multi_worker_strategy
    if distribute == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [device.name for device in gpus] or [device.name for device in tf.config.list_logical_devices("CPU")]
        logger.info("MirroredStrategy over %s", devices)
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ValueError(f"distribute must be 'none', 'mirrored' or '{MULTI_WORKER}', got {distribute!r}")


def set_precision(mixed_precision: bool) -> None:
    """``mixed_float16`` on request (GPUs); float32 otherwise. Outputs stay float32 in the models."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def split_cpu(count: int = 2) -> None:
    """Split the physical CPU into ``count`` logical devices (tests of 'mirrored' on a CPU machine).
    Must run before TensorFlow initialises its devices."""
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)


def is_writer(distribute: str) -> bool:
    """Whether this process writes the run folder: always, except a non-chief worker of ``multi_worker``."""
    return distribute != MULTI_WORKER or worker_role().is_chief


@contextlib.contextmanager
def writing_run(run: runs.Run, distribute: str) -> Iterator[runs.Run]:
    """The folder this process writes while training ``run``: ``run`` itself, or on a non-chief worker
    of ``multi_worker`` a fresh temporary folder (checkpoints, history, status, samples, weights go
    there, as the Keras multi-worker pattern has it), deleted when the block ends."""
    if is_writer(distribute):
        yield run
        return
    role = worker_role()
    temporary = tempfile.mkdtemp(prefix=f"{WORKER_FOLDER_PREFIX}{role.task_type}{role.task_index}-")
    logger.info("%s %d of %d: the chief writes %s; this worker writes %s (deleted at the end)",
                role.task_type, role.task_index, role.workers, run.path, temporary)
    try:
        yield runs.Run(temporary)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def agree_on_epoch(strategy: tf.distribute.Strategy, epochs_done: int) -> None:
    """``RunError`` on every worker when the workers restored different epochs (one of them was not
    started with ``--resume``, or cannot read the run's checkpoints). A no-op on one machine."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    value = [float(epochs_done), float(epochs_done) ** 2, 1.0]
    per_replica = strategy.run(lambda: tf.constant(value))
    total, squares, count = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy().tolist()
    if abs(count * squares - total * total) > 0.5:
        raise runs.RunError(
            f"the {int(count)} replicas restored different epochs (this worker: {epochs_done}); start every "
            "worker with --resume RUN, and let each read the run folder (shared file system)")


# -------------------------------------------------------------------------------------------------
# Keras 3's fit under MultiWorkerMirroredStrategy (keras-team/keras#20585, open for Keras 3.x): its
# first-batch build reduces the batch across workers and its per-step metric reduction asks for
# ``axis=0`` of scalars; both raise. The two fixes below are what those steps mean on one machine.


def _patch_keras_metric_reduction() -> None:
    """Per-step metrics of ``fit``/``evaluate``: the mean over every replica of every worker
    (as Keras takes the mean over the replicas of one machine), not ``reduce(axis=0)`` of a scalar."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "melanet_multi_worker", False):
        return

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None)
                if isinstance(value, tf.distribute.DistributedValues) else value, values)
        return original(values, strategy, reduction)

    reduce_per_replica.melanet_multi_worker = True
    keras_trainer.reduce_per_replica = reduce_per_replica


def prepare_for_fit(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let ``model.fit`` run under ``multi_worker``: build the model's metrics from this worker's
    part of the first batch (Keras reduces the batch across workers, which fails). No-op otherwise."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    from keras.src import tree

    original = model._maybe_symbolic_build

    def build_from_local_batch(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues) else value, next(batches))
                break
        return original(data_batch=data_batch)

    model._maybe_symbolic_build = build_from_local_batch
