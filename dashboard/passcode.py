"""The teacher passcode: where it is configured, how it is compared, and how guessing is stopped.

Why a lock-out: the classroom server is open to every student laptop on the network, and the
passcode guards retraining and which models the class sees. After ``MAX_FAILURES`` wrong tries a
session *and* the client address it came from must wait, and every further failure doubles the
wait (``BASE_WAIT_S``, capped at ``MAX_WAIT_S``). Both keys count because a student can open a new
session with a reload, and several students may share one address behind a router. Every wrong
try and every lock-out is logged (logger ``dashboard.passcode``) with session and address.
The state lives in the server process (:func:`shared_lockout`); a restart clears it.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import streamlit as st

PASSCODE_SECRET = "teacher_passcode"
PASSCODE_ENV = "BEANGUARD_TEACHER_PASSCODE"
MAX_FAILURES = 5
BASE_WAIT_S = 30.0
MAX_WAIT_S = 3600.0
LOGGER = logging.getLogger(__name__)


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


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class Lockout:
    """Counts wrong passcodes per key ("session:<id>", "client:<address>") and says how long to wait."""

    def __init__(self, max_failures: int = MAX_FAILURES, base_wait: float = BASE_WAIT_S, max_wait: float = MAX_WAIT_S, clock: Callable[[], float] = time.monotonic):
        self.max_failures, self.base_wait, self.max_wait, self._clock = max_failures, base_wait, max_wait, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, keys: Iterable[str]) -> float:
        """Seconds until any of ``keys`` may try again (0: it may try now)."""
        now = self._clock()
        with self._lock:
            return max([0.0, *(self._records[key].locked_until - now for key in keys if key in self._records)])

    def failure(self, keys: Iterable[str]) -> float:
        """Record one wrong passcode for every key; returns the wait it now imposes (0 before the limit)."""
        keys, now = list(keys), self._clock()
        with self._lock:
            waits = []
            for key in keys:
                record = self._records.setdefault(key, _Record())
                record.failures += 1
                if record.failures >= self.max_failures:
                    wait = min(self.max_wait, self.base_wait * 2 ** (record.failures - self.max_failures))
                    record.locked_until = max(record.locked_until, now + wait)
                waits.append(max(0.0, record.locked_until - now))
        return max(waits, default=0.0)

    def tries_left(self, keys: Iterable[str]) -> int:
        with self._lock:
            used = max([0, *(self._records[key].failures for key in keys if key in self._records)])
        return max(0, self.max_failures - used)

    def success(self, keys: Iterable[str]) -> None:
        """The right passcode: forget the failures of this session and address."""
        with self._lock:
            for key in keys:
                self._records.pop(key, None)


@st.cache_resource
def shared_lockout() -> Lockout:
    """One lock-out table per server process, shared by every session."""
    return Lockout()


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


def attempt(given: str, expected: str, lockout: Lockout | None = None, keys: list[str] | None = None) -> Attempt:
    """Check a passcode attempt against the lock-out first: a locked-out client is refused even
    with the right passcode, and its attempt is not compared at all."""
    lockout = lockout or shared_lockout()
    keys = keys if keys is not None else client_keys()
    wait = lockout.wait_seconds(keys)
    if wait > 0:
        LOGGER.warning("Teacher passcode attempt refused (locked out for %.0f s more): %s", wait, ", ".join(keys))
        return Attempt(False, f"Too many wrong passcodes: try again in {_duration(wait)}.")
    if passcode_matches(given or "", expected):
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
