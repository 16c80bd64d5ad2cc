"""core.data: both sources give float images in [0, 1] with the TFDS label order; bad folders fail clearly."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import data, embedded


def test_real_test_split_has_128_images_scaled_to_unit_range(real_beans):
    split = data.load_split("test", image_size=32, data_dir=real_beans)
    assert split.images.shape == (128, 32, 32, 3)
    assert split.images.dtype == np.float32
    assert 0.0 <= split.images.min() and split.images.max() <= 1.0
    assert split.images.max() > 0.9  # /255, not the seed's /500 (which capped pixels at 0.51)


def test_real_labels_follow_tfds_class_order(real_beans):
    split = data.load_split("test", image_size=16, data_dir=real_beans)
    for name, label in zip(split.filenames, split.labels):
        assert name.startswith(data.CLASS_NAMES[label])
    assert np.bincount(split.labels).tolist() == [43, 43, 42]


def test_data_dir_can_come_from_environment(tiny_beans, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tiny_beans))
    split = data.load_split("validation", image_size=24)
    assert len(split) == 12 and split.images.shape[1:] == (24, 24, 3)


def test_explicit_data_dir_wins_over_environment(tiny_beans, tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert data.resolve_data_dir(tiny_beans) == tiny_beans


def test_order_is_stable_between_loads(tiny_beans):
    first = data.load_split("train", 16, tiny_beans)
    second = data.load_split("train", 16, tiny_beans)
    assert first.filenames == second.filenames
    assert data.fingerprint(first) == data.fingerprint(second)


def test_missing_folder_names_the_path(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(data.DataError, match="no_such_folder.*does not exist"):
        data.load_split("test", 16, missing)


def test_folder_without_split_says_which_split(tiny_beans, tmp_path):
    broken = tmp_path / "beans"
    shutil.copytree(tiny_beans / "train", broken / "train")
    with pytest.raises(data.DataError, match="no 'test' subfolder"):
        data.load_split("test", 16, broken)


def test_folder_with_wrong_classes_lists_what_was_expected(tiny_beans, tmp_path):
    broken = tmp_path / "beans"
    shutil.copytree(tiny_beans, broken)
    (broken / "test" / "healthy").rename(broken / "test" / "Healthy")
    with pytest.raises(data.DataError, match="expected exactly"):
        data.load_split("test", 16, broken)


def test_corrupt_image_in_folder_gives_data_error(tiny_beans, tmp_path):
    broken = tmp_path / "beans"
    shutil.copytree(tiny_beans, broken)
    victim = next((broken / "test" / "healthy").glob("*.jpg"))
    victim.write_bytes(b"this is not a jpeg")
    with pytest.raises(data.DataError, match="Could not decode"):
        data.load_split("test", 16, broken)


# --- online: TFDS --------------------------------------------------------------------------------


def closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once, like a blocked network."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The TFDS path with an empty TFDS cache (so Beans would have to be downloaded)."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    return monkeypatch


@pytest.fixture
def listening():
    """A local server that accepts connections: the download server "answers"."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()


def test_without_network_loading_says_offline_within_15_seconds(online):
    import tensorflow_datasets as tfds

    online.setattr(data, "DOWNLOAD_SERVER", ("127.0.0.1", closed_port()))
    online.setattr(tfds, "load", lambda *a, **k: pytest.fail("tfds.load must not be tried when the server is unreachable"))
    started = time.monotonic()
    with pytest.raises(data.DataError, match=r"cannot be reached .*looks offline.*BEANS_DATA_DIR"):
        data.load_split("test", 16)
    assert time.monotonic() - started < 15


def test_offline_the_dashboards_loader_falls_back_to_the_shipped_test_photos(online):
    online.setattr(data, "DOWNLOAD_SERVER", ("127.0.0.1", closed_port()))
    test = embedded.test_split(64)
    assert test.source == embedded.SOURCE and len(test) == 128 and np.bincount(test.labels).tolist() == [43, 43, 42]
    with pytest.raises(data.OfflineError):  # training's loader never falls back
        data.load_split("test", 64)


def test_the_download_server_can_be_pointed_elsewhere_by_the_environment(monkeypatch):
    monkeypatch.setenv(data.DOWNLOAD_SERVER_ENV, f"127.0.0.1:{closed_port()}")
    assert data.download_server()[0] == "127.0.0.1" and data.download_server_problem(timeout=2.0) is not None


def test_the_shipped_test_photos_are_what_the_loader_makes_of_the_real_ones(real_beans):
    """Same pixels to 8-bit rounding, same labels and file names, and the same answers from the
    shipped models on every photo: the offline lesson is the real lesson."""
    from core import checkpoints

    shipped, real = embedded.load_test_split(64), data.load_split("test", 64, real_beans)
    assert shipped.filenames == real.filenames and np.array_equal(shipped.labels, real.labels)
    assert np.abs(shipped.images - real.images).max() <= 0.5 / 255 + 1e-6
    pair = checkpoints.load_pair()
    for name in ("baseline", "adversarial"):
        assert np.array_equal(pair[name].predict(shipped.images, verbose=0).argmax(1), pair[name].predict(real.images, verbose=0).argmax(1))


def test_the_shipped_test_photos_carry_their_licence():
    notice = (embedded.ASSET.parent / "BEANS.md").read_text()
    assert "MIT License" in notice and "Makerere" in notice and embedded.ASSET.stat().st_size < 3_000_000


def test_a_name_lookup_that_hangs_is_cut_short(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(30)
        raise socket.gaierror("too late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    assert data.download_server_problem(("beans.invalid", 443), timeout=1.0) == "no answer within 1 s"
    assert time.monotonic() - started < 3


def test_a_reachable_server_is_not_reported(listening):
    assert data.download_server_problem(listening, timeout=2.0) is None


def test_a_missing_package_is_named_instead_of_blaming_the_network(online, listening):
    import tensorflow_datasets as tfds

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

    online.setattr(data, "DOWNLOAD_SERVER", listening)
    online.setattr(tfds, "load", missing)
    with pytest.raises(data.DataError) as caught:
        data.load_split("test", 16)
    message = str(caught.value)
    assert "'importlib_resources'" in message and "pip install -r requirements.txt" in message and "offline" not in message


def test_a_failed_download_says_what_failed(online, listening):
    import tensorflow_datasets as tfds

    def broken(*args, **kwargs):
        raise OSError("checksum mismatch for train.zip")

    online.setattr(data, "DOWNLOAD_SERVER", listening)
    online.setattr(tfds, "load", broken)
    with pytest.raises(data.DataError, match=r"tfds.load\('beans'\) failed \(OSError: checksum mismatch for train.zip\).*not a missing network"):
        data.load_split("test", 16)


# What `tfds.load("beans")` imports: the Beans builder, and the modules TFDS's DatasetBuilder imports
# lazily (``epy.lazy_imports``) when it downloads and prepares a dataset. ``importlib_resources`` is
# one of them, and TFDS 4.9.10 does not declare it, so `pip install tensorflow-datasets` alone
# leaves `tfds.load` broken. Apache Beam is only for Beam-based builders (Beans is not one).
BUILDER_IMPORT_CHECK = r"""
import importlib, sys
for blocked in sys.argv[1:]:
    sys.modules[blocked] = None  # as if that package were not installed
import tensorflow_datasets.datasets.beans.beans_dataset_builder as beans
from etils.epy.lazy_imports_utils import LazyModule
from tensorflow_datasets.core import dataset_builder, split_builder, writer
from tensorflow_datasets.core.download import download_manager
assert beans.Builder.name == "beans"
missing = []
for module in (dataset_builder, download_manager, split_builder, writer):
    for value in vars(module).values():
        if isinstance(value, LazyModule):
            name = vars(value)["module_name"]
            if name.split(".")[0] == "apache_beam":
                continue
            parent, _, leaf = name.rpartition(".")
            try:
                importlib.import_module(name)
            except ImportError as error:
                if not (parent and hasattr(importlib.import_module(parent), leaf)):  # `from package import name`
                    missing.append(f"{name} ({error})")
print("MISSING" if missing else "OK", *missing, sep="\n")
"""


def run_import_check(*blocked: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BUILDER_IMPORT_CHECK, *blocked], capture_output=True, text=True, timeout=300)


def test_everything_the_tfds_beans_builder_imports_is_installed():
    """Run in a fresh interpreter; requirements.txt must hold what this needs (importlib_resources)."""
    result = run_import_check()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[0] == "OK", result.stdout


def test_the_import_check_notices_a_missing_package():
    result = run_import_check("importlib_resources")
    assert result.stdout.startswith("MISSING") and "importlib_resources" in result.stdout, (result.stdout, result.stderr[-2000:])


def test_requirements_pin_the_packages_tfds_and_the_project_need():
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in (Path(__file__).resolve().parents[1] / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    assert {"importlib-resources", "tensorflow-datasets", "adversarial-robustness-toolbox", "multiprocess"} <= pinned


def test_unknown_split_is_refused(tiny_beans):
    with pytest.raises(data.DataError, match="Unknown split"):
        data.load_split("dev", 16, tiny_beans)
