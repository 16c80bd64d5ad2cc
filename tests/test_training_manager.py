"""The training manager: one ``python -m core.train`` subprocess per server, its progress shared by
every page, a failed or stopped run leaving nothing behind, and training below the pages' priority.

Fake trainers (a few lines of Python standing in for ``core.train``) keep these tests fast; the
real command line runs in tests/test_train.py, tests/test_runs.py and tests/test_faults.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from core import runs
from core.train import TrainConfig
from dashboard import retrain_panel
from dashboard.retraining import TRAINING_NICENESS, TrainingManager, shared_manager
from tests.support.beans import write_tiny_beans
from tests.support.page import unlock_teacher, verdicts

PASSCODE = "bean-teacher-42"
FAKE_CONFIG = TrainConfig(epochs=1, adversarial_epochs=1)  # what the fake trainers below "train"


def test_failed_retraining_keeps_no_run_and_says_why(app, environment, tmp_path):
    test_only = write_tiny_beans(tmp_path / "test_only", splits=("test",))  # the app works, training cannot
    environment.setenv("BEANS_DATA_DIR", str(test_only))
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.run()
    old_version = app.session_state["pair_version"]
    unlock_teacher(app, PASSCODE)
    app.number_input(key="train_adversarial_epochs").set_value(1)
    app.button(key="train_start").click().run()
    status = shared_manager().wait(timeout=120)
    assert status.state == "failed"
    app.run()
    assert any("Training failed" in e.value and "nothing was kept" in e.value for e in app.error), [e.value for e in app.error]
    assert app.session_state["pair_version"] == old_version
    assert runs.trained_runs() == [] and not any(runs.runs_dir().iterdir())  # the partial folder is gone too
    assert len(verdicts(app)) == 2


def _fake_trainer(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_second_start_while_a_run_is_going_is_refused(tmp_path):
    manager = TrainingManager(_fake_trainer("import time; time.sleep(60)"))
    started, _ = manager.start(FAKE_CONFIG, None, runs_root=tmp_path)
    try:
        assert started
        again, message = manager.start(FAKE_CONFIG, None, runs_root=tmp_path)
        assert not again and "already in progress" in message
    finally:
        assert manager.cancel()[0]
    assert manager.status().state == "failed" and "stopped" in manager.status().message


def test_pages_poll_the_shared_run_slowly_when_idle_and_fast_while_one_trains(app, environment, tmp_path):
    manager = TrainingManager(_fake_trainer("import time; time.sleep(60)"))
    environment.setattr(retrain_panel, "shared_manager", lambda: manager)
    app.run()
    assert app.session_state["progress_polled_fast"] is False
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    try:
        app.run()
        assert app.session_state["progress_polled_fast"] is True
    finally:
        manager.cancel()


def test_an_idle_page_is_rerun_by_the_class_poll_when_a_run_starts_and_not_otherwise(app, environment, tmp_path):
    """No progress poll while nothing trains: the class poll (dashboard/class_sync.py) must notice a
    run that starts on another page, and must find nothing new on a page that just drew (else every
    page would rerun itself every 2 s)."""
    from dashboard import class_sync

    manager = TrainingManager(_fake_trainer("import time; time.sleep(60)"))
    environment.setattr(retrain_panel, "shared_manager", lambda: manager)
    environment.setattr(class_sync, "shared_manager", lambda: manager)
    app.run()
    drawn = app.session_state[class_sync.SEEN]
    assert class_sync._seen(*class_sync._polled()) == drawn and class_sync._seen(*class_sync._polled(fresh=True)) == drawn
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    try:
        assert class_sync._seen(*class_sync._polled(fresh=True)) != drawn  # the page's next poll reruns it
        app.run()
        assert app.session_state["progress_polled_fast"] is True
        assert class_sync._seen(*class_sync._polled()) == app.session_state[class_sync.SEEN]
    finally:
        manager.cancel()


def test_training_runs_at_lower_priority_than_the_pages(tmp_path):
    report = tmp_path / "niceness.txt"
    manager = TrainingManager(_fake_trainer(f"import os, time; time.sleep(0.5); open({str(report)!r}, 'w').write(str(os.nice(0)))"))
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    manager.wait(timeout=30)
    assert int(report.read_text()) >= os.nice(0) + TRAINING_NICENESS


def test_a_finished_run_leaves_no_scratch_folder_but_keeps_its_log_tail(tmp_path):
    manager = TrainingManager(_fake_trainer("import sys; print('out of beans', file=sys.stderr); sys.exit(3)"))
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    progress_file = Path(manager.status().command[manager.status().command.index("--progress-file") + 1])
    status = manager.wait(timeout=30)
    assert status.state == "failed" and "out of beans" in status.log_tail
    assert not progress_file.parent.exists()


def test_progress_file_events_become_a_shared_progress_bar_and_error_message(tmp_path):
    script = (
        "import json, sys, time\n"
        "path = sys.argv[sys.argv.index('--progress-file') + 1]\n"
        "def log(**event):\n"
        "    open(path, 'a').write(json.dumps(event) + '\\n')\n"
        "log(event='start')\n"
        "log(event='epoch', model='baseline', epoch=1, epochs=1, seconds=0.1, metrics={'loss': 1.0, 'val_accuracy': 0.5})\n"
        "log(event='error', message='ValueError: out of beans')\n"
        "sys.exit(1)\n"
    )
    manager = TrainingManager(_fake_trainer(script))
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    status = manager.wait(timeout=30)
    assert status.state == "failed" and "out of beans" in status.message
    assert len(status.epochs) == 1 and status.fraction == pytest.approx(0.5)


def test_the_progress_line_counts_each_epoch_once_and_names_the_models_as_the_page_does():
    from core.progress import EpochReport
    from dashboard.retraining import TrainingStatus

    config = TrainConfig(epochs=2, adversarial_epochs=6)
    baseline = [EpochReport("baseline", epoch, 2, 1.0) for epoch in (1, 2)]
    status = TrainingStatus(state="running", config=config, epochs=(baseline[0],))
    assert status.phase == "training the baseline, epoch 2 of 2"
    status = TrainingStatus(state="running", config=config, epochs=(*baseline, EpochReport("adversarial", 1, 6, 1.0)))
    assert status.phase == "training the NSL model, epoch 2 of 6"
    assert TrainingStatus(state="running", config=config, epochs=tuple(baseline)).phase == "training the NSL model, epoch 1 of 6"
