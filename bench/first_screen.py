"""Where the first screen's seconds go: ``streamlit run`` to both verdicts in Chromium, profiled.

The server starts under py-spy (sampling, never pausing it); a headless Chromium opens the page as
soon as the server listens and waits until both verdict cards are drawn. Then the samples are
sorted into the phases of a first page (the first matching phase of a stack wins, in this order):

- loading the two models (``resources.load_models``), the test split (``resources.load_test_split``),
  the opening photo (``resources._opening_example``), the first interaction (the attack, both
  models' answers and conv maps: ``resources._interaction``), the explanations (``_explanations``);
- imports (any other ``import``: TensorFlow, NSL, Streamlit, Plotly, the dashboard's modules);
- the rest of the page's script (``dashboard/page_script.py``: drawing, the store, captions);
- everything else in the server (Streamlit's start, its event loop, sending the page).

A phase's seconds are its samples over the rate: CPU-side time on one thread, so two threads at
once count twice. The wall-clock marks (server listening, page opened, verdicts) come from the
client. Repeat with ``--starts N``: the figures are the medians. ``--before REF`` also starts that
git ref's page (``git archive``, no checkout touched), a start of each in turn, so both meet the
same machine; each page keeps its own runs folder (and so its remembered opening photo) between
its starts. ``--offline`` starts the pages as a machine with no Beans folder and no network would
(no data setting, an empty TFDS cache, the download server at a closed port): they show the test
photos shipped with Beanguard.

    BEANS_DATA_DIR=../shared/beans python -m bench.first_screen [--starts 3] [--no-profile] [--before REF] [--offline]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.beans import REPO_ROOT
from bench.bench_dashboard import checkout
from bench.gil_profile import read
from tests.support.server import CHROMIUM, CHROMIUM_ARGS, free_port, wait_until_healthy

RATE = 200  # samples a second
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("models", ("load_models",)),
    ("test split", ("load_test_split",)),
    ("opening photo", ("_opening_example",)),
    ("first interaction", ("_interaction",)),
    ("explanations", ("_explanations",)),
    ("imports", ("_find_and_load",)),
    ("page script", ("dashboard/page_script.py",)),
)
OTHER = "server (Streamlit's start, event loop, sending)"
OUTPUT = REPO_ROOT / "bench" / "results" / "first_screen.json"


def phase_of(stack: str) -> str:
    for name, markers in PHASES:
        if any(marker in stack for marker in markers):
            return name
    return OTHER


def phase_seconds(raw: Path) -> dict[str, float]:
    """py-spy's raw output (one ``frame;frame;... count`` line per stack) summed per phase."""
    counts: Counter[str] = Counter()
    for frames, count in read(raw):
        counts[phase_of(";".join(frames))] += count
    return {name: round(samples / RATE, 2) for name, samples in counts.most_common()}


def one_start(browser, root: Path, scratch: Path, env: dict[str, str], profile: bool) -> dict:
    port = free_port()
    raw = scratch / f"profile-{port}.txt"
    command = [
        sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
    ]  # fmt: skip
    if profile:
        command = ["py-spy", "record", "--nonblocking", "--rate", str(RATE), "--format", "raw", "--output", str(raw), "--", *command]
    log = open(scratch / f"server-{port}.log", "wb")
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    marks: dict[str, float] = {}
    try:
        wait_until_healthy(port, server, interval=0.05)  # a fine poll: the time it answers is measured
        marks["listening_s"] = time.perf_counter() - started
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"http://127.0.0.1:{port}/")
        marks["page_open_s"] = time.perf_counter() - started
        page.wait_for_function("() => document.querySelectorAll('.bg-verdict').length === 2", timeout=120_000)
        marks["verdicts_s"] = time.perf_counter() - started
        page.close()
    finally:
        os.killpg(server.pid, signal.SIGINT)  # py-spy writes its file on SIGINT, then stops the server
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    result = {key: round(value, 2) for key, value in marks.items()}
    if profile and raw.is_file():
        result["phases_s"] = phase_seconds(raw)
    return result


def summary_of(starts: list[dict]) -> dict:
    """Medians of the wall-clock marks and of each phase's seconds over the starts of one page."""
    summary = {"median": {key: round(statistics.median(start[key] for start in starts), 2) for key in ("listening_s", "page_open_s", "verdicts_s")}}
    phases = [start["phases_s"] for start in starts if "phases_s" in start]
    if phases:
        names = sorted({name for p in phases for name in p}, key=lambda name: -statistics.median(p.get(name, 0.0) for p in phases))
        summary["median_phases_s"] = {name: round(statistics.median(p.get(name, 0.0) for p in phases), 2) for name in names}
    return {**summary, "starts": starts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.first_screen", description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true", help="time only (py-spy costs the server a little)")
    parser.add_argument("--before", help="also start this git ref's page, a start of each in turn (e.g. main)")
    parser.add_argument("--offline", action="store_true", help="no Beans folder, an empty TFDS cache and no download server")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    data_dir = str(Path(os.environ["BEANS_DATA_DIR"]).resolve()) if os.environ.get("BEANS_DATA_DIR") else ""

    with tempfile.TemporaryDirectory(prefix="first-screen-") as scratch, sync_playwright() as playwright:
        scratch_path = Path(scratch)
        pages = {"after": REPO_ROOT}
        if args.before:
            pages = {"before": checkout(args.before, scratch_path / "before"), **pages}
        starts: dict[str, list[dict]] = {label: [] for label in pages}
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for number in range(args.starts):
                for label, root in pages.items():
                    env = {"BEANGUARD_RUNS_DIR": str(scratch_path / f"runs-{label}"), "BEANGUARD_TEACHER_PASSCODE": ""}
                    if data_dir:  # absolute: the --before page's server runs in its own folder
                        env["BEANS_DATA_DIR"] = data_dir
                    if args.offline:
                        env.update(BEANS_DATA_DIR="", TFDS_DATA_DIR=str(scratch_path / "empty-tfds"), BEANS_DOWNLOAD_SERVER=f"127.0.0.1:{free_port()}")
                    starts[label].append(one_start(browser, root, scratch_path, env, not args.no_profile))
                    print(json.dumps({"page": label, **starts[label][-1]}), flush=True)
        finally:
            browser.close()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    result = {
        "commit": commit, "before": args.before, "offline": args.offline, "load_average": Path("/proc/loadavg").read_text().split()[:3],
        "pages": {label: summary_of(page_starts) for label, page_starts in starts.items()},
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(json.dumps({label: {key: value for key, value in page.items() if key != "starts"} for label, page in result["pages"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
