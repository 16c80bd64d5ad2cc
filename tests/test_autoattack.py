"""core.autoattack: the worst case per photo over APGD-CE, APGD-T and Square, nested over the budgets of a norm.

On the shipped baseline and 32 real test photos, with short attacks (the rules, not the strength:
tests/test_shipped_checkpoints.py recomputes the full-strength rows); the tiny test model is too
weak to tell attacks apart (its logits barely move with the input).
"""

from __future__ import annotations

import numpy as np
import pytest

from core import apgd, attacks, autoattack
from core.compat import tf
from core.models import predict

QUICK = autoattack.Ensemble(apgd.Ensemble(iterations=10, restarts=1, l2_restarts=1), square_queries=30)  # the rules, not the strength
BUDGETS = (0.5 / 255, 1 / 255, 2 / 255)  # the baseline keeps photos at the first, few at the last


def wrong_on(model, images, labels) -> np.ndarray:
    return predict(model, images).argmax(axis=1) != labels  # the model's own answer, as the attacks check it


@pytest.fixture(scope="module")
def verdicts(shipped_baseline):
    model, images, labels = shipped_baseline
    return autoattack.robust_by_budget(model, images, labels, "infinity", BUDGETS, QUICK)


def test_a_photo_fooled_at_a_smaller_budget_counts_as_fooled_at_every_larger_one(verdicts):
    assert [result.epsilon for result in verdicts] == list(BUDGETS)
    for smaller, larger in zip(verdicts, verdicts[1:]):
        assert not np.any(larger.robust & ~smaller.robust)
        carried = larger.fooled_by == autoattack.SMALLER
        assert np.array_equal(carried, ~smaller.robust & (smaller.fooled_by != autoattack.CLEAN))
    assert verdicts[0].accuracy > verdicts[-1].accuracy > 0  # the attacks bite, and not on everything


def test_each_photo_says_what_fooled_it_and_robust_photos_say_nothing(verdicts, shipped_baseline):
    model, images, labels = shipped_baseline
    wrong = wrong_on(model, images, labels)
    for result in verdicts:
        assert np.array_equal(result.robust, result.fooled_by == "")
        assert np.array_equal(wrong, result.fooled_by == autoattack.CLEAN)
        assert set(result.fooled_by) <= {"", autoattack.CLEAN, autoattack.SMALLER, *QUICK.attack_names}
        assert sum(result.counts().values()) == len(labels)


def test_every_fooled_photo_comes_back_wrong_and_inside_its_budget(verdicts, shipped_baseline):
    model, images, labels = shipped_baseline
    for result in verdicts:
        fooled = ~result.robust & (result.fooled_by != autoattack.CLEAN)
        assert np.all(wrong_on(model, result.adversarial[fooled], labels[fooled]))
        sizes = attacks.perturbation_norm(result.adversarial - images, "infinity")
        assert np.all(sizes <= result.epsilon + 1e-6)


def test_square_attacks_only_what_the_white_box_stage_left_and_the_white_box_stage_ignores_square(verdicts, shipped_baseline):
    model, images, labels = shipped_baseline
    white_box = autoattack.robust_by_budget(model, images, labels, "infinity", BUDGETS, QUICK.without_square())
    square_so_far = np.zeros(len(labels), bool)
    for full, alone in zip(verdicts, white_box):
        square_so_far |= full.fooled_by == autoattack.SQUARE
        assert np.array_equal(full.robust, alone.robust & ~square_so_far)  # what the shipped-model test relies on
        assert np.all(full.queries[~alone.robust] == 0) and np.all(alone.queries == 0)
        assert np.all(full.queries[full.robust] == QUICK.square_queries)


def test_a_photo_the_graph_calls_fooled_but_the_model_does_not_keeps_being_attacked(shipped_baseline, verdicts):
    model, images, labels = shipped_baseline
    stubborn = _stubborn(model, images, radius=BUDGETS[-1])
    right = ~wrong_on(stubborn, images, labels)
    assert (verdicts[-1].fooled_by == "APGD-CE").sum() >= 5  # the graph alone fools these photos at the top budget
    verdicts = autoattack.robust_by_budget(stubborn, images, labels, "infinity", BUDGETS, QUICK)
    for result in verdicts:
        assert np.array_equal(result.robust, right)  # the model itself is never fooled...
        assert np.all(result.queries[right] >= 1)  # ...so every photo reached the last attack, Square


def _stubborn(model: tf.keras.Model, clean: np.ndarray, radius: float) -> tf.keras.Model:
    """The same network whose own answer (calling it, as every attack's check does), for an image
    within ``radius`` of a clean one, is what it says on that clean image: its graph (the logits model
    the attacks differentiate) can be fooled, the model's answer never is."""

    class Stubborn(tf.keras.Model):
        def call(self, inputs, training=None, mask=None):
            answers = super().call(inputs, training=training, mask=mask).numpy()  # called eagerly only
            images = np.asarray(inputs, np.float32)
            distance = np.abs(images[:, None] - clean[None]).reshape(len(images), len(clean), -1).max(axis=2)
            nearest = distance.argmin(axis=1)
            close = distance[np.arange(len(images)), nearest] <= radius + 1e-6
            if close.any():
                answers[close] = super().call(tf.constant(clean[nearest[close]]), training=training, mask=mask).numpy()
            return tf.constant(answers)

    return Stubborn(model.inputs, model.outputs)


def test_budgets_must_be_positive_and_ascending(tiny_model, tiny_splits):  # refused before any attack
    test = tiny_splits["test"]
    for budgets in [(), (8 / 255, 2 / 255), (0.0, 2 / 255), (2 / 255, 2 / 255)]:
        with pytest.raises(ValueError, match="ascending"):
            autoattack.robust_by_budget(tiny_model, test.images, test.labels, "infinity", budgets, QUICK)
