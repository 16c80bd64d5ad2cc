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
