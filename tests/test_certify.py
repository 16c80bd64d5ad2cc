"""core.certify: randomized smoothing certifies confident photos, abstains on split ones, never
claims more than its samples allow, and is reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.brightness_model import brightness_model, flat_photos
from core import certify

SIZE = 8


@pytest.fixture(scope="module")
def brightness():
    """Class 0 when the mean brightness is above 0.5: under N(0, σ²) noise the mean of d = 192 values
    moves by only σ/√d, so a photo far from 0.5 is unanimous and one at exactly 0.5 is a coin flip."""
    return brightness_model(SIZE)


def test_the_largest_radius_1000_samples_can_certify_is_about_2_46_sigma():
    assert certify.max_certifiable_radius(1.0, 1000, 0.001) == pytest.approx(2.46, abs=0.01)
    assert certify.max_certifiable_radius(0.25, 1000, 0.001) == pytest.approx(0.25 * 2.46, abs=0.003)


def test_a_unanimous_photo_certifies_exactly_the_largest_radius(brightness):
    image = flat_photos(np.array([0.9]), SIZE)[0]
    result = certify.certify(brightness, image, sigma=0.25)
    assert result.label == 0
    assert result.counts == (1000, 0, 0)
    assert result.p_lower == pytest.approx(0.001 ** (1 / 1000))
    assert result.radius == pytest.approx(certify.max_certifiable_radius(0.25, 1000, 0.001))


def test_a_photo_on_the_boundary_abstains(brightness):
    image = flat_photos(np.array([0.5]), SIZE)[0]
    result = certify.certify(brightness, image, sigma=0.25)
    assert result.label is None and result.radius == 0.0
    assert result.p_lower < 0.5
    assert 350 < result.counts[0] < 650  # the model's answers under noise are split


def test_the_same_seed_gives_the_same_result_and_another_seed_other_noise(brightness):
    image = flat_photos(np.array([0.5]), SIZE)[0]
    first = certify.certify(brightness, image, sigma=0.25, seed=3)
    assert certify.certify(brightness, image, sigma=0.25, seed=3) == first
    assert certify.certify(brightness, image, sigma=0.25, seed=4).counts != first.counts


def test_batches_do_not_change_the_counts(brightness):
    image = flat_photos(np.array([0.5]), SIZE)[0]
    assert certify.certify(brightness, image, 0.25, batch_size=1000) == certify.certify(brightness, image, 0.25, batch_size=64)


def test_the_noise_is_not_clipped_to_the_box(brightness):
    """A black photo (mean 0) stays class 1 whatever the noise; clipped noise could only brighten it,
    unclipped noise is centred on it. Its threshold at 0.01 puts the boundary 0.01 away: with
    clipping, the mean of the noisy photo would be about 0.4σ = 0.1 and the answer class 0 every time."""
    near_black = brightness_model(SIZE, threshold=0.01)
    result = certify.certify(near_black, np.zeros((SIZE, SIZE, 3), np.float32), sigma=0.25)
    assert result.label == 1


def test_the_tiny_model_certifies_a_positive_radius_on_a_photo_it_is_sure_of(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    probabilities = tiny_model.predict(test.images, verbose=0)
    surest = int(probabilities.max(axis=1).argmax())
    result = certify.certify(tiny_model, test.images[surest], sigma=0.05, n=500)
    assert result.label == int(probabilities[surest].argmax())
    assert 0 < result.radius <= certify.max_certifiable_radius(0.05, 500, 0.001)


@pytest.mark.parametrize("sigma", [0.05, 0.25, 0.5])
def test_the_radius_is_never_above_what_the_samples_allow(tiny_model, tiny_splits, sigma):
    for image in tiny_splits["test"].images[::3]:
        result = certify.certify(tiny_model, image, sigma=sigma, n0=20, n=200)
        assert result.radius <= certify.max_certifiable_radius(sigma, 200, 0.001) + 1e-12
        assert (result.label is None) == (result.radius == 0.0 and result.p_lower < 0.5)
        assert sum(result.counts) == 200


def test_linf_equivalent_divides_by_the_root_of_the_number_of_values():
    assert certify.linf_equivalent(1.0, (64, 64, 3)) == pytest.approx(1 / math.sqrt(12288))
    assert certify.linf_equivalent(1.0, (64, 64, 3)) * 255 == pytest.approx(2.30, abs=0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"sigma": 0.0}, "sigma"), ({"sigma": 0.25, "n": 0}, "at least 1"), ({"sigma": 0.25, "alpha": 1.0}, "alpha")],
)
def test_bad_arguments_are_refused(brightness, kwargs, message):
    with pytest.raises(ValueError, match=message):
        certify.certify(brightness, np.zeros((SIZE, SIZE, 3), np.float32), **kwargs)


def test_a_batch_instead_of_one_image_is_refused(brightness):
    with pytest.raises(ValueError, match="one image"):
        certify.certify(brightness, np.zeros((2, SIZE, SIZE, 3), np.float32), 0.25)
