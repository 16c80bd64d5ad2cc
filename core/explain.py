"""Why did the model say that? Saliency maps: Grad-CAM on the last conv layer, and SmoothGrad.

- **Grad-CAM** (Selvaraju et al., 2017): weight each channel of the last conv layer by how much the
  class score grows with it (its gradient, averaged over the map), keep the positive sum. Coarse
  (the last layer's grid) but about *regions*, so a class reads it at a glance.
- **SmoothGrad** (Smilkov et al., 2017): the input gradient averaged over noisy copies of the image;
  pixel-sharp, noisier.

Both explain a *class score before the softmax* (the logit): after the softmax a confident model's
gradients vanish. Models ending in ``Dense(name="logits")`` + ``Softmax`` give it directly; models
whose last ``Dense`` has a softmax activation get it from that layer's kernel and bias. Maps come
back as float32 (N, H, W) in [0, 1] at the input size, each scaled by its own maximum (only where a
map is bright matters, not how bright next to another image's map).
"""

from __future__ import annotations

import weakref

import numpy as np

from core.activations import conv_layer_names
from core.compat import tf, traced

LOGITS_LAYER = "logits"
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_NOISE = 0.1  # standard deviation of the noise, as a fraction of the [0, 1] pixel range

_PARTS: "weakref.WeakKeyDictionary[tf.keras.Model, dict]" = weakref.WeakKeyDictionary()


def last_conv_layer(model: tf.keras.Model) -> str:
    """The deepest conv layer by name (Grad-CAM's default): finest map that still knows about classes."""
    names = conv_layer_names(model)
    if not names:
        raise ValueError(f"Model {model.name!r} has no conv layer to explain.")
    return names[-1]


def _parts(model: tf.keras.Model, layer: str) -> tuple[tf.keras.Model, tf.Variable | None, tf.Variable | None]:
    """``(inner, kernel, bias)``: ``inner`` maps images to (conv map, logits) — or, for a softmax
    Dense head, to (conv map, the head's input), turned into logits with ``kernel`` and ``bias``."""
    cache = _PARTS.setdefault(model, {})
    if layer not in cache:
        conv = model.get_layer(layer).output
        names = [item.name for item in model.layers]
        if LOGITS_LAYER in names:
            cache[layer] = (tf.keras.Model(model.inputs, [conv, model.get_layer(LOGITS_LAYER).output]), None, None)
        else:
            head = model.layers[-1]
            if not isinstance(head, tf.keras.layers.Dense) or head.activation is not tf.keras.activations.softmax:
                raise ValueError(f"Model {model.name!r} ends in neither a 'logits' layer nor a softmax Dense layer.")
            cache[layer] = (tf.keras.Model(model.inputs, [conv, head.input]), head.kernel, head.bias)
    return cache[layer]


def _logits(features: tf.Tensor, kernel, bias) -> tf.Tensor:
    return features if kernel is None else tf.matmul(features, kernel) + bias


def _run_grad_cam(inner, kernel, bias, images, classes):
    with tf.GradientTape() as tape:
        conv, features = inner(images, training=False)
        tape.watch(conv)
        logits = _logits(features, kernel, bias)
        score = tf.reduce_sum(tf.gather(logits, classes, batch_dims=1))
    gradients = tape.gradient(score, conv)  # (N, h, w, C)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, tf.shape(images)[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(cam, peak)


def _run_smooth_grad(inner, kernel, bias, images, classes, noise, seed, samples: int):
    # All noisy copies in one batch (samples × N): one forward and one backward pass, a small graph.
    shape = tf.shape(images)
    copies = tf.tile(images, [samples, 1, 1, 1])
    noisy = copies + noise * tf.random.stateless_normal(tf.shape(copies), seed=tf.stack([seed, 0]))  # the same noise every call
    with tf.GradientTape() as tape:
        tape.watch(noisy)
        _, features = inner(noisy, training=False)
        score = tf.reduce_sum(tf.gather(_logits(features, kernel, bias), tf.tile(classes, [samples]), batch_dims=1))
    gradients = tf.reshape(tf.abs(tape.gradient(score, noisy)), tf.concat([[samples], shape], axis=0))
    saliency = tf.reduce_max(tf.reduce_mean(gradients, axis=0), axis=-1)  # strongest colour channel per pixel
    peak = tf.reduce_max(saliency, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(saliency, peak)


# One trace per (model, batch shape); the dashboard always explains two images (clean, perturbed).
_grad_cam_graph = traced(_run_grad_cam)
_smooth_grad_graph = traced(_run_smooth_grad)


def _inputs(images: np.ndarray, classes: np.ndarray | list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    images = np.asarray(images, np.float32)
    classes = np.asarray(classes, np.int32).reshape(-1)
    if images.ndim != 4 or len(classes) != len(images):
        raise ValueError(f"Expected images (N, H, W, 3) and N classes, got {images.shape} and {classes.shape}.")
    return tf.constant(images), tf.constant(classes)


def grad_cam(model: tf.keras.Model, images: np.ndarray, classes: np.ndarray | list[int], layer: str | None = None) -> np.ndarray:
    """Grad-CAM of ``classes[i]`` for ``images[i]`` on ``layer`` (default: the last conv layer),
    upsampled to the input size: float32 (N, H, W) in [0, 1]."""
    inner, kernel, bias = _parts(model, layer or last_conv_layer(model))
    return _grad_cam_graph(inner, kernel, bias, *_inputs(images, classes)).numpy()


def smooth_grad(
    model: tf.keras.Model,
    images: np.ndarray,
    classes: np.ndarray | list[int],
    samples: int = SMOOTHGRAD_SAMPLES,
    noise: float = SMOOTHGRAD_NOISE,
    seed: int = 0,
) -> np.ndarray:
    """SmoothGrad of ``classes[i]`` for ``images[i]``: |input gradient| averaged over ``samples``
    noisy copies, strongest colour channel per pixel; float32 (N, H, W) in [0, 1]."""
    inner, kernel, bias = _parts(model, last_conv_layer(model))
    noise_level, seed_value = tf.constant(noise, tf.float32), tf.constant(seed, tf.int32)
    return _smooth_grad_graph(inner, kernel, bias, *_inputs(images, classes), noise_level, seed_value, int(samples)).numpy()


METHODS = {"grad_cam": grad_cam, "smooth_grad": smooth_grad}


def explain(model: tf.keras.Model, images: np.ndarray, classes: np.ndarray | list[int], method: str = "grad_cam") -> np.ndarray:
    """Saliency by method name (``"grad_cam"`` or ``"smooth_grad"``)."""
    if method not in METHODS:
        raise ValueError(f"Unknown saliency method {method!r}; expected one of {tuple(METHODS)}.")
    return METHODS[method](model, images, classes)
