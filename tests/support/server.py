"""A real ``streamlit run dashboard/app.py`` for the tests and benchmarks: its environment, starting,
waiting for and stopping it, and reading a Chromium page drawn by it.

Only 127.0.0.1 is ever served or contacted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from tests.support.beans import REPO_ROOT, tiny_beans, tiny_checkpoints

PAGE_SCRIPT = REPO_ROOT / "dashboard" / "page_script.py"  # what AppTest runs; servers start dashboard/app.py
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def server_env(base: Path, **overrides: str) -> dict[str, str]:
    """A server on the tiny Beans folder and checkpoints made under ``base``: no teacher passcode,
    no background warm-up (no tracing thread coming and going while a test counts threads or times
    messages), runs and the class store in ``base``. ``overrides`` replace or add variables."""
    return {
        "BEANS_DATA_DIR": str(tiny_beans(base)),
        "BEANGUARD_CHECKPOINT_DIR": str(tiny_checkpoints(base)),
        "BEANGUARD_TEACHER_PASSCODE": "",
        "BEANGUARD_WARM_UP": "0",
        **overrides,
    }


WARM_UP_DONE = "Beanguard warm-up finished"  # the line dashboard.resources prints once a server's warm-up has run


def warm_up_logged(*logs: Path) -> bool:
    """Whether every server writing one of these logs has finished its warm-up (graphs traced)."""
    return all(log.exists() and WARM_UP_DONE in log.read_text(errors="replace") for log in logs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    port: int, env: dict[str, str], log_path: Path, extra_options: tuple[str, ...] | list[str] = (), root: Path = REPO_ROOT
) -> subprocess.Popen:
    """``streamlit run dashboard/app.py`` on 127.0.0.1:``port``, output to ``log_path``; ``root``: another
    copy of the repository (the benchmark's "before" measurement runs an older checkout). Unless ``env``
    says otherwise, its runs folder is ``runs/`` beside the log, never the repository's."""
    env = {"BEANGUARD_RUNS_DIR": str(log_path.parent / "runs"), **env}
    command = [
        sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--client.showErrorDetails", "full", *extra_options,
    ]  # fmt: skip
    log = open(log_path, "wb")
    return subprocess.Popen(command, cwd=root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def wait_until_healthy(port: int, server: subprocess.Popen, timeout: float = 120.0, interval: float = 0.3) -> None:
    """Block until the server answers its health check (it imports TensorFlow first), asking every ``interval`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


@contextlib.contextmanager
def running_server(
    env: dict[str, str], log_path: Path, extra_options: tuple[str, ...] | list[str] = (), root: Path = REPO_ROOT, wait: bool = True
) -> Iterator[tuple[int, subprocess.Popen]]:
    """A server on a free port for the ``with`` block: (port, process); stopped however the block ends.
    With ``wait``, the block starts once the health check answers."""
    port = free_port()
    server = start_server(port, env, log_path, extra_options, root)
    try:
        if wait:
            wait_until_healthy(port, server)
        yield port, server
    finally:
        stop_server(server)


def shows_verdict(delta) -> bool:
    """A websocket delta (``streamlit_client.Delta``) that draws one model's verdict card."""
    return delta.kind == "markdown" and 'class="bg-verdict' in delta.text



def open_when_ready(page, url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    """Navigate once the server accepts connections (it imports TensorFlow first)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode} before serving")
        try:
            page.goto(url, timeout=5_000)
            return
        except Exception:  # noqa: BLE001  connection refused until the server listens
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def all_bar_values(page, name: str) -> list[list[float]]:
    """A model's perturbed probabilities in every chart of its box, as Plotly holds them (exact).

    After a budget move the box can hold the new chart and the old one for a while, in either
    order and neither marked stale (CI saw both for over 30 s), so :func:`wait_for_bars` picks the new one.
    """
    return page.locator(f".st-key-prediction_{name} .js-plotly-plot").evaluate_all(
        "plots => plots.map(plot => plot._fullData && plot._fullData[1] ? Array.from(plot._fullData[1].x) : null).filter(Boolean)"
    )


def wait_for_bars(page, differing_from: dict | None = None, timeout: float = 30.0) -> dict:
    """Both models' perturbed probabilities, once drawn (and, if given, a chart different from before)."""
    deadline = time.monotonic() + timeout
    while True:
        values = {}
        for name in ("baseline", "adversarial"):
            charts = all_bar_values(page, name)
            new = [chart for chart in charts if differing_from is None or chart != differing_from[name]]
            values[name] = new[0] if new else (charts[-1] if charts else None)
        drawn = all(v is not None for v in values.values())
        changed = differing_from is None or all(values[name] != differing_from[name] for name in values)
        if (drawn and changed) or time.monotonic() > deadline:
            return values
        page.wait_for_timeout(20)
