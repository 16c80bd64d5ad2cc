"""Shared by the dashboard tests and the benchmark: a tiny Beans folder, tiny checkpoints, bad files.

Not a conftest: both dashboard test files call these from their own session fixtures, and the
checkpoints are trained once per pytest session (the second caller finds them on disk).
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_PATH = REPO_ROOT / "dashboard" / "app.py"
CLASS_NAMES = ("angular_leaf_spot", "bean_rust", "healthy")
SPLITS = ("train", "validation", "test")
TINY_IMAGE_SIZE = 32  # model input for the test checkpoints: not the default 64, so nothing may assume it
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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
    command = [
        sys.executable, "-m", "core.train",
        "--epochs", str(epochs), "--adversarial-epochs", str(epochs), "--pgd-iterations", "2",
        "--image-size", str(image_size), "--batch-size", "8", "--no-evaluate",
        "--data-dir", str(data_dir), "--output-dir", str(output_dir),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"core.train failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return output_dir


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


def tiny_server_env(base: Path) -> dict[str, str]:
    """A server on the tiny Beans folder and checkpoints, no teacher passcode, and no background
    warm-up (no tracing thread coming and going while a test counts threads or times messages)."""
    return {"BEANS_DATA_DIR": str(tiny_beans(base)), "BEANGUARD_CHECKPOINT_DIR": str(tiny_checkpoints(base)), "BEANGUARD_TEACHER_PASSCODE": "", "BEANGUARD_WARM_UP": "0"}


def unlock_teacher(at, passcode: str):
    """Press **Teacher**, type ``passcode``, press **Unlock** (AppTest); returns ``at`` after the run."""
    at.button(key="teacher_button").click().run()
    at.text_input(key="teacher_passcode").input(passcode)
    return at.button(key="teacher_unlock").click().run()


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


# --- a real server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    port: int, env: dict[str, str], log_path: Path, extra_options: tuple[str, ...] | list[str] = (), root: Path = REPO_ROOT
) -> subprocess.Popen:
    """``streamlit run dashboard/app.py`` on 127.0.0.1:``port``, output to ``log_path``; ``root``: another
    copy of the repository (the benchmark's "before" measurement runs an older checkout). Unless ``env``
    says otherwise, its runs folder is ``runs/`` beside the log, never the repository's."""
    env = {"BEANGUARD_RUNS_DIR": str(log_path.parent / "runs"), **env}
    command = [
        sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--client.showErrorDetails", "full", *extra_options,
    ]  # fmt: skip
    log = open(log_path, "wb")
    return subprocess.Popen(command, cwd=root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def shows_verdict(delta) -> bool:
    """A websocket delta (``streamlit_client.Delta``) that draws one model's verdict card."""
    return delta.kind == "markdown" and 'class="bg-verdict' in delta.text


async def wait_for_server(port: int, server: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the server answers its health check (it imports TensorFlow first), without blocking the event loop."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)


def open_when_ready(page, url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    """Navigate once the server accepts connections (it imports TensorFlow first)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode} before serving")
        try:
            page.goto(url, timeout=5_000)
            return
        except Exception:  # noqa: BLE001  connection refused until the server listens
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def bar_values(page, name: str) -> list[float] | None:
    """A model's perturbed probabilities as Plotly holds them in the page (exact, unlike rounded text).

    None while Plotly is still drawing; during a rerun Streamlit may briefly show the old chart
    next to the new one, so the last one drawn wins.
    """
    return page.locator(f".st-key-prediction_{name} .js-plotly-plot").evaluate_all(
        "plots => plots.map(plot => plot._fullData && plot._fullData[1] ? Array.from(plot._fullData[1].x) : null)"
        ".filter(Boolean).pop() || null"
    )


def wait_for_bars(page, differing_from: dict | None = None, timeout: float = 30.0) -> dict:
    """Both models' perturbed probabilities, once drawn (and, if given, different from before)."""
    deadline = time.monotonic() + timeout
    while True:
        values = {name: bar_values(page, name) for name in ("baseline", "adversarial")}
        drawn = all(v is not None for v in values.values())
        changed = differing_from is None or all(values[name] != differing_from[name] for name in values)
        if (drawn and changed) or time.monotonic() > deadline:
            return values
        page.wait_for_timeout(20)
