"""Where the test suite's CPU goes: pytest itself, the Streamlit servers it starts, Chromium, the rest.

    BEANS_DATA_DIR=../shared/beans python -m bench.suite_cpu tests/test_controls_browser.py
    BEANS_DATA_DIR=../shared/beans python -m bench.suite_cpu -- -n 2 --dist loadfile tests

Why: CI must stay under 15 minutes on 2 cores, and both workers are busy all the time, so the suite
is as fast as its CPU seconds allow; this says whose seconds they are. Runs pytest with the given
arguments and samples /proc twice a second for the processes descended from it, keeping each
process's last user + system time (a process that ends between samples loses at most 0.5 s).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
KINDS = (  # first match wins; pytest-xdist's workers are `python -c "...exec(eval(sys.stdin.readline()))"`
    ("chromium", ("chromium", "chrome")), ("streamlit servers", ("streamlit",)), ("nginx and PostgreSQL", ("nginx", "postgres")),
    ("pytest and its workers", ("pytest", "execnet", "exec(eval(sys.stdin.readline()))")),
)


def kind_of(command: str) -> str:
    return next((name for name, marks in KINDS if any(mark in command for mark in marks)), "other children (training runs and other helpers)")


def snapshot() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command line, CPU seconds) for every process readable now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / TICK)
    return found


def descends_from(pid: int, root: int, table: dict[int, tuple[int, str, float]]) -> bool:
    while pid in table and pid not in (0, 1):
        if pid == root:
            return True
        pid = table[pid][0]
    return pid == root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("pytest_args", nargs="+", help="what to pass to pytest (after --)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", *args.pytest_args], cwd=REPO, start_new_session=True)
    last: dict[int, tuple[str, float]] = {}
    while process.poll() is None:
        table = snapshot()
        for pid, (_, command, seconds) in table.items():
            if descends_from(pid, process.pid, table) or pid in last:
                last[pid] = (kind_of(command) if pid != process.pid else "pytest and its workers", seconds)
        time.sleep(0.5)
    wall = time.monotonic() - started
    totals = collections.Counter()
    for kind, seconds in last.values():
        totals[kind] += seconds
    print(f"pytest exit code {process.returncode}, wall {wall:.0f} s, CPU {sum(totals.values()):.0f} s:")
    for kind, seconds in totals.most_common():
        print(f"  {kind:48s} {seconds:7.1f} s  ({seconds / max(sum(totals.values()), 1e-9):.0%})")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
