"""Retraining from the dashboard: one ``python -m core.train`` subprocess for the whole school, shared by all.

Why a subprocess: training takes minutes of CPU; in a thread it would hold the GIL-heavy Python
parts of every session hostage and a crash would take the server down. The subprocess reports
each epoch as a JSON line in ``--progress-file``; every session polls :meth:`TrainingManager.status`.

Why run folders (``core.runs``): the subprocess writes a new hidden ``<runs>/.partial-<name>/``
folder, never the shipped pair; when it succeeds the manager renames it into place, shows it to the
class (``runs.set_active``) and prunes the oldest runs. A failed or stopped run is deleted.

Why a singleton (``st.cache_resource``) and a lock in the class store: at most one run trains at a
time for the whole school (the CPU is shared with the pages), whichever replica behind nginx the
teacher reached; a second start anywhere is refused. The replica that runs it holds the store's
``training`` lock (renewed every second; a replica that dies frees it after ``LOCK_TTL_S``), and a
watcher thread mirrors each progress event into the store's class state ``training``: every other
replica's progress poll reads that (one store read per replica per ``SHARED_READ_S``, whatever the
number of pages). Stopping a run from another replica asks through the store (``training_cancel``).
The command line comes from ``core.train.command``, the inverse of the flags ``python -m core.train`` parses.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import streamlit as st

from core import runs
from core.classroom import ClassroomError, Store
from core.progress import EpochReport, epoch_reports, read_events
from core.train import LAUNCHER, TrainConfig, command as core_train_command

from dashboard.class_store import shared_store
from dashboard.wording import MODEL_SHORT

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 12
TRAINING_NICENESS = 10  # scheduler weight ~1/10 of the server's when both want the CPU
TRAINING_LOCK = "training"  # the class store's lock: one run for the whole school
TRAINING_STATE = "training"  # the class store's key: the school's run, mirrored by the replica that runs it
CANCEL_STATE = "training_cancel"  # {"run_id": n}: another replica's teacher pressed Stop
LOCK_TTL_S = 60.0
WATCH_S = 1.0  # how often the running replica mirrors progress and renews its lock
SHARED_READ_S = 0.5  # one store read per replica serves every page's poll within this time
LOGGER = logging.getLogger("beanguard.retraining")


@dataclass(frozen=True)
class TrainingStatus:
    """A snapshot every session can render: state, epochs so far, and why it failed if it did."""

    run_id: int = 0  # 0 = no run since the server started; increases with every start
    state: str = "idle"  # "idle", "running", "succeeded" or "failed"
    config: TrainConfig | None = None
    run_name: str | None = None  # the run folder's name (``core.runs``)
    epochs: tuple[EpochReport, ...] = ()
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
        """What the run is doing now, in words, counting each epoch once: "training the NSL model, epoch 2 of 6"."""
        if self.state != "running" or self.config is None:
            return self.state
        if not self.epochs:
            return "loading the photos and the starting models"
        if len(self.epochs) >= self.total_epochs:
            return "saving the new run"
        latest = self.epochs[-1]
        if latest.epoch < latest.epochs:
            model, epoch, epochs = latest.model, latest.epoch + 1, latest.epochs
        else:  # the baseline is done: the NSL model is next
            model, epoch, epochs = "adversarial", 1, self.config.adversarial_epochs
        return f"training the {MODEL_SHORT[model]}, epoch {epoch} of {epochs}"


def status_to_json(status: TrainingStatus) -> dict[str, Any]:
    """The status as the class store keeps it (plain JSON); :func:`status_from_json` inverts it."""
    values = {item.name: getattr(status, item.name) for item in dataclasses.fields(status)}
    values["config"] = None if status.config is None else dataclasses.asdict(status.config)
    values["epochs"] = [dataclasses.asdict(report) for report in status.epochs]
    values["command"] = list(status.command)
    return values


def status_from_json(value: Any) -> TrainingStatus:
    """A status read back from the store; anything unreadable is the idle status."""
    if not isinstance(value, dict):
        return TrainingStatus()
    known = {item.name for item in dataclasses.fields(TrainingStatus)}
    values = {key: item for key, item in value.items() if key in known}
    config = values.get("config")
    fields = {item.name for item in dataclasses.fields(TrainConfig)}
    values["config"] = TrainConfig(**{k: v for k, v in config.items() if k in fields}) if isinstance(config, dict) else None
    values["epochs"] = tuple(EpochReport.from_event(event) for event in values.get("epochs") or ())
    values["command"] = tuple(values.get("command") or ())
    return TrainingStatus(**values)


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
    """Starts at most one training subprocess at a time (school-wide with a store), reports its
    progress to anybody asking, and turns a finished run into a run folder the class sees.

    ``store``: a callable returning the class store (``dashboard.class_store.shared_store``), or
    None for one process on its own (active.json, no lock; the manager tests use fake trainers so).
    """

    def __init__(self, launcher: Sequence[str] = LAUNCHER, working_dir: Path = REPO_ROOT, store: Callable[[], Store] | None = None):
        self._launcher, self._working_dir, self._store = tuple(launcher), working_dir, store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"  # this replica, in the store's lock
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None  # scratch: progress file and logs
        self._runs_root: Path | None = None
        self._run_store: Store | None = None  # the store the running run publishes to
        self._cancelled = False
        self._status = TrainingStatus()
        self._events_size, self._cached_events, self._epochs = -1, [], ()
        self._shared: tuple[float, TrainingStatus] = (-1e9, TrainingStatus())

    def start(
        self, config: TrainConfig, data_dir: Path | None, label: str = "", evaluate: bool = False, runs_root: Path | None = None
    ) -> tuple[bool, str]:
        """Launch a run of ``config`` into a new run folder; refuse (False, why) while another one runs
        (here or on another replica of the class).

        ``label`` names the folder (default: what the config changes, :func:`core.runs.short_name`);
        ``evaluate`` adds the full evaluation table to metadata.json (minutes more).
        """
        with self._lock:
            self._refresh()
            if self._status.running:
                return False, _busy(self._status)
            run_id, store = self._status.run_id + 1, None
            if self._store is not None:
                try:
                    store = self._store()
                    if not store.acquire_lock(TRAINING_LOCK, self.owner, LOCK_TTL_S):
                        return False, _busy(self._read_shared(store), elsewhere=True)
                    run_id = max(run_id, status_from_json(_value(store.get_state(TRAINING_STATE))).run_id + 1)
                except ClassroomError as error:
                    return False, f"Retraining waits for the class store (one run for the whole class at a time): {error}"
            root = runs.runs_dir(runs_root)
            name = runs.new_run_name(label.strip() or runs.short_name(config), root)
            output = runs.partial_folder(name, root)
            folder = Path(tempfile.mkdtemp(prefix="beanguard-train-"))
            command = core_train_command(
                config, output_dir=output, data_dir=data_dir, progress_file=folder / "progress.jsonl", evaluate=evaluate, launcher=self._launcher
            )
            with open(folder / "stdout.log", "wb") as stdout, open(folder / "stderr.log", "wb") as stderr:
                try:
                    process = subprocess.Popen(  # its own session: a Ctrl-C in the server's terminal does not kill it half-way
                        command, cwd=self._working_dir, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                    )
                except OSError as error:
                    shutil.rmtree(folder, ignore_errors=True)
                    if store is not None:
                        store.release_lock(TRAINING_LOCK, self.owner)
                    return False, f"Could not start `{' '.join(command[:3])}`: {error}."
            _lower_priority(process.pid)
            self._process, self._folder, self._runs_root, self._cancelled, self._run_store = process, folder, root, False, store
            self._events_size, self._epochs = -1, ()
            self._status = TrainingStatus(
                run_id=run_id, state="running", config=config, run_name=name, started_at=time.time(), command=tuple(command)
            )
            if store is not None:
                self._mirror(store, self._status)
                threading.Thread(target=self._watch, args=(store, run_id), name="beanguard-training-watch", daemon=True).start()
            epochs = self._status.total_epochs
            return True, f"Retraining started: run {name}, {epochs} epoch{'s' if epochs != 1 else ''} in all. Every open page shows its progress."

    def status(self) -> TrainingStatus:
        """The current snapshot: this replica's own run (its progress file), else the school's run
        as the class store holds it (cheap enough for every page to poll every second or two)."""
        with self._lock:
            self._refresh()
            local = self._status
            if self._process is not None or self._store is None:
                return local
        try:
            shared = self._read_shared(self._store())
        except ClassroomError:
            return local
        return shared if shared.run_id > local.run_id else local

    def cancel(self) -> tuple[bool, str]:
        """Stop the running subprocess; its unfinished run folder is deleted, the class keeps its models.
        A run on another replica is asked to stop through the store."""
        with self._lock:
            self._refresh()
            process = self._process
            if process is None or not self._status.running:
                return self._cancel_elsewhere()
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

    # --- sharing through the class store -------------------------------------------------------------

    def _read_shared(self, store: Store) -> TrainingStatus:
        """The school's run from the store, read at most once per ``SHARED_READ_S`` for all pages of this replica."""
        read_at, status = self._shared
        if time.monotonic() - read_at < SHARED_READ_S:
            return status
        status = status_from_json(_value(store.get_state(TRAINING_STATE)))
        if status.running and store.lock_holder(TRAINING_LOCK) is None:  # its replica died (the lock ran out)
            status = replace(status, state="failed", message="The server running this retraining stopped before it finished; the class keeps the models it had.")
        self._shared = (time.monotonic(), status)
        return status

    def _cancel_elsewhere(self) -> tuple[bool, str]:
        if self._store is None:
            return False, "No retraining run is in progress."
        try:
            store = self._store()
            self._shared = (-1e9, self._shared[1])
            shared = self._read_shared(store)
            if not shared.running:
                return False, "No retraining run is in progress."
            store.set_state(CANCEL_STATE, {"run_id": shared.run_id, "by": self.owner})
        except ClassroomError as error:
            return False, str(error)
        return True, "Asked the server that runs it to stop; the class keeps the models it had."

    def _mirror(self, store: Store, status: TrainingStatus) -> None:
        store.set_state(TRAINING_STATE, {**status_to_json(status), "owner": self.owner})

    def _watch(self, store: Store, run_id: int) -> None:
        """While this replica's run goes: every ``WATCH_S`` fold its progress in (publishing it when
        done, even if no page of this replica polls), mirror what changed, renew the lock, and obey
        a Stop pressed on another replica."""
        mirrored = None
        while True:
            time.sleep(WATCH_S)
            with self._lock:
                self._refresh()
                status = self._status
            if status.run_id != run_id:
                return
            try:
                if status != mirrored:
                    self._mirror(store, status)
                    mirrored = status
                if not status.running:
                    store.release_lock(TRAINING_LOCK, self.owner)
                    return
                store.acquire_lock(TRAINING_LOCK, self.owner, LOCK_TTL_S)
                asked = _value(store.get_state(CANCEL_STATE))
                if isinstance(asked, dict) and asked.get("run_id") == run_id:
                    self.cancel()
            except ClassroomError as error:  # the store is away for a moment: the run goes on, try again
                LOGGER.warning("Could not share the retraining's progress through the class store: %s", error)

    # --- this replica's subprocess ------------------------------------------------------------------

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
            runs.set_active(run.key, self._runs_root, store=self._run_store)
            pruned = runs.prune(root=self._runs_root, store=self._run_store)
        except (OSError, ClassroomError, runs.RunError, runs.RunRefused) as error:
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
            self._events_size, self._cached_events = size, read_events(path)
            self._epochs = epoch_reports(self._cached_events)
        return self._cached_events


def _value(state: Any) -> Any:
    return None if state is None else state.value


def _busy(status: TrainingStatus, elsewhere: bool = False) -> str:
    started = time.strftime("%H:%M:%S", time.localtime(status.started_at or time.time()))
    where = " on another server of this class" if elsewhere else ""
    return f"A retraining run is already in progress{where} (started at {started}); wait for it to finish."


def _lower_priority(pid: int) -> None:
    """Training yields the CPU to the pages: on a 2-core classroom server an equal-priority run
    made slider moves wait seconds. Threads TensorFlow starts later inherit the niceness."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, TRAINING_NICENESS)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run at normal priority
        pass


@st.cache_resource
def shared_manager() -> TrainingManager:
    """The one manager of this server process; through the class store, every replica's sessions see the same run."""
    return TrainingManager(store=shared_store)
