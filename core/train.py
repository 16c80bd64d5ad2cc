"""Train the baseline and the NSL adversarially regularized model, then save both atomically.

Command line (one clear path, keras-io style)::

    python -m core.train --data-dir ../shared/beans            # both models, the full recipe (the shipped pair)
    python -m core.train --recipe quick --output-dir runs/x     # the dashboard's ~2 min retrain from the shipped weights
    python -m core.train --epochs 5 --adversarial-epochs 5 --multiplier 0.5 --adv-norm l2
    python -m core.train --strategy mirrored --batch-size 64    # all local GPUs, 64 images a step in all

Python (the dashboard drives the same code with its own progress bar)::

    metadata = train_pair(TrainConfig(), data_dir, on_epoch=lambda report: print(report))
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import checkpoints, data
from core.attacks import Attack, attack
from core.compat import nsl, tf
from core.models import ARCHITECTURES, DEFAULT_ARCH, INPUT_NAME, LABEL_NAME, build_cnn, neighbor_config, wrap_adversarial

STRATEGIES = ("default", "mirrored", "multiworker")


def _knob(default: Any, help: str, **extra: Any) -> Any:
    """A TrainConfig field with its one help text (CLI ``--help``, the retrain form's tooltip)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Everything that decides what a training run produces (saved next to the checkpoints).

    The one source of defaults and names: ``python -m core.train``'s flags, the dashboard's
    retrain form and the subprocess arguments (:func:`config_arguments`) are all built from these
    fields. The defaults are the ``full`` recipe (:data:`RECIPES`).
    """

    arch: str = _knob(DEFAULT_ARCH, "network both models share", choices=tuple(ARCHITECTURES))
    image_size: int = _knob(data.DEFAULT_IMAGE_SIZE, "input size in pixels (square)")
    epochs: int = _knob(40, "epochs of the baseline (0: keep the baseline from --init-from)")
    adversarial_epochs: int = _knob(160, "epochs of the adversarial (NSL) model")
    batch_size: int = _knob(32, "global batch size")
    learning_rate: float = _knob(2e-3, "peak learning rate (Adam, cosine decay to 0)")
    multiplier: float = _knob(1.0, "NSL multiplier: weight of the loss on attacked neighbours")
    adv_step_size: float = _knob(7.0 / 255 * 5 / 6, "size of one step of the training attack")
    adv_norm: str = _knob("infinity", "norm of the training attack", choices=("infinity", "l2", "l1"))
    pgd_iterations: int = _knob(3, "steps of the training attack (1 = FGSM)")
    adv_epsilon: float = _knob(7.0 / 255, "budget ε of the training attack (PGD projects into this ball)")
    weight_averaging: float = _knob(0.99, "decay of the moving average of the weights that is kept (0: off)")
    seed: int = _knob(0, "random seed")
    strategy: str = _knob("default", "tf.distribute strategy; --batch-size is split evenly across replicas", choices=STRATEGIES)
    warm_start: bool = _knob(True, "the adversarial model starts from the trained baseline's weights")
    # The adversarial model keeps the epoch with the best clean + PGD validation accuracy (PGD with
    # this many steps, L-inf, adv_epsilon); 0 keeps the best clean accuracy, like the baseline.
    selection_pgd_iterations: int = _knob(5, "PGD steps of the validation attack that picks the adversarial model's epoch (0: clean accuracy only)")
    init_from: str = _knob("", "checkpoint folder whose weights both models start from ('' = from scratch)")

    def neighbor_config(self) -> "nsl.configs.AdvNeighborConfig":
        return neighbor_config(self.adv_step_size, self.adv_norm, self.pgd_iterations, self.adv_epsilon)


# ``full`` trains the shipped pair (see README for its time); ``quick`` is what the dashboard's
# retrain button runs: it keeps the shipped baseline and fine-tunes its weights adversarially,
# so a class sees what the NSL knobs do within ~2 minutes on 2 cores.
RECIPES: dict[str, TrainConfig] = {
    "full": TrainConfig(),
    "quick": TrainConfig(
        epochs=0, adversarial_epochs=6, learning_rate=1e-3, weight_averaging=0.0, selection_pgd_iterations=0,
        init_from=str(checkpoints.DEFAULT_DIR),
    ),
}


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch of one model: what a progress bar shows."""

    model: str  # "baseline" or "adversarial"
    epoch: int  # 1-based
    epochs: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[EpochReport], None]


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

    NSL's random PGD start needs a static batch dimension, so every replica must see the same
    number of examples: the batch must divide evenly. A training set smaller than the batch
    shrinks it to the largest multiple of ``replicas`` that fits.
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


def augment(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Leaves have no up or left: flips and quarter turns, plus mild lighting changes."""
    images = tf.image.random_flip_left_right(images)
    images = tf.image.random_flip_up_down(images)
    images = tf.image.rot90(images, tf.random.uniform([], 0, 4, tf.int32))
    images = tf.image.random_brightness(images, 0.1)
    images = tf.image.random_contrast(images, 0.9, 1.1)
    return tf.clip_by_value(images, 0.0, 1.0), labels


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Whole global batches in one pass over the training split (the remainder is dropped)."""
    return train_size // min(batch_size, train_size)


def training_dataset(
    split: data.Split, batch_size: int, seed: int, as_dict: bool, strategy: tf.distribute.Strategy | None = None
) -> "tf.data.Dataset | tf.distribute.DistributedDataset":
    """Shuffled, augmented batches; dicts ``{"image", "label"}`` for NSL's wrapper.

    ``batch_size`` is the global batch. Under a strategy every replica gets its own batches of
    ``batch_size / replicas`` examples from a dataset built per worker: letting Keras split global
    batches instead loses the static batch dimension under MultiWorkerMirroredStrategy, and NSL's
    random PGD start cannot handle an unknown one. Every worker shuffles with the same seed, keeps
    the same whole number of global batches and reads only its own share of them, so all workers
    run the same number of steps. With one device this is the plain ``tf.data.Dataset``. It repeats:
    train ``len(split) // batch_size`` steps an epoch (:func:`steps_per_epoch`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    steps = steps_per_epoch(len(split), batch_size)
    batch_size = min(batch_size, len(split))

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica_batch = context.get_per_replica_batch_size(batch_size)
        dataset = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True).take(steps * batch_size)
        if context.num_input_pipelines > 1:
            dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
        # A static batch size: NSL's random PGD start cannot handle an unknown batch dimension.
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(per_replica_batch, drop_remainder=True)
        dataset = dataset.repeat()  # one pass is exactly one epoch of ``steps``; fit needs steps for distributed data
        if as_dict:
            dataset = dataset.map(lambda images, labels: {INPUT_NAME: images, LABEL_NAME: labels})
        return dataset.prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(per_worker)  # the default strategy: per_worker's dataset


class WeightAverage(tf.keras.callbacks.Callback):
    """An exponential moving average of every weight (batch-norm statistics included).

    Why: on 1034 images the weights of one epoch are noisy; their average is both more accurate
    and, for adversarial training, more robust (Izmailov et al. 2018; Gowal et al. 2020), and
    needs no choice of epoch on the 133 validation images. Updated after every batch.
    """

    def __init__(self, base_model: tf.keras.Model, decay: float):
        super().__init__()
        self.base_model, self.decay = base_model, decay
        self.averages: list[tf.Variable] = []
        self.updates = 0

    def on_train_begin(self, logs=None):
        self.averages = [tf.Variable(weight, trainable=False) for weight in self.base_model.weights]
        self.updates = 0

    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        # Early on, average with a shorter memory (as in TF's ExponentialMovingAverage num_updates).
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for average, weight in zip(self.averages, self.base_model.weights):
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))

    def averaged(self) -> list[np.ndarray]:
        return [average.numpy() for average in self.averages]


class _Reporter(tf.keras.callbacks.Callback):
    """Times each epoch, forwards it to ``on_epoch`` and keeps the best weights on validation.

    With weight averaging, the averaged weights are the candidate of each epoch.
    """

    def __init__(
        self,
        name: str,
        epochs: int,
        base_model: tf.keras.Model,
        validation: data.Split,
        on_epoch: EpochCallback | None,
        robust_threat: Attack | None = None,
        average: WeightAverage | None = None,
    ):
        super().__init__()
        self.name, self.epochs, self.base_model = name, epochs, base_model
        self.validation, self.on_epoch, self.robust_threat = validation, on_epoch, robust_threat
        self.average = average
        self.best_accuracy, self.best_weights, self.best_epoch = -1.0, None, 0
        self.best_score = -1.0
        self.criterion = "val_accuracy" if robust_threat is None else f"val_accuracy + val accuracy under {robust_threat.label}"
        if average is not None:
            self.criterion += f" (weights averaged, decay {average.decay:g})"
        self.reports: list[EpochReport] = []
        self.replicas = 0

    def on_train_begin(self, logs=None):
        # What ``fit`` really distributed over: the trained model's own strategy.
        self.replicas = self.model.distribute_strategy.num_replicas_in_sync

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def _validate(self) -> dict[str, float]:
        probabilities = self.base_model.predict(self.validation.images, batch_size=256, verbose=0)
        metrics = {"val_accuracy": float((probabilities.argmax(axis=1) == self.validation.labels).mean())}
        if self.robust_threat is not None:  # a robust model is chosen for robustness too, not clean accuracy alone
            attacked = attack(self.validation.images, self.validation.labels, self.base_model, self.robust_threat)
            predicted = self.base_model.predict(attacked, batch_size=256, verbose=0).argmax(axis=1)
            metrics["val_robust_accuracy"] = float((predicted == self.validation.labels).mean())
        return metrics

    def on_epoch_end(self, epoch, logs=None):
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        current = None
        if self.average is not None:
            current = self.base_model.get_weights()
            self.base_model.set_weights(self.average.averaged())
        metrics.update(self._validate())
        score = metrics["val_accuracy"] + metrics.get("val_robust_accuracy", 0.0)
        if score >= self.best_score:  # ties go to the later, better-trained epoch
            self.best_score, self.best_accuracy = score, metrics["val_accuracy"]
            self.best_weights, self.best_epoch = self.base_model.get_weights(), epoch + 1
        if current is not None:
            self.base_model.set_weights(current)
        report = EpochReport(self.name, epoch + 1, self.epochs, time.perf_counter() - self.started, metrics)
        self.reports.append(report)
        if self.on_epoch is not None:
            self.on_epoch(report)

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.base_model.set_weights(self.best_weights)


def _optimizer(config: TrainConfig, train_size: int, epochs: int) -> tf.keras.optimizers.Optimizer:
    steps = max(1, epochs * steps_per_epoch(train_size, config.batch_size))
    return tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(config.learning_rate, steps))


def fit_model(
    kind: str,
    config: TrainConfig,
    train: data.Split,
    validation: data.Split,
    on_epoch: EpochCallback | None = None,
    initial_weights: list[np.ndarray] | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[tf.keras.Model, _Reporter]:
    """Train one model (``kind`` = "baseline" or "adversarial"); return the plain Keras model.

    Both kinds share seed and architecture; the adversarial one is trained through
    ``nsl.keras.AdversarialRegularization`` (optionally fine-tuning ``initial_weights``, e.g. the
    baseline's) and only its base model is returned. ``strategy`` defaults to the one
    ``config.strategy`` names; pass one in to train several models under one strategy object.
    Model, NSL wrapper, optimizer and metrics are all created in its scope, so their variables
    are mirrored; ``config.batch_size`` is the global batch, split evenly across the replicas.
    With 0 epochs the model is ``initial_weights`` unchanged (the quick recipe's baseline).
    """
    if kind not in checkpoints.MODEL_FILES:
        raise ValueError(f"Unknown model kind {kind!r}.")
    strategy = strategy or get_strategy(config.strategy)
    batch_size = global_batch_size(config.batch_size, len(train), strategy.num_replicas_in_sync)
    epochs = config.epochs if kind == "baseline" else config.adversarial_epochs
    if epochs == 0 and initial_weights is None:
        raise ValueError(f"0 epochs for the {kind} model needs weights to start from (--init-from).")
    tf.keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        base_model = build_cnn(config.image_size, num_classes=len(data.CLASS_NAMES), name=kind, arch=config.arch)
        if initial_weights is not None:
            base_model.set_weights(initial_weights)
        trained = base_model if kind == "baseline" else wrap_adversarial(base_model, config.multiplier, config.neighbor_config())
        trained.compile(
            optimizer=_optimizer(config, len(train), epochs),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    robust_threat = None
    if kind == "adversarial" and config.selection_pgd_iterations > 0:
        robust_threat = Attack("infinity", config.adv_epsilon, config.selection_pgd_iterations)
    average = WeightAverage(base_model, config.weight_averaging) if config.weight_averaging > 0 else None
    reporter = _Reporter(kind, epochs, base_model, validation, on_epoch, robust_threat, average)
    if epochs == 0:
        return base_model, reporter
    batches = training_dataset(train, batch_size, config.seed, as_dict=kind == "adversarial", strategy=strategy)
    callbacks = [average, reporter] if average is not None else [reporter]
    trained.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch(len(train), batch_size), callbacks=callbacks, verbose=0)
    return base_model, reporter


def starting_weights(config: TrainConfig) -> dict[str, list[np.ndarray]]:
    """Weights each model starts from: ``config.init_from``'s pair, checked to fit ``config``."""
    if not config.init_from:
        return {}
    pair = checkpoints.load_pair(config.init_from)
    size = int(pair.baseline.input_shape[1])
    arch = pair.metadata.get("config", {}).get("arch", "seed")
    if size != config.image_size or arch != config.arch:
        raise ValueError(
            f"--init-from {config.init_from} holds {arch} models at {size} px; this run asks for "
            f"{config.arch} at {config.image_size} px. Use the same --arch and --image-size, or train from scratch."
        )
    return {kind: pair[kind].get_weights() for kind in checkpoints.MODEL_FILES}


def train_pair(
    config: TrainConfig,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Load Beans, train both models, evaluate on test, and save everything atomically.

    Nothing is written until both models trained: a failure leaves the old checkpoints in place.
    Returns the metadata written next to the models.

    The strategy is created once, first (MultiWorkerMirroredStrategy must exist before any other
    TensorFlow op), and both models train under it. With several workers every worker runs this
    same code in step; only the chief writes to ``output_dir``, the others to a temporary folder
    they delete, so that workers sharing a file system never race on the checkpoints.
    """
    strategy = get_strategy(config.strategy)
    started = time.perf_counter()
    initial = starting_weights(config)
    train = data.load_split("train", config.image_size, data_dir)
    validation = data.load_split("validation", config.image_size, data_dir)
    load_seconds = time.perf_counter() - started
    models, timings, selection, replicas = {}, {}, {}, {}
    for kind in checkpoints.MODEL_FILES:
        kind_started = time.perf_counter()
        start_from = initial.get(kind)
        if kind == "adversarial" and config.warm_start:
            start_from = models["baseline"].get_weights()  # NSL fine-tunes the (trained) baseline
        models[kind], reporter = fit_model(kind, config, train, validation, on_epoch, initial_weights=start_from, strategy=strategy)
        replicas[kind] = reporter.replicas
        timings[kind] = {
            "seconds": round(time.perf_counter() - kind_started, 2),
            "seconds_per_epoch": [round(report.seconds, 3) for report in reporter.reports],
        }
        selection[kind] = {"best_epoch": reporter.best_epoch, "val_accuracy": reporter.best_accuracy, "criterion": reporter.criterion}
        if reporter.robust_threat is not None:
            selection[kind]["val_robust_accuracy"] = round(reporter.best_score - reporter.best_accuracy, 4)
    train_seconds = time.perf_counter() - started
    metadata: dict[str, Any] = {
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "class_names": list(data.CLASS_NAMES),
        "config": dataclasses.asdict(config),
        "data": {
            "source": str(data.resolve_data_dir(data_dir) or "tfds:beans"),
            "train_fingerprint": data.fingerprint(train),
            "validation_fingerprint": data.fingerprint(validation),
            "train_examples": len(train),
            "validation_examples": len(validation),
        },
        "selection": selection,
        "timing": {"data_seconds": round(load_seconds, 2), "total_train_seconds": round(train_seconds, 2), **timings},
        "machine": machine_summary(),
        "distribution": distribution_summary(strategy, config, len(train), replicas),
    }
    if evaluate:
        from core.evaluate import evaluate_pair

        test = data.load_split("test", config.image_size, data_dir)
        metadata["data"]["test_fingerprint"] = data.fingerprint(test)
        metadata["evaluation"] = evaluate_pair(models["baseline"], models["adversarial"], test)
    if strategy_is_chief(strategy):
        checkpoints.save_pair(models["baseline"], models["adversarial"], metadata, output_dir)
    else:
        scratch = tempfile.mkdtemp(prefix="beanguard-worker-")
        try:
            checkpoints.save_pair(models["baseline"], models["adversarial"], metadata, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return metadata


def machine_summary() -> dict[str, Any]:
    """Where a run trained: the README's training times are only comparable on the same machine."""
    import os
    import platform

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return {"host_cpus": os.cpu_count(), "gpus": gpus, "platform": platform.platform(), "tensorflow": tf.__version__}


def distribution_summary(
    strategy: tf.distribute.Strategy, config: TrainConfig, train_size: int, replicas_by_model: dict[str, int]
) -> dict[str, Any]:
    """What the metadata says about how training was spread: strategy, replicas, batch shares."""
    replicas = strategy.num_replicas_in_sync
    batch = global_batch_size(config.batch_size, train_size, replicas)
    workers = 1
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.cluster_resolver is not None:
        jobs = strategy.cluster_resolver.cluster_spec().as_dict()
        workers = max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))
    return {
        "strategy": config.strategy,
        "strategy_class": type(strategy).__name__,
        "replicas": replicas,
        "replicas_by_model": replicas_by_model,
        "workers": workers,
        "global_batch_size": batch,
        "per_replica_batch_size": batch // replicas,
        "chief": strategy_is_chief(strategy),
    }


class ProgressLog:
    """JSON lines another process can follow (the dashboard runs training as a subprocess)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **record}) + "\n")
            handle.flush()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Flags built from :class:`TrainConfig`'s fields; ``--recipe`` picks the defaults the others override."""
    argv = sys.argv[1:] if argv is None else list(argv)
    recipe_parser = argparse.ArgumentParser(add_help=False)
    recipe_parser.add_argument("--recipe", choices=tuple(RECIPES), default="full")
    defaults = RECIPES[recipe_parser.parse_known_args(argv)[0].recipe]
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="full", help="preset the other flags override: full (the shipped pair) or quick (the dashboard's retrain)")
    parser.add_argument("--data-dir", help=f"local Beans folder <root>/<split>/<class>/*.jpg (default: ${data.DATA_DIR_ENV}, else TFDS)")
    parser.add_argument("--output-dir", help="where to write the checkpoints (default: checkpoints/)")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the test-split evaluation table")
    parser.add_argument("--progress-file", help="append one JSON line per epoch (and a final 'done'/'error' line) here")
    for item in dataclasses.fields(TrainConfig):
        default = getattr(defaults, item.name)
        options: dict[str, Any] = {"default": default, "help": f"{item.metadata['help']} (default: %(default)s)"}
        if isinstance(default, bool):
            options["action"] = argparse.BooleanOptionalAction
        elif "choices" in item.metadata:
            options["choices"] = item.metadata["choices"]
        else:
            options["type"] = type(default)
        parser.add_argument(_flag(item.name), **options)
    args = parser.parse_args(argv)
    config = TrainConfig(**{item.name: getattr(args, item.name) for item in dataclasses.fields(TrainConfig)})
    return config, args


def config_arguments(config: TrainConfig) -> list[str]:
    """The ``python -m core.train`` flags that make exactly ``config`` (inverse of :func:`parse_args`)."""
    arguments: list[str] = []
    for item in dataclasses.fields(TrainConfig):
        value = getattr(config, item.name)
        if isinstance(value, bool):
            arguments.append(_flag(item.name) if value else "--no-" + item.name.replace("_", "-"))
        else:
            arguments += [_flag(item.name), repr(value) if isinstance(value, float) else str(value)]
    return arguments


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    config, args = parse_args(argv)
    bars: dict[str, tqdm] = {}
    log = ProgressLog(args.progress_file)

    def show(report: EpochReport) -> None:
        log.write({"event": "epoch", **dataclasses.asdict(report)})
        bar = bars.get(report.model)
        if bar is None:
            bar = bars[report.model] = tqdm(total=report.epochs, desc=f"{report.model:>11}", unit="epoch", file=sys.stdout)
        bar.set_postfix(
            loss=f"{report.metrics.get('loss', float('nan')):.3f}",
            val_acc=f"{report.metrics['val_accuracy']:.3f}",
            s_per_epoch=f"{report.seconds:.1f}",
        )
        bar.update(1)
        if report.epoch == report.epochs:
            bar.close()

    log.write({"event": "start", "config": dataclasses.asdict(config)})
    try:
        metadata = train_pair(config, args.data_dir, args.output_dir, on_epoch=show, evaluate=not args.no_evaluate)
    except (data.DataError, DistributionError) as error:
        log.write({"event": "error", "message": str(error)})
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BaseException as error:  # noqa: BLE001  the log must say why, whatever went wrong
        log.write({"event": "error", "message": f"{type(error).__name__}: {error}"})
        raise
    log.write({"event": "done", "timing": metadata["timing"]})
    timing, distribution = metadata["timing"], metadata["distribution"]
    saved = f"saved to {checkpoints.checkpoint_dir(args.output_dir)}" if distribution["chief"] else "the chief saves the checkpoints"
    print(
        f"Trained in {timing['total_train_seconds']:.1f} s (baseline {timing['baseline']['seconds']:.1f} s, "
        f"adversarial {timing['adversarial']['seconds']:.1f} s) on {distribution['replicas']} replica(s); {saved}"
    )
    if "evaluation" in metadata:
        from core.evaluate import format_table

        print(format_table(metadata["evaluation"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
