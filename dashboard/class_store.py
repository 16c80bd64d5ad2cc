"""This server's one connection to the class store (``core.classroom``), shared by every session.

Why one per process, cached by URL: the store is the only state the replicas of a school share
(rounds, attempts, votes, the teacher's view, the passcode and its lock-out, the run the class
sees, the retraining run); each replica opens it once. Tests point ``$BEANGUARD_STORE_URL`` (or the
runs folder, beside which the default SQLite file lies) somewhere else, and get another connection.

Why a failure is remembered for ``RETRY_S``: a database that cannot be reached may take the driver's
connect timeout (10 s for PostgreSQL) to say so, and every rerun and every 2 s poll of every page
asks; without the memory each of them would wait that long. The page says the one sentence at
its top (:func:`problem`), and everything that is not the class activity keeps working.
"""

from __future__ import annotations

import threading
import time

import streamlit as st

from core.classroom import ClassroomError, Store, StoreUnavailable, default_url, open_store

RETRY_S = 15.0
_failed: dict[str, tuple[float, StoreUnavailable]] = {}
_failed_lock = threading.Lock()


@st.cache_resource(max_entries=4, show_spinner=False)
def _store(url: str) -> Store:
    return open_store(url)


def shared_store() -> Store:
    """The class store of this server; raises ``core.classroom.StoreUnavailable`` with one sentence
    naming the URL (password hidden) when it cannot be opened (again at once within ``RETRY_S``)."""
    url = default_url()
    with _failed_lock:
        failed = _failed.get(url)
    if failed is not None and time.monotonic() - failed[0] < RETRY_S:
        raise failed[1]
    try:
        store = _store(url)
    except StoreUnavailable as error:
        with _failed_lock:
            _failed[url] = (time.monotonic(), error)
        raise
    with _failed_lock:
        _failed.pop(url, None)
    return store


def store_or_none() -> Store | None:
    """The class store, or None when it cannot be opened (:func:`problem` says why)."""
    try:
        return shared_store()
    except ClassroomError:
        return None


def problem() -> str | None:
    """Why the class store cannot be used, in one sentence naming its URL (password hidden); None when it can."""
    try:
        shared_store()
    except ClassroomError as error:
        return str(error)
    return None
