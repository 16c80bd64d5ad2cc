"""core.square: IBM ART's Square attack on logits, with a query count per photo and live progress.

Behaviour on the shipped baseline and 16 real test photos with few queries (cheap: one forward
pass a query); the tiny test model only for what needs no working classifier.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from core import attacks, square
from core.logits import logits_model

QUERIES = 40


def right_on(model, images, labels) -> np.ndarray:
    return model.predict(images, verbose=0).argmax(axis=1) == labels


@pytest.fixture(scope="module")
def photos(shipped_baseline):
    model, images, labels = shipped_baseline
    return model, images[:16], labels[:16]


@pytest.mark.parametrize("norm, epsilon", [("infinity", 4 / 255), ("l2", 1.0)])
def test_square_stays_inside_the_budget_and_the_box(photos, norm, epsilon):
    model, images, labels = photos
    result = square.square_attack(model, images, labels, norm, epsilon, max_queries=QUERIES)
    sizes = attacks.perturbation_norm(result.adversarial - images, norm)
    assert np.all(np.isfinite(result.adversarial))
    assert np.all(sizes <= epsilon * (1 + 1e-5) + 1e-6)
    assert result.adversarial.min() >= 0.0 and result.adversarial.max() <= 1.0


def test_fooled_photos_are_wrong_and_the_others_spent_every_query(photos):
    model, images, labels = photos
    right = right_on(model, images, labels)
    assert not right.all()  # one photo the baseline gets wrong without attack
    result = square.square_attack(model, images, labels, "infinity", 4 / 255, max_queries=QUERIES)
    assert not np.any(result.fooled & ~right) and result.fooled.any() and not result.fooled[right].all()
    assert not np.any(right_on(model, result.adversarial[result.fooled], labels[result.fooled]))
    assert np.all(result.queries[~right] == 0)  # a photo wrong without attack is not attacked
    assert np.all(result.queries[right & ~result.fooled] == QUERIES)
    assert np.all((result.queries[result.fooled] >= 1) & (result.queries[result.fooled] <= QUERIES))


def test_square_fools_the_shipped_baseline_without_reading_a_gradient(photos):
    model, images, labels = photos
    result = square.square_attack(model, images, labels, "infinity", 8 / 255, max_queries=200)
    assert result.fooled.sum() >= right_on(model, images, labels).sum() / 3  # 7 of 15 when written
    assert np.median(result.queries[result.fooled]) < 100  # those it fools fall long before the last query


def test_the_same_seed_gives_the_same_attack_and_leaves_the_global_random_state_alone(photos):
    model, images, labels = photos
    np.random.seed(123)
    random.seed(123)
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    first = square.square_attack(model, images, labels, "infinity", 2 / 255, max_queries=QUERIES, seed=3)
    again = square.square_attack(model, images, labels, "infinity", 2 / 255, max_queries=QUERIES, seed=3)
    other = square.square_attack(model, images, labels, "infinity", 2 / 255, max_queries=QUERIES, seed=4)
    np.testing.assert_array_equal(first.adversarial, again.adversarial)
    np.testing.assert_array_equal(first.queries, again.queries)
    assert not np.array_equal(first.adversarial, other.adversarial)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert random.getstate() == python_state


def test_progress_reports_every_query_round_and_can_stop_the_attack(photos):
    model, images, labels = photos
    seen: list[square.SquareProgress] = []
    square.square_attack(model, images, labels, "infinity", 1 / 255, max_queries=QUERIES, progress=seen.append)
    rounds = [event.queries for event in seen]
    assert rounds == list(range(1, QUERIES + 1))  # some photos stand to the end at 1/255
    assert all(event.max_queries == QUERIES and event.attacked == right_on(model, images, labels).sum() for event in seen)
    assert [event.fooled for event in seen] == sorted(event.fooled for event in seen)

    class Stop(Exception):
        pass

    def stop_at_five(event: square.SquareProgress) -> None:
        if event.queries == 5:
            raise Stop

    with pytest.raises(Stop):
        square.square_attack(model, images, labels, "infinity", 1 / 255, max_queries=QUERIES, progress=stop_at_five)


def test_the_prediction_memo_answers_exactly_what_the_logits_model_says(tiny_model, tiny_splits):
    images = tiny_splits["test"].images
    classifier = square.art_classifier(tiny_model, images.shape[1:])
    expected = logits_model(tiny_model).predict(images, verbose=0)
    np.testing.assert_allclose(classifier.predict(images[:8]), expected[:8], rtol=1e-5, atol=1e-5)
    mixed = np.concatenate([images[4:12], np.clip(images[:2] + 0.01, 0, 1)])  # four seen rows, six new ones
    np.testing.assert_allclose(classifier.predict(mixed)[:8], expected[4:12], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(classifier.predict(mixed)[8:], logits_model(tiny_model).predict(mixed[8:], verbose=0), rtol=1e-5, atol=1e-5)


def test_a_proposal_with_a_non_finite_pixel_is_never_kept(tiny_model, tiny_splits):
    """ART's L2 proposal can divide 0 by 0; max pooling would drop the NaNs and answer as if it were an image."""
    images = tiny_splits["test"].images[:4]
    classifier = square.art_classifier(tiny_model, images.shape[1:])
    broken = images.copy()
    broken[1, 3, 3, 0] = np.nan
    answers = classifier.predict(broken)
    assert np.isnan(answers[1]).all() and np.isfinite(answers[[0, 2, 3]]).all()
    kept = square._within_budget(broken, images, "l2", 1.0)
    np.testing.assert_array_equal(kept[1], images[1])


@pytest.mark.parametrize(
    "norm, epsilon, queries, match",
    [("l1", 0.1, 10, "norm"), ("infinity", 0.0, 10, "budget"), ("infinity", 0.1, 0, "query")],
)
def test_bad_arguments_are_refused_with_one_sentence(tiny_model, tiny_splits, norm, epsilon, queries, match):
    test = tiny_splits["test"]
    with pytest.raises(ValueError, match=match):
        square.square_attack(tiny_model, test.images, test.labels, norm, epsilon, max_queries=queries)
