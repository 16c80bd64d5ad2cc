"""core.explain: saliency maps point at the pixels that made the class score, for either kind of head."""

from __future__ import annotations

import numpy as np
import pytest

import core  # noqa: F401  (TensorFlow with legacy Keras first)
from core import explain
from core.compat import tf

SIZE = 8


def _two_patch_model(head: str) -> tf.keras.Model:
    """Class 0 = mean red, class 1 = mean green (exactly, by fixed weights), via a 1x1 conv 'conv1'.

    ``head="dense_softmax"``: Dense(softmax) like the seed's models; ``head="logits"``: Dense named
    "logits" then a Softmax layer, like the newer architecture. Same numbers either way.
    """
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    conv = tf.keras.layers.Conv2D(2, 1, use_bias=False, name="conv1")
    x = conv(inputs)
    x = tf.keras.layers.ReLU(name="conv1_relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    dense = tf.keras.layers.Dense(2, activation="softmax" if head == "dense_softmax" else None, name="probabilities" if head == "dense_softmax" else "logits")
    outputs = dense(x)
    if head == "logits":
        outputs = tf.keras.layers.Softmax(name="probabilities")(outputs)
    model = tf.keras.Model(inputs, outputs)
    conv.set_weights([np.array([[[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]], np.float32)])  # R -> channel 0, G -> channel 1
    dense.set_weights([np.eye(2, dtype=np.float32) * 4.0, np.zeros(2, np.float32)])
    return model


def _red_top_left_green_bottom_right() -> np.ndarray:
    image = np.zeros((1, SIZE, SIZE, 3), np.float32)
    image[0, :3, :3, 0] = 1.0
    image[0, -3:, -3:, 1] = 1.0
    return image


@pytest.mark.parametrize("head", ["dense_softmax", "logits"])
def test_grad_cam_lights_up_the_patch_that_makes_each_class(head):
    model, image = _two_patch_model(head), _red_top_left_green_bottom_right()
    red, green = explain.grad_cam(model, np.concatenate([image, image]), [0, 1])
    assert red.shape == (SIZE, SIZE) and red.dtype == np.float32
    assert red[:3, :3].mean() > 0.5 and red[-3:, -3:].max() < 0.2
    assert green[-3:, -3:].mean() > 0.5 and green[:3, :3].max() < 0.2


def test_both_kinds_of_head_give_the_same_grad_cam():
    image = _red_top_left_green_bottom_right()
    np.testing.assert_allclose(
        explain.grad_cam(_two_patch_model("dense_softmax"), image, [0]), explain.grad_cam(_two_patch_model("logits"), image, [0]), atol=1e-5
    )


def test_grad_cam_of_a_class_the_image_does_not_show_is_empty():
    image = np.zeros((1, SIZE, SIZE, 3), np.float32)
    image[0, :3, :3, 0] = 1.0  # red only: nothing supports class 1 (green)
    assert explain.grad_cam(_two_patch_model("logits"), image, [1]).max() == 0.0


def _pixel_model() -> tf.keras.Model:
    """Class 0 reads only pixel (1, 1)'s red value; class 1 only pixel (6, 6)'s green value."""
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    conv = tf.keras.layers.Conv2D(3, 1, use_bias=False, name="conv1")
    x = tf.keras.layers.Flatten()(conv(inputs))
    dense = tf.keras.layers.Dense(2, activation="softmax", name="probabilities")
    model = tf.keras.Model(inputs, dense(x))
    conv.set_weights([np.eye(3, dtype=np.float32)[None, None]])
    kernel = np.zeros((SIZE * SIZE * 3, 2), np.float32)
    kernel[(1 * SIZE + 1) * 3 + 0, 0] = 5.0
    kernel[(6 * SIZE + 6) * 3 + 1, 1] = 5.0
    dense.set_weights([kernel, np.zeros(2, np.float32)])
    return model


def test_smooth_grad_points_at_the_one_pixel_each_class_reads():
    model = _pixel_model()
    images = np.full((2, SIZE, SIZE, 3), 0.5, np.float32)
    first, second = explain.smooth_grad(model, images, [0, 1])
    assert np.unravel_index(first.argmax(), first.shape) == (1, 1) and first.max() == pytest.approx(1.0)
    assert np.unravel_index(second.argmax(), second.shape) == (6, 6)
    assert first.sum() - first[1, 1] < 1e-4  # no other pixel moves class 0's score


def test_smooth_grad_is_the_same_on_every_call():
    model, images = _pixel_model(), np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    np.testing.assert_array_equal(explain.smooth_grad(model, images, [0, 1]), explain.smooth_grad(model, images, [0, 1]))


def test_explain_works_on_a_trained_model_at_its_input_size(tiny_model, tiny_splits):
    images = tiny_splits["test"].images[:3]
    for method in ("grad_cam", "smooth_grad"):
        maps = explain.explain(tiny_model, images, [0, 1, 2], method)
        assert maps.shape == (3, 32, 32)
        assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6


def test_explain_refuses_unknown_methods_and_mismatched_classes(tiny_model, tiny_splits):
    images = tiny_splits["test"].images[:2]
    with pytest.raises(ValueError, match="Unknown saliency method"):
        explain.explain(tiny_model, images, [0, 1], "lime")
    with pytest.raises(ValueError, match="N classes"):
        explain.grad_cam(tiny_model, images, [0])


def test_the_default_layer_is_the_deepest_conv_layer(tiny_model):
    from core.activations import conv_layer_names

    assert explain.last_conv_layer(tiny_model) == conv_layer_names(tiny_model)[-1]
