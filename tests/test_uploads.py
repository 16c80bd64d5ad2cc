"""core.data.image_from_bytes: every kind of photo a student uploads works or is refused in one sentence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core import data

SIZE = 32


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def leaf(mode: str = "RGB", size=(80, 60)) -> Image.Image:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[..., 1] = 180  # green
    pixels[:, : size[0] // 2, 0] = 200  # left half yellowish
    return Image.fromarray(pixels).convert(mode)


def assert_model_input(array: np.ndarray) -> None:
    assert array.shape == (SIZE, SIZE, 3) and array.dtype == np.float32
    assert 0.0 <= array.min() and array.max() <= 1.0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_colour_modes_are_converted_to_rgb(mode):
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    array, picture = data.image_from_bytes(encode(leaf(mode), fmt), SIZE)
    assert_model_input(array)
    assert picture.mode == "RGB"


def test_transparent_pixels_become_white():
    image = leaf("RGBA")
    image.putalpha(0)
    array, _ = data.image_from_bytes(encode(image, "PNG"), SIZE)
    assert array.min() > 0.99


def test_sixteen_bit_png_is_scaled_to_eight_bit():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    array, _ = data.image_from_bytes(encode(Image.fromarray(ramp), "PNG"), SIZE)
    assert_model_input(array)
    assert array.max() > 0.9 and array.min() < 0.1


def test_animated_gif_uses_its_first_frame():
    frames = [leaf("P"), Image.new("P", (80, 60), 0)]
    raw = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    array, picture = data.image_from_bytes(raw, SIZE)
    assert_model_input(array)
    assert array[..., 1].mean() > 0.5  # the green first frame, not the black second one


def test_exif_rotation_is_applied():
    image = leaf(size=(80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    _, picture = data.image_from_bytes(encode(image, "JPEG", exif=exif), SIZE)
    assert picture.size == (40, 80)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"just some text pretending to be a jpeg\n" * 10, "not an image"),
    ],
    ids=["zero_bytes", "text_named_jpg"],
)
def test_non_images_are_refused_in_one_sentence(raw, message):
    with pytest.raises(data.DataError, match=message):
        data.image_from_bytes(raw, SIZE)


def test_truncated_jpeg_is_refused():
    raw = encode(leaf(size=(400, 400)), "JPEG")
    with pytest.raises(data.DataError, match="damaged or truncated"):
        data.image_from_bytes(raw[: len(raw) // 2], SIZE)


def test_decompression_bomb_is_refused_before_decoding():
    huge = Image.new("L", (10000, 10000))
    raw = encode(huge, "PNG", optimize=False)
    with pytest.raises(data.DataError, match="too large"):
        data.image_from_bytes(raw, SIZE, max_pixels=40_000_000)


def test_image_over_our_limit_but_under_pillows_says_its_size():
    raw = encode(Image.new("L", (3000, 2000)), "PNG")
    with pytest.raises(data.DataError, match="3000x2000 pixels"):
        data.image_from_bytes(raw, SIZE, max_pixels=1_000_000)


# --- shape and size: centre square, at least 32 px a side ------------------------------------------


def thirds(width: int, height: int) -> Image.Image:
    """Red | green | blue vertical bands: which band the model input holds shows where it was cut."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 3, 0] = 255
    pixels[:, width // 3 : 2 * width // 3, 1] = 255
    pixels[:, 2 * width // 3 :, 2] = 255
    return Image.fromarray(pixels)


def test_a_wide_photo_is_centre_cropped_not_squashed():
    array, picture = data.image_from_bytes(encode(thirds(3000, 1000), "PNG"), SIZE)
    assert picture.size == (3000, 1000)  # the whole photo comes back, to show the crop on
    assert data.centre_square(3000, 1000) == (1000, 0, 2000, 1000)
    assert array[..., 1].min() > 0.95 and array[..., 0].max() < 0.05 and array[..., 2].max() < 0.05  # only the green centre


def test_a_tall_photo_is_centre_cropped_too():
    tall = thirds(3000, 1000).rotate(90, expand=True)  # 1000×3000, bands now horizontal, green in the middle
    array, _ = data.image_from_bytes(encode(tall, "PNG"), SIZE)
    assert array[..., 1].min() > 0.95


def test_a_square_photo_is_used_whole():
    array, _ = data.image_from_bytes(encode(thirds(96, 96), "PNG"), SIZE)
    assert array[:, 0, 0].mean() > 0.9 and array[:, -1, 2].mean() > 0.9  # red left edge, blue right edge


@pytest.mark.parametrize("size", [(5, 5), (31, 400), (400, 31)])
def test_images_under_32_pixels_a_side_are_refused_with_their_size(size):
    with pytest.raises(data.DataError, match=rf"only {size[0]}x{size[1]} pixels; photos need at least 32 pixels on each side"):
        data.image_from_bytes(encode(Image.new("RGB", size, (60, 160, 60)), "PNG"), SIZE)


def test_32_pixels_a_side_is_enough():
    array, _ = data.image_from_bytes(encode(Image.new("RGB", (32, 32), (60, 160, 60)), "PNG"), SIZE)
    assert_model_input(array)


# --- does it look like a bean leaf? (core.ood) -----------------------------------------------------

from core import ood  # noqa: E402


def noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def model_input(pixels: np.ndarray, size: int) -> np.ndarray:
    return data.image_from_bytes(encode(Image.fromarray(pixels), "PNG"), size)[0]


def test_no_reference_photo_is_flagged(tiny_splits):
    reference = ood.fit_reference(tiny_splits["test"].images)
    assert (reference.scores(tiny_splits["test"].images) <= reference.threshold).all()
    assert reference.threshold == pytest.approx(ood.MARGIN * reference.farthest)


def test_new_photos_of_the_same_leaves_are_not_flagged(tiny_splits):
    reference = ood.fit_reference(tiny_splits["test"].images)
    scores = reference.scores(np.concatenate([tiny_splits["train"].images, tiny_splits["validation"].images]))
    assert (scores <= reference.threshold).all(), scores.max()


@pytest.mark.parametrize("shape", [(32, 32, 3), (300, 300, 3), (2000, 3000, 3)], ids=["models_size", "photo_size", "phone_size"])
def test_noise_is_flagged_with_the_message(tiny_splits, shape):
    reference = ood.fit_reference(tiny_splits["test"].images)
    result = ood.familiarity(reference, model_input(noise(shape), SIZE))
    assert result.unfamiliar and result.score > reference.threshold
    assert result.message.startswith("This does not look like the bean leaves the models were trained on")


def test_a_blank_image_is_flagged(tiny_splits):
    reference = ood.fit_reference(tiny_splits["test"].images)
    assert ood.familiarity(reference, model_input(np.full((100, 100, 3), 255, np.uint8), SIZE)).unfamiliar


def test_on_real_beans_no_train_or_validation_photo_is_flagged_and_noise_is(real_beans):
    reference = ood.fit_reference(data.load_split("test", 64, real_beans).images)
    for split in ("train", "validation"):
        scores = reference.scores(data.load_split(split, 64, real_beans).images)
        assert (scores <= reference.threshold).all(), (split, float(scores.max()), reference.threshold)
    for shape in ((64, 64, 3), (500, 500, 3)):
        assert ood.familiarity(reference, model_input(noise(shape), 64)).unfamiliar
