"""Pictures for the page, made from numpy arrays: smooth enlargements, the change made visible,
saliency overlays, gallery thumbnails. Display only: nothing here calls a model.

Why pictures and not Plotly for the top of the page: a slider move redraws them every time, and a
browser decodes three small JPEGs in a few milliseconds where Plotly lays out and paints a figure
of heatmaps in tens to hundreds. Why smooth (Lanczos) enlargement: a 64 px model input blown up to
a projector with nearest-neighbour pixels looks like a mosaic, not a leaf.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

DISPLAY_PIXELS = 288  # the stage's pictures: about the width of one of three columns at 1280 px
OVERLAY_PIXELS = 192  # four saliency overlays side by side
THUMBNAIL_PIXELS = 96
# ColorBrewer RdBu (blue = darker, red = brighter), the same scale the activation "change" maps use.
DIVERGING_STOPS = ((0.0, "#2166AC"), (0.25, "#92C5DE"), (0.5, "#F7F7F7"), (0.75, "#F4A582"), (1.0, "#B2182B"))
# Magma-like: dark purple (not looked at) to pale yellow (looked at most).
HEAT_STOPS = ((0.0, "#1B0C41"), (0.35, "#8C2981"), (0.65, "#F1605D"), (1.0, "#FCFDBF"))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, size: int = DISPLAY_PIXELS) -> np.ndarray:
    """A model input (H, W, 3) in [0, 1] (or uint8) as a smooth ``size`` × ``size`` uint8 picture."""
    pixels = image if image.dtype == np.uint8 else to_uint8(image)
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS))


def _colour_map(values: np.ndarray, stops: tuple[tuple[float, str], ...]) -> np.ndarray:
    """Values in [0, 1] -> RGB uint8 by linear interpolation between colour stops."""
    positions = np.array([position for position, _ in stops])
    colours = np.array([[int(code[i : i + 2], 16) for i in (1, 3, 5)] for _, code in stops], np.float64)
    flat = np.clip(np.asarray(values, np.float64).ravel(), 0.0, 1.0)
    rgb = np.stack([np.interp(flat, positions, colours[:, channel]) for channel in range(3)], axis=-1)
    return np.round(rgb).reshape(*np.shape(values), 3).astype(np.uint8)


def change_picture(delta: np.ndarray, size: int = DISPLAY_PIXELS) -> tuple[np.ndarray, float]:
    """The perturbation made visible: mean over R, G, B per pixel, stretched so the largest change
    is full red (brighter) or full blue (darker); white = unchanged. Returns (picture, the stretch's
    reach in [0, 1] pixel units)."""
    signed = np.asarray(delta, np.float64).mean(axis=2)
    reach = float(np.abs(signed).max())
    scaled = 0.5 + 0.5 * signed / reach if reach > 0 else np.full(signed.shape, 0.5)
    return enlarge(_colour_map(scaled, DIVERGING_STOPS), size), reach


def saliency_overlay(image: np.ndarray, saliency: np.ndarray, size: int = OVERLAY_PIXELS) -> np.ndarray:
    """The photo in grey with the saliency (H, W) in [0, 1] painted over it: the brighter, the more
    the model's answer rests on that spot. Blended at the model's resolution, then enlarged (a
    sixteenth of the work of blending at display size, and the same smooth picture)."""
    photo = np.asarray(image, np.float32)
    grey = np.repeat(photo.mean(axis=2, keepdims=True), 3, axis=2) * 0.8
    heat = _colour_map(saliency, HEAT_STOPS).astype(np.float32) / 255.0
    alpha = (0.25 + 0.6 * np.clip(np.asarray(saliency, np.float32), 0.0, 1.0))[..., None]
    return enlarge((1 - alpha) * grey + alpha * heat, size)


def jpeg_bytes(picture: np.ndarray, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def data_uri(picture: np.ndarray, quality: int = 80) -> str:
    """A small JPEG inline in HTML (gallery thumbnails: one message, no extra requests)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(picture, quality)).decode("ascii")
