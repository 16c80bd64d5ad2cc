"""What every replica of a school must agree on lives in the class store, never in one process:
which run the class sees (with an older ``active.json`` honoured once), the one retraining run of
the whole school (its lock, its progress, its Stop button), and the small results a class is shown.

Two ``TrainingManager`` objects, each with its own connection to the same store, stand for two
replicas behind nginx; fake trainers (a few lines of Python standing in for ``core.train``) keep it
fast. Every test runs on a SQLite file and on PostgreSQL (``tests/support/store_fixtures.py``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from core import runs
from core.classroom import open_store
from core.train import TrainConfig
from dashboard.retraining import CANCEL_STATE, TRAINING_LOCK, TRAINING_STATE, WATCH_S, TrainingManager, status_from_json, status_to_json
from tests.support.beans import copy_checkpoints

pytest_plugins = ["tests.support.store_fixtures"]
CONFIG = TrainConfig(epochs=1, adversarial_epochs=2)


@pytest.fixture
def shipped(checkpoints_dir, tmp_path) -> Path:
    return copy_checkpoints(checkpoints_dir, tmp_path / "checkpoints")


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "runs"


def a_run(shipped: Path, root: Path, name: str) -> str:
    shutil.copytree(shipped, root / name)
    return f"runs/{name}"


# --- which run the class sees ------------------------------------------------------------------------


def test_the_run_the_class_sees_is_one_value_in_the_class_store(store, store_url, shipped, root):
    key = a_run(shipped, root, "20260101-000000Z-a")
    runs.set_active(key, root, shipped, store=store)
    other_replica = open_store(store_url)
    assert runs.active_key(root, other_replica) == key and runs.active_run(root, shipped, other_replica).folder == root / "20260101-000000Z-a"
    assert not (root / runs.ACTIVE_FILE).exists()  # nothing per machine
    runs.restore_shipped(root, shipped, store=other_replica)
    assert runs.active_run(root, shipped, store).kind == "shipped"
    other_replica.close()


def test_an_active_json_left_by_an_older_beanguard_is_honoured_once(store, shipped, root):
    old, new = a_run(shipped, root, "20260101-000000Z-old"), a_run(shipped, root, "20260102-000000Z-new")
    runs.set_active(old, root, shipped)  # what an older Beanguard wrote: the file
    assert runs.active_key(root, store) == old
    assert store.get_state(runs.ACTIVE_STATE).value["run"] == old
    assert not (root / runs.ACTIVE_FILE).exists() and (root / (runs.ACTIVE_FILE + runs.MIGRATED_SUFFIX)).exists()
    runs.set_active(new, root, shipped, store=store)
    runs.set_active(old, root, shipped)  # a file written again later is not honoured a second time
    assert runs.active_key(root, store) == new


def test_with_an_empty_store_and_no_file_the_class_sees_the_shipped_pair_and_nothing_is_written(store, root):
    assert runs.active_key(root, store) == runs.SHIPPED_KEY
    assert store.get_state(runs.ACTIVE_STATE) is None


def test_the_run_the_store_names_is_never_deleted_or_pruned(store, shipped, root):
    keys = [a_run(shipped, root, f"2026010{day}-000000Z-r") for day in (1, 2, 3)]
    runs.set_active(keys[0], root, shipped, store=store)
    with pytest.raises(runs.RunError, match="what the class sees"):
        runs.delete_run(keys[0], root, shipped, store=store)
    assert runs.prune(keep=1, root=root, store=store) == ["20260102-000000Z-r"]
    assert [run.key for run in runs.trained_runs(root)] == [keys[0], keys[2]]


# --- one retraining run for the whole school -----------------------------------------------------------


def fake_trainer(shipped: Path, seconds_per_epoch: float = 0.3) -> list[str]:
    """Reports each epoch as core.train would, then saves a complete pair (a copy of ``shipped``)."""
    script = (
        "import json, os, shutil, sys, time\n"
        "arg = lambda flag: sys.argv[sys.argv.index(flag) + 1]\n"
        "log = lambda **event: open(arg('--progress-file'), 'a').write(json.dumps(event) + '\\n')\n"
        "log(event='start')\n"
        "for number, (model, epoch, epochs) in enumerate([('baseline', 1, 1), ('adversarial', 1, 2), ('adversarial', 2, 2)]):\n"
        f"    time.sleep({seconds_per_epoch})\n"
        "    log(event='epoch', model=model, epoch=epoch, epochs=epochs, seconds=0.1, metrics={'loss': 1.0 / (number + 1)})\n"
        f"shutil.copytree({str(shipped)!r}, arg('--output-dir'), dirs_exist_ok=True)\n"
        "log(event='done', timing={})\n"
    )
    return [sys.executable, "-c", script]


@pytest.fixture
def replicas(store, store_url, shipped):
    """Replica A (where the teacher starts the run) and replica B (where the students are). An epoch
    takes as long as A's mirroring interval: a quicker run could end before A first mirrors an epoch,
    and B would never see it running."""
    other = open_store(store_url)
    a = TrainingManager(fake_trainer(shipped, seconds_per_epoch=WATCH_S), store=lambda: store)
    b = TrainingManager(fake_trainer(shipped, seconds_per_epoch=WATCH_S), store=lambda: other)
    yield a, b
    for manager in (a, b):
        if manager.status().running:
            manager.cancel()
    a.wait(timeout=30)
    other.close()


def test_one_run_for_the_whole_school_its_progress_and_result_on_every_replica(replicas, store, root):
    a, b = replicas
    assert a.start(CONFIG, None, runs_root=root)[0]
    refused, message = b.start(CONFIG, None, runs_root=root)
    assert not refused and "already in progress on another server" in message
    assert store.lock_holder(TRAINING_LOCK) == a.owner

    deadline = time.monotonic() + 60
    while not (seen := b.status()).epochs and time.monotonic() < deadline:  # B has no subprocess: it reads the store
        time.sleep(0.1)
    assert seen.running and seen.run_id == a.status().run_id and seen.epochs[0].model == "baseline"

    finished = b.wait(timeout=60, poll_seconds=0.2)
    assert finished.state == "succeeded" and finished.run_name in finished.message, finished.message
    assert len(finished.epochs) == 3 and finished.fraction == 1.0
    assert runs.active_key(root, store) == f"runs/{finished.run_name}"  # published by A into the store
    assert store.lock_holder(TRAINING_LOCK) is None  # free for the next run, on any replica
    again, _ = b.start(CONFIG, None, runs_root=root)
    assert again and b.status().run_id == finished.run_id + 1


def test_stop_pressed_on_another_replica_stops_the_run_and_keeps_nothing(replicas, store, root):
    a, b = replicas
    a._launcher = (sys.executable, "-c", "import time; time.sleep(60)")
    assert a.start(CONFIG, None, runs_root=root)[0]
    stopped, message = b.cancel()
    assert stopped and "Asked the server that runs it to stop" in message
    assert store.get_state(CANCEL_STATE).value["run_id"] == a.status().run_id
    status = b.wait(timeout=30, poll_seconds=0.2)
    assert status.state == "failed" and "stopped by the teacher" in status.message
    assert runs.trained_runs(root) == [] and runs.active_key(root, store) == runs.SHIPPED_KEY


def test_a_run_whose_replica_died_shows_as_stopped_on_the_others(store, root):
    dead = TrainingManager(store=lambda: store)
    running = status_to_json(status_from_json({"run_id": 4, "state": "running", "config": {"epochs": 1, "adversarial_epochs": 1}, "started_at": 1.0}))
    store.set_state(TRAINING_STATE, {**running, "owner": "gone:1"})  # its lock ran out with the replica
    status = dead.status()
    assert status.state == "failed" and "stopped before it finished" in status.message and status.run_id == 4


def test_a_status_survives_the_trip_through_the_store():
    from core.progress import EpochReport
    from dashboard.retraining import TrainingStatus

    status = TrainingStatus(3, "running", CONFIG, "r", (EpochReport("baseline", 1, 1, 0.5, {"loss": 0.3}),), 10.0, None, None, "", ("python", "-m"))
    assert status_from_json(json.loads(json.dumps(status_to_json(status)))) == status
