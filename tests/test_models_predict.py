"""core.models.predict: the one way core and the dashboard ask a model for its answers."""

from __future__ import annotations

import numpy as np

from core import models


def test_answers_match_keras_predict_on_real_photos_across_batches(tiny_model, tiny_splits):
    images = tiny_splits["test"].images
    ours = models.predict(tiny_model, images, batch_size=5)  # several batches, the last one short
    np.testing.assert_allclose(ours, tiny_model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def test_no_photos_give_an_empty_answer_with_one_column_per_class(tiny_model, tiny_splits):
    images = tiny_splits["test"].images[:0]
    assert models.predict(tiny_model, images).shape == (0, tiny_model.output_shape[-1])
