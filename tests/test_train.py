"""core.train: a tiny real run on tiny images learns, reports every epoch and writes loadable checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import checkpoints
from core.compat import tf
from core.models import CONV_LAYER_NAMES, build_cnn
from core.train import TrainConfig, fit_model, train_pair

REPO = Path(__file__).resolve().parents[1]
TINY = TrainConfig(image_size=32, epochs=3, adversarial_epochs=2, batch_size=8, learning_rate=5e-3, pgd_iterations=2)


@pytest.fixture(scope="module")
def trained(tiny_beans, tmp_path_factory):
    output = tmp_path_factory.mktemp("checkpoints")
    reports = []
    metadata = train_pair(TINY, tiny_beans, output, on_epoch=reports.append, evaluate=False)
    return output, metadata, reports


def test_every_epoch_of_both_models_is_reported(trained):
    _, _, reports = trained
    assert [(r.model, r.epoch) for r in reports] == [
        ("baseline", 1), ("baseline", 2), ("baseline", 3), ("adversarial", 1), ("adversarial", 2)
    ]
    assert all(r.seconds > 0 and "loss" in r.metrics and "val_accuracy" in r.metrics for r in reports)


def test_adversarial_epochs_carry_nsl_adversarial_loss(trained):
    _, _, reports = trained
    assert all("scaled_adversarial_loss" in r.metrics for r in reports if r.model == "adversarial")


def test_adversarial_model_keeps_its_best_epoch_on_clean_plus_pgd_validation_accuracy(trained):
    _, metadata, reports = trained
    adversarial = [r for r in reports if r.model == "adversarial"]
    assert all(0.0 <= r.metrics["val_robust_accuracy"] <= 1.0 for r in adversarial)
    scores = [r.metrics["val_accuracy"] + r.metrics["val_robust_accuracy"] for r in adversarial]
    best = max(range(len(scores)), key=lambda i: (scores[i], i))  # ties go to the later epoch
    assert metadata["selection"]["adversarial"]["best_epoch"] == adversarial[best].epoch
    assert "PGD-5" in metadata["selection"]["adversarial"]["criterion"]
    assert "val_robust_accuracy" not in metadata["selection"]["baseline"]


def test_checkpoints_are_plain_keras_models_with_softmax_output(trained):
    output, _, _ = trained
    for name in checkpoints.MODEL_FILES.values():
        model = tf.keras.models.load_model(output / name, compile=False)
        probabilities = model(np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)).numpy()
        assert probabilities.shape == (2, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_metadata_records_config_data_fingerprint_and_timing(trained):
    output, metadata, _ = trained
    on_disk = json.loads((output / checkpoints.METADATA_FILE).read_text())
    assert on_disk["config"]["epochs"] == 3 and on_disk["config"]["pgd_iterations"] == 2
    assert len(on_disk["data"]["train_fingerprint"]) == 16
    assert on_disk["timing"]["baseline"]["seconds"] > 0
    assert on_disk == metadata


def test_training_learns_the_tiny_task(tiny_splits):
    # 12 images a split: batch 4 gives 3 steps an epoch, 36 in all, enough for batch norm's running
    # statistics (what validation uses) to catch up with the weights.
    config = TrainConfig(image_size=32, epochs=12, batch_size=4, learning_rate=5e-3)
    _, reporter = fit_model("baseline", config, tiny_splits["train"], tiny_splits["validation"])
    losses = [r.metrics["loss"] for r in reporter.reports]
    assert losses[-1] < losses[0]
    assert reporter.best_accuracy > 1 / 3 + 0.2  # clearly better than chance on 12 held-out images


def test_conv_layers_have_readable_names():
    model = build_cnn(32)
    assert [layer.name for layer in model.layers if layer.name in CONV_LAYER_NAMES] == list(CONV_LAYER_NAMES)


def test_command_line_trains_and_logs_progress(tiny_beans, tmp_path):
    progress = tmp_path / "progress.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "core.train", "--data-dir", str(tiny_beans), "--output-dir", str(tmp_path / "out"),
         "--image-size", "32", "--epochs", "1", "--adversarial-epochs", "1", "--pgd-iterations", "2",
         "--batch-size", "8", "--no-evaluate", "--progress-file", str(progress)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line)["event"] for line in progress.read_text().splitlines()]
    assert events == ["start", "epoch", "epoch", "done"]
    assert (tmp_path / "out" / "adversarial.keras").is_file()
    assert "Trained in" in result.stdout


def test_command_line_bad_data_dir_exits_with_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "core.train", "--data-dir", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "error: Beans folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
