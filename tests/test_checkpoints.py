"""core.checkpoints: writes are atomic, loads are plain Keras, and bad files fail with a clear message."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core import checkpoints
from core.compat import tf
from core.models import build_cnn

REPO = Path(__file__).resolve().parents[1]


def small_model(seed: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    return build_cnn(16)


def test_saved_model_loads_as_plain_keras_without_custom_objects(tmp_path):
    model = small_model(0)
    path = checkpoints.save_model_atomic(model, tmp_path / "baseline.keras")
    loaded = tf.keras.models.load_model(path, compile=False)
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-6)


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "baseline.keras"
    old = small_model(0)
    checkpoints.save_model_atomic(old, path)
    new = small_model(1)

    def crash_halfway(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(tf.keras.Model, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save_model_atomic(new, path)
    monkeypatch.undo()
    images = np.ones((1, 16, 16, 3), np.float32) * 0.5
    np.testing.assert_allclose(checkpoints.load_model(path)(images).numpy(), old(images).numpy(), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.keras"]


def test_process_killed_while_saving_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "baseline.keras"
    checkpoints.save_model_atomic(small_model(0), path)
    saver = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from core import checkpoints
        from core.models import build_cnn
        model = build_cnn(16)
        print("ready", flush=True)
        while True:
            checkpoints.save_model_atomic(model, {str(path)!r})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", saver], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # several saves in flight
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    checkpoints.load_model(path)  # must not raise


def test_missing_checkpoint_says_how_to_train(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match=r"missing.*python -m core.train"):
        checkpoints.load_model(tmp_path / "adversarial.keras")


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "adversarial.keras"
    path.write_bytes(os.urandom(2048))
    with pytest.raises(checkpoints.CheckpointError, match=r"adversarial\.keras is damaged"):
        checkpoints.load_model(path)


def test_pair_version_changes_when_a_model_is_replaced(tmp_path):
    checkpoints.save_pair(small_model(0), small_model(1), {"note": "first"}, tmp_path)
    before = checkpoints.pair_version(tmp_path)
    time.sleep(0.01)
    checkpoints.save_pair(small_model(2), small_model(3), {"note": "second"}, tmp_path)
    assert checkpoints.pair_version(tmp_path) != before
    assert checkpoints.load_pair(tmp_path).metadata["note"] == "second"


def test_json_is_written_atomically_and_readable(tmp_path):
    path = checkpoints.write_json_atomic({"accuracy": 0.9}, tmp_path / "metadata.json")
    assert json.loads(path.read_text()) == {"accuracy": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.json"]


# --- the pair: digests in metadata.json ------------------------------------------------------------

IMAGES = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)


def saved_pair(folder: Path, note: str = "v1", seeds: tuple[int, int] = (0, 1)) -> dict:
    models = {"baseline": small_model(seeds[0]), "adversarial": small_model(seeds[1])}
    checkpoints.save_pair(models["baseline"], models["adversarial"], {"note": note}, folder)
    return models


def test_save_pair_records_the_sha256_of_each_model_file(tmp_path):
    saved_pair(tmp_path)
    files = json.loads((tmp_path / "metadata.json").read_text())["files"]
    assert files == {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in ("baseline.keras", "adversarial.keras")}


def test_a_model_file_newer_than_the_metadata_is_a_mismatch_not_a_mix(tmp_path):
    saved_pair(tmp_path)
    checkpoints.save_model_atomic(small_model(2), tmp_path / "baseline.keras")  # a save in progress
    with pytest.raises(checkpoints.CheckpointMismatch, match=r"baseline\.keras .*save is in progress.*python -m core.train"):
        checkpoints.load_pair(tmp_path)


def test_the_pair_loaded_is_the_bytes_that_were_checked_even_if_the_file_is_replaced_meanwhile(tmp_path, monkeypatch):
    models = saved_pair(tmp_path)
    newer = tmp_path / "newer.keras"
    checkpoints.save_model_atomic(small_model(5), newer)
    load = tf.keras.models.load_model

    def replace_while_loading(path, *args, **kwargs):
        if newer.exists():
            os.replace(newer, tmp_path / "baseline.keras")  # another writer, right after the read
        return load(path, *args, **kwargs)

    monkeypatch.setattr(tf.keras.models, "load_model", replace_while_loading)
    pair = checkpoints.load_pair(tmp_path)
    np.testing.assert_allclose(pair.baseline(IMAGES).numpy(), models["baseline"](IMAGES).numpy(), atol=1e-6)


def test_metadata_without_digests_loads_unchecked_as_before(tmp_path):
    saved_pair(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"note": "old style"}))
    checkpoints.save_model_atomic(small_model(2), tmp_path / "baseline.keras")
    assert checkpoints.load_pair(tmp_path).metadata == {"note": "old style"}


def test_a_save_over_a_pair_without_digests_is_detected_half_way(tmp_path, monkeypatch):
    saved_pair(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"note": "old style"}))
    saves = []
    real_save = checkpoints._save_model_with_digest

    def die_after_the_first_file(model, path):
        if saves:
            raise KeyboardInterrupt("killed mid-save")
        saves.append(path)
        return real_save(model, path)

    monkeypatch.setattr(checkpoints, "_save_model_with_digest", die_after_the_first_file)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_pair(small_model(2), small_model(3), {"note": "new"}, tmp_path)
    with pytest.raises(checkpoints.CheckpointMismatch):
        checkpoints.load_pair(tmp_path)


def test_damaged_model_file_with_digests_is_an_error_naming_it_not_a_save_in_progress(tmp_path):
    saved_pair(tmp_path)
    path = tmp_path / "adversarial.keras"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(checkpoints.CheckpointError, match=r"adversarial\.keras is damaged.*python -m core.train") as caught:
        checkpoints.load_pair(tmp_path)
    assert not isinstance(caught.value, checkpoints.CheckpointMismatch)


@pytest.mark.parametrize("content", [b"\x00garbage", b"[1, 2, 3]", b'{"files": "baseline.keras"}'])
def test_unusable_metadata_is_an_error_naming_it(tmp_path, content):
    saved_pair(tmp_path)
    (tmp_path / "metadata.json").write_bytes(content)
    with pytest.raises(checkpoints.CheckpointError, match=r"metadata\.json .*python -m core.train"):
        checkpoints.load_pair(tmp_path)


def test_shipped_checkpoints_load_through_load_pair():
    if not (checkpoints.DEFAULT_DIR / "metadata.json").is_file():
        pytest.skip("no shipped checkpoints")
    pair = checkpoints.load_pair(checkpoints.DEFAULT_DIR)
    assert pair.baseline.input_shape == pair.adversarial.input_shape


def test_a_model_carrying_python_code_is_refused_by_safe_mode(tmp_path):
    inputs = tf.keras.Input((16, 16, 3))
    outputs = tf.keras.layers.Lambda(lambda x: x * 2.0)(inputs)  # arbitrary code, stored as bytecode
    path = tmp_path / "baseline.keras"
    tf.keras.Model(inputs, outputs).save(path)
    with pytest.raises(checkpoints.CheckpointError, match=r"refused: it holds Python code \(a Lambda layer\)"):
        checkpoints.load_model(path)


def test_a_pair_without_digests_is_refused_when_digests_are_required(tmp_path):
    for name, seed in (("baseline.keras", 0), ("adversarial.keras", 1)):
        checkpoints.save_model_atomic(small_model(seed), tmp_path / name)
    (tmp_path / "metadata.json").write_text(json.dumps({"note": "no digests"}))
    assert checkpoints.load_pair(tmp_path).metadata == {"note": "no digests"}  # the old rule still loads it
    with pytest.raises(checkpoints.CheckpointMismatch, match="records no SHA-256 digest for baseline.keras and adversarial.keras"):
        checkpoints.load_pair(tmp_path, require_digests=True)


def test_unverified_files_names_exactly_the_changed_file(tmp_path):
    checkpoints.save_pair(small_model(0), small_model(1), {}, tmp_path)
    assert checkpoints.unverified_files(tmp_path) == []
    checkpoints.save_model_atomic(small_model(2), tmp_path / "adversarial.keras")
    assert checkpoints.unverified_files(tmp_path) == ["adversarial.keras"]
    (tmp_path / "baseline.keras").unlink()
    assert checkpoints.unverified_files(tmp_path) == ["baseline.keras", "adversarial.keras"]
