"""Beans images as float32 arrays in [0, 1], from TFDS online or from a local folder.

Two sources, one label order (``CLASS_NAMES``, the order ``tfds.load("beans")`` uses):
- online: ``tfds.load("beans")`` downloads and caches the dataset;
- offline: a folder laid out as ``<root>/<split>/<class>/*.jpg`` read with ``tfds.ImageFolder``.

The folder comes from an explicit argument, else the ``BEANS_DATA_DIR`` environment variable.
Problems surface as :class:`DataError` with one sentence naming the path and what was expected,
never as a TensorFlow stack trace.

Online, a machine without network used to wait minutes for TFDS's download retries before failing;
now, when Beans is not in TFDS's cache yet, a short connection test to the download server runs
first (:func:`download_server_problem`, at most ``CONNECT_TIMEOUT_S``) and says "offline" at once.
Any other failure says what failed (a missing package, a download error), not "offline".
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.compat import tf

CLASS_NAMES: tuple[str, ...] = ("angular_leaf_spot", "bean_rust", "healthy")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
DATA_DIR_ENV = "BEANS_DATA_DIR"
DEFAULT_IMAGE_SIZE = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MIN_IMAGE_SIDE = 32  # pixels: below this an upload has too little detail to classify
DOWNLOAD_SERVER = ("storage.googleapis.com", 443)  # where TFDS's beans builder downloads from
DOWNLOAD_SERVER_ENV = "BEANS_DOWNLOAD_SERVER"  # "host:port" to test against instead (the tests point it at a closed port)
CONNECT_TIMEOUT_S = 5.0
OFFLINE_ADVICE = f"point {DATA_DIR_ENV} or --data-dir at a folder <root>/<split>/<class>/*.jpg"


class DataError(RuntimeError):
    """The Beans data could not be found or read; the message says where and what was expected."""


@dataclass(frozen=True)
class Split:
    """One split as arrays: ``images`` float32 (N, H, W, 3) in [0, 1], ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    filenames: tuple[str, ...]
    source: str = ""  # where the photos came from, in words a page can show ("TFDS beans", "the folder …")

    def __len__(self) -> int:
        return len(self.labels)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local Beans folder to use: the argument, else ``$BEANS_DATA_DIR``, else None (TFDS)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    return Path(chosen).expanduser() if chosen is not None else None


def check_folder(root: Path, splits: tuple[str, ...] = SPLITS) -> None:
    """Raise :class:`DataError` unless ``root/<split>/<class>/`` holds images for every class."""
    if not root.is_dir():
        raise DataError(
            f"Beans folder {root} does not exist; expected a folder laid out as "
            f"<root>/<split>/<class>/*.jpg with classes {', '.join(CLASS_NAMES)}."
        )
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"Beans folder {root} has no '{split}' subfolder; expected {split_dir}/<class>/*.jpg.")
        found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
        if tuple(found) != CLASS_NAMES:
            raise DataError(
                f"{split_dir} has class folders {found or 'none'}; expected exactly {list(CLASS_NAMES)}."
            )
        for name in CLASS_NAMES:
            if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in (split_dir / name).iterdir()):
                raise DataError(f"{split_dir / name} holds no .jpg/.jpeg/.png images.")


def download_server_problem(address: tuple[str, int] | None = None, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the download server cannot be reached (None if a TCP connection opens) within ``timeout``
    seconds, name lookup included (``getaddrinfo`` has no timeout of its own, hence the thread)."""
    host, port = address or download_server()
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as error:
            outcome.append(f"{type(error).__name__}: {error}")

    worker = threading.Thread(target=connect, daemon=True, name="beans-connectivity-check")
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def download_server() -> tuple[str, int]:
    """Where TFDS downloads Beans from: ``$BEANS_DOWNLOAD_SERVER`` ("host:port"), else Google's storage."""
    configured = os.environ.get(DOWNLOAD_SERVER_ENV, "")
    host, _, port = configured.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else DOWNLOAD_SERVER


class OfflineError(DataError):
    """Beans is not downloaded and its download server cannot be reached: this machine looks offline."""


def _tfds_beans_prepared(tfds) -> bool:
    """Whether Beans is already in TFDS's local cache (then no network is needed)."""
    try:
        return bool(tfds.builder("beans").is_prepared())
    except Exception:  # noqa: BLE001  a builder that cannot even be made is not prepared; tfds.load says why
        return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no detail"


def _raw_dataset(split: str, data_dir: Path | None) -> "tf.data.Dataset":
    """Examples ``{"image": uint8, "label": int64, ...}`` from the folder or from TFDS."""
    import tensorflow_datasets as tfds

    if data_dir is not None:
        check_folder(data_dir, (split,))
        return tfds.ImageFolder(str(data_dir)).as_dataset(split=split, shuffle_files=False)
    if not _tfds_beans_prepared(tfds):
        problem = download_server_problem()
        if problem is not None:
            host, port = download_server()
            raise OfflineError(
                f"Beans is not downloaded yet and its download server {host}:{port} cannot be reached ({problem}): "
                f"this machine looks offline. To work without network, {OFFLINE_ADVICE}."
            )
    try:
        return tfds.load("beans", split=split, shuffle_files=False)
    except ModuleNotFoundError as error:
        raise DataError(
            f"tfds.load('beans') needs the Python package '{error.name}', which is not installed: run "
            f"`pip install -r requirements.txt` (or {OFFLINE_ADVICE})."
        ) from error
    except Exception as error:  # TFDS raises many kinds of download and preparation errors
        raise DataError(
            f"tfds.load('beans') failed ({type(error).__name__}: {_first_line(error)}). The download server "
            f"answered a connection test, so this is not a missing network connection; to avoid downloading, {OFFLINE_ADVICE}."
        ) from error


def resize_images(images: "tf.Tensor | np.ndarray", image_size: int) -> np.ndarray:
    """uint8 (or [0,255] float) images -> float32 (N, size, size, 3) in [0, 1].

    Scales by 255 (the seed divided by 500, which squeezed inputs into [0, 0.51]). Antialiased
    resizing so that downsizing a 500 px leaf keeps its lesions instead of aliasing them away.
    """
    images = tf.convert_to_tensor(images)
    resized = tf.image.resize(tf.cast(images, tf.float32), (image_size, image_size), antialias=True)
    return np.clip(resized.numpy() / 255.0, 0.0, 1.0).astype(np.float32)


def load_split(split: str, image_size: int = DEFAULT_IMAGE_SIZE, data_dir: str | os.PathLike | None = None) -> Split:
    """Load one split (``train``, ``validation`` or ``test``) as a :class:`Split` at ``image_size``."""
    if split not in SPLITS:
        raise DataError(f"Unknown split '{split}'; expected one of {list(SPLITS)}.")
    root = resolve_data_dir(data_dir)
    dataset = _raw_dataset(split, root)

    def prepare(example):
        image = tf.image.resize(tf.cast(example["image"], tf.float32), (image_size, image_size), antialias=True)
        return tf.clip_by_value(image / 255.0, 0.0, 1.0), example["label"], example.get("image/filename", "")

    batches = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(256)
    images, labels, names = [], [], []
    try:
        for image_batch, label_batch, name_batch in batches:
            images.append(image_batch.numpy())
            labels.append(label_batch.numpy())
            names.extend(n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(name_batch.numpy()))
    except tf.errors.OpError as error:
        where = root / split if root is not None else f"TFDS beans/{split}"
        raise DataError(f"Could not decode an image under {where}: {error.message.splitlines()[0]}") from error
    if not images:
        raise DataError(f"Split '{split}' is empty.")
    order = np.argsort(names, kind="stable")  # a stable order, so "test image 17" means one image
    return Split(
        np.concatenate(images)[order].astype(np.float32),
        np.concatenate(labels)[order].astype(np.int64),
        tuple(os.path.basename(names[i]) for i in order),
        source=f"the Beans folder {root}" if root is not None else "TFDS beans",
    )


def fingerprint(split: Split) -> str:
    """A short SHA-256 of the pixels and labels: tells whether two runs saw the same data."""
    digest = hashlib.sha256()
    digest.update(np.round(split.images * 255).astype(np.uint8).tobytes())
    digest.update(split.labels.tobytes())
    return digest.hexdigest()[:16]


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square of a ``width`` x ``height`` picture, as Pillow's (left, top, right, bottom).

    Why crop rather than squash or pad: the models were trained on square leaf photos; squashing a
    3:2 photo distorts the lesions' shapes, padding adds borders no training image had.
    """
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def image_from_bytes(data: bytes, image_size: int, max_pixels: int = 40_000_000) -> tuple[np.ndarray, "object"]:
    """Decode an uploaded photo into a model input (size, size, 3) float32 and the RGB PIL image.

    Handles what phones and editors produce (EXIF rotation, grayscale, palette/RGBA, 16-bit, CMYK,
    animated GIF's first frame) and refuses what is not a usable image with :class:`DataError`,
    including images under ``MIN_IMAGE_SIDE`` pixels a side. The model input is the centre square
    (:func:`centre_square`); the returned picture is the whole upright photo, to show the crop on.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise DataError("The file is empty (0 bytes).")
    too_large = f"The image is too large: images over {max_pixels:,} pixels are refused."
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise DataError(f"The image is {width}x{height} pixels. {too_large}")
            opened.seek(0)  # first frame of animations
            picture = ImageOps.exif_transpose(opened)
            picture.load()
    except DataError:
        raise
    except Image.DecompressionBombError as error:  # Pillow's own limit, checked before ours
        raise DataError(too_large) from error
    except UnidentifiedImageError as error:
        raise DataError("The file is not an image this page can read: use a JPEG, PNG, GIF or WebP photo.") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"The image is damaged or truncated ({error}).") from error
    if min(picture.size) < MIN_IMAGE_SIDE:
        raise DataError(
            f"The image is only {picture.size[0]}x{picture.size[1]} pixels; photos need at least "
            f"{MIN_IMAGE_SIDE} pixels on each side to show a leaf."
        )
    picture = _to_rgb(picture)
    square = picture.crop(centre_square(*picture.size))
    array = np.asarray(square, dtype=np.uint8)[None]
    return resize_images(array, image_size)[0], picture


def _to_rgb(picture):
    """Any Pillow mode -> 8-bit RGB; transparent pixels become white, 16-bit is scaled down."""
    from PIL import Image

    if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        picture = Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        picture = picture.convert("RGBA")
        background = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(background, picture)
    return picture.convert("RGB")
