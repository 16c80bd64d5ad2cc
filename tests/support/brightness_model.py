"""A classifier whose decision boundary is known exactly, for tests of boundaries and certificates.

It answers class 0 when a photo's mean brightness is above ``threshold``, else class 1 (class 2
never wins). Shifting every value of a photo by e moves its mean by e, so the smallest L∞ change
that flips a photo is |mean - threshold| and the smallest L2 change is that times √d.
"""

from __future__ import annotations

import numpy as np

import core  # noqa: F401
from core.compat import tf


def brightness_model(image_size: int, threshold: float = 0.5, sharpness: float = 50.0) -> tf.keras.Model:
    """Keras model: mean brightness -> logits (s(m - t), -s(m - t), -s) -> softmax, named like ours."""
    inputs = tf.keras.Input((image_size, image_size, 3), name="image")
    channel_means = tf.keras.layers.GlobalAveragePooling2D(name="pool")(inputs)
    dense = tf.keras.layers.Dense(3, name="logits")
    logits = dense(channel_means)
    dense.set_weights(
        [
            np.array([[1, -1, 0]] * 3, np.float32) * sharpness / 3,
            np.array([-threshold, threshold, -1], np.float32) * sharpness,
        ]
    )
    outputs = tf.keras.layers.Softmax(name="probabilities")(logits)
    return tf.keras.Model(inputs, outputs, name="brightness")


def flat_photos(values: np.ndarray, image_size: int) -> np.ndarray:
    """One flat grey photo per value."""
    return np.broadcast_to(np.asarray(values, np.float32)[:, None, None, None], (len(values), image_size, image_size, 3)).copy()
