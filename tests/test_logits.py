"""core.logits: the pre-softmax view of a classifier, for both final-layer shapes the project ships."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from core.compat import tf
from core.logits import logits_model


def _classifier(final: str) -> tf.keras.Model:
    inputs = tf.keras.Input((8, 8, 3))
    features = tf.keras.layers.Dense(5, activation="relu")(tf.keras.layers.Flatten()(inputs))
    if final == "softmax_layer":  # the new models: Dense(name="logits") then Softmax(name="probabilities")
        outputs = tf.keras.layers.Softmax(name="probabilities")(tf.keras.layers.Dense(3, name="logits")(features))
    else:  # the older checkpoints: a Dense with softmax activation
        outputs = tf.keras.layers.Dense(3, activation="softmax", name="probabilities")(features)
    return tf.keras.Model(inputs, outputs)


IMAGES = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("final", ["softmax_layer", "softmax_dense"])
def test_logits_equal_log_probabilities_up_to_a_constant_per_example(final):
    model = _classifier(final)
    logits = logits_model(model)(IMAGES).numpy()
    difference = np.log(model(IMAGES).numpy()) - logits
    np.testing.assert_allclose(difference, difference[:, :1].repeat(3, axis=1), atol=1e-5)
    assert np.ptp(logits) > 0  # real logits, not a constant


def test_logits_follow_the_classifier_weights_when_they_change():
    model = _classifier("softmax_dense")
    logits = logits_model(model)
    final = model.layers[-1]
    final.kernel.assign(final.kernel * 2.0)
    difference = np.log(model(IMAGES).numpy()) - logits(IMAGES).numpy()
    np.testing.assert_allclose(difference, difference[:, :1].repeat(3, axis=1), atol=1e-5)


def test_shipped_baseline_logits_match_its_probabilities():
    from core import checkpoints

    try:
        model = checkpoints.load_model(checkpoints.DEFAULT_DIR / "baseline.keras")
    except checkpoints.CheckpointError:
        pytest.skip("no shipped baseline checkpoint")
    images = np.random.default_rng(1).random((3, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_allclose(
        tf.nn.softmax(logits_model(model)(images)).numpy(), model(images).numpy(), atol=1e-5
    )


def test_logits_model_is_cached_per_model_and_released_with_it():
    model = _classifier("softmax_layer")
    assert logits_model(model) is logits_model(model)
    assert logits_model(_classifier("softmax_layer")) is not logits_model(model)
    released = weakref.ref(model)
    del model
    gc.collect()
    assert released() is None


def test_a_model_without_softmax_output_is_refused():
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(inputs))
    with pytest.raises(ValueError, match="logits"):
        logits_model(model)
