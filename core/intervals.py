"""How sure a share of photos is: the 95% Wilson score interval of an accuracy on n photos.

Why: the test split has 128 photos, so one photo moves an accuracy by 0.8 points, and a 95%
interval around 40% is about ±8.5 points. Every reported accuracy carries its interval, so two
numbers closer than that are not read as a difference. Wilson's interval (not p ± 1.96·√(p(1-p)/n))
because it stays inside [0, 1] and does not collapse to a point at 0% or 100%.
"""

from __future__ import annotations

from statistics import NormalDist

CONFIDENCE = 0.95


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for ``successes`` out of ``trials``."""
    if trials <= 0:
        raise ValueError(f"An interval needs at least one photo, got {trials}.")
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} photos right out of {trials} is not a share.")
    if not 0 < confidence < 1:
        raise ValueError(f"The confidence must lie between 0 and 1, got {confidence}.")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = successes / trials
    scale = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / scale
    half = z / scale * (share * (1 - share) / trials + z * z / (4 * trials * trials)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def photos_right(accuracy: float, photos: int) -> int:
    """The whole number of photos behind a (rounded) accuracy on ``photos`` photos."""
    return int(round(accuracy * photos))


def accuracy_interval(accuracy: float, photos: int, digits: int = 4) -> list[float]:
    """[low, high] for an accuracy measured on ``photos`` photos, rounded like the tables."""
    low, high = wilson_interval(photos_right(accuracy, photos), photos)
    return [round(low, digits), round(high, digits)]


def curve_intervals(accuracies: list[float], photos: int) -> list[list[float]]:
    """One [low, high] per point of an accuracy curve: the band a plot draws around it."""
    return [accuracy_interval(value, photos) for value in accuracies]
