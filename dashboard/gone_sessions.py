"""Frees the pictures and downloads Streamlit keeps for browsers that have gone for good.

Why: a browser that goes (a laptop closed, a dropped network) leaves its session stored for a
reconnect for ``server.disconnectedSessionTTL`` seconds, and when that time is up Streamlit 1.67
forgets the session without shutting it down: the files its runs registered (each photo shown, each
CSV offered) stay referenced in the media store for as long as the server runs, tens of KB per
student who left; a run still computing when its laptop dropped adds its pictures after the
disconnect. Here one background thread per server process clears the files of every session that
has been away longer than that TTL, checked every :data:`SWEEP_EVERY_S`.

A browser that comes back within the TTL (a Wi-Fi blip) keeps its session and its pictures; one that
comes back later gets a new session from Streamlit, as it would without this module.
"""

from __future__ import annotations

import logging
import threading
import time

from streamlit import config, runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

_LOG = logging.getLogger(__name__)
SWEEP_EVERY_S = 2.0
# A forgotten session stays watched this long: a run still computing when its browser went stops at
# its next Streamlit call, but may register a picture first, which a later sweep clears.
WATCH_AFTER_FORGOTTEN_S = 60.0

_lock = threading.Lock()
_gone_since: dict[str, float | None] = {}  # session id -> when its browser was first seen gone (None: here)
_sweeper: threading.Thread | None = None


def remember_this_session() -> None:
    """Watch the session of this script run (call it on every full run); starts the sweeper once per process."""
    global _sweeper
    context = get_script_run_ctx()
    if context is None or not runtime.exists():  # AppTest and bare imports: no server, no media store to mind
        return
    with _lock:
        _gone_since[context.session_id] = None
        if _sweeper is None:
            _sweeper = threading.Thread(target=_sweep_forever, name="beanguard-gone-sessions", daemon=True)
            _sweeper.start()


def reconnect_window_s() -> float:
    """How long Streamlit keeps a gone browser's session for a reconnect."""
    return float(config.get_option("server.disconnectedSessionTTL"))


def sweep() -> None:
    """Clear the files of every watched session away longer than the reconnect window."""
    if not runtime.exists():
        return
    now = time.monotonic()
    window = reconnect_window_s()
    server = runtime.get_instance()
    files = server.media_file_mgr
    with _lock:
        watched = list(_gone_since.items())
    forgotten = 0
    for session_id, since in watched:
        with _lock:
            if server.is_active_session(session_id):
                _gone_since[session_id] = None  # here, or back within the window
                continue
            if since is None:
                _gone_since[session_id] = now  # first seen away: it may still come back
                continue
            if now - since <= window:
                continue
            if now - since > window + WATCH_AFTER_FORGOTTEN_S:
                _gone_since.pop(session_id, None)
        forgotten += 1
        files.clear_session_refs(session_id)
    if forgotten:
        # Streamlit deletes an unreferenced download on its second pass (the first marks it): a forgotten
        # session is watched for several sweeps, so its downloads go one sweep after its pictures.
        files.remove_orphaned_files()


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_EVERY_S)
        try:
            sweep()
        except Exception:  # noqa: BLE001  (a failed sweep must never stop the next one)
            _LOG.exception("Could not free the files of sessions whose browser has gone")
