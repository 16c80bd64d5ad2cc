"""The teacher passcode: where it is configured, how it is compared, and how guessing is stopped.

Why a lock-out: the classroom server is open to every student laptop on the network, and the
passcode guards retraining and which models the class sees. After ``MAX_FAILURES`` wrong tries a
session *and* the client address it came from must wait, and every further failure doubles the
wait (``BASE_WAIT_S``, capped at ``MAX_WAIT_S``). Both keys count because a student can open a new
session with a reload, and several students may share one address behind a router. Every wrong
try and every lock-out is logged (logger ``dashboard.passcode``) with session and address.
The counters live in the class store (:class:`core.classroom.StoreLockout`), so every replica
behind the load balancer sees the same wrong tries, and a restart does not clear them.
"""

from __future__ import annotations

import hmac
import logging
import os
from dataclasses import dataclass

import streamlit as st

from core import teacher_passcode
from core.classroom import BASE_WAIT_S, MAX_FAILURES, MAX_WAIT_S, ClassroomError, StoreLockout

from dashboard.class_store import shared_store

PASSCODE_SECRET = "teacher_passcode"
PASSCODE_ENV = "BEANGUARD_TEACHER_PASSCODE"
LOGGER = logging.getLogger(__name__)


def configured_passcode() -> str | None:
    """The teacher passcode from ``st.secrets["teacher_passcode"]``, else the environment; None if
    unset. (One set in the class store wins over both: :func:`passcode_is_set`.)"""
    try:
        secret = st.secrets.get(PASSCODE_SECRET)
    except Exception:  # noqa: BLE001  no secrets.toml at all raises; that just means "not configured"
        secret = None
    value = secret or os.environ.get(PASSCODE_ENV) or ""
    return str(value) if str(value).strip() else None


def passcode_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a guess was right."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def passcode_is_set() -> bool:
    """Whether the teacher tools can be unlocked at all: a passcode in the class store (set by the
    teacher while the server runs), in ``secrets.toml`` or in the environment."""
    try:
        if teacher_passcode.stored(shared_store()):
            return True
    except ClassroomError:
        pass
    return configured_passcode() is not None


def _is_right(given: str, expected: str | None) -> bool:
    """``given`` against ``expected`` when a caller names it, else against the class store's passcode,
    else against the configured one."""
    if expected is not None:
        return passcode_matches(given, expected)
    store = shared_store()
    if teacher_passcode.stored(store):
        return teacher_passcode.matches(store, given)
    configured = configured_passcode()
    return configured is not None and passcode_matches(given, configured)


@st.cache_resource
def shared_lockout() -> StoreLockout:
    """The lock-out counters in the class store, shared by every session and replica."""
    return StoreLockout(shared_store(), MAX_FAILURES, BASE_WAIT_S, MAX_WAIT_S)


def client_address() -> str | None:
    """The browser's IP address as Streamlit sees it (None when unknown, e.g. in AppTest)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001  no request context (bare mode)
        return None
    return address if isinstance(address, str) and address else None


def session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return context.session_id if context is not None else "no-session"


def client_keys() -> list[str]:
    """The keys one passcode attempt counts against: this session and, when known, its address."""
    address = client_address()
    return [f"session:{session_id()}", *([f"client:{address}"] if address else [])]


@dataclass(frozen=True)
class Attempt:
    """What happened to one passcode attempt, for the page to say."""

    accepted: bool
    message: str


def attempt(given: str, expected: str | None = None, lockout: StoreLockout | None = None, keys: list[str] | None = None) -> Attempt:
    """Check a passcode attempt against the lock-out first: a locked-out client is refused even
    with the right passcode, and its attempt is not compared at all. Without the store nothing unlocks."""
    try:
        return _attempt(given, expected, lockout or shared_lockout(), keys if keys is not None else client_keys())
    except ClassroomError as exc:
        LOGGER.error("Teacher passcode not checked: %s", exc)
        return Attempt(False, str(exc))


def _attempt(given: str, expected: str | None, lockout: StoreLockout, keys: list[str]) -> Attempt:
    wait = lockout.wait_seconds(keys)
    if wait > 0:
        LOGGER.warning("Teacher passcode attempt refused (locked out for %.0f s more): %s", wait, ", ".join(keys))
        return Attempt(False, f"Too many wrong passcodes: try again in {_duration(wait)}.")
    if _is_right(given or "", expected):
        lockout.success(keys)
        LOGGER.info("Teacher unlocked: %s", ", ".join(keys))
        return Attempt(True, "Teacher tools unlocked for this page.")
    wait = lockout.failure(keys)
    if wait > 0:
        LOGGER.warning("Wrong teacher passcode; locked out for %.0f s: %s", wait, ", ".join(keys))
        return Attempt(False, f"Wrong teacher passcode. Too many wrong tries: try again in {_duration(wait)}.")
    left = lockout.tries_left(keys)
    LOGGER.warning("Wrong teacher passcode (%d tries left before a lock-out): %s", left, ", ".join(keys))
    return Attempt(False, f"Wrong teacher passcode ({left} {'try' if left == 1 else 'tries'} left before a wait).")


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.999)
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
