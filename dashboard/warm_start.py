"""Imports the libraries the page needs while the first browser is still loading the page.

Why: importing TensorFlow with tf-keras and NSL takes 3–5 s of CPU, the largest part of
``streamlit run`` → first verdicts. Streamlit runs the page's script only once a browser has
connected, so without this the import starts after the browser has loaded Streamlit's own page and
everything waits for it. ``dashboard/app.py`` calls :func:`begin` as the server starts; the page's
script calls :func:`wait` before its own imports, so it never imports a module this thread is
halfway through (two threads importing the same packages in different orders can deadlock on the
import locks). Not to be confused with the background *warm-up* of ``dashboard/resources.py``,
which traces the attack graphs once the first verdicts are drawn.
"""

from __future__ import annotations

import importlib
import logging
import threading

_LOG = logging.getLogger(__name__)
# The heavy imports of the first page run: TensorFlow, tf-keras and NSL (through core), the models,
# attacks and data modules and the sections' plotting and store libraries (through dashboard.resources).
MODULES: tuple[str, ...] = ("core", "dashboard.resources")
_starting = threading.Lock()
_thread: threading.Thread | None = None


def begin() -> None:
    """Start importing :data:`MODULES` in a background thread (once per process)."""
    global _thread
    with _starting:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="beanguard-warm-start", daemon=True)
            _thread.start()


def wait() -> None:
    """Block until those imports are done; returns at once when none was started (AppTest, notebooks)."""
    if _thread is not None:
        _thread.join()


def _import_all() -> None:
    try:
        for name in MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001  (the page's own imports will raise it again, where a user sees it)
        _LOG.exception("Could not import the page's libraries ahead of the first browser")
