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
from core.models import ARCHITECTURES, build_cnn, conv_block_names
from core.progress import read_events
from core.train import RECIPES, TrainConfig, command, config_arguments, fit_model, parse_args, train_pair

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


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_conv_layers_have_readable_names(arch):
    model = build_cnn(32, arch=arch)
    names = conv_block_names(arch)
    assert [layer.name for layer in model.layers if layer.name in names] == list(names)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_the_logits_layer_feeds_the_softmax(arch):
    model = build_cnn(32, arch=arch)
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    logits = tf.keras.Model(model.inputs, model.get_layer("logits").output)(images).numpy()
    np.testing.assert_allclose(model(images).numpy(), tf.nn.softmax(logits).numpy(), atol=1e-6)


def test_default_architecture_stays_small():
    assert build_cnn(64).count_params() <= 1_500_000


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_config_arguments_round_trip_through_the_command_line(recipe):
    config = RECIPES[recipe]
    assert parse_args(config_arguments(config))[0] == config


def test_changed_config_round_trips_through_the_command_line():
    config = TrainConfig(arch="seed", multiplier=0.2, adv_norm="l2", warm_start=False, init_from="some/run", adv_epsilon=1 / 3)
    assert parse_args(config_arguments(config))[0] == config


def test_recipe_flag_sets_defaults_and_other_flags_override():
    config, _ = parse_args(["--recipe", "quick", "--adversarial-epochs", "2"])
    assert config.epochs == RECIPES["quick"].epochs and config.init_from == RECIPES["quick"].init_from
    assert config.adversarial_epochs == 2


def test_zero_baseline_epochs_keeps_the_starting_baseline(trained, tiny_beans, tmp_path):
    folder, metadata, _ = trained
    config = TrainConfig(**{**metadata["config"], "epochs": 0, "adversarial_epochs": 1, "init_from": str(folder)})
    train_pair(config, tiny_beans, tmp_path, evaluate=False)
    before, after = checkpoints.load_pair(folder), checkpoints.load_pair(tmp_path)
    for old, new in zip(before.baseline.get_weights(), after.baseline.get_weights()):
        np.testing.assert_array_equal(old, new)
    changed = [not np.array_equal(a, b) for a, b in zip(before.baseline.get_weights(), after.adversarial.get_weights())]
    assert any(changed)  # the adversarial model was fine-tuned from it


def test_a_run_records_the_digests_of_the_pair_it_started_from(trained, tiny_beans, tmp_path):
    folder, metadata, _ = trained
    config = TrainConfig(**{**metadata["config"], "epochs": 0, "adversarial_epochs": 0, "init_from": str(folder)})
    written = train_pair(config, tiny_beans, tmp_path, evaluate=False)
    assert written["init_files"] == checkpoints.load_metadata(folder)[checkpoints.FILES_KEY]


def test_init_from_a_pair_of_another_architecture_is_refused(trained, tiny_beans, tmp_path):
    folder, metadata, _ = trained
    config = TrainConfig(**{**metadata["config"], "arch": "seed", "init_from": str(folder)})
    with pytest.raises(ValueError, match="--init-from"):
        train_pair(config, tiny_beans, tmp_path, evaluate=False)


def test_command_line_trains_and_logs_progress(tiny_beans, tmp_path):
    progress = tmp_path / "progress.jsonl"
    config = TrainConfig(image_size=32, epochs=1, adversarial_epochs=1, pgd_iterations=2, batch_size=8)
    result = subprocess.run(
        command(config, output_dir=tmp_path / "out", data_dir=tiny_beans, progress_file=progress, evaluate=False),
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = [event["event"] for event in read_events(progress)]
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


def test_weight_average_blends_old_and_new_weights():
    from core.callbacks import WeightAverage

    model = build_cnn(16)
    start = [np.zeros_like(w) for w in model.get_weights()]
    model.set_weights(start)
    average = WeightAverage(model, decay=0.99)
    average.on_train_begin()
    model.set_weights([np.ones_like(w) for w in start])
    average.on_train_batch_end(0)
    decay = 2 / 11  # the first update averages with a short memory: min(0.99, (1 + 1) / (10 + 1))
    for averaged in average.averaged():
        np.testing.assert_allclose(averaged, 1 - decay, rtol=1e-6)


def test_noise_sigma_adds_gaussian_noise_of_that_spread_to_every_training_photo():
    from core.batches import augment

    grey = tf.fill([64, 64, 3], 0.5)  # flips, turns and contrast leave it grey; brightness shifts every pixel alike
    plain, _ = augment(grey, tf.constant(0))
    noisy, _ = augment(grey, tf.constant(0), noise_sigma=0.12)
    assert float(tf.math.reduce_std(plain)) < 1e-6
    assert abs(float(tf.math.reduce_std(noisy)) - 0.12) < 0.01


def test_training_noise_is_not_clipped_to_the_pixel_range_as_in_certification():
    from core.batches import augment

    white, _ = augment(tf.ones([64, 64, 3]), tf.constant(0), noise_sigma=0.12)
    assert float(tf.reduce_max(white)) > 1.2  # core.certify feeds the model unclipped noisy values; training matches


def test_noise_sigma_is_a_command_line_flag_and_refuses_a_negative_spread():
    config, _ = parse_args(["--recipe", "quick", "--noise-sigma", "0.12"])
    assert config.noise_sigma == pytest.approx(0.12) and parse_args(config_arguments(config))[0] == config
    assert "--noise-sigma" in command(config)
    with pytest.raises(ValueError, match="noise_sigma"):
        TrainConfig(noise_sigma=-0.1)


def test_weight_decay_shrinks_kernels_and_leaves_biases_and_batch_norm_alone():
    from core.train import _optimizer

    model = build_cnn(16)
    config = TrainConfig(learning_rate=1e-2, weight_decay=0.5)
    optimizer = _optimizer(config, train_size=32, epochs=1000)  # the cosine schedule barely moves in one step
    before = {v.name: v.numpy().copy() for v in model.trainable_variables}
    optimizer.apply_gradients((tf.zeros_like(v), v) for v in model.trainable_variables)  # Adam's own step is 0 here
    for variable in model.trainable_variables:
        if variable.name.endswith("kernel:0"):
            np.testing.assert_allclose(variable.numpy(), before[variable.name] * (1 - 1e-2 * 0.5), rtol=1e-5)
        else:  # biases, batch norm's gamma and beta
            np.testing.assert_array_equal(variable.numpy(), before[variable.name])


def test_weight_decay_is_off_by_default_and_a_command_line_flag():
    from core.train import _optimizer

    assert not isinstance(_optimizer(TrainConfig(), 32, 1), tf.keras.optimizers.AdamW)
    config, _ = parse_args(["--weight-decay", "0.05"])
    assert config.weight_decay == pytest.approx(0.05) and parse_args(config_arguments(config))[0] == config
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(weight_decay=-1.0)


def test_the_attack_mode_reaches_nsls_wrapper_and_trains(tiny_splits, monkeypatch):
    import core.train
    from core import models

    modes = []

    def recording(base_model, multiplier, neighbors, attack_mode="training"):
        modes.append(attack_mode)
        return models.wrap_adversarial(base_model, multiplier, neighbors, attack_mode)

    monkeypatch.setattr(core.train, "wrap_adversarial", recording)
    config = TrainConfig(image_size=32, adversarial_epochs=1, batch_size=4, attack_mode="inference", selection_pgd_iterations=0)
    _, reporter = fit_model("adversarial", config, tiny_splits["train"], tiny_splits["validation"])
    assert modes == ["inference"]
    assert reporter.reports[-1].metrics["scaled_adversarial_loss"] > 0
    assert parse_args(config_arguments(config))[0] == config and parse_args(["--attack-mode", "inference"])[0].attack_mode == "inference"
