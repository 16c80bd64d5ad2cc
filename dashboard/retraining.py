"""Retraining from the dashboard: one ``python -m core.train`` subprocess per server, shared by all.

Why a subprocess: training takes minutes of CPU; in a thread it would hold the GIL-heavy Python
parts of every session hostage and a crash would take the server down. The subprocess writes
the live checkpoint folder atomically (core does temp + rename, metadata last) and reports each
epoch as a JSON line in ``--progress-file``; every session polls :meth:`TrainingManager.status`.

Why a singleton (``st.cache_resource``): there is one checkpoint folder, so at most one run may
write it; a second start while one runs is refused. No TensorFlow is imported here.
"""

from __future__ import annotations

import hmac
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

PASSCODE_SECRET = "teacher_passcode"
PASSCODE_ENV = "BEANGUARD_TEACHER_PASSCODE"
REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 12
TRAINING_NICENESS = 10  # scheduler weight ~1/10 of the server's when both want the CPU


@dataclass(frozen=True)
class TrainingRequest:
    """The knobs a teacher may turn; the rest of ``core.train.TrainConfig`` keeps its defaults."""

    epochs: int = 5  # for each model (the sidebar's defaults come from core.train.TrainConfig)
    image_size: int = 64  # keep the current models' input size
    multiplier: float = 1.0
    adv_step_size: float = 4.0 / 255
    adv_norm: str = "infinity"
    pgd_iterations: int = 3
    adv_epsilon: float = 8.0 / 255
    evaluate: bool = False  # the full evaluation table adds minutes; the dashboard can compute it lazily

    def arguments(self) -> list[str]:
        """The ``core.train`` command-line flags for this request."""
        arguments = [
            "--image-size", str(self.image_size),
            "--epochs", str(self.epochs),
            "--adversarial-epochs", str(self.epochs),
            "--multiplier", repr(float(self.multiplier)),
            "--adv-step-size", repr(float(self.adv_step_size)),
            "--adv-norm", self.adv_norm,
            "--pgd-iterations", str(self.pgd_iterations),
            "--adv-epsilon", repr(float(self.adv_epsilon)),
        ]  # fmt: skip
        return arguments if self.evaluate else [*arguments, "--no-evaluate"]

    @property
    def total_epochs(self) -> int:
        return 2 * self.epochs


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
    request: TrainingRequest | None = None
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
    def fraction(self) -> float:
        if self.request is None or self.request.total_epochs == 0:
            return 0.0
        return min(1.0, len(self.epochs) / self.request.total_epochs)

    @property
    def phase(self) -> str:
        """What the run is doing now, in words."""
        if self.state != "running" or self.request is None:
            return self.state
        if not self.epochs:
            return "loading data and building the models"
        if len(self.epochs) >= self.request.total_epochs:
            return "evaluating and saving" if self.request.evaluate else "saving the new checkpoints"
        latest = self.epochs[-1]
        if latest.model == "baseline" and latest.epoch == latest.epochs:
            return f"training the adversarial model (epoch 1 of {self.request.epochs})"
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


def _checkpoint_files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """The checkpoint folder's files (inode, size, mtime), hidden temporaries aside: comparing this
    before and after a run tells exactly whether the run replaced any of them."""
    try:
        files = [path for path in folder.iterdir() if not path.name.startswith(".")]
        return {path.name: (info.st_ino, info.st_size, info.st_mtime_ns) for path in files for info in [path.stat()]}
    except OSError:
        return {}


def _after_failure(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> str:
    """What a failed run left behind, for the end of its message."""
    if before == after:
        return "; the previous models are still in use." if before else "; no models were saved."
    return (
        " after it had started replacing the checkpoint files: open pages keep the models they have until "
        "a complete new pair is saved; if the page says the files do not belong together, retrain."
    )


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
    """Starts at most one training subprocess at a time and reports its progress to anybody asking."""

    def __init__(self, command: Sequence[str] = (sys.executable, "-m", "core.train"), working_dir: Path = REPO_ROOT):
        self._command, self._working_dir = tuple(command), working_dir
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None
        self._output_dir: Path | None = None
        self._checkpoints_before: dict[str, tuple[int, int, int]] = {}
        self._cancelled = False
        self._status = TrainingStatus()
        self._events_size, self._cached_events, self._epochs = -1, [], ()

    def start(self, request: TrainingRequest, output_dir: Path, data_dir: Path | None) -> tuple[bool, str]:
        """Launch a run writing to ``output_dir``; refuse (False, why) while another one runs."""
        with self._lock:
            self._refresh()
            if self._status.running:
                started = time.strftime("%H:%M:%S", time.localtime(self._status.started_at or time.time()))
                return False, f"A retraining run is already in progress (started at {started}); wait for it to finish."
            folder = Path(tempfile.mkdtemp(prefix="beanguard-train-"))
            command = [
                *self._command, *request.arguments(),
                "--output-dir", str(output_dir), "--progress-file", str(folder / "progress.jsonl"),
            ]  # fmt: skip
            if data_dir is not None:
                command += ["--data-dir", str(data_dir)]
            checkpoints_before = _checkpoint_files(Path(output_dir))
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
            self._process, self._folder, self._cancelled = process, folder, False
            self._events_size, self._epochs = -1, ()
            self._output_dir, self._checkpoints_before = Path(output_dir), checkpoints_before
            self._status = TrainingStatus(
                run_id=self._status.run_id + 1, state="running", request=request, started_at=time.time(), command=tuple(command)
            )
            return True, f"Retraining started: {request.epochs} epochs per model. Every open page shows its progress."

    def status(self) -> TrainingStatus:
        """The current snapshot (reads the progress file; cheap enough to poll every second or two)."""
        with self._lock:
            self._refresh()
            return self._status

    def cancel(self) -> tuple[bool, str]:
        """Stop the running subprocess before it saves anything; refused once the last epoch is done,
        because stopping mid-save could leave a new baseline next to the old adversarial model."""
        with self._lock:
            self._refresh()
            process = self._process
            if process is None or not self._status.running:
                return False, "No retraining run is in progress."
            if self._status.fraction >= 1.0:
                return False, "Too late to stop: the new models are being evaluated or saved."
            self._cancelled = True
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return True, "Stopped the run; the previous models stay."

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
        if returncode == 0 and done:
            state, message, tail = "succeeded", "New models saved; every open page now uses them.", ""
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
            after = _checkpoint_files(self._output_dir) if self._output_dir is not None else {}
            message = message.rstrip(". ") + _after_failure(self._checkpoints_before, after)
        self._status = replace(self._status, state=state, epochs=epochs, finished_at=time.time(), message=message, log_tail=tail)
        self._process = None
        shutil.rmtree(self._folder, ignore_errors=True)  # what the pages need is in the status now
        self._folder = None

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


def configured_passcode() -> str | None:
    """The teacher passcode from ``st.secrets["teacher_passcode"]``, else the environment; None if unset."""
    try:
        secret = st.secrets.get(PASSCODE_SECRET)
    except Exception:  # noqa: BLE001  no secrets.toml at all raises; that just means "not configured"
        secret = None
    value = secret or os.environ.get(PASSCODE_ENV) or ""
    return str(value) if str(value).strip() else None


def passcode_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a guess was right."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
