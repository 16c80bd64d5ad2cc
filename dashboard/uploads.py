"""Turning an uploaded file into a model input, or into one sentence saying why not.

Decoding itself is ``core.data.image_from_bytes``; this wrapper guarantees the app never shows a
stack trace for a bad file: core's :class:`DataError` becomes the message, and anything core did
not anticipate becomes a generic sentence (and is logged so it can be reported and fixed in core).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data import DataError, image_from_bytes

LOGGER = logging.getLogger(__name__)
PREVIEW_PIXELS = 640
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
