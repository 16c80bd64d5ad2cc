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
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import checkpoints, data
from core.attacks import Attack
from core.batches import steps_per_epoch, training_dataset
from core.callbacks import EpochReporter, WeightAverage
from core.compat import nsl, tf
from core.distribute import STRATEGIES, DistributionError, distribution_summary, get_strategy, global_batch_size, machine_summary, strategy_is_chief
from core.models import ARCHITECTURES, ATTACK_MODES, DEFAULT_ARCH, build_cnn, neighbor_config, wrap_adversarial
from core.progress import EpochCallback, EpochReport, ProgressLog


# How a run is started as its own process: this Python, this package's command line.
LAUNCHER: tuple[str, ...] = (sys.executable, "-m", "core.train")


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
    epochs: int = _knob(40, "epochs of the baseline (0: keep the starting baseline as it is)")
    adversarial_epochs: int = _knob(160, "epochs of the NSL model")
    batch_size: int = _knob(32, "global batch size")
    learning_rate: float = _knob(2e-3, "peak learning rate (Adam, cosine decay to 0)")
    weight_decay: float = _knob(0.0, "decoupled weight decay of the convolution and dense kernels (AdamW; 0: plain Adam)")
    multiplier: float = _knob(1.0, "how much the attacked photos count in the NSL model's training (the NSL multiplier)")
    adv_step_size: float = _knob(7.0 / 255 * 5 / 6, "size of each step of the attack the NSL model trains against")
    adv_norm: str = _knob("infinity", "how the change of the attack the NSL model trains against is measured (its norm)", choices=("infinity", "l2", "l1"))
    pgd_iterations: int = _knob(3, "steps of the attack the NSL model trains against (1 = one big step, FGSM)")
    adv_epsilon: float = _knob(7.0 / 255, "budget ε of the attack the NSL model trains against")
    attack_mode: str = _knob("training", "mode the NSL model's training attack runs the model in (inference: batch norm with its running statistics)", choices=ATTACK_MODES)
    weight_averaging: float = _knob(0.99, "decay of the moving average of the weights that is kept (0: off)")
    seed: int = _knob(0, "random seed")
    strategy: str = _knob("default", "tf.distribute strategy; --batch-size is split evenly across replicas", choices=STRATEGIES)
    warm_start: bool = _knob(True, "the adversarial model starts from the trained baseline's weights")
    # The adversarial model keeps the epoch with the best clean + PGD validation accuracy (PGD with
    # this many steps, L-inf, adv_epsilon); 0 keeps the best clean accuracy, like the baseline.
    selection_pgd_iterations: int = _knob(5, "PGD steps of the validation attack that picks the adversarial model's epoch (0: clean accuracy only)")
    init_from: str = _knob("", "checkpoint folder whose weights both models start from ('' = from scratch)")
    noise_sigma: float = _knob(0.0, "spread σ of Gaussian noise added to every training photo, in [0, 1] pixel units (0: none); for randomized smoothing")

    def __post_init__(self) -> None:
        for name, what in (("noise_sigma", "The training noise's spread"), ("weight_decay", "The weight decay")):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ValueError(f"{what} ({name}) must be 0 or more, got {getattr(self, name)}.")

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


def _optimizer(config: TrainConfig, train_size: int, epochs: int) -> tf.keras.optimizers.Optimizer:
    """Adam with cosine decay; with ``weight_decay``, AdamW, whose decay shrinks only the convolution and dense
    kernels: batch norm's scales and every bias stay free, as in the adversarial-training studies that tuned it."""
    steps = max(1, epochs * steps_per_epoch(train_size, config.batch_size))
    schedule = tf.keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    if config.weight_decay == 0:
        return tf.keras.optimizers.Adam(schedule)
    optimizer = tf.keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def fit_model(
    kind: str,
    config: TrainConfig,
    train: data.Split,
    validation: data.Split,
    on_epoch: EpochCallback | None = None,
    initial_weights: list[np.ndarray] | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[tf.keras.Model, EpochReporter]:
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
        trained = base_model if kind == "baseline" else wrap_adversarial(base_model, config.multiplier, config.neighbor_config(), config.attack_mode)
        trained.compile(
            optimizer=_optimizer(config, len(train), epochs),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    robust_threat = None
    if kind == "adversarial" and config.selection_pgd_iterations > 0:
        robust_threat = Attack("infinity", config.adv_epsilon, config.selection_pgd_iterations)
    average = WeightAverage(base_model, config.weight_averaging) if config.weight_averaging > 0 else None
    reporter = EpochReporter(kind, epochs, base_model, validation, on_epoch, robust_threat, average)
    if epochs == 0:
        return base_model, reporter
    batches = training_dataset(train, batch_size, config.seed, as_dict=kind == "adversarial", strategy=strategy, noise_sigma=config.noise_sigma)
    callbacks = [average, reporter] if average is not None else [reporter]
    trained.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch(len(train), batch_size), callbacks=callbacks, verbose=0)
    return base_model, reporter


def starting_weights(config: TrainConfig) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Weights each model starts from: ``config.init_from``'s pair, checked to fit ``config``; and its files' digests.

    Why the digests: ``init_from`` names a folder, whose files a later ship may replace; the digests
    say which pair the run really started from (``core.metadata`` stores them as the run's parent)."""
    if not config.init_from:
        return {}, {}
    pair = checkpoints.load_pair(config.init_from)
    size = pair.image_size
    arch = pair.metadata.get("config", {}).get("arch", "seed")
    if size != config.image_size or arch != config.arch:
        raise ValueError(
            f"--init-from {config.init_from} holds {arch} models at {size} px; this run asks for "
            f"{config.arch} at {config.image_size} px. Use the same --arch and --image-size, or train from scratch."
        )
    return {kind: pair[kind].get_weights() for kind in checkpoints.MODEL_FILES}, dict(pair.metadata.get(checkpoints.FILES_KEY, {}))


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
    initial, initial_files = starting_weights(config)
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
        **({"init_files": initial_files} if initial_files else {}),
        "timing": {"data_seconds": round(load_seconds, 2), "total_train_seconds": round(train_seconds, 2), **timings},
        "machine": machine_summary(),
        "distribution": distribution_summary(strategy, config.strategy, config.batch_size, len(train), replicas),
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


def command(
    config: TrainConfig,
    output_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress_file: str | Path | None = None,
    evaluate: bool = True,
    launcher: tuple[str, ...] | None = None,
) -> list[str]:
    """The whole ``python -m core.train`` command line that trains ``config`` (the one argv builder:
    the dashboard's retraining, the tests and ``bench/bench_train.py`` all start runs with it).
    ``launcher`` replaces ``python -m core.train`` (a test's wrapper script that injects a fault)."""
    argv = [*(launcher or LAUNCHER), *config_arguments(config)]
    for flag, value in (("--output-dir", output_dir), ("--data-dir", data_dir), ("--progress-file", progress_file)):
        if value is not None:
            argv += [flag, str(value)]
    if not evaluate:
        argv.append("--no-evaluate")
    return argv


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    config, args = parse_args(argv)
    bars: dict[str, tqdm] = {}
    log = ProgressLog(args.progress_file)

    def show(report: EpochReport) -> None:
        log.epoch(report)
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
