"""Where a Streamlit server's GIL time goes: a py-spy ``--gil`` profile (collapsed stacks) in a few lines.

    python -m bench.load_test --students 30 --duration 180 --profile 60     # writes bench/results/<label>-gil-<replica>.txt
    python -m bench.gil_profile bench/results/<label>-gil-one_server.txt --seconds 60

py-spy samples ``--rate`` times a second and, with ``--gil``, keeps a sample only when some thread
holds the GIL; so samples / (rate × seconds) is the share of the time the GIL was busy — for a
Python server under the GIL, how close the process is to saturation. Each stack is put in the
first bucket whose marker it contains (what the server was doing), then split by the library its
innermost frames are in (what it spent the time on).
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

BUCKETS = (  # (name, markers in the stack), the first bucket with a marker in the stack wins
    # A full run calls the fragments too (live_sections, the polls): it comes first, so that the
    # fragment buckets hold only the fragments' own reruns.
    ("full page run", ("main (dashboard/page_script.py",)),
    ("a student's change (live fragment)", ("live_sections (dashboard/page_script.py",)),
    ("class poll (class_sync.watch)", ("_check (dashboard/class_sync.py",)),
    ("progress poll (retrain_panel)", ("_progress (dashboard/retrain_panel.py",)),
    ("class board refresh", ("_board (dashboard/class_board.py",)),
    ("a background job's progress poll (jobs.watch)", ("_watch (dashboard/jobs.py",)),
    # the threads' own functions: py-spy's collapsed stacks carry no thread names
    ("background threads (warm-up, jobs)", ("_trace_everything (dashboard/resources.py", "_run (dashboard/jobs.py", "_watch (dashboard/retraining.py")),
    ("script runner outside the page's code", ("script_runner",)),
    ("event loop: websocket and messages", ("asyncio",)),
)
LIBRARIES = ("plotly", "PIL", "tensorflow", "pandas", "pyarrow", "narwhals", "sqlalchemy", "google/protobuf", "copy.py", "json", "numpy")


def read(path: Path) -> list[tuple[list[str], int]]:
    """Collapsed stacks (py-spy's ``raw`` format, which ``bench.first_screen`` reads too): ``frame;frame;… count`` per line."""
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def library(frames: list[str]) -> str:
    """The library of the stack's innermost interesting frames (Plotly's deepcopy counts as Plotly)."""
    text = ";".join(frames[-12:])
    for name in LIBRARIES:
        if name in text:
            return {"copy.py": "deepcopy", "google/protobuf": "protobuf"}.get(name, name)
    last = frames[-1] if frames else ""
    for name in ("streamlit", "dashboard", "core", "websockets", "uvicorn", "starlette"):
        if name in last:
            return name
    return "other"


def summarize(stacks: list[tuple[list[str], int]], rate: float, seconds: float) -> dict:
    total = sum(count for _, count in stacks)
    buckets: collections.Counter = collections.Counter()
    detail: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for frames, count in stacks:
        text = ";".join(frames)
        bucket = next((name for name, markers in BUCKETS if any(marker in text for marker in markers)), "other")
        buckets[bucket] += count
        detail[bucket][library(frames)] += count
    return {"samples": total, "gil_busy_share": round(total / (rate * seconds), 3), "buckets": buckets, "detail": detail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--seconds", type=float, required=True, help="how long py-spy sampled")
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy's samples per second")
    args = parser.parse_args(argv)
    for path in args.profiles:
        result = summarize(read(path), args.rate, args.seconds)
        total = result["samples"] or 1
        print(f"\n== {path.name}: GIL busy {result['gil_busy_share']:.0%} of {args.seconds:g} s ({result['samples']} samples at {args.rate:g}/s) ==")
        for bucket, count in result["buckets"].most_common():
            top = ", ".join(f"{name} {100 * n / total:.1f}%" for name, n in result["detail"][bucket].most_common(5))
            print(f"{100 * count / total:5.1f}%  {bucket:<40} {top}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
