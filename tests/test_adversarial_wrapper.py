"""core.models.wrap_adversarial: NSL's AdversarialRegularization, with the attack's batch-norm mode as a choice."""

from __future__ import annotations

import numpy as np
import pytest

from core import models
from core.compat import tf


def modes_seen(attack_mode: str) -> list[bool | None]:
    """The ``training`` flag of every call NSL's wrapper makes to the base model while one batch trains
    (recorded as the train step is traced: clean pass, the PGD step in its loop, the loss on the neighbours)."""
    tf.keras.utils.set_random_seed(0)
    wrapper = models.wrap_adversarial(
        models.build_cnn(16), 1.0, models.neighbor_config(2 / 255, "infinity", 3, 4 / 255), attack_mode=attack_mode
    )
    seen: list[bool | None] = []
    call_base_model = wrapper._call_base_model

    def spy(inputs, **kwargs):
        seen.append(kwargs.get("training"))
        return call_base_model(inputs, **kwargs)

    wrapper._call_base_model = spy
    wrapper.compile(optimizer="adam", loss=tf.keras.losses.SparseCategoricalCrossentropy())
    images = np.random.default_rng(0).random((8, 16, 16, 3)).astype(np.float32)
    history = wrapper.fit({models.INPUT_NAME: images, models.LABEL_NAME: np.arange(8) % 3}, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and history.history["scaled_adversarial_loss"][-1] > 0
    return seen


def test_nsl_finds_its_neighbours_in_training_mode():
    assert modes_seen("training")[:3] == [True, True, True]


def test_inference_mode_finds_the_neighbours_with_batch_norm_in_inference_mode_and_trains_on_them_in_training_mode():
    assert modes_seen("inference")[:3] == [True, False, True]  # clean pass, PGD step, loss on the neighbours


def test_an_unknown_attack_mode_is_refused():
    with pytest.raises(ValueError, match="attack mode"):
        models.wrap_adversarial(models.build_cnn(16), 1.0, models.neighbor_config(2 / 255, "infinity", 3, 4 / 255), attack_mode="eval")
