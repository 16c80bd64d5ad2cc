"""Train tiny models under MirroredStrategy on a CPU split into logical devices; write JSON results.

Run as its own process by ``tests/test_distribution.py``: logical devices must be configured
before TensorFlow initializes, and must not leak into the pytest process. Usage::

    python tests/distributed_training.py DATA_DIR WORK_DIR [--devices 2] [--epochs 8]

Writes ``WORK_DIR/result.json`` (what the tests assert on), and what ``python -m core.train
--strategy mirrored``'s ``main`` writes: checkpoints in ``WORK_DIR/cli/`` and the per-epoch log
``WORK_DIR/progress.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository root

from core.compat import tf  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

IMAGE_SIZE = 32


def split_cpu(devices: int) -> None:
    """One physical CPU as ``devices`` logical ones, so MirroredStrategy has that many replicas."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def one_step_weights(strategy, kind: str, images, labels, initial_weights) -> tuple[list[np.ndarray], list[str]]:
    """Weights after one SGD step on one batch of 8: the same on 2 replicas as on 1 if the loss
    (NSL's included) is scaled right. A dense model without batch norm or dropout, and FGSM without
    a random start, so that nothing but the distribution can differ. Also returns the devices
    holding the first variable's copies (one per replica)."""
    from core.models import neighbor_config, wrap_adversarial

    with strategy.scope():
        inputs = tf.keras.Input(images.shape[1:], name="image")
        base = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(tf.keras.layers.Flatten()(inputs)))
        base.set_weights(initial_weights)
        neighbors = neighbor_config(step_size=0.05, norm="infinity", pgd_iterations=1, epsilon=0.05)  # FGSM, no random start
        trained = base if kind == "baseline" else wrap_adversarial(base, 1.0, neighbors)
        trained.compile(optimizer=tf.keras.optimizers.SGD(0.5), loss=tf.keras.losses.SparseCategoricalCrossentropy())
    features = (images, labels) if kind == "baseline" else {"image": images, "label": labels}
    trained.fit(tf.data.Dataset.from_tensor_slices(features).batch(8, drop_remainder=True), epochs=1, verbose=0)
    devices = sorted({value.device for value in base.weights[0].values}) if hasattr(base.weights[0], "values") else []
    return base.get_weights(), devices


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    split_cpu(args.devices)

    from core import data, distribute, train

    result: dict = {"logical_devices": [device.name for device in tf.config.list_logical_devices("CPU")]}
    strategy = distribute.get_strategy("mirrored")  # the same object the command line below trains under
    result["strategy_replicas"] = strategy.num_replicas_in_sync
    train_split = data.load_split("train", IMAGE_SIZE, args.data_dir)

    images, labels = train_split.images[:8], train_split.labels[:8]
    start = [np.random.default_rng(0).normal(0, 0.01, (images[0].size, 3)).astype(np.float32), np.zeros(3, np.float32)]
    result["one_step"] = {}
    for kind in ("baseline", "adversarial"):
        on_two, devices = one_step_weights(strategy, kind, images, labels, start)
        on_one, _ = one_step_weights(tf.distribute.get_strategy(), kind, images, labels, start)
        result["one_step"][kind] = {
            "variable_devices": devices,
            "max_difference": max(float(np.abs(a - b).max()) for a, b in zip(on_two, on_one)),
            "max_update": max(float(np.abs(a - b).max()) for a, b in zip(on_one, start)),
        }

    try:
        odd_batch = train.TrainConfig(image_size=IMAGE_SIZE, epochs=1, batch_size=7)
        train.fit_model("baseline", odd_batch, train_split, train_split, strategy=strategy)
        result["odd_batch_error"] = None
    except distribute.DistributionError as error:
        result["odd_batch_error"] = str(error)

    # The command line, as `python -m core.train` runs it. 8 images a step, 4 per replica; the
    # NSL model starts from scratch, so its falling loss is the NSL objective being minimized.
    result["cli_exit_code"] = train.main([
        "--data-dir", args.data_dir, "--output-dir", str(args.work_dir / "cli"), "--strategy", "mirrored",
        "--progress-file", str(args.work_dir / "progress.jsonl"), "--image-size", str(IMAGE_SIZE),
        "--epochs", str(args.epochs), "--adversarial-epochs", str(args.epochs), "--pgd-iterations", "2",
        "--batch-size", "8", "--learning-rate", "0.005", "--no-warm-start", "--no-evaluate",
    ])  # fmt: skip
    (args.work_dir / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
