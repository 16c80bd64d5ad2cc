"""Fault injection: training killed or crashing at a random epoch, damaged checkpoint files, and a
session reading the folder while a new pair is being saved.

Everything is real: tiny checkpoints trained by ``python -m core.train`` (32 px, shared with the
dashboard tests), training subprocesses started through ``dashboard.retraining.TrainingManager``
into run folders (``core.runs``), files changed on disk, and the app driven through Streamlit's AppTest. The random epochs come from
a seeded generator (``BEANGUARD_FAULT_SEED``, default 0) and are printed, so a failure can be
replayed with the same epoch.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core import checkpoints, runs
from core.train import TrainConfig
from dashboard import retrain_panel, retraining
from dashboard.retraining import TrainingManager
from tests.support.beans import REPO_ROOT, TINY_IMAGE_SIZE, copy_checkpoints
from tests.support.page import assert_quiet, probabilities, unlock_teacher

PASSCODE = "bean-teacher-42"
SEED = int(os.environ.get("BEANGUARD_FAULT_SEED", "0"))


def fault_epoch(test_name: str, first: int, last: int) -> int:
    """A reproducible 'random' epoch in [first, last] for this test, printed for the record."""
    epoch = random.Random(f"{SEED}:{test_name}").randint(first, last)
    print(f"\n{test_name}: fault at epoch {epoch} (seed {SEED}, epochs {first}..{last})")
    return epoch


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def folder(checkpoints_dir, tmp_path) -> Path:
    """A private copy of the three checkpoint files (nothing else), for tests that change them."""
    return copy_checkpoints(checkpoints_dir, tmp_path / "checkpoints")


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def environment(environment, folder, runs_root):
    """The page's environment (conftest) on this test's private checkpoint folder and runs folder."""
    environment.setenv("BEANGUARD_CHECKPOINT_DIR", str(folder))
    environment.setenv(runs.RUNS_DIR_ENV, str(runs_root))
    return environment


# --- helpers ---------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in the folder, hidden temporaries included, with its bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def pid_running(command: tuple[str, ...], timeout: float = 10.0) -> int:
    """The pid of the process whose command line is exactly ``command`` (what the manager started).

    Right after ``exec`` Linux may briefly show an empty command line, hence the retries.
    """
    wanted = "\0".join(command).encode() + b"\0"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "cmdline").read_bytes() == wanted:
                        return int(entry.name)
                except OSError:
                    continue
        time.sleep(0.01)
    raise AssertionError(f"no running process {' '.join(command)}")


def reversed_classes(model):
    """The same network with its three outputs in reverse order: a new 'version' that is easy to recognize."""
    weights = model.get_weights()
    weights[-2], weights[-1] = weights[-2][:, ::-1], weights[-1][::-1]  # last Dense: kernel and bias
    model.set_weights(weights)
    return model


# --- 1. training killed at a random epoch ----------------------------------------------------------


def test_training_killed_at_a_random_epoch_keeps_no_run_and_never_touches_the_shipped_pair(folder, tiny_beans, runs_root):
    # The run starts from ``folder``'s weights, as the retrain button starts from the shipped pair:
    # the folder snapshotted below is the one the training process really reads.
    config = TrainConfig(
        image_size=TINY_IMAGE_SIZE, epochs=2, adversarial_epochs=2, pgd_iterations=2, batch_size=8, init_from=str(folder)
    )
    total = config.epochs + config.adversarial_epochs
    # Not the last two epochs: after the last one the run saves at once, and a kill there is a
    # kill mid-save (covered below); two epochs leave time to deliver the signal.
    kill_at = fault_epoch("killed", 1, total - 2)
    before = snapshot(folder)
    manager = TrainingManager()
    started, message = manager.start(config, tiny_beans, runs_root=runs_root)
    assert started, message
    assert manager.status().command[manager.status().command.index("--init-from") + 1] == str(folder)
    pid = pid_running(manager.status().command)
    deadline = time.monotonic() + 120
    while len(manager.status().epochs) < kill_at:
        assert manager.status().running, manager.status().log_tail
        assert time.monotonic() < deadline, "training never reached the epoch"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    status = manager.wait(timeout=30, poll_seconds=0.05)

    reached = len(status.epochs)
    assert kill_at <= reached < total, f"killed after epoch {reached}, wanted {kill_at}"
    assert status.state == "failed"
    assert "killed by SIGKILL" in status.message and "exit code -9" in status.message, status.message
    assert "nothing was kept" in status.message and "keeps the models it had" in status.message, status.message
    assert snapshot(folder) == before, "the shipped pair changed"
    assert list(runs_root.iterdir()) == [], "the unfinished run folder was left behind"
    assert runs.active_run(runs_root, folder).kind == "shipped"
    checkpoints.load_pair(folder, require_digests=True)  # and the shipped pair still loads, digests checked


def test_a_run_killed_while_saving_leaves_no_half_run_behind(folder, runs_root):
    script = (
        "import os, shutil, signal, sys\n"
        "out = sys.argv[sys.argv.index('--output-dir') + 1]\n"
        "os.makedirs(out, exist_ok=True)\n"
        f"shutil.copy({str(folder / 'baseline.keras')!r}, os.path.join(out, 'baseline.keras'))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )  # a stand-in for core.train killed between save_pair's first and last file
    before = snapshot(folder)
    manager = TrainingManager([sys.executable, "-c", script])
    assert manager.start(TrainConfig(epochs=1, adversarial_epochs=1), None, runs_root=runs_root)[0]
    status = manager.wait(timeout=30, poll_seconds=0.05)
    assert status.state == "failed" and "killed by SIGKILL" in status.message, status.message
    assert "nothing was kept" in status.message
    assert list(runs_root.iterdir()) == [] and runs.trained_runs(runs_root) == []
    assert snapshot(folder) == before


def test_a_run_that_exits_cleanly_without_a_complete_pair_is_not_kept(folder, runs_root):
    script = (
        "import json, os, sys\n"
        "out = sys.argv[sys.argv.index('--output-dir') + 1]\n"
        "progress = sys.argv[sys.argv.index('--progress-file') + 1]\n"
        "os.makedirs(out, exist_ok=True)\n"
        "open(os.path.join(out, 'metadata.json'), 'w').write(json.dumps({'files': {}}))\n"
        "open(progress, 'a').write(json.dumps({'event': 'done'}) + '\\n')\n"
    )  # claims success, but no model files: publishing must refuse it
    manager = TrainingManager([sys.executable, "-c", script])
    assert manager.start(TrainConfig(epochs=1, adversarial_epochs=1), None, runs_root=runs_root)[0]
    status = manager.wait(timeout=30, poll_seconds=0.05)
    assert status.state == "failed" and "could not be kept" in status.message, status.message
    assert runs.trained_runs(runs_root) == [] and runs.active_key(runs_root) == runs.SHIPPED_KEY


# --- 2. an exception inside training at a random epoch ---------------------------------------------


def failing_trainer(path: Path, fail_at: int) -> list[str]:
    """``python -m core.train``, with the per-epoch callback raising after epoch ``fail_at``."""
    path.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(REPO_ROOT)!r})
            import core.train

            train_pair, seen = core.train.train_pair, []

            def with_fault(*args, on_epoch=None, **kwargs):
                def report(epoch_report):
                    on_epoch(epoch_report)
                    seen.append(epoch_report)
                    if len(seen) == {fail_at}:
                        raise RuntimeError("injected fault at epoch {fail_at}")
                return train_pair(*args, on_epoch=report, **kwargs)

            core.train.train_pair = with_fault
            raise SystemExit(core.train.main(sys.argv[1:]))
            """
        )
    )
    return [sys.executable, str(path)]


def test_exception_at_a_random_epoch_keeps_the_old_models_and_the_page_says_why(app, environment, folder, tmp_path, runs_root):
    epochs = 2
    fail_at = fault_epoch("exception", 1, epochs)
    manager = TrainingManager(failing_trainer(tmp_path / "failing_train.py", fail_at))
    for module in (retraining, retrain_panel):  # the page's shared manager runs the faulty trainer
        environment.setattr(module, "shared_manager", lambda: manager)
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    before = snapshot(folder)
    app.run()
    shown = probabilities(app)
    unlock_teacher(app, PASSCODE)
    app.number_input(key="train_adversarial_epochs").set_value(epochs)
    app.select_slider(key="train_pgd_iterations").set_value(2)
    app.button(key="train_start").click().run()
    assert any("Retraining started" in s.value for s in app.success), [e.value for e in [*app.error, *app.exception]]

    status = manager.wait(timeout=120, poll_seconds=0.2)
    assert status.state == "failed" and len(status.epochs) == fail_at, (status.message, status.log_tail)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    errors = [e.value for e in app.error]
    assert any(f"RuntimeError: injected fault at epoch {fail_at}" in e and "keeps the models it had" in e for e in errors), errors
    assert snapshot(folder) == before
    assert runs.trained_runs(runs_root) == []
    np.testing.assert_array_equal(probabilities(app)["baseline"]["clean"], shown["baseline"]["clean"])


# --- 3. damaged files on disk ----------------------------------------------------------------------


def test_truncated_model_file_is_named_with_how_to_retrain(app, folder):
    path = folder / "adversarial.keras"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    errors = [e.value for e in app.error]
    assert any("adversarial.keras" in e and "damaged" in e and "python -m core.train" in e for e in errors), errors


def test_garbage_metadata_is_named_with_how_to_retrain(app, folder):
    (folder / "metadata.json").write_bytes(b"\x00\x17{not json at all")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    errors = [e.value for e in app.error]
    assert any("metadata.json" in e and "python -m core.train" in e for e in errors), errors


# --- 4. a session during a save --------------------------------------------------------------------


def test_a_session_serves_its_pair_until_the_new_metadata_is_written(app, folder, tmp_path):
    app.run()
    assert_quiet(app)
    v1 = probabilities(app)
    staged = tmp_path / "staged"  # v2, written by the real writer; then replayed in save_pair's order
    old = checkpoints.load_pair(folder)
    checkpoints.save_pair(reversed_classes(old.baseline), reversed_classes(old.adversarial), {**old.metadata, "trained_at": "v2"}, staged)

    for name in checkpoints.MODEL_FILES.values():  # new baseline (then adversarial), old metadata.json
        os.replace(staged / name, folder / name)
        app.run()
        assert_quiet(app)
        for model in ("baseline", "adversarial"):
            for kind in ("clean", "perturbed"):
                np.testing.assert_array_equal(probabilities(app)[model][kind], v1[model][kind], err_msg=f"after {name}: {model} {kind}")
        assert not any("Models trained v2" in c.value for c in app.caption)

    os.replace(staged / checkpoints.METADATA_FILE, folder / checkpoints.METADATA_FILE)  # the pair is complete
    app.run()
    assert_quiet(app)
    assert any("Models trained v2" in c.value for c in app.caption)
    v2 = probabilities(app)
    for model in ("baseline", "adversarial"):
        np.testing.assert_allclose(v2[model]["clean"], v1[model]["clean"][::-1], atol=0.05)


def test_a_new_session_during_a_save_is_told_to_wait_not_shown_an_error(app, folder):
    shutil.copy(folder / "adversarial.keras", folder / "incoming.keras")
    os.replace(folder / "incoming.keras", folder / "baseline.keras")  # loads fine, but not the file metadata.json names
    app.run()
    assert not app.exception and not app.error, [e.value for e in [*app.exception, *app.error]]
    assert any("being saved" in i.value for i in app.info), [i.value for i in app.info]
