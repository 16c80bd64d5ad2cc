"""Keeping a page in step with the class: follow the teacher's view, and open or reveal a poll on
every page, through the class store (the only state the replicas share).

- The teacher's page, while it broadcasts, writes its view (a link's values and the lesson step) to
  the store whenever it changes (:func:`publish_view`).
- A student's page polls the store (:func:`watch`, a fragment every ``WATCH_S`` seconds). When the
  teacher's view or the poll changed, it reruns the whole page; before any widget is drawn,
  :func:`follow` copies the teacher's view into the controls — unless the student switched
  **Follow the teacher** off. A poll's view is applied once when the poll opens, following or not:
  everybody votes on the same picture.
- The same poll notices when the class is shown another run or a retraining run starts or ends (on
  any replica): the page reruns and loads the run or shows the progress bar. It is the page's one
  poll while no run trains (the progress bar polls by itself only while one does).

Why the poll is cheap: each is a fragment run of every open page (15 a second for 30 pages), and
most find nothing new. What they ask is read from the store at most once per ``SHARED_S`` per
server process and shared by all its pages (:func:`_polled`), so the store sees a few reads a
second per replica, not one per page.
"""

from __future__ import annotations

import threading
import time
from typing import Any, MutableMapping

import streamlit as st

from core import runs
from core.classroom import ClassroomError, Poll, default_url

from dashboard.class_store import shared_store
from dashboard.retraining import shared_manager
from dashboard.settings import BROADCAST, FOLLOW, LESSON_STEP, TEACHER_UNLOCKED, TEACHER_VIEW, widget_values

WATCH_S = 2  # how often a page asks the store whether the class moved (the board: the same)
SHARED_S = 0.5  # one store read per server process serves every page's poll within this time
STALE_S = 600  # a teacher's view older than this is not followed (the teacher left)
SEEN = "class_seen"  # (teacher view version, poll id, poll state, class run, training run id, running) this page last drew
APPLIED = "class_applied"  # (teacher view version, poll id) this page last copied into its controls


def is_teacher(state: MutableMapping[str, Any]) -> bool:
    return bool(state.get(TEACHER_UNLOCKED))


def _snapshot() -> tuple[Any, Poll | None, tuple]:
    """(the teacher's view state, the current poll, (the run the class sees, the school's retraining
    run and whether it runs)) from the store; nothing but the class's run when it cannot be read."""
    try:
        store = shared_store()
        view, poll, key = store.get_state(TEACHER_VIEW), store.current_poll(), runs.active_key(store=store)
    except ClassroomError:
        view, poll, key = None, None, runs.active_key()
    training = shared_manager().status()
    return view, poll, (key, training.run_id, training.running)


_last_poll: dict[str, tuple[float, tuple]] = {}  # store URL -> (monotonic time, snapshot), shared by the pages of this process
_poll_lock = threading.Lock()  # held during the read: a page that finds the copy old waits for the one read under way


def _polled(fresh: bool = False) -> tuple[Any, Poll | None, tuple]:
    """:func:`_snapshot`, read at most once per ``SHARED_S`` by this process (``fresh``: now, for a
    page's full run; the shared copy is then never older than what any page last drew). Kept per
    store URL: a test (or a restarted configuration) that points the process at another store never
    sees the other store's copy."""
    url = default_url()
    with _poll_lock:
        read_at, snapshot = _last_poll.get(url, (-SHARED_S, None))
        if fresh or snapshot is None or time.monotonic() - read_at >= SHARED_S:
            read_at = time.monotonic()
            snapshot = _snapshot()
            _last_poll[url] = (read_at, snapshot)
        return snapshot


def _forget_polled() -> None:
    """After this page wrote what the poll reads: the next poll reads the store again. Otherwise a
    copy read just before the write would differ from what this page now draws and rerun it."""
    with _poll_lock:  # waits for a read under way, which may predate the write
        _last_poll.pop(default_url(), None)


def _seen(view, poll, class_run: tuple) -> tuple:
    return (view.version if view else 0, poll.id if poll else 0, poll.state if poll else "", *class_run)


def current_poll() -> Poll | None:
    """The class's poll while it is open or revealed (None when closed, absent or unreadable)."""
    try:
        poll = shared_store().current_poll()
    except ClassroomError:
        return None
    return poll if poll is not None and poll.state in ("open", "revealed") else None


def follow(state: MutableMapping[str, Any]) -> bool:
    """Before any widget is drawn: copy the teacher's view (or a newly opened poll's view) into this
    page's controls. Returns whether the page now shows the teacher's view."""
    view, poll, class_run = _polled(fresh=True)
    state[SEEN] = _seen(view, poll, (state.get("class_run_key", class_run[0]), *class_run[1:]))  # the run this page loads
    if is_teacher(state):
        return False
    applied_version, applied_poll = state.get(APPLIED, (0, 0))
    if poll is not None and poll.state == "open" and poll.id != applied_poll:
        state.update(widget_values(poll.view))
        applied_poll = poll.id
    following = (
        state.setdefault(FOLLOW, True)
        and view is not None
        and isinstance(view.value, dict)
        and view.value.get("broadcast")
        and time.time() - view.updated_at < STALE_S
    )
    if following and view.version != applied_version:
        state.update(widget_values(view.value.get("link", {})))
        step = view.value.get("lesson_step")
        if isinstance(step, int):
            state[LESSON_STEP] = step
        else:
            state.pop(LESSON_STEP, None)
        applied_version = view.version
    state[APPLIED] = (applied_version, applied_poll)
    return bool(following)


def follow_toggle(state: MutableMapping[str, Any]) -> None:
    """A student's one click out of (or back into) following, shown only while the teacher broadcasts."""
    view = _polled()[0]  # the copy follow() just read for this run
    if is_teacher(state) or view is None or not isinstance(view.value, dict) or not view.value.get("broadcast"):
        return
    st.toggle("Follow the teacher's screen", key=FOLLOW, help="On: your page shows what the teacher shows. Off: explore on your own.")


def publish_view(state: MutableMapping[str, Any], link: dict[str, str], presenting: bool) -> None:
    """The teacher's page, after each change: write its view to the store when it differs from the last one written."""
    if not is_teacher(state):
        return
    broadcast = bool(state.setdefault(BROADCAST, True))
    step = state.get(LESSON_STEP)
    value = {"link": link, "lesson_step": step if isinstance(step, int) else None, "presenting": presenting, "broadcast": broadcast}
    if state.get("class_published") == value:
        return
    try:
        written = shared_store().set_state(TEACHER_VIEW, value)
    except ClassroomError:
        return  # the page goes on; the students simply do not follow this change
    state["class_published"] = value
    _forget_polled()
    seen = state.get(SEEN)
    if seen:
        state[SEEN] = (written.version, *seen[1:])  # our own change: no reason for this page to rerun


def watch() -> None:
    """Every ``WATCH_S`` s: rerun the whole page when the teacher's view, the poll, the class's run or
    the retraining run changed."""
    st.fragment(run_every=WATCH_S)(_check)()


def _check() -> None:
    if _seen(*_polled()) != st.session_state.get(SEEN):
        st.rerun(scope="app")
