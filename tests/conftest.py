"""Shared fixtures: tiny Beans-shaped image folders the tests write themselves, and real Beans."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

# The dashboard traces every attack graph in a background thread after its first page; in tests
# (AppTest and the servers they start, which inherit this) that would only compete for the CPU.
# tests/test_dashboard_state.py tests the warm-up itself.
os.environ.setdefault("BEANGUARD_WARM_UP", "0")
from core.data import SPLITS
from dashboard_helpers import CHROMIUM, tiny_beans as session_tiny_beans, tiny_checkpoints as session_tiny_checkpoints

REAL_BEANS = Path(os.environ.get("BEANS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "beans"))


@pytest.fixture(scope="session")
def tiny_beans(tmp_path_factory) -> Path:
    """One tiny Beans folder per session, the same one the server and browser tests start from."""
    return session_tiny_beans(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def real_beans() -> Path:
    if not (REAL_BEANS / "test").is_dir():
        pytest.skip(f"real Beans images not found at {REAL_BEANS} (set BEANS_DATA_DIR)")
    return REAL_BEANS


@pytest.fixture(scope="session")
def tiny_splits(tiny_beans):
    from core import data

    return {split: data.load_split(split, 32, tiny_beans) for split in SPLITS}


@pytest.fixture(scope="session")
def tiny_model(tiny_splits):
    """A real (small) classifier trained for a few epochs on the tiny folder."""
    from core.train import TrainConfig, fit_model

    config = TrainConfig(image_size=32, epochs=4, batch_size=8, learning_rate=5e-3)
    model, _ = fit_model("baseline", config, tiny_splits["train"], tiny_splits["validation"])
    return model


@pytest.fixture(scope="session")
def checkpoints_dir(tmp_path_factory) -> Path:
    """A tiny trained checkpoint pair the dashboard tests load instead of the shipped 64 px one."""
    return session_tiny_checkpoints(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def shipped_baseline(real_beans):
    """The shipped 64 px baseline (read-only) and every 4th real test image (32, all classes)."""
    from core import checkpoints, data

    try:
        model = checkpoints.load_model(checkpoints.DEFAULT_DIR / "baseline.keras")
    except checkpoints.CheckpointError:
        pytest.skip("no shipped baseline checkpoint")
    test = data.load_split("test", model.input_shape[1], real_beans)
    return model, test.images[::4], test.labels[::4]


def _install_chromium() -> None:
    """Test setup: Debian's chromium, the one browser that installs offline-from-registries here."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 900}
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=environment, **quiet)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=environment, **quiet)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        _install_chromium()
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM
