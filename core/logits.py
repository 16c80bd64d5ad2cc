"""Pre-softmax logits of a classifier, for attacks that must not see saturated probabilities.

Why: a confident model's softmax rounds to exactly 1.0 in float32, so the gradient of
``-log(p_y)`` computed from probabilities vanishes and gradient attacks stall (gradient masking
by saturation). AutoAttack-grade attacks (APGD with cross-entropy and the DLR loss) are defined
on logits. Two classifier shapes are supported, read from the model itself:

- the last layer is a ``Softmax`` (or an ``Activation("softmax")``) layer: the logits are its input;
- the last layer is a ``Dense`` with a softmax activation (the older checkpoints): the logits are
  the same ``Dense`` without its activation, computed from the *same* weight variables, so a model
  trained in place keeps its logits view in step.
"""

from __future__ import annotations

import weakref

from core.compat import tf

_CACHE: "weakref.WeakKeyDictionary[tf.keras.Model, tf.keras.Model]" = weakref.WeakKeyDictionary()


class _DenseLogits(tf.keras.layers.Layer):
    """A softmax ``Dense`` layer's affine part, reading that layer's own variables."""

    def __init__(self, dense: tf.keras.layers.Dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense  # the layer, not the classifier: the cache must not keep the model alive

    def call(self, inputs):
        outputs = tf.matmul(inputs, self.dense.kernel)
        return outputs if self.dense.bias is None else tf.nn.bias_add(outputs, self.dense.bias)


def _is_softmax(activation) -> bool:
    return activation is tf.keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def logits_model(model: tf.keras.Model) -> tf.keras.Model:
    """A model computing ``model``'s pre-softmax logits (cached per model, shares its weights).

    Raises ``ValueError`` when the last layer is neither a softmax layer nor a softmax ``Dense``.
    """
    cached = _CACHE.get(model)
    if cached is not None:
        return cached
    last = model.layers[-1]
    if isinstance(last, tf.keras.layers.Softmax) or (
        isinstance(last, tf.keras.layers.Activation) and _is_softmax(last.activation)
    ):
        outputs = last.input
    elif isinstance(last, tf.keras.layers.Dense) and _is_softmax(last.activation):
        outputs = _DenseLogits(last, name=f"{last.name}_logits")(last.input)
    else:
        raise ValueError(
            f"Cannot find the logits of {model.name!r}: its last layer {last.name!r} is neither a Softmax "
            "layer nor a Dense layer with softmax activation."
        )
    logits = tf.keras.Model(model.inputs, outputs, name=f"{model.name}_logits")
    _CACHE[model] = logits
    return logits
