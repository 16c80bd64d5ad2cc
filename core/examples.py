"""Good examples for a lesson, chosen honestly from what the current models answer.

A good example tells the story in one picture: the baseline is right *and sure* on the clean image,
the change fools it, and the NSL model is right before and after. Which images do that depends on
the models and on the attack, so it is computed every time from their predictions on the test
split — never a hard-coded list. Images that meet fewer conditions still get a rank (closest story
first), so a caller can always show *something* and say how well it fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.attacks import ATTACKERS, Attack, attack
from core.compat import tf
from core.models import predict

MIN_CONFIDENCE = 0.8  # "sure": the baseline gives the true class at least this probability
CONDITIONS: tuple[str, ...] = ("baseline right and sure", "baseline fooled", "NSL right", "NSL holds")


@dataclass(frozen=True)
class Outcomes:
    """One model's class probabilities on the clean and on the perturbed images, (N, classes) each."""

    clean: np.ndarray
    perturbed: np.ndarray


@dataclass(frozen=True)
class GoodExamples:
    """Every image index, best story first; the first ``matching`` meet every condition."""

    ranked: np.ndarray
    matching: int

    @property
    def indices(self) -> np.ndarray:
        """Only the images that meet every condition, best first."""
        return self.ranked[: self.matching]

    def after(self, index: int | None) -> int:
        """The next good example after ``index`` (wrapping around), or the best one."""
        pool = self.indices if self.matching else self.ranked
        if index is None or index not in pool:
            return int(pool[0])
        return int(pool[(int(np.flatnonzero(pool == index)[0]) + 1) % len(pool)])


def conditions(labels: np.ndarray, baseline: Outcomes, adversarial: Outcomes, min_confidence: float = MIN_CONFIDENCE) -> dict[str, np.ndarray]:
    """Each of :data:`CONDITIONS` as a boolean array over the images."""
    labels = np.asarray(labels, np.int64)
    rows = np.arange(len(labels))
    return {
        CONDITIONS[0]: (baseline.clean.argmax(1) == labels) & (baseline.clean[rows, labels] >= min_confidence),
        CONDITIONS[1]: baseline.perturbed.argmax(1) != labels,
        CONDITIONS[2]: adversarial.clean.argmax(1) == labels,
        CONDITIONS[3]: adversarial.perturbed.argmax(1) == labels,
    }


def rank_good_examples(labels: np.ndarray, baseline: Outcomes, adversarial: Outcomes, min_confidence: float = MIN_CONFIDENCE) -> GoodExamples:
    """Rank by conditions met, then by how clearly: baseline's clean confidence x how far the change
    pushed it off the true class x the NSL model's confidence in the true class after the change."""
    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        return GoodExamples(np.zeros(0, np.int64), 0)
    rows = np.arange(len(labels))
    met = np.sum(list(conditions(labels, baseline, adversarial, min_confidence).values()), axis=0)
    score = baseline.clean[rows, labels] * (1.0 - baseline.perturbed[rows, labels]) * adversarial.perturbed[rows, labels]
    ranked = np.lexsort((rows, -score, -met))  # last key sorts first; ties keep the split's order
    return GoodExamples(ranked.astype(np.int64), int(np.sum(met == len(CONDITIONS))))


def _seen_by_each_model(models: dict[str, tf.keras.Model], images: np.ndarray, labels: np.ndarray, threat: Attack, attacker: str, eager: bool = False) -> dict[str, np.ndarray]:
    """The attacked images each model is shown: made through ``attacker``'s gradients (``"self"``:
    each model its own), each attack computed once."""
    if attacker not in ATTACKERS:
        raise ValueError(f"attacker must be one of {ATTACKERS}, got {attacker!r}.")
    made = {name: attack(images, labels, model, threat, eager=eager) for name, model in models.items() if attacker in (name, "self")}
    return {name: made[name if attacker == "self" else attacker] for name in models}


def find_good_examples(
    baseline: tf.keras.Model,
    adversarial: tf.keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    threat: Attack,
    attacker: str = "baseline",
    min_confidence: float = MIN_CONFIDENCE,
) -> GoodExamples:
    """Attack ``images`` with ``threat`` through ``attacker``'s gradients (``"self"``: each model its
    own) and rank them with :func:`rank_good_examples`."""
    models = {"baseline": baseline, "adversarial": adversarial}
    seen = _seen_by_each_model(models, images, labels, threat, attacker)
    outcomes = {name: Outcomes(predict(model, images), predict(model, seen[name])) for name, model in models.items()}
    return rank_good_examples(labels, outcomes["baseline"], outcomes["adversarial"], min_confidence)


def first_good_example(
    baseline: tf.keras.Model,
    adversarial: tf.keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    threat: Attack,
    attacker: str = "baseline",
    min_confidence: float = MIN_CONFIDENCE,
    tries: int = 16,
    hint: int | None = None,
    eager: bool = False,
) -> int | None:
    """A good example found cheaply, for a page that is opening: rank the photos by what both
    models say on the clean photos alone, then attack the likeliest ones *one at a time* (the
    single-photo graph the page needs anyway) until one is fooled and held. None if none of the
    first ``tries`` is. :func:`find_good_examples` ranks them all, at the cost of attacking the split.

    ``hint``: a photo found good before (by an earlier server with the same models and photos); it
    is checked first, on that one photo, so a restarted server opens at once on the same example.
    ``eager``: attack without tracing a graph (:func:`core.attacks.perturb`), for a page still opening."""
    if attacker not in ATTACKERS:  # before the clean pass, not after it
        raise ValueError(f"attacker must be one of {ATTACKERS}, got {attacker!r}.")
    labels = np.asarray(labels, np.int64)
    models = {"baseline": baseline, "adversarial": adversarial}
    if hint is not None and 0 <= hint < len(labels) and _is_good(models, images[hint : hint + 1], labels[hint : hint + 1], threat, attacker, min_confidence, eager):
        return int(hint)
    clean = {name: predict(model, images) for name, model in models.items()}
    rows = np.arange(len(labels))
    sure = (clean["baseline"].argmax(1) == labels) & (clean["baseline"][rows, labels] >= min_confidence) & (clean["adversarial"].argmax(1) == labels)
    candidates = np.flatnonzero(sure)
    candidates = candidates[np.argsort(-(clean["baseline"][candidates, labels[candidates]] * clean["adversarial"][candidates, labels[candidates]]), kind="stable")]
    for index in candidates[:tries]:
        photo, label = images[index : index + 1], labels[index : index + 1]
        seen = _seen_by_each_model(models, photo, label, threat, attacker, eager)
        if predict(baseline, seen["baseline"])[0].argmax() != label[0] and predict(adversarial, seen["adversarial"])[0].argmax() == label[0]:
            return int(index)
    return None


def _is_good(models: dict[str, tf.keras.Model], photo: np.ndarray, label: np.ndarray, threat: Attack, attacker: str, min_confidence: float, eager: bool) -> bool:
    """Every condition of a good example, checked on one photo (and its attacked versions)."""
    clean = {name: predict(model, photo)[0] for name, model in models.items()}
    if not (clean["baseline"].argmax() == label[0] and clean["baseline"][label[0]] >= min_confidence and clean["adversarial"].argmax() == label[0]):
        return False
    seen = _seen_by_each_model(models, photo, label, threat, attacker, eager)
    return predict(models["baseline"], seen["baseline"])[0].argmax() != label[0] and predict(models["adversarial"], seen["adversarial"])[0].argmax() == label[0]
