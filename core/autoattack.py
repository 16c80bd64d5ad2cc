"""The AutoAttack-grade evaluation: per budget ε, the worst case per photo over APGD-CE, APGD-T and Square.

What counts, per photo and budget (after Croce & Hein 2020's standard AutoAttack, without FAB-T):

- the photo is right on its clean image;
- no white-box attack fooled it (:mod:`core.apgd`: APGD-CE, then APGD-T with the targeted DLR
  loss at every wrong class, ``restarts`` random starts each, 100 steps), and the black-box Square
  attack with 5000 queries (:mod:`core.square`, IBM ART's) did not either: Square reads no
  gradient, so a model that only hides its gradients is caught there;
- it was not fooled at a smaller budget of the same norm: a photo fooled inside a small ball is
  fooled inside every larger one, so the rows of one norm can only fall as ε grows.

Every attack's verdict is re-read with ``model.predict`` (the softmax model, not the logits
graph the attacks differentiate); a photo the two disagree on keeps being attacked.

Order: the white-box stage runs through the budgets of a norm first (each budget on the
survivors of the one below), then Square runs on what is left at each budget. The white-box
stage therefore never depends on Square's random draws, and a test can recompute it alone,
exactly, and add the photos the stored evaluation says only Square found (``tests/test_shipped_checkpoints.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core import apgd, square
from core.compat import tf

SQUARE = "Square"
CLEAN = "clean"
SMALLER = "smaller budget"
ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class Ensemble:
    """Which attacks count and how hard each tries: the white-box stage (:class:`core.apgd.Ensemble`:
    APGD-CE and APGD-T, 100 steps, 2 random starts at L∞ and 5 at L2), then Square with ``square_queries`` (0: left out)."""

    white_box: apgd.Ensemble = apgd.Ensemble()
    square_queries: int = square.DEFAULT_QUERIES

    @property
    def attack_names(self) -> tuple[str, ...]:
        return tuple(apgd.ATTACK_NAMES[loss] for loss in self.white_box.losses) + ((SQUARE,) if self.square_queries > 0 else ())

    @property
    def name(self) -> str:
        """``APGD-CE + APGD-T + Square`` (what a table row says it ran)."""
        return " + ".join(self.attack_names)

    def without_square(self) -> "Ensemble":
        """The same ensemble without its black-box stage."""
        return Ensemble(self.white_box, 0)


@dataclass(frozen=True)
class BudgetResult:
    """One budget's verdict per photo: ``fooled_by`` is "" for a robust photo, else what fooled it first
    (``CLEAN``: wrong without attack, ``SMALLER``: fooled at a smaller budget, else an attack's name)."""

    norm: str
    epsilon: float
    robust: np.ndarray
    fooled_by: np.ndarray
    adversarial: np.ndarray
    queries: np.ndarray  # Square's queries per photo at this budget (0 where Square did not run)

    @property
    def accuracy(self) -> float:
        return float(self.robust.mean())

    def counts(self) -> dict[str, int]:
        """How many photos each cause accounts for, "" (robust) as "robust"."""
        names, totals = np.unique(self.fooled_by, return_counts=True)
        return {(name or "robust"): int(total) for name, total in zip(names.tolist(), totals.tolist())}


def robust_by_budget(
    model: tf.keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    norm: str,
    epsilons: tuple[float, ...],
    ensemble: Ensemble = Ensemble(),
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> list[BudgetResult]:
    """The ensemble's verdicts at each budget of one norm (``epsilons`` ascending), nested as above."""
    epsilons = tuple(float(e) for e in epsilons)
    if not epsilons or list(epsilons) != sorted(set(epsilons)) or epsilons[0] <= 0:
        raise ValueError(f"Budgets must be positive and strictly ascending, got {epsilons}.")
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int64)
    right = apgd.correct(model, images, labels)
    steps = len(epsilons) * (len(ensemble.white_box.losses) + (ensemble.square_queries > 0))
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / steps, message)

    standing = right.copy()  # the white-box stage: each budget attacks the survivors of the one below
    stages: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for epsilon in epsilons:
        fooled_by = np.where(right, np.where(standing, "", SMALLER), CLEAN).astype(object)
        adversarial = images.copy() if not stages else stages[-1][2].copy()
        for loss in ensemble.white_box.losses:
            one_attack = dataclasses.replace(ensemble.white_box, losses=(loss,))
            still, found = apgd.apgd_robust(model, images, labels, norm, epsilon, one_attack, seed, candidates=standing)
            newly = standing & ~still
            fooled_by[newly] = apgd.ATTACK_NAMES[loss]
            adversarial[standing] = found[standing]
            standing = still
            tick(f"{apgd.ATTACK_NAMES[loss]} at {_label(norm, epsilon)}")
        stages.append((standing.copy(), fooled_by, adversarial))

    results: list[BudgetResult] = []
    fooled_below = ~right  # the black-box stage, then the nesting over everything
    for epsilon, (wb_robust, fooled_by, adversarial) in zip(epsilons, stages):
        queries = np.zeros(len(images), np.int64)
        robust = wb_robust & ~fooled_below
        smaller = right & fooled_below
        fooled_by = np.where(smaller, SMALLER, fooled_by).astype(object)
        if results:  # the image that fooled it at the smaller budget lies inside this ball too
            adversarial[smaller] = results[-1].adversarial[smaller]
        if ensemble.square_queries > 0 and robust.any():
            index = np.flatnonzero(robust)
            found = square.square_attack(model, images[index], labels[index], norm, epsilon, ensemble.square_queries, seed)
            queries[index] = found.queries
            hit = index[found.fooled]
            fooled_by[hit], adversarial[hit], robust[hit] = SQUARE, found.adversarial[found.fooled], False
            tick(f"{SQUARE} at {_label(norm, epsilon)}")
        elif ensemble.square_queries > 0:
            tick(f"{SQUARE} at {_label(norm, epsilon)} (no photo left)")
        fooled_below = ~robust
        results.append(BudgetResult(norm, epsilon, robust, fooled_by.astype(str), adversarial, queries))
    return results


def _label(norm: str, epsilon: float) -> str:
    from core.attacks import budget_label, norm_symbol

    return f"{norm_symbol(norm)} {budget_label(norm, epsilon)}"
