"""The server starts importing TensorFlow and the page's libraries as soon as it listens, before any
browser has connected (``dashboard/warm_start.py``): the first browser's page then finds them loaded
instead of waiting ~3 s for the import after it connects.

A real ``streamlit run dashboard/app.py``; whether TensorFlow is loaded is read from the process's
memory map (its native library), so nothing in the server is asked or changed by looking.
"""

from __future__ import annotations

import time
from pathlib import Path

from dashboard import warm_start
from tests.support.server import running_server

TENSORFLOW_LIBRARY = "_pywrap_tensorflow_internal"
NO_BROWSER_WAIT_S = 60.0  # the import takes 3-4 s on a quiet machine, several times that beside another test worker


def tensorflow_loaded(pid: int) -> bool:
    return TENSORFLOW_LIBRARY in Path(f"/proc/{pid}/maps").read_text()


def test_the_server_imports_tensorflow_before_any_browser_connects(tmp_path):
    env = dict(BEANGUARD_RUNS_DIR=str(tmp_path / "runs"), BEANGUARD_WARM_UP="0")
    with running_server(env, tmp_path / "server.log") as (_port, server):
        deadline = time.monotonic() + NO_BROWSER_WAIT_S
        while not tensorflow_loaded(server.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert tensorflow_loaded(server.pid), f"no browser connected and TensorFlow was not imported in {NO_BROWSER_WAIT_S:.0f} s"


def test_a_page_run_without_a_server_start_does_not_wait():
    started = time.monotonic()
    warm_start.wait()  # AppTest and notebooks run the page's script with no server lifespan
    assert time.monotonic() - started < 0.1
