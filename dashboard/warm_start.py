"""Imports the libraries the page needs while the first browser is still loading the page.

Why: importing TensorFlow with tf-keras and NSL takes about 3 s of CPU, the largest part of
``streamlit run`` → first verdicts. Streamlit runs the page's script only once a browser has
connected, so without this the import starts ~1 s after the server listens (the browser loading
Streamlit's own page) and everything waits for it. ``dashboard/app.py`` starts :func:`begin` as the
server starts; the page's script calls :func:`wait` before its own imports, so it never imports a
module the warm-up thread is halfway through (two threads importing the same packages in different
orders can deadlock on the import locks).
"""

from __future__ import annotations

import importlib
import logging
import threading

_LOG = logging.getLogger(__name__)
# The heavy imports of the first page run: TensorFlow, tf-keras and NSL (through core), the models,
# attacks and data modules and the sections' plotting and store libraries (through dashboard.resources).
MODULES: tuple[str, ...] = ("core", "dashboard.resources")
_done = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None


def begin() -> None:
    """Start importing :data:`MODULES` in a background thread (once per process)."""
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="beanguard-warm-start", daemon=True)
            _thread.start()


def wait() -> None:
    """Block until the warm-up imports are done; returns at once when none was started (AppTest, notebooks)."""
    with _started:
        thread = _thread
    if thread is not None:
        _done.wait()


def _import_all() -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001  (the page's own imports will raise it again, where a user sees it)
        _LOG.exception("Could not import the page's libraries ahead of the first browser")
    finally:
        _done.set()
