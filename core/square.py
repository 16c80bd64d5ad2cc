"""The black-box attacker: IBM ART's Square attack on a model's logits, with a live query count.

Why a black-box attack at all: gradient attacks can be fooled by a model whose gradients are
useless (masked, shattered, saturated) while its decisions are not robust. Square (Andriushchenko
et al., ECCV 2020) never reads a gradient: it proposes a random square of ±2ε (L∞) or a pair of
Gaussian-like bumps (L2) and keeps it when the margin z_y - max_{i≠y} z_i falls. AutoAttack runs it
last with 5000 queries; so does :mod:`core.autoattack`, and the dashboard's black-box section shows
the same attack query by query.

This is ART's ``SquareAttack`` (``art.attacks.evasion``) through its ``TensorFlowV2Classifier`` on
the pre-softmax logits, not a re-write. Two things are added around it:

- a query count per photo (ART keeps none): ART asks its fooled-or-not criterion once per
  iteration on all photos, and each photo still standing then spends one query;
- a memo of the last few predictions, keyed by the exact pixels: ART evaluates the current
  points twice more per iteration than the paper (its bookkeeping), and the memo answers those
  from the previous calls, so one iteration costs one forward pass per standing photo, as in the paper.

ART draws its squares from NumPy's (and Python's) global random state; the attack seeds both,
runs under a lock (one Square attack at a time per process, so two sessions never interleave
draws) and restores the previous states afterwards.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from core.compat import tf, traced
from core.logits import logits_model
from core.models import predict

NORMS: dict[str, float] = {"infinity": np.inf, "l2": 2}
DEFAULT_QUERIES = 5000  # AutoAttack's standard Square budget
P_INIT = 0.8  # the share of pixels the first squares cover (AutoAttack's and ART's default)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class SquareProgress:
    """Where a running attack stands: after ``queries`` of ``max_queries`` per photo."""

    queries: int
    max_queries: int
    fooled: int  # photos fooled so far
    attacked: int  # photos attacked (right on the clean image)


class SquareResult(NamedTuple):
    """Per photo: fooled (right on the clean image, wrong on ``adversarial``), the image, queries spent."""

    fooled: np.ndarray
    adversarial: np.ndarray
    queries: np.ndarray


SquareCallback = Callable[[SquareProgress], None]


def art_classifier(model: tf.keras.Model, input_shape: tuple[int, ...]):
    """ART's TensorFlow v2 classifier on ``model``'s logits, answering repeated inputs from a memo
    (what ART's attacks, Square and AutoAttack, are run on here)."""
    from art.estimators.classification import TensorFlowV2Classifier

    class Memo(TensorFlowV2Classifier):
        """Predictions of the last three calls, keyed by each row's exact bytes (checked on a hit)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # ART compiles its forward pass with autograph, which parses Python source: the same
            # graph traced without it (core.compat.traced), so a server's Square attack parses nothing.
            self._forward_pass = traced(lambda model, x, training: model(x, training=training), reduce_retracing=True)
            self.recent: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
            self.weights = np.random.default_rng(7).integers(1, 2**63, int(np.prod(input_shape)), dtype=np.uint64) | np.uint64(1)

        def _keys(self, x: np.ndarray) -> np.ndarray:
            words = np.ascontiguousarray(x, np.float32).reshape(len(x), -1).view(np.uint32).astype(np.uint64)
            return (words * self.weights).sum(axis=1)  # wraps mod 2^64; a hit is confirmed pixel by pixel

        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
            x = np.asarray(x, np.float32)
            keys, known = self._keys(x), {}
            for table in self.recent:
                known.update(table)
            out = np.full((len(x), self.nb_classes), np.nan, np.float32)
            # ART's L2 proposal can divide 0 by 0; a NaN image is no attack, and max pooling would
            # drop the NaNs and answer. NaN logits make every comparison with them false: never kept.
            finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            missing = []
            for i, key in enumerate(keys.tolist()):
                hit = known.get(key)
                if not finite[i]:
                    continue
                if hit is not None and np.array_equal(hit[0], x[i]):
                    out[i] = hit[1]
                else:
                    missing.append(i)
            if missing:
                out[missing] = super().predict(x[missing], batch_size=batch_size, training_mode=training_mode)
            self.recent = [*self.recent[-2:], {key: (x[i].copy(), out[i]) for i, key in enumerate(keys.tolist())}]
            return out

    return Memo(
        model=logits_model(model),
        nb_classes=int(model.output_shape[-1]),
        input_shape=tuple(input_shape),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # for ART's gradient attacks
        clip_values=(0.0, 1.0),
    )


def _check(images: np.ndarray, labels: np.ndarray, norm: str, epsilon: float, max_queries: int) -> None:
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r} for the Square attack; expected one of {tuple(NORMS)}.")
    if not epsilon > 0:
        raise ValueError(f"The Square attack needs a budget ε above 0, got {epsilon}.")
    if max_queries < 1:
        raise ValueError(f"The Square attack needs at least one query per photo, got {max_queries}.")
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"Expected images (N, height, width, channels) and N labels, got {images.shape} and {len(labels)} labels.")


def square_attack(
    model: tf.keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    norm: str,
    epsilon: float,
    max_queries: int = DEFAULT_QUERIES,
    seed: int = 0,
    progress: SquareCallback | None = None,
) -> SquareResult:
    """ART's Square attack with at most ``max_queries`` queries per photo, stopping on each photo
    once fooled. Photos the model already gets wrong are not attacked (0 queries).

    ``fooled`` is read from ``model.predict`` itself (its softmax output), within the budget; a photo
    ART thinks fooled but the model still gets right comes back not fooled. ``progress`` is called
    after every query round (e.g. to draw a live count; raise inside it to stop the attack).
    """
    from art.attacks.evasion import SquareAttack

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int64)
    _check(images, labels, norm, epsilon, max_queries)
    classes = int(model.output_shape[-1])
    right = predict(model, images).argmax(axis=1) == labels
    queries = np.zeros(len(images), np.int64)
    if not right.any():
        return SquareResult(np.zeros(len(images), bool), images.copy(), queries)
    index = np.flatnonzero(right)
    rounds = 0

    def still_wrong(predictions: np.ndarray, onehot: np.ndarray) -> np.ndarray:
        """ART's own criterion (argmax differs), counting one query per photo still standing."""
        nonlocal rounds
        wrong = predictions.argmax(axis=1) != onehot.argmax(axis=1)
        queries[index[~wrong]] += 1
        rounds += 1
        if progress is not None:
            progress(SquareProgress(min(rounds, max_queries), max_queries, int(wrong.sum()), len(index)))
        return wrong

    attack = SquareAttack(
        estimator=art_classifier(model, images.shape[1:]), norm=NORMS[norm], adv_criterion=still_wrong, max_iter=max_queries - 1,
        eps=float(epsilon), p_init=P_INIT, nb_restarts=1, batch_size=len(index), verbose=False,
    )  # fmt: skip  (max_iter + the first stripes = max_queries)
    with _LOCK:
        saved = np.random.get_state(), random.getstate()
        np.random.seed(seed)
        random.seed(seed)
        try:
            found = attack.generate(images[index], np.eye(classes, dtype=np.float32)[labels[index]])
        finally:
            np.random.set_state(saved[0])
            random.setstate(saved[1])
    queries = np.minimum(queries, max_queries)
    adversarial = images.copy()
    adversarial[index] = _within_budget(found, images[index], norm, epsilon)
    fooled = np.zeros(len(images), bool)
    fooled[index] = predict(model, adversarial[index]).argmax(axis=1) != labels[index]
    return SquareResult(fooled, adversarial, queries)


def _within_budget(found: np.ndarray, clean: np.ndarray, norm: str, epsilon: float) -> np.ndarray:
    """ART's points, projected onto the ball ∩ [0, 1] against float round-off (a no-op otherwise);
    a point with a non-finite pixel is no attack: the clean image comes back."""
    broken = ~np.isfinite(found.reshape(len(found), -1)).all(axis=1)
    delta = np.where(broken.reshape(-1, 1, 1, 1), clean, found).astype(np.float32) - clean
    if norm == "infinity":
        delta = np.clip(delta, -epsilon, epsilon)
    else:
        size = np.sqrt((delta.reshape(len(delta), -1).astype(np.float64) ** 2).sum(axis=1))
        delta *= np.minimum(1.0, epsilon / np.maximum(size, 1e-12)).reshape(-1, 1, 1, 1).astype(np.float32)
    return np.clip(clean + delta, 0.0, 1.0)
