"""Shared fixtures: tiny Beans-shaped image folders the tests write themselves, real Beans, and the
dashboard's page (one ``environment`` and one ``app`` for every AppTest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import core  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)

# The dashboard traces every attack graph in a background thread after its first page; in tests
# (AppTest and the servers they start, which inherit this) that would only compete for the CPU.
# tests/test_dashboard_state.py tests the warm-up itself.
os.environ.setdefault("BEANGUARD_WARM_UP", "0")
os.environ.setdefault("BEANGUARD_JOBS", "0")  # nor the strongest attack on a round's photos (tests/test_class_jobs.py runs it)
from core.data import SPLITS
from tests.support.beans import tiny_beans as session_tiny_beans, tiny_checkpoints as session_tiny_checkpoints
from tests.support.server import CHROMIUM, CHROMIUM_ARGS

REAL_BEANS = Path(os.environ.get("BEANS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "beans"))

# The longest test files, longest first (setup + calls on 2 cores, `--durations`): with two workers,
# a long file that starts last keeps one worker busy while the other has nothing left to do.
LONGEST_FIRST = ("test_shipped_checkpoints.py", "test_distribution.py", "test_apgd.py", "test_class_browser.py", "test_boundary.py", "test_controls_browser.py")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: hand out files in the order below, not by test count
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, stays


@pytest.fixture(scope="session")
def tiny_beans(tmp_path_factory) -> Path:
    """One tiny Beans folder per session, the same one the server and browser tests start from."""
    return session_tiny_beans(tmp_path_factory.getbasetemp())


def shipped_checkpoints_present() -> bool:
    from core import checkpoints

    return all((checkpoints.DEFAULT_DIR / name).is_file() for name in (*checkpoints.MODEL_FILES.values(), checkpoints.METADATA_FILE))


def missing_real_beans() -> str:
    """One sentence saying what is missing and where it was looked for."""
    return (
        f"The real Beans test images are missing: {REAL_BEANS / 'test'} is not a folder "
        "(set BEANS_DATA_DIR to a Beans copy, e.g. ../shared/beans beside the checkout)."
    )


@pytest.fixture(scope="session")
def real_beans() -> Path:
    """Real Beans. Missing data fails the tests that need it in CI or next to shipped checkpoints
    (their numbers would go unchecked); only a checkout without either skips them."""
    if not (REAL_BEANS / "test").is_dir():
        if os.environ.get("CI") or shipped_checkpoints_present():
            pytest.fail(missing_real_beans(), pytrace=False)
        pytest.skip(missing_real_beans())
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


def _shipped_model(kind: str, real_beans: Path):
    """A shipped 64 px model (read-only) and every 4th real test image (32, all classes)."""
    from core import checkpoints, data

    try:
        model = checkpoints.load_model(checkpoints.DEFAULT_DIR / checkpoints.MODEL_FILES[kind])
    except checkpoints.CheckpointError as error:
        if os.environ.get("CI"):
            pytest.fail(f"The shipped {kind} model cannot be loaded: {error}", pytrace=False)
        pytest.skip(f"no shipped {kind} checkpoint ({error})")
    test = data.load_split("test", model.input_shape[1], real_beans)
    return model, test.images[::4], test.labels[::4]


@pytest.fixture(scope="session")
def shipped_baseline(real_beans):
    """The shipped baseline and every 4th real test image (32, all classes)."""
    return _shipped_model("baseline", real_beans)


@pytest.fixture(scope="session")
def shipped_adversarial(real_beans):
    """The shipped NSL model and every 4th real test image: attacks differ on it, where the baseline falls to all."""
    return _shipped_model("adversarial", real_beans)


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


@pytest.fixture(scope="module")
def browser(chromium):
    """One headless Chromium per test module; each test opens its own pages in it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


# --- the dashboard's page ----------------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch, tiny_beans, checkpoints_dir, tmp_path):
    """The app's environment on the tiny folder and checkpoints; tests change it before the first
    ``run()``. Runs go to a private folder; no teacher passcode; no wrong passcodes, training run or
    whole-split result left over from another test (all three are server-wide)."""
    from streamlit import config as streamlit_config

    from core import runs
    from dashboard import passcode, resources, retraining

    streamlit_config.set_option("client.showErrorDetails", "full")  # tests want the real message
    monkeypatch.setenv("BEANS_DATA_DIR", str(tiny_beans))
    monkeypatch.setenv("BEANGUARD_CHECKPOINT_DIR", str(checkpoints_dir))
    monkeypatch.setenv(runs.RUNS_DIR_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv("BEANGUARD_TEACHER_PASSCODE", raising=False)
    passcode.shared_lockout.clear()
    retraining.shared_manager.clear()
    resources.result_store.clear()
    return monkeypatch


@pytest.fixture
def app(environment):
    """The dashboard as Streamlit's AppTest runs it (headless, no server)."""
    from tests.support.page import new_page

    return new_page()


@pytest.fixture(scope="session")
def nginx() -> str:
    """nginx for the tests of replicas behind it (deploy/serve.py): skipped locally without it, a failure in CI."""
    from deploy.serve import NGINX_MISSING, nginx_binary

    binary = nginx_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{NGINX_MISSING} CI must test two replicas behind nginx.")
        pytest.skip(NGINX_MISSING)
    return binary
