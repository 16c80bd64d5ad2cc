"""core.data: both sources give float images in [0, 1] with the TFDS label order; bad folders fail clearly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core import data


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


def test_offline_tfds_download_gives_clear_error(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'storage.googleapis.com'")

    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(data.DataError, match="offline.*BEANS_DATA_DIR"):
        data.load_split("test", 16)


def test_unknown_split_is_refused(tiny_beans):
    with pytest.raises(data.DataError, match="Unknown split"):
        data.load_split("dev", 16, tiny_beans)
