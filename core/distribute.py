"""Where training runs: TensorFlow's strategies for several devices or machines, how the global
batch splits across replicas, which worker writes the checkpoints, and the machine's summary.

Why these rules: NSL's random PGD start needs a static batch dimension, so every replica must see
the same number of examples (the global batch must split evenly); MultiWorkerMirroredStrategy must
exist before any other TensorFlow op and cannot be made twice; with several workers sharing a file
system only one of them (the chief) may write.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from core.compat import tf

STRATEGIES = ("default", "mirrored", "multiworker")


class DistributionError(ValueError):
    """The batch size does not fit the strategy's replicas; the message says what would."""


_created_strategies: dict[str, tf.distribute.Strategy] = {}


def get_strategy(name: str) -> tf.distribute.Strategy:
    """TensorFlow's own distribution: one device, all local devices, or workers from TF_CONFIG.

    One object per name and process, made on first use: MultiWorkerMirroredStrategy configures the
    collective ops at startup (so call this before any other TensorFlow op) and cannot be made
    twice; a second MirroredStrategy reuses the first one's collective instance keys, and its
    all-reduce fails ("Shape mismatch in the collective instance") when the two train different models.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _created_strategies:
        if name == "mirrored":
            _created_strategies[name] = tf.distribute.MirroredStrategy()
        elif name == "multiworker":
            _created_strategies[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    return _created_strategies[name]


def global_batch_size(requested: int, train_size: int, replicas: int) -> int:
    """The batch all replicas together take per step; each replica gets an equal share of it.

    A training set smaller than the batch shrinks it to the largest multiple of ``replicas`` that fits.
    """
    if requested % replicas:
        choices = sorted({max(replicas, requested - requested % replicas), requested + replicas - requested % replicas})
        raise DistributionError(
            f"--batch-size {requested} is the global batch and must split evenly across the {replicas} replicas "
            f"(NSL's PGD needs the same static batch on every replica); use {' or '.join(map(str, choices))}."
        )
    batch = min(requested, train_size - train_size % replicas)
    if batch < replicas:
        raise DistributionError(f"{train_size} training images cannot fill one example on each of {replicas} replicas.")
    return batch


def is_chief(task_type: str | None, task_id: int | None, cluster_jobs: list[str] | tuple[str, ...] = ()) -> bool:
    """Whether this worker writes the checkpoints (Keras' rule): the "chief", else worker 0 when
    the cluster has no chief; a single process with no cluster is its own chief."""
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster_jobs


def strategy_is_chief(strategy: tf.distribute.Strategy) -> bool:
    """:func:`is_chief` for a strategy; only MultiWorkerMirroredStrategy has other workers."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or strategy.cluster_resolver is None:
        return True
    resolver = strategy.cluster_resolver
    return is_chief(resolver.task_type, resolver.task_id, resolver.cluster_spec().jobs)


def distribution_summary(
    strategy: tf.distribute.Strategy, strategy_name: str, batch_size: int, train_size: int, replicas_by_model: dict[str, int]
) -> dict[str, Any]:
    """What the metadata says about how training was spread: strategy, replicas, batch shares."""
    replicas = strategy.num_replicas_in_sync
    batch = global_batch_size(batch_size, train_size, replicas)
    workers = 1
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.cluster_resolver is not None:
        jobs = strategy.cluster_resolver.cluster_spec().as_dict()
        workers = max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))
    return {
        "strategy": strategy_name,
        "strategy_class": type(strategy).__name__,
        "replicas": replicas,
        "replicas_by_model": replicas_by_model,
        "workers": workers,
        "global_batch_size": batch,
        "per_replica_batch_size": batch // replicas,
        "chief": strategy_is_chief(strategy),
    }


def machine_summary() -> dict[str, Any]:
    """Where a run trained: the README's training times are only comparable on the same machine."""
    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return {"host_cpus": os.cpu_count(), "gpus": gpus, "platform": platform.platform(), "tensorflow": tf.__version__}
