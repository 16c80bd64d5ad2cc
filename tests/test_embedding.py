"""core.embedding: penultimate features and a 2-D PCA map that is centred, ordered, sign-stable, and
shows the classes apart."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.brightness_model import brightness_model, flat_photos
from core import embedding


def test_features_are_what_the_logits_layer_reads(tiny_model, tiny_splits):
    images = tiny_splits["test"].images
    features = embedding.features(tiny_model, images)
    assert features.shape == (len(images), tiny_model.get_layer("logits").input.shape[-1]) == (len(images), 64)
    logits = tiny_model.get_layer("logits")
    kernel, bias = logits.get_weights()
    probabilities = tiny_model.predict(images, verbose=0)
    recomputed = np.exp(features @ kernel + bias)
    np.testing.assert_allclose(recomputed / recomputed.sum(axis=1, keepdims=True), probabilities, atol=1e-5)


def test_features_of_a_model_without_a_dense_layer_before_the_logits():
    model = brightness_model(8)
    features = embedding.features(model, flat_photos(np.array([0.2, 0.7]), 8))
    np.testing.assert_allclose(features, [[0.2] * 3, [0.7] * 3], atol=1e-6)  # the pooled channel means


def test_features_are_deterministic_and_batch_independent(tiny_model, tiny_splits):
    images = tiny_splits["test"].images
    whole = embedding.features(tiny_model, images)
    np.testing.assert_array_equal(embedding.features(tiny_model, images), whole)
    np.testing.assert_allclose(embedding.features(tiny_model, images, batch_size=5), whole, atol=1e-5)


def test_projection_shapes_and_an_orthonormal_basis(tiny_model, tiny_splits):
    features = embedding.features(tiny_model, tiny_splits["train"].images)
    projection = embedding.fit_projection(features)
    assert projection.mean.shape == (64,) and projection.components.shape == (2, 64)
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(2), atol=1e-10)
    assert projection.apply(features).shape == (len(features), 2)
    assert projection.apply(features[:1]).shape == (1, 2)


def test_the_fitted_photos_are_centred_and_the_first_axis_carries_the_most_variance():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 10)) * np.array([1, 5, 0.5, 3, 1, 1, 1, 1, 1, 1]) + 7
    projection = embedding.fit_projection(data)
    mapped = projection.apply(data)
    np.testing.assert_allclose(mapped.mean(axis=0), 0, atol=1e-10)
    variance = mapped.var(axis=0)
    assert variance[0] > variance[1]
    ratio = projection.explained_variance_ratio
    assert ratio[0] > ratio[1] > 0 and ratio.sum() <= 1
    np.testing.assert_allclose(ratio, variance / data.var(axis=0).sum(), rtol=1e-8)
    assert abs(projection.components[0, 1]) > 0.95  # the widest input direction (spread 5) comes first


@pytest.mark.parametrize("seed", range(6))
def test_component_signs_do_not_depend_on_the_svd(seed):
    """The same photos in another order give the same map, never a mirrored one (the SVD alone may
    flip a component's sign); the convention: each component's largest loading is positive."""
    data = np.random.default_rng(seed).normal(size=(50, 6)) * np.arange(1, 7)
    projection = embedding.fit_projection(data)
    shuffled = embedding.fit_projection(data[np.random.default_rng(seed + 100).permutation(len(data))])
    np.testing.assert_allclose(shuffled.components, projection.components, atol=1e-10)
    rows = np.arange(2)
    assert np.all(projection.components[rows, np.abs(projection.components).argmax(axis=1)] > 0)


def test_the_map_shows_the_classes_apart_on_the_tiny_model(tiny_model, tiny_splits):
    """Fitted on the training photos, each test photo sits nearest its own class's centre, and the
    centres lie far apart compared with how far photos stray from them. Measured: all 12 nearest
    their own centre; centres 0.4 to 0.9 apart, photos within 0.02 of theirs (ratio about 40)."""
    train, test = tiny_splits["train"], tiny_splits["test"]
    projection = embedding.fit_projection(embedding.features(tiny_model, train.images))
    train_map = projection.apply(embedding.features(tiny_model, train.images))
    test_map = projection.apply(embedding.features(tiny_model, test.images))
    centres = np.stack([train_map[train.labels == c].mean(axis=0) for c in range(3)])
    distances = np.linalg.norm(test_map[:, None] - centres[None], axis=2)
    assert (distances.argmin(axis=1) == test.labels).mean() >= 0.9
    apart = min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3))
    stray = distances[np.arange(len(test.labels)), test.labels].mean()
    assert apart > 5 * stray


def test_bad_inputs_are_refused(tiny_model):
    with pytest.raises(ValueError, match="at least 2 photos"):
        embedding.fit_projection(np.ones((1, 5)))
    with pytest.raises(ValueError, match="Expected features"):
        embedding.fit_projection(np.ones((5, 4))).apply(np.ones((3, 5)))
    with pytest.raises(ValueError, match="batch of images"):
        embedding.features(tiny_model, np.ones((32, 32, 3)))

