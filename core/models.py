"""The classifiers both models share, and NSL's adversarial-regularization wrapper around them.

Fair comparison is the point of the product: the baseline and the adversarial model always share
one architecture; only the training objective differs. Two architectures:

- ``beans`` (default): four Conv-BatchNorm-ReLU-MaxPool blocks (32-64-128-128 filters), global
  average pooling, Dense 64. Measured on Beans at 64 px it reaches ~90% clean where the seed's
  network stops near 80%, at ~0.25 M parameters (fast enough for a live classroom dashboard).
- ``seed``: the seed article's Conv16-Pool-Conv32-Pool-Conv32-Pool-Flatten-Dense64 stack (with
  the batch norm and dropout earlier versions added so it trains from scratch), for reproducing it.

Every model ends in ``Dense(name="logits")`` then ``Softmax(name="probabilities")``: attacks that
must see pre-softmax logits (AutoAttack's DLR loss) read the ``logits`` layer. Conv blocks keep
readable names (``conv1``, ``conv2``, ...) on their ReLU output: that is what activation maps show.
"""

from __future__ import annotations

import numpy as np

from core.compat import nsl, tf

INPUT_NAME = "image"
LABEL_NAME = "label"
LOGITS_LAYER = "logits"
# Keras' default 0.99 needs hundreds of steps before the running statistics that inference uses
# match the weights; a classroom retrain of a few epochs on a small folder never gets there.
BN_MOMENTUM = 0.9

# name -> (filters per conv block, head): "gap" = global average pooling, "flatten" = the seed's.
ARCHITECTURES: dict[str, tuple[tuple[int, ...], str]] = {
    "beans": ((32, 64, 128, 128), "gap"),
    "seed": ((16, 32, 32), "flatten"),
}
DEFAULT_ARCH = "beans"


def conv_block_names(arch: str) -> tuple[str, ...]:
    """The readable names of an architecture's conv blocks, in depth order."""
    return tuple(f"conv{index}" for index in range(1, len(ARCHITECTURES[arch][0]) + 1))


def build_cnn(
    image_size: int, num_classes: int = 3, dropout: float = 0.3, name: str = "beans_cnn", arch: str = DEFAULT_ARCH
) -> tf.keras.Model:
    """A plain Keras model: float32 images in [0, 1] (N, size, size, 3) -> class probabilities."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}.")
    filters_per_block, head = ARCHITECTURES[arch]
    inputs = tf.keras.Input((image_size, image_size, 3), name=INPUT_NAME)
    x = inputs
    for layer_name, filters in zip(conv_block_names(arch), filters_per_block):
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{layer_name}_conv")(x)
        x = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{layer_name}_bn")(x)
        x = tf.keras.layers.ReLU(name=layer_name)(x)
        x = tf.keras.layers.MaxPooling2D(2, name=f"{layer_name}_pool")(x)
    if head == "gap":
        x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = tf.keras.layers.Flatten(name="flatten")(x)
    x = tf.keras.layers.Dropout(dropout, name="dropout_features")(x)
    x = tf.keras.layers.Dense(64, activation="relu", name="dense")(x)
    x = tf.keras.layers.Dropout(dropout, name="dropout_dense")(x)
    logits = tf.keras.layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    outputs = tf.keras.layers.Softmax(name="probabilities")(logits)
    return tf.keras.Model(inputs, outputs, name=name)


def architecture_of(model: tf.keras.Model) -> str | None:
    """Which of :data:`ARCHITECTURES` a loaded model is (by its conv filters), or None."""
    filters = tuple(
        layer.filters for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D) and layer.name.endswith("_conv")
    )
    return next((arch for arch, (blocks, _) in ARCHITECTURES.items() if blocks == filters), None)


def neighbor_config(
    step_size: float, norm: str, pgd_iterations: int, epsilon: float
) -> "nsl.configs.AdvNeighborConfig":
    """NSL's config for the training-time attack: PGD with a random start when it has > 1 step.

    NSL 1.4.0 projects onto the L-inf and L2 balls only, so an L1 neighbour is a single step.
    """
    multi_step = pgd_iterations > 1 and norm != "l1"
    return nsl.configs.AdvNeighborConfig(
        adv_step_size=step_size,
        adv_grad_norm=norm,
        clip_value_min=0.0,
        clip_value_max=1.0,
        pgd_iterations=pgd_iterations if multi_step else 1,
        pgd_epsilon=epsilon if multi_step else None,
        random_init=multi_step,
    )


ATTACK_MODES = ("training", "inference")


class _InferenceModeNeighbours(nsl.keras.AdversarialRegularization):
    """NSL's wrapper, with its PGD neighbours found by the model in inference mode.

    Why: NSL runs the training-time attack through the model in training mode, so every PGD step
    normalises with the statistics of a half-attacked batch and moves the batch-norm running
    statistics on points that are not training data. Adversarial-training recipes generate the
    attack with batch norm in inference mode and train on the result in training mode (e.g. Pang et
    al., ICLR 2021, "Bag of tricks for adversarial training"); this does that with NSL's own
    neighbour generator (``nsl.lib.gen_adv_neighbor``) and loss bookkeeping, only the mode changes.
    """

    def call(self, inputs, **kwargs):
        if not kwargs.get("training"):
            return super().call(inputs, **kwargs)
        labels, sample_weights = self._extract_labels_and_weights(inputs)
        outputs, labeled_loss, metrics, tape = self._forward_pass(inputs, labels, sample_weights, kwargs)
        self.add_loss(labeled_loss)
        for value, aggregation, name in metrics:
            self.add_metric(value, aggregation=aggregation, name=name)
        features = self._remove_labels_and_weights(inputs)
        neighbours, neighbour_weights = nsl.lib.gen_adv_neighbor(
            features,
            labeled_loss,
            config=self.adv_config.adv_neighbor_config,
            gradient_tape=tape,
            pgd_model_fn=lambda x: self._call_base_model(x, training=False),
            pgd_loss_fn=lambda y, predictions: self._compute_total_loss(y, predictions, sample_weights),
            pgd_labels=labels,
            use_while_loop=True,
        )
        adv_outputs = self._call_base_model(neighbours, **kwargs)  # the loss itself: training mode, as NSL does
        if sample_weights is not None:
            neighbour_weights = tf.math.multiply(sample_weights, neighbour_weights)
        adv_loss = self._compute_total_loss(labels, adv_outputs, neighbour_weights)
        scaled = self.adv_config.multiplier * adv_loss
        self.add_loss(scaled)
        self.add_metric(scaled, name="scaled_adversarial_loss", aggregation="mean")
        return outputs


def wrap_adversarial(
    base_model: tf.keras.Model, multiplier: float, neighbors: "nsl.configs.AdvNeighborConfig", attack_mode: str = "training"
) -> "nsl.keras.AdversarialRegularization":
    """NSL's wrapper: trains ``base_model`` on clean loss + multiplier * loss on PGD neighbours.

    The wrapper takes dict batches ``{"image": ..., "label": ...}``; the base model stays a plain
    Keras model, which is what we save. ``attack_mode``: the mode the PGD neighbours are found in,
    "training" (NSL's own) or "inference" (batch norm with its running statistics, see
    :class:`_InferenceModeNeighbours`).
    """
    if attack_mode not in ATTACK_MODES:
        raise ValueError(f"Unknown attack mode {attack_mode!r}; expected one of {ATTACK_MODES}.")
    config = nsl.configs.AdvRegConfig(multiplier=multiplier, adv_neighbor_config=neighbors)
    wrapper = _InferenceModeNeighbours if attack_mode == "inference" else nsl.keras.AdversarialRegularization
    return wrapper(base_model, label_keys=[LABEL_NAME], adv_config=config)


def predict(model: tf.keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's outputs (N, classes), called on plain batches.

    Why not ``Model.predict``: it sets up a data pipeline on every call, and it traces its
    ``predict_function`` with autograph, which parses Python source; in a server that parse can
    meet Streamlit compiling the page in another thread (see :func:`core.compat.traced`)."""
    images = np.asarray(images, np.float32)
    if len(images) == 0:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return np.concatenate([model(images[start : start + batch_size], training=False).numpy() for start in range(0, len(images), batch_size)])
