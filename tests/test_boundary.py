"""core.boundary: each photo's smallest fooling budget is real (an adversarial proves it), tight, and
larger for the NSL model than for the baseline."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.brightness_model import brightness_model, flat_photos
from core import apgd, attacks, boundary

QUICK = boundary.apgd_attack(apgd.Ensemble(iterations=20, l2_restarts=2))
# The whole box for L∞ (any photo can then be made into anything) and as much for L2 on 32 px: the
# tiny model is barely trained (it may answer one class for all), so its budgets can be large.
TINY_TOPS = {"infinity": 1.0, "l2": 32.0}


def answers(model, images):
    return model.predict(images, verbose=0).argmax(axis=1)


# --- a model whose boundary is known exactly ------------------------------------------------------

SIZE = 8  # 8 x 8 x 3: d = 192 values
MEANS = np.array([0.45, 0.48, 0.49, 0.51, 0.52, 0.55, 0.6, 0.7, 0.3])


@pytest.fixture(scope="module")
def brightness():
    model = brightness_model(SIZE)
    return model, flat_photos(MEANS, SIZE), (MEANS <= 0.5).astype(np.int64)


@pytest.mark.parametrize("norm", attacks.NORMS)
def test_budgets_land_just_above_the_exact_distance_to_the_boundary(brightness, norm):
    """Shifting every value by e moves the mean by e: the exact smallest budget is |mean - 0.5| in L∞,
    times √d in L2 and times d in L1. The search must not go below it (nothing fools the model there)
    and must stop within its tolerance above it."""
    model, images, labels = brightness
    scale = {"infinity": 1.0, "l2": np.sqrt(SIZE * SIZE * 3), "l1": SIZE * SIZE * 3.0}[norm]
    exact = np.abs(MEANS - 0.5) * scale
    attack = None if norm == "l1" else QUICK
    budgets = boundary.smallest_fooling_budget(model, images, labels, norm, 0.3 * scale, attack=attack)
    assert np.all(budgets >= exact * (1 - 1e-4))
    assert np.all(budgets <= exact + np.maximum(boundary.RELATIVE_TOLERANCE * budgets, boundary.ABSOLUTE_TOLERANCE[norm]))


def test_a_caller_can_bring_its_own_attack(brightness):
    """The exact attack (shift every value towards the boundary) through the ``attack=`` hook."""
    model, images, labels = brightness
    calls = []

    def shift_towards_the_boundary(model, images, labels, norm, epsilons, seed):
        calls.append(len(images))
        direction = np.where(labels == 0, -1.0, 1.0)[:, None, None, None]
        adversarial = np.clip(images + direction * epsilons[:, None, None, None], 0, 1).astype(np.float32)
        return answers(model, adversarial) != labels, adversarial

    budgets = boundary.smallest_fooling_budget(model, images, labels, "infinity", 0.3, attack=shift_towards_the_boundary)
    exact = np.abs(MEANS - 0.5)
    assert np.all((budgets >= exact * (1 - 1e-4)) & (budgets <= exact * 1.06 + 1e-6))
    assert calls[0] == len(images) and calls[-1] < len(images)  # photos leave once their interval is tight


def test_an_attack_that_leaves_its_budget_is_refused(brightness):
    model, images, labels = brightness

    def cheat(model, images, labels, norm, epsilons, seed):
        return np.ones(len(images), bool), np.clip(images + 2 * epsilons[:, None, None, None], 0, 1).astype(np.float32)

    with pytest.raises(ValueError, match="outside their budgets"):
        boundary.smallest_fooling_budget(model, images, labels, "infinity", 0.3, attack=cheat)


def test_progress_reports_every_round_and_ends_below_one(brightness):
    model, images, labels = brightness
    seen = []
    result = boundary.find_fooling_budgets(model, images, labels, "infinity", 0.3, attack=QUICK, progress=lambda f, m: seen.append(f))
    assert len(seen) == result.rounds
    assert seen == sorted(seen) and 0 < seen[0] and seen[-1] <= 1.0


@pytest.mark.parametrize("norm, top, tolerance", [("l3", 1.0, 0.05), ("infinity", 0.0, 0.05), ("infinity", 0.1, 1.5)])
def test_bad_arguments_are_refused(brightness, norm, top, tolerance):
    model, images, labels = brightness
    with pytest.raises(ValueError):
        boundary.smallest_fooling_budget(model, images, labels, norm, top, tolerance=tolerance)


# --- the tiny trained model ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["infinity", "l2"])
def tiny_budgets(request, tiny_model, tiny_splits):
    test = tiny_splits["test"]
    norm = request.param
    return norm, boundary.find_fooling_budgets(tiny_model, test.images, test.labels, norm, TINY_TOPS[norm], attack=QUICK)


def test_every_finite_budget_comes_with_an_adversarial_inside_it_that_the_model_misreads(tiny_model, tiny_splits, tiny_budgets):
    test = tiny_splits["test"]
    norm, result = tiny_budgets
    fooled = np.isfinite(result.budgets) & (result.budgets > 0)
    assert fooled.any()
    assert np.all(answers(tiny_model, result.adversarial[fooled]) != test.labels[fooled])
    sizes = attacks.perturbation_norm(result.adversarial - test.images, norm)
    assert np.all(sizes[fooled] <= result.budgets[fooled] * (1 + 1e-4) + 1e-6)


def test_at_nine_tenths_of_the_budget_the_same_attack_does_not_fool_the_photo(tiny_model, tiny_splits, tiny_budgets):
    """The search is tight. (At the budget itself the returned adversarial is the proof: a rerun
    draws other random starts, and at the edge it fooled 5 to 8 of the 8 photos in four runs.)"""
    test = tiny_splits["test"]
    norm, result = tiny_budgets
    fooled = np.isfinite(result.budgets) & (result.budgets > 0)
    below, _ = QUICK(tiny_model, test.images[fooled], test.labels[fooled], norm, 0.9 * result.budgets[fooled], 0)
    # The tiny split fools only 4 to 8 photos, where 90% means every one; a rerun's other random start
    # can find one photo at the edge (1 of 4 in one run). The 90% bar is checked on 16 real photos below.
    assert (~below).sum() >= fooled.sum() - 1


def test_photos_the_model_already_gets_wrong_cost_nothing(tiny_model, tiny_splits, tiny_budgets):
    test = tiny_splits["test"]
    _, result = tiny_budgets
    wrong = answers(tiny_model, test.images) != test.labels
    assert wrong.any()
    assert np.all(result.budgets[wrong] == 0)
    np.testing.assert_array_equal(result.adversarial[wrong], test.images[wrong])


def test_nothing_fools_a_correct_photo_within_a_tiny_top_budget(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    budgets = boundary.smallest_fooling_budget(tiny_model, test.images, test.labels, "infinity", 1e-5, attack=QUICK)
    right = answers(tiny_model, test.images) == test.labels
    assert np.all(np.isinf(budgets[right])) and np.all(budgets[~right] == 0)


# --- the shipped pair on real Beans ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_budgets(real_beans):
    """Every 8th real test photo (16), L∞ up to 16/255, APGD ensemble at 20 steps, default tolerance:
    about 45 s per model on 2 busy cores (the full default ensemble: about 100 s per model and the
    same medians, 1.0/255 and 6.75/255)."""
    from core import checkpoints, data

    try:
        pair = checkpoints.load_pair()
    except checkpoints.CheckpointError:
        pytest.skip("no shipped checkpoints")
    test = data.load_split("test", int(pair.baseline.input_shape[1]), real_beans)
    images, labels = test.images[::8], test.labels[::8]
    results = {
        name: boundary.find_fooling_budgets(pair[name], images, labels, "infinity", 16 / 255, attack=QUICK)
        for name in ("baseline", "adversarial")
    }
    return pair, images, labels, results


def test_the_nsl_model_needs_a_larger_median_budget_than_the_baseline(shipped_budgets):
    _, _, _, results = shipped_budgets
    baseline, nsl = (np.median(results[name].budgets) for name in ("baseline", "adversarial"))
    assert nsl > 2 * baseline  # measured: 6.75/255 against 1.0/255


@pytest.mark.parametrize("name", ["baseline", "adversarial"])
def test_on_real_photos_the_attack_fools_at_the_budget_and_not_at_nine_tenths(shipped_budgets, name):
    pair, images, labels, results = shipped_budgets
    budgets = results[name].budgets
    fooled = np.isfinite(budgets) & (budgets > 0)
    proof = results[name].adversarial[fooled]  # the attack's own image at the returned budget (a fresh run has another random start)
    sizes = attacks.perturbation_norm(proof - images[fooled], "infinity")
    misread = answers(pair[name], proof) != labels[fooled]
    below, _ = QUICK(pair[name], images[fooled], labels[fooled], "infinity", 0.9 * budgets[fooled], 0)
    assert np.all(sizes <= budgets[fooled] + 1e-6) and misread.mean() >= 0.9
    assert (~below).mean() >= 0.9
