"""Where a photo lands in the model's own feature space: penultimate-layer features and a 2-D PCA map.

The layer before ``logits`` (the 64-unit ``dense`` layer in our models) is what the last, linear
layer separates the classes from; projected on its two main directions, a picture can show clean
photos in class clusters and an attacked photo walking from its own cluster into another.

The projection is plain PCA (numpy SVD; no extra dependency), fitted on one model's clean photos
and then applied to anything else (attacked photos) unchanged, so both sit on the same map. Each
component's sign is fixed (its largest loading positive), so the picture does not mirror between
runs or machines that differ only in how their SVD picks signs.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from core.compat import tf, traced
from core.models import LOGITS_LAYER

_EXTRACTORS: "weakref.WeakKeyDictionary[tf.keras.Model, tf.keras.Model]" = weakref.WeakKeyDictionary()


def _feature_layer_output(model: tf.keras.Model) -> tf.Tensor:
    """The input of the layer that makes the logits: the ``logits`` layer, else the last Dense layer
    (older checkpoints end in a softmax Dense)."""
    names = [layer.name for layer in model.layers]
    if LOGITS_LAYER in names:
        return model.get_layer(LOGITS_LAYER).input
    dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    if not dense:
        raise ValueError(f"Cannot find the features of {model.name!r}: it has no {LOGITS_LAYER!r} layer and no Dense layer.")
    return dense[-1].input


def _extractor(model: tf.keras.Model) -> tf.keras.Model:
    if model not in _EXTRACTORS:
        _EXTRACTORS[model] = tf.keras.Model(model.inputs, _feature_layer_output(model), name=f"{model.name}_features")
    return _EXTRACTORS[model]


def _run_forward(extractor: tf.keras.Model, images: tf.Tensor) -> tf.Tensor:
    return extractor(images, training=False)


# A traced graph, as in core.activations: eager Keras walks the layers in Python on every call.
_forward_graph = traced(_run_forward, reduce_retracing=True)


def features(model: tf.keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, H, W, 3) images in [0, 1] -> (N, d): what the model's last layer reads for each photo."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"Expected a batch of images (N, H, W, C), got shape {images.shape}.")
    extractor = _extractor(model)
    width = int(extractor.output_shape[-1])
    chunks = [
        _forward_graph(extractor, tf.convert_to_tensor(images[start : start + batch_size])).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, width))


@dataclass(frozen=True)
class Projection:
    """A 2-D PCA map of feature space: ``mean`` (d,), ``components`` (2, d) orthonormal rows,
    ``explained_variance_ratio`` (2,): the share of the fitted photos' spread each axis shows."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(N, d) features -> (N, 2) map coordinates (the fitted photos are centred at the origin)."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.mean):
            raise ValueError(f"Expected features (N, {len(self.mean)}), got shape {features.shape}.")
        return (features - self.mean) @ self.components.T


def fit_projection(clean_features: np.ndarray, dimensions: int = 2) -> Projection:
    """PCA on (N, d) features: the ``dimensions`` directions along which the photos differ most.

    In words: "the map's horizontal axis is the direction in which this model's view of the clean
    photos varies most; the vertical axis the next, at right angles to it"."""
    data = np.asarray(clean_features, np.float64)
    if data.ndim != 2 or len(data) < 2 or data.shape[1] < dimensions:
        raise ValueError(f"Need at least 2 photos with at least {dimensions} features each, got shape {data.shape}.")
    mean = data.mean(axis=0)
    _, singular, rows = np.linalg.svd(data - mean, full_matrices=False)
    components = rows[:dimensions]
    largest = np.argmax(np.abs(components), axis=1)
    components = components * np.sign(components[np.arange(dimensions), largest])[:, None]
    variance = singular**2
    total = variance.sum()
    ratio = variance[:dimensions] / total if total > 0 else np.zeros(dimensions)
    return Projection(mean, components, ratio)
