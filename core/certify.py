"""A guarantee instead of an attack: randomized smoothing's certified L2 radius (Cohen, Rosenfeld & Kolter 2019).

An attack can only show that a photo CAN be fooled; it never proves one cannot. Randomized
smoothing proves it, for a slightly different model: the *smoothed* model, whose answer for a
photo is the class the ordinary model gives most often when Gaussian noise of spread σ is added to
the photo. If that class wins with probability p_A ≥ 1/2, no change of L2 size below
σ·Φ⁻¹(p_A) can change the smoothed model's answer (Φ⁻¹: the standard normal quantile).

:func:`certify` is the paper's CERTIFY: n0 noisy copies pick the class, n fresh ones estimate how
often it wins, a one-sided Clopper–Pearson bound at level α makes p_A a lower bound that holds
with probability ≥ 1 - α, and the model abstains when that bound is below 1/2.

The noise is NOT clipped to the [0, 1] box. Cohen et al.'s theorem is about the classifier that
sees x + δ with δ exactly Gaussian; clipping x + δ to the box is a different input distribution
(pixels near 0 or 1 get noise that is no longer Gaussian or centred on them). Mathematically the
clip could be folded into the base model (f(clip(z)) is a model too), but the certificate would
then be about that other smoothed model, not the one the paper and its numbers describe, so we
keep the paper's: the model reads the noisy values as they are, outside the box included.

Our shipped models were not trained on noisy photos, so at useful σ they often abstain or certify
a wrong class: the certificate is about the smoothed model's answer, not about the true label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.compat import tf, traced


def _stats():
    """scipy.stats on first use, not at import: importing it costs every page's first screen."""
    import scipy.stats

    return scipy.stats


@dataclass(frozen=True)
class Certification:
    """The smoothed model's answer for one photo and how far it provably holds.

    ``label``: the certified class, or None when the model abstains; ``radius``: the certified L2
    radius (0 when abstaining); ``counts``: how often each class won among the ``n`` noisy copies;
    ``p_lower``: the lower confidence bound on the winner's probability (holds with prob. ≥ 1 - α).

    In words: "with probability at least 1 - α, no change to this photo smaller than ``radius``
    (in L2) can change what the smoothed model answers"; for an abstention, "too close to call".
    """

    label: int | None
    radius: float
    counts: tuple[int, ...]
    p_lower: float
    sigma: float
    n: int
    alpha: float
    n0: int


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius ``n`` samples can ever certify: all n agree, so p_lower = α^(1/n).

    About 2.46σ for n = 1000, α = 0.001: proving larger radii needs more samples, not a better model."""
    return float(sigma * _stats().norm.ppf(alpha ** (1.0 / n)))


def linf_equivalent(radius: float, image_shape: tuple[int, ...]) -> float:
    """The L∞ budget an L2 radius covers for an image of ``image_shape`` (H, W, C): r/√(H·W·C).

    Changing every one of the d values by e has L2 size e·√d, so an L2 ball of radius r contains
    every L∞ change only up to r/√d (at 64 px, r = 1 covers just 0.0090, about 2.3/255)."""
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"Expected one image's shape (H, W, C), got {tuple(image_shape)}.")
    return float(radius / math.sqrt(float(np.prod(image_shape))))


def _lower_bound(successes: int, n: int, alpha: float) -> float:
    """One-sided Clopper–Pearson: the p with P(Binomial(n, p) ≥ successes) = α."""
    return 0.0 if successes == 0 else float(_stats().beta.ppf(alpha, successes, n - successes + 1))


def _run_forward(model: tf.keras.Model, images: tf.Tensor) -> tf.Tensor:
    return tf.argmax(model(images, training=False), axis=1)


_answers_graph = traced(_run_forward, reduce_retracing=True)


def _noisy_counts(
    model: tf.keras.Model, image: np.ndarray, sigma: float, samples: int, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    """How often the model gives each class for ``samples`` copies of ``image`` plus N(0, σ²) noise."""
    classes = int(model.output_shape[-1])
    counts = np.zeros(classes, np.int64)
    left = samples
    while left > 0:
        size = min(batch_size, left)
        noisy = image[None] + sigma * rng.standard_normal((size, *image.shape), dtype=np.float32)
        answers = _answers_graph(model, tf.convert_to_tensor(noisy)).numpy()
        counts += np.bincount(answers, minlength=classes)
        left -= size
    return counts


def certify(
    model: tf.keras.Model,
    image: np.ndarray,
    sigma: float,
    n0: int = 100,
    n: int = 1000,
    alpha: float = 0.001,
    batch_size: int = 250,
    seed: int = 0,
) -> Certification:
    """CERTIFY (Cohen et al. 2019, Alg. 1) for one (H, W, C) image in [0, 1]; σ in pixel units.

    The same ``seed`` gives the same noise, hence the same result."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"Expected one image (H, W, C), got shape {image.shape}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}.")
    if n0 < 1 or n < 1 or batch_size < 1:
        raise ValueError(f"n0, n and batch_size must be at least 1, got {n0}, {n} and {batch_size}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}.")
    rng = np.random.default_rng(seed)
    guess = int(np.argmax(_noisy_counts(model, image, sigma, n0, batch_size, rng)))
    counts = _noisy_counts(model, image, sigma, n, batch_size, rng)
    p_lower = _lower_bound(int(counts[guess]), n, alpha)
    abstain = p_lower < 0.5
    return Certification(
        label=None if abstain else guess,
        radius=0.0 if abstain else float(sigma * _stats().norm.ppf(p_lower)),
        counts=tuple(int(count) for count in counts),
        p_lower=p_lower,
        sigma=float(sigma),
        n=n,
        alpha=alpha,
        n0=n0,
    )
