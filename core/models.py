"""The classifier both models share, and NSL's adversarial-regularization wrapper around it.

Fair comparison is the point of the product: the baseline and the adversarial model are the
*same* architecture (the seed's Conv16-Pool-Conv32-Pool-Conv32-Pool-Dense64-Dense3, plus batch
norm and dropout so it trains well from scratch); only the training objective differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.compat import nsl, tf

CONV_LAYER_NAMES: tuple[str, ...] = ("conv1", "conv2", "conv3")
CONV_FILTERS: tuple[int, ...] = (16, 32, 32)
INPUT_NAME = "image"
LABEL_NAME = "label"
# Keras' default 0.99 needs hundreds of steps before the running statistics that inference uses
# match the weights; a classroom retrain of a few epochs on a small folder never gets there.
BN_MOMENTUM = 0.9


def build_cnn(image_size: int, num_classes: int = 3, dropout: float = 0.3, name: str = "beans_cnn") -> tf.keras.Model:
    """A plain Keras model: float32 images in [0, 1] (N, size, size, 3) -> class probabilities.

    Each conv block is Conv -> BatchNorm -> ReLU -> MaxPool; the ReLU output carries the conv's
    readable name (``conv1``..``conv3``) because that is what the activation maps show.
    """
    inputs = tf.keras.Input((image_size, image_size, 3), name=INPUT_NAME)
    x = inputs
    for layer_name, filters in zip(CONV_LAYER_NAMES, CONV_FILTERS):
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{layer_name}_conv")(x)
        x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{layer_name}_bn")(x)
        x = tf.keras.layers.ReLU(name=layer_name)(x)
        x = tf.keras.layers.MaxPooling2D(2, name=f"{layer_name}_pool")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = tf.keras.layers.Dropout(dropout, name="dropout_features")(x)
    x = tf.keras.layers.Dense(64, activation="relu", name="dense")(x)
    x = tf.keras.layers.Dropout(dropout, name="dropout_dense")(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return tf.keras.Model(inputs, outputs, name=name)


@dataclass(frozen=True)
class AdversarialSettings:
    """NSL's knobs: how hard the training-time attack pushes, and how much its loss counts."""

    multiplier: float = 1.0
    step_size: float = 2.0 / 255
    norm: str = "infinity"  # NSL's adv_grad_norm: "infinity", "l2" or "l1"
    pgd_iterations: int = 5
    epsilon: float = 8.0 / 255
    random_init: bool = True

    def neighbor_config(self) -> "nsl.configs.AdvNeighborConfig":
        """NSL's config; PGD projection only exists for L-inf and L2 in NSL 1.4.0."""
        return nsl.configs.AdvNeighborConfig(
            adv_step_size=self.step_size,
            adv_grad_norm=self.norm,
            clip_value_min=0.0,
            clip_value_max=1.0,
            pgd_iterations=self.pgd_iterations,
            pgd_epsilon=self.epsilon if self.pgd_iterations > 1 and self.norm != "l1" else None,
            random_init=self.random_init,
        )


def wrap_adversarial(base_model: tf.keras.Model, settings: AdversarialSettings) -> "nsl.keras.AdversarialRegularization":
    """NSL's wrapper: trains ``base_model`` on clean loss + multiplier * loss on PGD neighbours.

    The wrapper takes dict batches ``{"image": ..., "label": ...}``; the base model stays a plain
    Keras model, which is what we save.
    """
    config = nsl.configs.AdvRegConfig(multiplier=settings.multiplier, adv_neighbor_config=settings.neighbor_config())
    return nsl.keras.AdversarialRegularization(base_model, label_keys=[LABEL_NAME], adv_config=config)
