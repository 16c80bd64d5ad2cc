"""Retraining from the dashboard: one ``python -m core.train`` subprocess per server, shared by all.

Why a subprocess: training takes minutes of CPU; in a thread it would hold the GIL-heavy Python
parts of every session hostage and a crash would take the server down. The subprocess reports
each epoch as a JSON line in ``--progress-file``; every session polls :meth:`TrainingManager.status`.

Why run folders (``core.runs``): the subprocess writes a new hidden ``<runs>/.partial-<name>/``
folder, never the shipped pair; when it succeeds the manager renames it into place, shows it to
the class (``active.json``) and prunes the oldest runs. A failed or stopped run is deleted, so the
class keeps whatever it was looking at.

Why a singleton (``st.cache_resource``): at most one run trains at a time (the CPU is shared with
the pages); a second start while one runs is refused. The command line comes from
``core.train.config_arguments``, the inverse of the flags ``python -m core.train`` parses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import streamlit as st

from core import runs
from core.train import TrainConfig, config_arguments

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 12
TRAINING_NICENESS = 10  # scheduler weight ~1/10 of the server's when both want the CPU


@dataclass(frozen=True)
class EpochRecord:
    """One ``{"event": "epoch"}`` line of the progress file."""

    model: str
    epoch: int
    epochs: int
    seconds: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainingStatus:
    """A snapshot every session can render: state, epochs so far, and why it failed if it did."""

    run_id: int = 0  # 0 = no run since the server started; increases with every start
    state: str = "idle"  # "idle", "running", "succeeded" or "failed"
    config: TrainConfig | None = None
    run_name: str | None = None  # the run folder's name (``core.runs``)
    epochs: tuple[EpochRecord, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    message: str | None = None  # failure reason (error event, exit code) or success summary
    log_tail: str = ""  # last lines of the subprocess's stderr, for a failed run
    command: tuple[str, ...] = field(default=(), repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def total_epochs(self) -> int:
        return 0 if self.config is None else self.config.epochs + self.config.adversarial_epochs

    @property
    def fraction(self) -> float:
        if self.total_epochs == 0:
            return 0.0
        return min(1.0, len(self.epochs) / self.total_epochs)

    @property
    def phase(self) -> str:
        """What the run is doing now, in words."""
        if self.state != "running" or self.config is None:
            return self.state
        if not self.epochs:
            return "loading data and the starting models"
        if len(self.epochs) >= self.total_epochs:
            return "saving the new run"
        latest = self.epochs[-1]
        if latest.model == "baseline" and latest.epoch == latest.epochs:
            return f"training the adversarial model (epoch 1 of {self.config.adversarial_epochs})"
        return f"training the {latest.model} model (epoch {latest.epoch + 1} of {latest.epochs})"


def _read_events(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of the progress file; a half-written last line is skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _summarize_error(message: str) -> str:
    """A long TensorFlow error as its first and last meaningful lines."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    return f"{lines[0]} … {lines[-1]}"


class TrainingManager:
    """Starts at most one training subprocess at a time, reports its progress to anybody asking,
    and turns a finished run into a run folder the class sees."""

    def __init__(self, command: Sequence[str] = (sys.executable, "-m", "core.train"), working_dir: Path = REPO_ROOT):
        self._command, self._working_dir = tuple(command), working_dir
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None  # scratch: progress file and logs
        self._runs_root: Path | None = None
        self._cancelled = False
        self._status = TrainingStatus()
        self._events_size, self._cached_events, self._epochs = -1, [], ()

    def start(
        self, config: TrainConfig, data_dir: Path | None, label: str = "", evaluate: bool = False, runs_root: Path | None = None
    ) -> tuple[bool, str]:
        """Launch a run of ``config`` into a new run folder; refuse (False, why) while another one runs.

        ``label`` names the folder (default: what the config changes, :func:`core.runs.short_name`);
        ``evaluate`` adds the full evaluation table to metadata.json (minutes more).
        """
        with self._lock:
            self._refresh()
            if self._status.running:
                started = time.strftime("%H:%M:%S", time.localtime(self._status.started_at or time.time()))
                return False, f"A retraining run is already in progress (started at {started}); wait for it to finish."
            root = runs.runs_dir(runs_root)
            name = runs.new_run_name(label.strip() or runs.short_name(config), root)
            output = runs.partial_folder(name, root)
            folder = Path(tempfile.mkdtemp(prefix="beanguard-train-"))
            command = [
                *self._command, *config_arguments(config),
                "--output-dir", str(output), "--progress-file", str(folder / "progress.jsonl"),
            ]  # fmt: skip
            if not evaluate:
                command.append("--no-evaluate")
            if data_dir is not None:
                command += ["--data-dir", str(data_dir)]
            with open(folder / "stdout.log", "wb") as stdout, open(folder / "stderr.log", "wb") as stderr:
                try:
                    process = subprocess.Popen(
                        command,
                        cwd=self._working_dir,
                        stdout=stdout,
                        stderr=stderr,
                        stdin=subprocess.DEVNULL,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                        start_new_session=True,  # a Ctrl-C in the server's terminal does not kill it half-way
                    )
                except OSError as error:
                    shutil.rmtree(folder, ignore_errors=True)
                    return False, f"Could not start `{' '.join(command[:3])}`: {error}."
            _lower_priority(process.pid)
            self._process, self._folder, self._runs_root, self._cancelled = process, folder, root, False
            self._events_size, self._epochs = -1, ()
            self._status = TrainingStatus(
                run_id=self._status.run_id + 1, state="running", config=config, run_name=name, started_at=time.time(), command=tuple(command)
            )
            epochs = self._status.total_epochs
            return True, f"Retraining started: run {name}, {epochs} epoch{'s' if epochs != 1 else ''} in all. Every open page shows its progress."

    def status(self) -> TrainingStatus:
        """The current snapshot (reads the progress file; cheap enough to poll every second or two)."""
        with self._lock:
            self._refresh()
            return self._status

    def cancel(self) -> tuple[bool, str]:
        """Stop the running subprocess; its unfinished run folder is deleted, the class keeps its models."""
        with self._lock:
            self._refresh()
            process = self._process
            if process is None or not self._status.running:
                return False, "No retraining run is in progress."
            self._cancelled = True
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return True, "Stopped the run; the class keeps the models it had."

    def wait(self, timeout: float, poll_seconds: float = 0.5) -> TrainingStatus:
        """Block until the current run ends or ``timeout`` seconds pass (tests and scripts)."""
        deadline = time.monotonic() + timeout
        while self.status().running and time.monotonic() < deadline:
            time.sleep(poll_seconds)
        return self.status()

    def _refresh(self) -> None:
        """Fold the progress file and the exit code into ``self._status`` (caller holds the lock)."""
        if self._process is None or self._folder is None or not self._status.running:
            return
        returncode = self._process.poll()  # before reading: an exited process has written its last line
        events = self._events()
        epochs = self._epochs
        if returncode is None:
            self._status = replace(self._status, epochs=epochs)
            return
        done = any(e.get("event") == "done" for e in events)
        errors = [e.get("message", "") for e in events if e.get("event") == "error"]
        name, tail = self._status.run_name or "", ""
        if returncode == 0 and done:
            state, message = self._publish(name)
        else:
            state, tail = "failed", _tail(self._folder / "stderr.log")
            if self._cancelled:
                message = "The run was stopped by the teacher"
            elif errors:
                message = f"Training failed: {_summarize_error(errors[-1])}"
            elif returncode < 0:
                message = f"Training was killed by {_signal_name(-returncode)} (exit code {returncode})"
            elif returncode != 0:
                message = f"Training exited with code {returncode}: {_summarize_error(tail) if tail else 'no error output'}"
            else:
                message = "Training ended without reporting that it finished"
            runs.discard_partial(name, self._runs_root)
            message = message.rstrip(". ") + "; nothing was kept, and the class keeps the models it had."
        self._status = replace(self._status, state=state, epochs=epochs, finished_at=time.time(), message=message, log_tail=tail)
        self._process = None
        shutil.rmtree(self._folder, ignore_errors=True)  # what the pages need is in the status now
        self._folder = None

    def _publish(self, name: str) -> tuple[str, str]:
        """Rename the finished run into place, show it to the class, prune the oldest runs."""
        try:
            run = runs.publish(name, self._runs_root)
            runs.set_active(run.key, self._runs_root)
            pruned = runs.prune(root=self._runs_root)
        except (OSError, runs.RunError, runs.RunRefused) as error:
            runs.discard_partial(name, self._runs_root)
            return "failed", f"Training finished but the run could not be kept ({error}); the class keeps the models it had."
        removed = f" Removed the oldest run{'s' if len(pruned) > 1 else ''} ({', '.join(pruned)}) to keep the last {runs.keep_runs()}." if pruned else ""
        return "succeeded", f"New run {name} saved; every open page now shows it.{removed}"

    def _events(self) -> list[dict[str, Any]]:
        """The progress file's events; re-parsed only when the file grew (30 pages poll it every 2 s)."""
        path = self._folder / "progress.jsonl"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size != self._events_size:
            self._events_size, self._cached_events = size, _read_events(path)
            self._epochs = tuple(
                EpochRecord(e["model"], int(e["epoch"]), int(e["epochs"]), float(e.get("seconds", 0.0)), dict(e.get("metrics", {})))
                for e in self._cached_events
                if e.get("event") == "epoch"
            )
        return self._cached_events


def _lower_priority(pid: int) -> None:
    """Training yields the CPU to the pages: on a 2-core classroom server an equal-priority run
    made slider moves wait seconds. Threads TensorFlow starts later inherit the niceness."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, TRAINING_NICENESS)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run at normal priority
        pass


@st.cache_resource
def shared_manager() -> TrainingManager:
    """The one manager of this server process: every session sees the same run."""
    return TrainingManager()
