"""Keras callbacks of a training run: a moving average of the weights, and the per-epoch reporter
that validates, keeps the best epoch and tells the progress bar.
"""

from __future__ import annotations

import time

import numpy as np

from core import data
from core.attacks import Attack, attack
from core.compat import tf
from core.models import predict
from core.progress import EpochCallback, EpochReport


class WeightAverage(tf.keras.callbacks.Callback):
    """An exponential moving average of every weight (batch-norm statistics included).

    Why: on 1034 images the weights of one epoch are noisy; their average is both more accurate
    and, for adversarial training, more robust (Izmailov et al. 2018; Gowal et al. 2020), and
    needs no choice of epoch on the 133 validation images. Updated after every batch.
    """

    def __init__(self, base_model: tf.keras.Model, decay: float):
        super().__init__()
        self.base_model, self.decay = base_model, decay
        self.averages: list[tf.Variable] = []
        self.updates = 0

    def on_train_begin(self, logs=None):
        self.averages = [tf.Variable(weight, trainable=False) for weight in self.base_model.weights]
        self.updates = 0

    def on_train_batch_end(self, batch, logs=None):
        self.updates += 1
        # Early on, average with a shorter memory (as in TF's ExponentialMovingAverage num_updates).
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for average, weight in zip(self.averages, self.base_model.weights):
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))

    def averaged(self) -> list[np.ndarray]:
        return [average.numpy() for average in self.averages]


class EpochReporter(tf.keras.callbacks.Callback):
    """Times each epoch, forwards it to ``on_epoch`` and keeps the best weights on validation.

    With weight averaging, the averaged weights are the candidate of each epoch.
    """

    def __init__(
        self,
        name: str,
        epochs: int,
        base_model: tf.keras.Model,
        validation: data.Split,
        on_epoch: EpochCallback | None,
        robust_threat: Attack | None = None,
        average: WeightAverage | None = None,
    ):
        super().__init__()
        self.name, self.epochs, self.base_model = name, epochs, base_model
        self.validation, self.on_epoch, self.robust_threat = validation, on_epoch, robust_threat
        self.average = average
        self.best_accuracy, self.best_weights, self.best_epoch = -1.0, None, 0
        self.best_score = -1.0
        self.criterion = "val_accuracy" if robust_threat is None else f"val_accuracy + val accuracy under {robust_threat.label}"
        if average is not None:
            self.criterion += f" (weights averaged, decay {average.decay:g})"
        self.reports: list[EpochReport] = []
        self.replicas = 0

    def on_train_begin(self, logs=None):
        # What ``fit`` really distributed over: the trained model's own strategy.
        self.replicas = self.model.distribute_strategy.num_replicas_in_sync

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def _validate(self) -> dict[str, float]:
        probabilities = predict(self.base_model, self.validation.images)
        metrics = {"val_accuracy": float((probabilities.argmax(axis=1) == self.validation.labels).mean())}
        if self.robust_threat is not None:  # a robust model is chosen for robustness too, not clean accuracy alone
            attacked = attack(self.validation.images, self.validation.labels, self.base_model, self.robust_threat)
            predicted = predict(self.base_model, attacked).argmax(axis=1)
            metrics["val_robust_accuracy"] = float((predicted == self.validation.labels).mean())
        return metrics

    def on_epoch_end(self, epoch, logs=None):
        metrics = {key: float(value) for key, value in (logs or {}).items()}
        current = None
        if self.average is not None:
            current = self.base_model.get_weights()
            self.base_model.set_weights(self.average.averaged())
        metrics.update(self._validate())
        score = metrics["val_accuracy"] + metrics.get("val_robust_accuracy", 0.0)
        if score >= self.best_score:  # ties go to the later, better-trained epoch
            self.best_score, self.best_accuracy = score, metrics["val_accuracy"]
            self.best_weights, self.best_epoch = self.base_model.get_weights(), epoch + 1
        if current is not None:
            self.base_model.set_weights(current)
        report = EpochReport(self.name, epoch + 1, self.epochs, time.perf_counter() - self.started, metrics)
        self.reports.append(report)
        if self.on_epoch is not None:
            self.on_epoch(report)

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.base_model.set_weights(self.best_weights)
