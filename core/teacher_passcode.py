"""The teacher passcode kept in the class store, so a teacher can set or change it while the server
runs and every replica checks the same one.

Why a hash: the store is a file or a database other people may read; it holds a salted PBKDF2
digest, never the passcode. A passcode in the store wins over one in ``.streamlit/secrets.toml`` or
``$BEANGUARD_TEACHER_PASSCODE`` (those need a restart to change). Set it from a shell with
``python -m core.classroom passcode`` or from the teacher tools.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from core.class_records import ClassroomError

STATE_KEY = "teacher_passcode"
MIN_LENGTH = 6
ITERATIONS = 200_000


class WeakPasscode(ClassroomError):
    """The new passcode is too short to hold off a class of curious students."""


def _digest(passcode: str, salt: bytes, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", passcode.encode("utf-8"), salt, iterations).hex()


def set_passcode(store, passcode: str) -> None:
    """Store a new teacher passcode (as a salted digest); every replica checks it from its next try."""
    if len(passcode.strip()) < MIN_LENGTH:
        raise WeakPasscode(f"A teacher passcode needs at least {MIN_LENGTH} characters.")
    salt = secrets.token_bytes(16)
    store.set_state(STATE_KEY, {"salt": salt.hex(), "digest": _digest(passcode, salt, ITERATIONS), "iterations": ITERATIONS})


def stored(store) -> bool:
    """Whether the store holds a teacher passcode."""
    state = store.get_state(STATE_KEY)
    return state is not None and isinstance(state.value, dict) and "digest" in state.value


def matches(store, given: str) -> bool:
    """Whether ``given`` is the stored passcode (constant-time comparison of the digests)."""
    state = store.get_state(STATE_KEY)
    if state is None or not isinstance(state.value, dict):
        return False
    value = state.value
    digest = _digest(given, bytes.fromhex(value["salt"]), int(value["iterations"]))
    return hmac.compare_digest(digest, value["digest"])
