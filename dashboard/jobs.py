"""Slow work the page starts in the background, once per server, with its progress for every page
to read: the strongest attack's smallest fooling budget for each photo of a round, of the whole test
split or of the photo on screen, and the black-box attack on every test photo.

Why background threads: bisecting the budget with the AutoAttack-grade ensemble takes minutes for
a class of photos; a page must never wait for it. Each job runs once per process and key
(``st.cache_resource``); its thread yields the CPU to the pages (nice 5, as the warm-up). Results
that the class shares go into the class store, so another replica (or a restarted server) reads
them instead of computing them again, and a store lock keeps two replicas from computing the same.
A :class:`Job` (its progress line) is per replica by design: the teacher's page shows the job its
replica runs, or that it waits while another replica computes; the board reads only the store.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import streamlit as st

from core import boundary, square
from core.checkpoints import ModelPair
from core.classroom import ClassroomError
from core.data import Split
from core.evaluate import CURVE_EPSILONS
from core.models import predict

from dashboard.class_store import shared_store
from dashboard.settings import MODEL_NAMES
from dashboard.wording import MODEL_SHORT

LOGGER = logging.getLogger("beanguard.jobs")
NICENESS = 5
LOCK_TTL_S = 900.0
JOBS_ENV = "BEANGUARD_JOBS"  # "0": start no background job (the page tests, to spare the CPU)


class Stopped(Exception):
    """Raised inside a job's work when the server is shutting down."""


@dataclass
class Job:
    """One background job's progress, read by every page."""

    title: str
    done: float = 0.0  # fraction in [0, 1]
    message: str = "waiting to start"
    error: str | None = None
    finished: bool = False
    started_at: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    result: Any = None  # what the work made, for work whose result is not kept in the class store

    def report(self, fraction: float, message: str) -> None:
        """Progress from the work; raises :class:`Stopped` once the server is shutting down."""
        if self.stop.is_set():
            raise Stopped
        self.done, self.message = max(self.done, min(1.0, fraction)), message


_STARTED: list[Job] = []


@atexit.register
def _stop_all() -> None:
    """At exit, let each running job reach its next progress report: a thread killed inside
    TensorFlow during interpreter shutdown aborts the whole process."""
    for job in _STARTED:
        job.stop.set()
    for job in _STARTED:
        if job.thread is not None:
            job.thread.join(timeout=60)


def _run(job: Job, work: Callable[[Job], None]) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass
    try:
        work(job)
    except Stopped:
        job.error = "stopped: the server is shutting down"
    except Exception as error:  # noqa: BLE001  a failed job says why on the page, the server goes on
        job.error = f"{type(error).__name__}: {error}"
        LOGGER.warning("Background job %r failed", job.title, exc_info=True)
    finally:
        job.finished = True


def start(job: Job, work: Callable[[Job], None]) -> Job:
    """Run ``work(job)`` in a background thread (not at all when ``$BEANGUARD_JOBS`` is "0")."""
    if os.environ.get(JOBS_ENV, "1") == "0":
        job.finished, job.message = True, "background jobs are switched off on this server"
        return job
    job.thread = threading.Thread(target=_run, args=(job, work), name=f"beanguard-{job.title}", daemon=True)
    _STARTED.append(job)
    job.thread.start()
    return job


# --- the strongest attack's budget for each photo of a round ------------------------------------------


def budget_top(norm: str) -> float:
    """How far the bisection looks: the largest budget the page's slider and curves reach."""
    return float(CURVE_EPSILONS[norm][-1])


def _fill_budgets(job: Job, pair: ModelPair, split: Split, model: str, norm: str, filenames: Sequence[str], share: tuple[float, float]) -> None:
    """The budgets of ``filenames`` the class store lacks for one model and norm, computed and merged
    into it. One store lock per model pair, model and norm (every replica and every job of this one
    takes it), renewed while the work goes on; a job that finds it taken waits, then computes only
    what is still missing. ``share``: the part of ``job``'s progress this fills, (start, size)."""
    store = shared_store()
    version = pair.version
    lock, owner = f"budgets:{version}:{model}:{norm}", f"{socket.gethostname()}:{os.getpid()}:{threading.get_native_id()}"
    index = {name: i for i, name in enumerate(split.filenames)}

    def missing() -> list[str]:
        return [name for name in filenames if name not in store.get_budgets(version, model, norm)]

    if not missing():
        return
    while not store.acquire_lock(lock, owner, LOCK_TTL_S):  # another replica (or job) is on it: wait, then read its result
        job.report(share[0], "another server is computing these; waiting for it")
        job.stop.wait(5)
    try:
        todo = missing()
        if not todo:
            return
        chosen = np.array([index[name] for name in todo])
        renewed = [time.monotonic()]

        def progress(fraction: float, message: str) -> None:
            if time.monotonic() - renewed[0] > LOCK_TTL_S / 3:
                store.acquire_lock(lock, owner, LOCK_TTL_S)  # still working: keep the lock
                renewed[0] = time.monotonic()
            job.report(share[0] + share[1] * fraction, message)

        budgets = boundary.smallest_fooling_budget(pair[model], split.images[chosen], split.labels[chosen], norm, budget_top(norm), progress=progress)
        store.put_budgets(version, model, norm, {**store.get_budgets(version, model, norm), **dict(zip(todo, map(float, budgets)))})
    finally:
        store.release_lock(lock, owner)


@st.cache_resource(max_entries=16, show_spinner=False)
def _budgets_job(version: str, model: str, norms: tuple[str, ...], filenames: tuple[str, ...], _pair: ModelPair, _split: Split) -> Job:
    job = Job(title=f"strongest attack on {len(filenames)} photos")

    def work(job: Job) -> None:
        for number, norm in enumerate(norms):
            _fill_budgets(job, _pair, _split, model, norm, filenames, (number / len(norms), 1 / len(norms)))
        job.report(1.0, "done")

    return start(job, work)


def strongest_budgets(pair: ModelPair, split: Split, model: str, norms: Sequence[str], filenames: Sequence[str]) -> Job:
    """Start (once) the strongest attack's smallest fooling budget for every photo of a round; the
    results land in the class store (``Store.get_budgets(pair.version, model, norm)``)."""
    return _budgets_job(pair.version, model, tuple(norms), tuple(filenames), pair, split)


def stored_budgets(version: str, model: str, norm: str) -> dict[str, float]:
    """What the class store holds so far ({} when the store cannot be read)."""
    try:
        return shared_store().get_budgets(version, model, norm)
    except ClassroomError:
        return {}


# --- jobs kept per key: the whole split's budgets, one photo's budgets, the black-box attack ----------

_KEYED: dict[Hashable, Job] = {}
_KEYED_LOCK = threading.Lock()
KEYED_LIMIT = 256  # finished jobs beyond this many are forgotten, oldest first (each keeps a small result)


def once(key: Hashable, title: str, work: Callable[[Job], None], again: bool = False) -> Job:
    """Start ``work`` once per process and ``key``; one that failed starts again when asked again, and
    with ``again`` one that finished too (work whose result lives elsewhere, e.g. the class store)."""
    with _KEYED_LOCK:
        job = _KEYED.get(key)
        if job is None or job.error is not None or (again and job.finished):
            job = _KEYED[key] = start(Job(title=title), work)
            finished = [old for old, kept in _KEYED.items() if kept.finished]
            for old in finished[: max(0, len(_KEYED) - KEYED_LIMIT)]:
                del _KEYED[old]
    return job


def find(key: Hashable) -> Job | None:
    """The job started for ``key`` on this server, if any (a lookup: never starts one)."""
    with _KEYED_LOCK:
        return _KEYED.get(key)


def running(kind: str) -> Job | None:
    """A job of this kind (its key's first item) still running on this server."""
    with _KEYED_LOCK:
        return next((job for key, job in _KEYED.items() if isinstance(key, tuple) and key[0] == kind and not job.finished), None)


def all_budgets_key(pair: ModelPair, split: Split, norm: str) -> tuple:
    return ("budgets", pair.version, norm, tuple(split.filenames))


def all_budgets(pair: ModelPair, split: Split, norm: str) -> Job:
    """Both models' smallest fooling budgets for every test photo, into the class store (once per server);
    read them with :func:`stored_budgets`."""
    filenames = tuple(split.filenames)

    def work(job: Job) -> None:
        for number, model in enumerate(MODEL_NAMES):
            _fill_budgets(job, pair, split, model, norm, filenames, (number / len(MODEL_NAMES), 1 / len(MODEL_NAMES)))
        job.report(1.0, "done")

    return once(all_budgets_key(pair, split, norm), f"strongest attack on all {len(filenames)} test photos", work, again=True)


def photo_budgets_key(pair: ModelPair, image_key: str, label: int | None, norm: str) -> tuple:
    return ("photo budgets", pair.version, image_key, label, norm)


def photo_budgets(pair: ModelPair, image_key: str, image: np.ndarray, label: int | None, norm: str) -> Job:
    """Both models' smallest fooling budget for one photo: ``job.result`` = {model: budget}. Without a
    true label, the budget that changes each model's own answer on the clean photo."""

    def work(job: Job) -> None:
        found = {}
        for number, model in enumerate(MODEL_NAMES):
            target = label if label is not None else int(predict(pair[model], image[None]).argmax())

            def progress(fraction: float, message: str, number=number, model=model) -> None:
                job.report((number + fraction) / len(MODEL_NAMES), f"the {MODEL_SHORT[model]}, {message}")

            found[model] = float(boundary.smallest_fooling_budget(pair[model], image[None], np.array([target]), norm, budget_top(norm), progress=progress)[0])
        job.result = found
        job.report(1.0, "done")

    return once(photo_budgets_key(pair, image_key, label, norm), "search for this photo's smallest fooling change", work)


@dataclass(frozen=True)
class BlackBoxSplit:
    """One model under the black-box attack on every test photo: right before, fooled, queries spent."""

    right: np.ndarray  # (N,) bool: right on the clean photo
    fooled: np.ndarray  # (N,) bool: right before, wrong after
    queries: np.ndarray  # (N,) int: queries spent (0 for photos wrong before)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.right & ~self.fooled)) if len(self.right) else float("nan")


def square_all_key(pair: ModelPair, split: Split, norm: str, epsilon: float, queries: int) -> tuple:
    return ("square", pair.version, tuple(split.filenames), norm, float(epsilon), int(queries))


def square_all(pair: ModelPair, split: Split, norm: str, epsilon: float, queries: int) -> Job:
    """ART's Square attack (``core.square``) on every test photo, both models: ``job.result`` =
    {model: :class:`BlackBoxSplit`}. The changed photos are dropped (megabytes; only counts are shown)."""

    def work(job: Job) -> None:
        found = {}
        for number, model in enumerate(MODEL_NAMES):

            def progress(event: square.SquareProgress, number=number, model=model) -> None:
                job.report(
                    (number + event.queries / event.max_queries) / len(MODEL_NAMES),
                    f"the {MODEL_SHORT[model]}: {event.queries} of {event.max_queries} questions per photo, {event.fooled} of {event.attacked} photos fooled",
                )

            result = square.square_attack(pair[model], split.images, split.labels, norm, epsilon, queries, progress=progress)
            right = predict(pair[model], split.images).argmax(axis=1) == split.labels
            found[model] = BlackBoxSplit(right, result.fooled, result.queries)
        job.result = found
        job.report(1.0, "done")

    return once(square_all_key(pair, split, norm, epsilon, queries), f"black-box attack on all {len(split)} test photos", work)


STORE_READ_S = 10.0  # a page redraws on every slider move: the store is read at most this often per server
POLL_S = 2.0  # a page with a running job looks at its progress this often


@st.cache_data(ttl=STORE_READ_S, max_entries=64, show_spinner=False)
def recent_budgets(version: str, model: str, norm: str) -> dict[str, float]:
    """:func:`stored_budgets`, read from the class store at most every :data:`STORE_READ_S` seconds."""
    return stored_budgets(version, model, norm)


def watch(job: Job) -> None:
    """While ``job`` runs, its progress bar, redrawn every :data:`POLL_S` s; once it has ended, the
    whole page reruns once, to draw the result (and to stop polling)."""
    st.fragment(run_every=POLL_S)(_watch)(job)


def _watch(job: Job) -> None:
    if job.finished:
        recent_budgets.clear()
        st.rerun(scope="app")
    st.progress(job.done, text=describe(job))


def describe(job: Job | None) -> str:
    """One line for a page: how far the job is, or why it failed."""
    if job is None:
        return ""
    if job.error:
        return f"The {job.title} failed: {job.error}"
    if job.finished:
        return ""
    return f"Computing the {job.title}: {job.done:.0%} ({job.message})"
