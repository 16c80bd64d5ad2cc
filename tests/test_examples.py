"""core.examples: good lesson images are picked from the models' own answers, and only if they fit."""

from __future__ import annotations

import numpy as np
import pytest

import core  # noqa: F401  (TensorFlow with legacy Keras first)
from core import checkpoints, data, examples
from core.attacks import Attack, attack
from core.examples import CONDITIONS, Outcomes, rank_good_examples
from core.models import predict


def _probabilities(*rows: tuple[float, float]) -> np.ndarray:
    """Two classes: each row is (p(class 0), p(class 1))."""
    return np.asarray(rows, np.float64)


# Four images, all of class 0. Image 2 tells the whole story; image 0 almost (NSL fooled too);
# image 1 has an unsure baseline; image 3 a baseline that is not fooled.
LABELS = np.zeros(4, np.int64)
BASELINE = Outcomes(
    clean=_probabilities((0.95, 0.05), (0.6, 0.4), (0.9, 0.1), (0.99, 0.01)),
    perturbed=_probabilities((0.1, 0.9), (0.2, 0.8), (0.3, 0.7), (0.97, 0.03)),
)
ADVERSARIAL = Outcomes(
    clean=_probabilities((0.9, 0.1), (0.9, 0.1), (0.8, 0.2), (0.9, 0.1)),
    perturbed=_probabilities((0.4, 0.6), (0.85, 0.15), (0.7, 0.3), (0.9, 0.1)),
)


def test_only_an_image_meeting_every_condition_counts_as_good():
    found = rank_good_examples(LABELS, BASELINE, ADVERSARIAL)
    assert found.matching == 1
    assert list(found.indices) == [2]
    assert found.ranked[0] == 2 and sorted(found.ranked) == [0, 1, 2, 3]


def test_each_condition_is_checked_on_its_own():
    met = examples.conditions(LABELS, BASELINE, ADVERSARIAL)
    assert list(met) == list(CONDITIONS)
    assert list(met["baseline right and sure"]) == [True, False, True, True]
    assert list(met["baseline fooled"]) == [True, True, True, False]
    assert list(met["NSL holds"]) == [False, True, True, True]


def test_a_lower_confidence_bar_admits_the_unsure_baseline_and_ranks_by_clarity():
    found = rank_good_examples(LABELS, BASELINE, ADVERSARIAL, min_confidence=0.5)
    assert found.matching == 2
    # image 1: 0.6 * (1 - 0.2) * 0.85 = 0.41; image 2: 0.9 * (1 - 0.3) * 0.7 = 0.44
    assert list(found.indices) == [2, 1]


def test_next_example_cycles_through_the_good_ones_only():
    found = rank_good_examples(LABELS, BASELINE, ADVERSARIAL, min_confidence=0.5)
    assert found.after(None) == 2
    assert found.after(2) == 1
    assert found.after(1) == 2
    assert found.after(3) == 2  # not a good example: start from the best


def test_without_any_good_example_the_closest_story_comes_first():
    fooled_too = Outcomes(ADVERSARIAL.clean, BASELINE.perturbed)  # the NSL model falls exactly like the baseline
    found = rank_good_examples(LABELS, BASELINE, fooled_too)
    assert found.matching == 0 and len(found.indices) == 0
    assert found.after(None) == int(found.ranked[0])


def test_the_same_model_on_both_sides_never_makes_a_good_example(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    found = examples.find_good_examples(tiny_model, tiny_model, test.images, test.labels, Attack("infinity", 16 / 255, 1))
    assert found.matching == 0  # fooled and holding at once is impossible
    assert sorted(found.ranked) == list(range(len(test)))


def test_unknown_attacker_is_refused(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    with pytest.raises(ValueError, match="attacker"):
        examples.find_good_examples(tiny_model, tiny_model, test.images, test.labels, Attack(), attacker="teacher")


def test_shipped_pair_has_good_examples_that_really_fit(real_beans):
    """Checked independently: attack each chosen image alone and read both models again."""
    pair = checkpoints.load_pair()
    test = data.load_split("test", pair.image_size, real_beans)
    threat = Attack("infinity", 8 / 255, 1)
    found = examples.find_good_examples(pair.baseline, pair.adversarial, test.images, test.labels, threat)
    assert found.matching >= 1
    for index in found.indices[:5]:
        image, label = test.images[index : index + 1], test.labels[index : index + 1]
        changed = attack(image, label, pair.baseline, threat)
        clean_baseline = predict(pair.baseline, image)[0]
        assert clean_baseline.argmax() == label[0] and clean_baseline[label[0]] >= examples.MIN_CONFIDENCE
        assert predict(pair.baseline, changed)[0].argmax() != label[0]
        assert predict(pair.adversarial, image)[0].argmax() == label[0]
        assert predict(pair.adversarial, changed)[0].argmax() == label[0]


def test_the_cheap_first_example_is_a_real_good_example(real_beans):
    pair = checkpoints.load_pair()
    test = data.load_split("test", pair.image_size, real_beans)
    threat = Attack("infinity", 8 / 255, 1)
    index = examples.first_good_example(pair.baseline, pair.adversarial, test.images, test.labels, threat)
    assert index is not None
    full = examples.find_good_examples(pair.baseline, pair.adversarial, test.images, test.labels, threat)
    assert index in full.indices  # the same four conditions, checked on the whole split


def test_the_cheap_first_example_gives_up_when_no_photo_fits(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    assert examples.first_good_example(tiny_model, tiny_model, test.images, test.labels, Attack("infinity", 16 / 255, 1)) is None


def test_a_remembered_opening_photo_is_checked_first_and_a_wrong_hint_is_ignored(real_beans):
    pair = checkpoints.load_pair()
    test = data.load_split("test", pair.image_size, real_beans)
    threat = Attack("infinity", 8 / 255, 1)
    found = examples.first_good_example(pair.baseline, pair.adversarial, test.images, test.labels, threat)
    good = examples.find_good_examples(pair.baseline, pair.adversarial, test.images, test.labels, threat)
    other = next(int(i) for i in good.indices if i != found)
    assert examples.first_good_example(pair.baseline, pair.adversarial, test.images, test.labels, threat, hint=other) == other
    bad = next(i for i in range(len(test.labels)) if i not in set(good.indices.tolist()))
    assert examples.first_good_example(pair.baseline, pair.adversarial, test.images, test.labels, threat, hint=bad) == found
