"""core.attacks: perturbations stay inside their budget and the image box, and PGD hurts at least as much as FGSM."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from core import attacks, sparse_l1
from core.compat import tf
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS
from tests.support.beans import REPO_ROOT

BUDGETS = {"infinity": 8 / 255, "l2": 0.5, "l1": 5.0}


def loss_of(model, images, labels) -> float:
    probabilities = model.predict(images, verbose=0)
    return float(tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities).numpy().mean())


@pytest.mark.parametrize("norm", attacks.NORMS)
@pytest.mark.parametrize("iterations", [1, 5])
def test_perturbation_stays_inside_the_epsilon_ball(tiny_model, tiny_splits, norm, iterations):
    test = tiny_splits["test"]
    threat = attacks.Attack(norm, BUDGETS[norm], iterations)
    adversarial = attacks.attack(test.images, test.labels, tiny_model, threat)
    sizes = attacks.perturbation_norm(adversarial - test.images, norm)
    assert np.all(sizes <= BUDGETS[norm] * (1 + 1e-5) + 1e-6)
    assert sizes.max() > 0  # it did move


@pytest.mark.parametrize("norm", attacks.NORMS)
def test_adversarial_images_stay_in_unit_box(tiny_model, tiny_splits, norm):
    test = tiny_splits["test"]
    saturated = np.clip(test.images * 3 - 1, 0, 1)  # many pixels sit exactly at 0 or 1
    adversarial = attacks.attack(saturated, test.labels, tiny_model, attacks.Attack(norm, BUDGETS[norm] * 4, 3))
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


def test_fgsm_linf_moves_every_pixel_by_exactly_epsilon_or_hits_the_box(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    epsilon = 4 / 255
    adversarial = attacks.perturb(test.images, test.labels, tiny_model, step_size=epsilon, norm="infinity")
    moved = np.abs(adversarial - test.images)
    at_box = (adversarial == 0.0) | (adversarial == 1.0)
    assert np.all(np.isclose(moved, epsilon, atol=1e-6) | at_box | (moved == 0))


def test_pgd_raises_the_loss_at_least_as_much_as_fgsm(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    clean = loss_of(tiny_model, test.images, test.labels)
    fgsm = loss_of(tiny_model, attacks.attack(test.images, test.labels, tiny_model, attacks.Attack("infinity", 8 / 255, 1)), test.labels)
    pgd = loss_of(tiny_model, attacks.attack(test.images, test.labels, tiny_model, attacks.Attack("infinity", 8 / 255, 10)), test.labels)
    assert clean < fgsm <= pgd + 1e-4


def test_pgd_damage_on_real_baseline_is_at_least_fgsm_damage(real_beans):
    from core import checkpoints, data
    from core.evaluate import accuracy

    try:
        model = checkpoints.load_model(checkpoints.DEFAULT_DIR / "baseline.keras")
    except checkpoints.CheckpointError:
        pytest.skip("no shipped baseline checkpoint")
    test = data.load_split("test", model.input_shape[1], real_beans)
    fgsm = accuracy(model, attacks.attack(test.images, test.labels, model, attacks.Attack("infinity", 8 / 255, 1)), test.labels)
    pgd = accuracy(model, attacks.attack(test.images, test.labels, model, attacks.Attack("infinity", 8 / 255, 10)), test.labels)
    assert pgd <= fgsm


@pytest.mark.parametrize("norm", attacks.NORMS)
def test_an_eager_attack_traces_no_graph_and_equals_the_traced_one(tiny_model, tiny_splits, norm):
    test = tiny_splits["test"]
    images, labels = test.images[:1], test.labels[:1]
    threat = attacks.Attack(norm, BUDGETS[norm], 1)
    graphs = (attacks._perturb_graph, sparse_l1._sparse_l1_graph)
    traces = [graph.experimental_get_tracing_count() for graph in graphs]
    eager = attacks.attack(images, labels, tiny_model, threat, eager=True)
    assert [graph.experimental_get_tracing_count() for graph in graphs] == traces
    np.testing.assert_allclose(eager, attacks.attack(images, labels, tiny_model, threat), atol=1e-6)


EAGER_ATTACKS_IN_THREADS = """
import sys, threading
import numpy as np
import core
from core import attacks, checkpoints
model = checkpoints.load_pair(sys.argv[1]).baseline
def student(seed):
    photo = np.random.default_rng(seed).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    for step in range(10):
        attacks.attack(photo, np.array([0]), model, attacks.Attack("infinity", (4 + step) / 255, 1 + step % 3), eager=True)
threads = [threading.Thread(target=student, args=(seed,)) for seed in range(6)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
"""


def test_eager_attacks_from_many_threads_at_once_leave_the_process_alive():
    """Six pages opening at once, each attacking eagerly: TensorFlow's eager tapes corrupt memory
    when they overlap, so the process must survive (a subprocess: a crash would kill the test run)."""
    done = subprocess.run([sys.executable, "-c", EAGER_ATTACKS_IN_THREADS, str(REPO_ROOT / "checkpoints")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_zero_budget_returns_the_images_unchanged(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    same = attacks.perturb(test.images, test.labels, tiny_model, step_size=0.0)
    np.testing.assert_array_equal(same, test.images)


def test_l1_projection_lands_on_the_ball_surface_when_the_box_does_not_bind():
    delta = tf.constant(np.random.default_rng(0).normal(0, 0.1, size=(4, 5, 5, 3)).astype(np.float32))
    middle = tf.fill(delta.shape, 0.5)  # 0.5 of room either way, more than any coordinate asks for
    projected = sparse_l1.project_l1_box(delta, middle, 3.0).numpy()
    np.testing.assert_allclose(np.abs(projected).reshape(4, -1).sum(axis=1), 3.0, rtol=1e-4)


def test_unknown_norm_is_refused(tiny_model, tiny_splits):
    with pytest.raises(ValueError, match="Unknown norm"):
        attacks.perturb(tiny_splits["test"].images, tiny_splits["test"].labels, tiny_model, 0.1, norm="l3")


@pytest.mark.parametrize("kind", attacks.CORRUPTIONS)
def test_corruptions_keep_shape_and_range_and_grow_with_severity(tiny_splits, kind):
    images = tiny_splits["test"].images
    distances = []
    for severity in range(attacks.MAX_SEVERITY + 1):
        corrupted = attacks.corrupt(images, kind, severity, seed=1)
        assert corrupted.shape == images.shape and corrupted.dtype == np.float32
        assert corrupted.min() >= 0 and corrupted.max() <= 1
        distances.append(float(np.abs(corrupted - images).mean()))
    assert distances[0] == 0.0
    assert distances[-1] > distances[1] > 0


# --- L1: a sparse attack that respects the budget and the box --------------------------------------


def test_l1_projection_is_the_nearest_point_of_the_ball_and_box():
    """Projection characterisation: <d - p, v - p> <= 0 for every feasible v (here 200 random ones)."""
    rng = np.random.default_rng(1)
    images = rng.random((3, 4, 4, 3)).astype(np.float32)
    delta = rng.normal(0, 0.6, images.shape).astype(np.float32)
    radius = 2.0
    projected = sparse_l1.project_l1_box(tf.constant(delta), tf.constant(images), radius).numpy()
    assert np.all(np.abs(projected).reshape(3, -1).sum(axis=1) <= radius + 1e-4)
    assert np.all((images + projected >= -1e-6) & (images + projected <= 1 + 1e-6))
    for _ in range(200):
        candidate = rng.normal(0, 1.0, images.shape) * (rng.random(images.shape) < 0.2)
        feasible = np.clip(images + candidate, 0, 1) - images
        feasible *= np.minimum(1.0, radius / np.abs(feasible).reshape(3, -1).sum(axis=1))[:, None, None, None]
        inner = ((delta - projected) * (feasible - projected)).reshape(3, -1).sum(axis=1)
        assert np.all(inner <= 1e-4)


def test_one_l1_step_fills_the_largest_gradients_up_to_the_box_until_the_budget_is_spent():
    gradient = tf.constant([[3.0, -2.0, 1.0, 0.5]])
    images = tf.constant([[0.9, 0.5, 0.2, 0.5]])
    step = sparse_l1.steepest_l1_step(gradient, images, 0.8).numpy()
    np.testing.assert_allclose(step, [[0.1, -0.5, 0.2, 0.0]], atol=1e-6)


def test_one_l1_step_respects_its_trust_region():
    gradient = tf.constant([[3.0, -2.0, 1.0, 0.5]])
    images = tf.constant([[0.9, 0.5, 0.2, 0.5]])
    step = sparse_l1.steepest_l1_step(gradient, images, 0.8, max_change=0.3).numpy()
    np.testing.assert_allclose(step, [[0.1, -0.3, 0.3, 0.1]], atol=1e-6)


@pytest.mark.parametrize("iterations", [1, 10])
def test_l1_attack_at_the_top_budget_stays_inside_the_ball_and_the_box(tiny_model, tiny_splits, iterations):
    test = tiny_splits["test"]
    top = max(CURVE_EPSILONS["l1"])
    saturated = np.clip(test.images * 3 - 1, 0, 1)
    adversarial = attacks.attack(saturated, test.labels, tiny_model, attacks.Attack("l1", top, iterations))
    assert np.all(attacks.perturbation_norm(adversarial - saturated, "l1") <= top + 1e-4)
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


@pytest.mark.parametrize("iterations", [1, 10])
def test_l1_perturbation_is_sparse(shipped_baseline, iterations):
    model, images, labels = shipped_baseline
    adversarial = attacks.attack(images, labels, model, attacks.Attack("l1", max(CURVE_EPSILONS["l1"]), iterations))
    touched = (np.abs(adversarial - images).reshape(len(images), -1) > 0).mean(axis=1)
    assert touched.max() < 0.10  # at most a tenth of the values; an L∞ or L2 attack moves nearly all of them
    assert touched.min() > 0


def test_l1_attack_at_the_top_budget_breaks_the_shipped_baseline(shipped_baseline):
    from core.evaluate import accuracy

    model, images, labels = shipped_baseline
    adversarial = attacks.attack(images, labels, model, attacks.Attack("l1", max(CURVE_EPSILONS["l1"]), CURVE_ITERATIONS))
    assert accuracy(model, images, labels) > 0.6
    assert accuracy(model, adversarial, labels) <= 0.3


# --- targeted attacks: towards a chosen class, not just away from the true one -------------------


@pytest.mark.parametrize("norm, epsilon", [("infinity", 4 / 255), ("l2", 0.5), ("l1", 8.0)])
def test_targeted_pgd_raises_the_target_probability_more_than_an_untargeted_attack(shipped_baseline, norm, epsilon):
    """Aimed at each photo's least likely wrong class, which an untargeted attack has no reason to raise.
    On the shipped baseline (confident, deterministic, so no training noise decides the outcome), measured
    on its 32 test photos (target probability, targeted / untargeted / clean, averaged):
    L∞ 4/255 0.74 / 0.35 / 0.01, L2 0.5 0.49 / 0.22, L1 8 0.47 / 0.26."""
    model, images, labels = shipped_baseline
    rows = np.arange(len(labels))
    clean = model.predict(images, verbose=0)
    wrong_only = clean.copy()
    wrong_only[rows, labels] = np.inf
    targets = wrong_only.argmin(axis=1)
    threat = attacks.Attack(norm, epsilon, 10)
    untargeted = model.predict(attacks.attack(images, labels, model, threat), verbose=0)[rows, targets]
    targeted = model.predict(attacks.attack(images, labels, model, threat, targets=targets), verbose=0)[rows, targets]
    assert targeted.mean() > untargeted.mean() + 0.1
    assert np.mean(targeted > untargeted) >= 0.75
    assert targeted.mean() > clean[rows, targets].mean() + 0.3


@pytest.mark.parametrize("norm", attacks.NORMS)
def test_targeted_pgd_stays_inside_the_ball_and_the_box(tiny_model, tiny_splits, norm):
    test = tiny_splits["test"]
    saturated = np.clip(test.images * 3 - 1, 0, 1)
    threat = attacks.Attack(norm, BUDGETS[norm], 5, target=2)
    adversarial = attacks.attack(saturated, test.labels, tiny_model, threat)
    sizes = attacks.perturbation_norm(adversarial - saturated, norm)
    assert np.all(sizes <= BUDGETS[norm] * (1 + 1e-5) + 1e-6)
    assert sizes.max() > 0
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


def test_targeted_label_names_the_target():
    assert attacks.Attack("infinity", 8 / 255, 10, target=2).label == "PGD-10 L∞ eps 8/255 targeted at class 2"
    assert "targeted" not in attacks.Attack("infinity", 8 / 255, 10).label


@pytest.mark.parametrize("targets", [3, -1, np.array([0, 1])])
def test_bad_targets_are_refused(tiny_model, tiny_splits, targets):
    test = tiny_splits["test"]
    with pytest.raises(ValueError, match="[Tt]arget"):
        attacks.attack(test.images, test.labels, tiny_model, attacks.Attack("infinity", 8 / 255, 1), targets=targets)


def test_a_target_in_the_attack_and_as_targets_is_refused(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    with pytest.raises(ValueError, match="not both"):
        attacks.attack(test.images, test.labels, tiny_model, attacks.Attack("infinity", 8 / 255, 1, target=0), targets=1)


@pytest.mark.parametrize("target", [0, 1, 2])
def test_targeted_pgd10_makes_most_real_photos_answer_the_chosen_class_on_the_baseline(real_beans, target):
    """Measured on the 128 test photos (shipped baseline, L∞ 8/255 PGD-10): 100%, 93% and 98% of the
    photos of the other classes answer class 0, 1 and 2; a targeted attack steers, not just breaks."""
    from core import checkpoints, data

    try:
        model = checkpoints.load_model(checkpoints.DEFAULT_DIR / "baseline.keras")
    except checkpoints.CheckpointError:
        pytest.skip("no shipped baseline checkpoint")
    test = data.load_split("test", model.input_shape[1], real_beans)
    others = test.labels != target
    adversarial = attacks.attack(
        test.images[others], test.labels[others], model, attacks.Attack("infinity", 8 / 255, 10, target=target)
    )
    answers = model.predict(adversarial, verbose=0).argmax(axis=1)
    assert (answers == target).mean() >= 0.8
