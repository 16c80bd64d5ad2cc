"""Does a photo look like the Beans leaves at all? A simple, honest out-of-distribution check.

Why not the models' confidence: a classifier trained on three leaf classes has no "none of these"
answer, and softmax confidence is no guard — the shipped baseline calls random noise "bean rust"
with 94% confidence. So the check looks at the picture, not at the models: eight numbers the
models' input is made of (mean and spread of each colour channel, how much neighbouring pixels
differ, and how alike neighbouring pixels are) are compared with the same numbers on reference
Beans photos (the app uses the test split). The last one does most of the work against noise: in
a photo neighbouring pixels are strongly correlated (0.78 to 0.95 over all 1,295 Beans photos at
64 px), in noise they are not (about 0.25 once a large noise image is shrunk to 64 px, 0 at 64 px). Each number becomes a z-score against the reference; the photo's score is the
largest one. A photo is flagged when it is farther out than every reference photo by half again
(``margin``), so no reference photo is ever flagged and the threshold adapts to the data.

What it catches: noise, flat or blank images, drawings and screenshots, photos with none of the
leaves' colours. What it does not: a photo of some other green plant can pass. The message says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "mean red", "mean green", "mean blue", "red contrast", "green contrast", "blue contrast", "texture", "likeness of neighbouring pixels"
)
MIN_SPREAD = 0.01  # floor for a feature's reference spread: a near-constant feature does not make every photo "far"
MARGIN = 1.5
MESSAGE = "This does not look like the bean leaves the models were trained on"


def features(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) images in [0, 1] -> (N, 8): channel means, channel standard deviations, the mean
    absolute difference between neighbouring pixels (texture) and their correlation (0 for a flat image)."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[None]
    means = images.mean(axis=(1, 2))
    spreads = images.std(axis=(1, 2))
    texture = 0.5 * (
        np.abs(np.diff(images, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))
    )
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    variance = (centred**2).mean(axis=(1, 2, 3))
    covariance = 0.5 * ((centred[:, 1:] * centred[:, :-1]).mean(axis=(1, 2, 3)) + (centred[:, :, 1:] * centred[:, :, :-1]).mean(axis=(1, 2, 3)))
    correlation = np.where(variance > 1e-8, covariance / np.maximum(variance, 1e-8), 0.0)
    return np.concatenate([means, spreads, texture[:, None], correlation[:, None]], axis=1)


@dataclass(frozen=True)
class Reference:
    """Feature mean and spread of the reference photos, and the score that counts as "far"."""

    mean: np.ndarray
    spread: np.ndarray
    farthest: float  # the largest score of any reference photo
    threshold: float
    count: int

    def scores(self, images: np.ndarray) -> np.ndarray:
        """For each image: its largest |z-score| over the features."""
        return np.abs((features(images) - self.mean) / self.spread).max(axis=1)

    def nearest_feature(self, image: np.ndarray) -> str:
        """The feature that is farthest off, in words (for the explanation)."""
        return FEATURE_NAMES[int(np.abs((features(image)[0] - self.mean) / self.spread).argmax())]


def fit_reference(images: np.ndarray, margin: float = MARGIN) -> Reference:
    """The reference from a set of in-distribution images (at the models' input size)."""
    values = features(images)
    if len(values) < 2:
        raise ValueError("The out-of-distribution reference needs at least two images.")
    mean, spread = values.mean(axis=0), np.maximum(values.std(axis=0), MIN_SPREAD)
    farthest = float(np.abs((values - mean) / spread).max(axis=1).max())
    return Reference(mean, spread, farthest, margin * farthest, len(values))


@dataclass(frozen=True)
class Familiarity:
    """How an image compares with the reference photos."""

    score: float
    threshold: float
    unfamiliar: bool
    feature: str  # the feature that is farthest off

    @property
    def message(self) -> str | None:
        if not self.unfamiliar:
            return None
        return (
            f"{MESSAGE}: its {self.feature} is far from every Beans test photo (score {self.score:.1f}; the farthest "
            f"test photo scores {self.threshold / MARGIN:.1f}). The models must still answer one of the three classes, "
            "so treat their answers with suspicion."
        )


def familiarity(reference: Reference, image: np.ndarray) -> Familiarity:
    """Score one image (H, W, 3) in [0, 1] against ``reference``."""
    score = float(reference.scores(image)[0])
    return Familiarity(score, reference.threshold, score > reference.threshold, reference.nearest_feature(image))
