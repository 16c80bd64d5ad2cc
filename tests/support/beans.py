"""Tiny Beans-shaped image folders and tiny checkpoints the tests make themselves, and awkward uploads.

The checkpoints are trained once per pytest session by the real ``python -m core.train`` (the
second caller finds them on disk); the images are written by numpy, never copied from real Beans.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASS_NAMES = ("angular_leaf_spot", "bean_rust", "healthy")
SPLITS = ("train", "validation", "test")
TINY_IMAGE_SIZE = 32  # model input for the test checkpoints: not the default 64, so nothing may assume it


def write_tiny_beans(root: Path, per_class: int = 4, size: int = 64, seed: int = 0, splits: tuple[str, ...] = SPLITS) -> Path:
    """A Beans-shaped folder of JPEGs: each class a colour cast with a few dark 'spots' and noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    tints = {"angular_leaf_spot": (150, 120, 50), "bean_rust": (120, 70, 40), "healthy": (60, 160, 60)}
    for split in splits:
        for name in CLASS_NAMES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                pixels = np.array(tints[name], float) + rng.normal(0, 20, (size, size, 3))
                for _ in range(3):
                    y, x = rng.integers(0, size - 8, 2)
                    pixels[y : y + 8, x : x + 8] *= 0.5
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{name}_{split}_{index:02d}.jpg", quality=92)
    return root


def train_checkpoints(output_dir: Path, data_dir: Path, epochs: int = 1, image_size: int = TINY_IMAGE_SIZE) -> Path:
    """Real ``python -m core.train`` on ``data_dir`` (seconds on the tiny folder)."""
    from core.train import TrainConfig, command

    config = TrainConfig(epochs=epochs, adversarial_epochs=epochs, pgd_iterations=2, image_size=image_size, batch_size=8)
    argv = command(config, output_dir=output_dir, data_dir=data_dir, evaluate=False)
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"core.train failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return output_dir


def copy_checkpoints(source: Path, target: Path) -> Path:
    """A private copy of the three checkpoint files in ``source`` (nothing else), for tests that change them."""
    import shutil

    from core import checkpoints

    target.mkdir()
    for name in (*checkpoints.MODEL_FILES.values(), checkpoints.METADATA_FILE):
        shutil.copy2(source / name, target / name)
    return target


def session_folder(base: Path, name: str, make: Callable[[Path], Path]) -> Path:
    """``base/name`` made once per pytest session, whichever test file asks first."""
    folder = base / name
    marker = folder / ".complete"
    if not marker.exists():
        make(folder)
        marker.touch()
    return folder


def tiny_beans(base: Path) -> Path:
    return session_folder(base, "dashboard_beans", write_tiny_beans)


def tiny_checkpoints(base: Path) -> Path:
    data_dir = tiny_beans(base)
    return session_folder(base, "dashboard_checkpoints", lambda folder: train_checkpoints(folder, data_dir))


# --- uploads ---------------------------------------------------------------------------------------


def _encoded(image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _leaf(mode: str = "RGB", size: tuple[int, int] = (120, 80)):
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = np.clip(np.array((70, 150, 60)) + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def bad_uploads() -> dict[str, tuple[str, bytes, bool]]:
    """Every awkward upload the issue lists: case -> (file name, bytes, should it be accepted?)."""
    from PIL import Image

    jpeg = _encoded(_leaf(), "JPEG", quality=90)
    rgba = _leaf("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    palette = _leaf().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray((np.linspace(0, 65535, 120 * 80).reshape(80, 120)).astype(np.uint16))
    frames = [_leaf(), _leaf().rotate(90)]
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return {
        "zero_bytes": ("empty.jpg", b"", False),
        "text_renamed_jpg": ("notes.jpg", b"These are my notes, not a photo.\n" * 20, False),
        "truncated_jpeg": ("cut.jpg", jpeg[: len(jpeg) // 2], False),
        "decompression_bomb": ("huge.png", _encoded(Image.new("1", (10_000, 10_000)), "PNG"), False),
        "grayscale_jpeg": ("gray.jpg", _encoded(_leaf("L"), "JPEG"), True),
        "rgba_png": ("rgba.png", _encoded(rgba, "PNG"), True),
        "palette_png": ("palette.png", _encoded(palette, "PNG"), True),
        "sixteen_bit_png": ("deep.png", _encoded(sixteen, "PNG"), True),
        "animated_gif": ("moving.gif", _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0), True),
        "cmyk_jpeg": ("print.jpg", _encoded(_leaf("CMYK"), "JPEG"), True),
        "exif_rotated_jpeg": ("phone.jpg", _encoded(_leaf(), "JPEG", exif=exif), True),
    }


