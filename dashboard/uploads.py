"""Turning an uploaded file into a model input, or into one sentence saying why not.

Decoding itself is ``core.data.image_from_bytes`` (centre square, at least 32 px a side); this
wrapper guarantees the app never shows a stack trace for a bad file: core's :class:`DataError`
becomes the message, and anything core did not anticipate becomes a generic sentence (and is logged
so it can be reported and fixed in core). It also says what the models see of a non-square photo
(the crop, drawn on the preview) and whether the photo looks like the Beans leaves at all
(``core.ood``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core import ood
from core.data import DataError, centre_square, image_from_bytes

LOGGER = logging.getLogger(__name__)
PREVIEW_PIXELS = 640
CROP_COLOUR = (255, 214, 0)  # a yellow frame shows on green leaves and on brown soil
ACCEPTED_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff")


@dataclass(frozen=True)
class UploadResult:
    """Either ``model_input`` + ``preview`` (the photo as uploaded, RGB) or an ``error`` sentence."""

    name: str
    model_input: np.ndarray | None = None
    preview: Any = None  # PIL.Image.Image, at most PREVIEW_PIXELS on its long side (display only)
    original_size: tuple[int, int] | None = None  # (width, height) after EXIF rotation
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def crop_box(self) -> tuple[int, int, int, int] | None:
        """The square the models see, in the original photo's pixels (left, top, right, bottom)."""
        return centre_square(*self.original_size) if self.original_size else None

    @property
    def cropped(self) -> bool:
        return self.original_size is not None and self.original_size[0] != self.original_size[1]


def decode_upload(name: str, data: bytes, image_size: int) -> UploadResult:
    """Decode ``data`` for a model of ``image_size`` px; never raises for a bad file."""
    try:
        model_input, picture = image_from_bytes(data, image_size)
    except DataError as error:
        return UploadResult(name, error=f"{name}: {error}")
    except Exception as error:  # noqa: BLE001  core missed a case: say so in one sentence, keep running
        LOGGER.warning("core.data.image_from_bytes failed unexpectedly on %s", name, exc_info=True)
        return UploadResult(name, error=f"{name}: this file could not be read as an image ({type(error).__name__}).")
    preview = picture.copy()
    preview.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))  # a 24-megapixel photo need not travel to every rerun
    return UploadResult(name, model_input=model_input, preview=preview, original_size=picture.size)


def crop_note(result: UploadResult) -> str | None:
    """One sentence for a non-square photo: which part the models see (None for a square one)."""
    if not result.ok or not result.cropped:
        return None
    left, top, right, bottom = result.crop_box
    side = right - left
    return (
        f"The models see only the centre square inside the yellow frame ({side}×{side} px of "
        f"{result.original_size[0]}×{result.original_size[1]}): the photo is cropped, not squashed."
    )


def preview_with_crop(result: UploadResult) -> Any:
    """The preview with the models' square drawn on it (the preview itself for a square photo)."""
    if not result.cropped:
        return result.preview
    from PIL import ImageDraw

    framed = result.preview.copy()
    scale = framed.size[0] / result.original_size[0]
    left, top, right, bottom = (round(value * scale) for value in result.crop_box)
    width = max(2, round(min(framed.size) / 100))
    ImageDraw.Draw(framed).rectangle((left, top, right - 1, bottom - 1), outline=CROP_COLOUR, width=width)
    return framed


def familiarity_warning(reference: ood.Reference, model_input: np.ndarray) -> str | None:
    """"This does not look like the bean leaves…" with the reason, or None (``core.ood``)."""
    return ood.familiarity(reference, model_input).message
