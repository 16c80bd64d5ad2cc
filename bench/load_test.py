"""A classroom on one machine: N simulated students on the real ``streamlit run`` server.

Each student is one websocket session speaking the browser's protocol (``tests/streamlit_client.py``):
it opens the page, then every 1-3 s (a human pace) moves the step size, switches the norm, picks
another image or another conv layer, and measures what it waits for: the time from sending the
widget change to receiving both models' updated predictions (for a layer change: the new activation
maps). Optionally a teacher session (Teacher button, passcode, form) starts a retraining run
part-way through; then the waits are split into before / during training / after the class was
switched to the new run.

    BEANS_DATA_DIR=../shared/beans python bench/load_test.py --students 30 --duration 300
    BEANS_DATA_DIR=../shared/beans python bench/load_test.py --students 30 --duration 300 --retrain-at 150

The class starts once the server has traced every attack graph in the background (it logs that;
``--during-warm-up`` starts at once instead), as when a teacher starts the server before the lesson.

Bounded: at most 60 students and 15 minutes, and it only ever talks to 127.0.0.1. It starts its own
server on a free port with a copy of the checkpoints and a scratch runs folder (a retraining run
writes there, never into ``checkpoints/`` or ``runs/``), samples the server's resident memory, and
writes ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from dashboard_helpers import free_port, shows_verdict, start_server, stop_server  # noqa: E402
from streamlit_client import StreamlitSession, number_value, option_value, slider_value, text_value, trigger  # noqa: E402

MAX_STUDENTS = 60
MAX_DURATION_S = 900
WAIT_TIMEOUT_S = 30.0  # a change that shows nothing for this long counts as an error
TARGET_P95_S = 1.0
TARGET_P95_TRAINING_S = 2.0
PASSCODE = "load-test"
MODELS_CAPTION = "Models trained"  # the page's first caption names the models' training time
ACTIONS = {"step_size": 0.5, "image": 0.2, "norm": 0.15, "layer": 0.15}  # how often a student does what


@dataclass
class Wait:
    student: int
    action: str
    sent_at: float  # seconds since the test started
    seconds: float | None  # None: no update within WAIT_TIMEOUT_S


@dataclass
class Classroom:
    """Everything measured during one run."""

    started: float = field(default_factory=time.monotonic)
    waits: list[Wait] = field(default_factory=list)
    connect_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    memory: list[tuple[float, float, int]] = field(default_factory=list)  # (t, RSS MiB, interactions so far)
    training_started: float | None = None
    models_swapped: float | None = None
    training_message: str | None = None

    def now(self) -> float:
        return time.monotonic() - self.started


async def student(number: int, port: int, deadline: float, room: Classroom, seed: int) -> StreamlitSession | None:
    """One student: open the page, then change something every 1-3 s until the deadline."""
    rng = random.Random(seed * 1000 + number)
    session = StreamlitSession(port, watch=(MODELS_CAPTION,))
    started = time.perf_counter()
    try:
        await session.connect(timeout=WAIT_TIMEOUT_S * 4)
    except Exception as error:  # noqa: BLE001  any failure to open the page is a session error
        room.errors.append(f"student {number}: could not open the page ({type(error).__name__}: {error})")
        await session.close()
        return None
    room.connect_seconds.append(time.perf_counter() - started)
    try:
        while time.monotonic() + 3.0 < deadline:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
            sent_at = room.now()
            try:
                seconds = await _act(session, action, rng)
            except asyncio.TimeoutError:
                room.waits.append(Wait(number, action, sent_at, None))
                room.errors.append(
                    f"student {number}: no update {WAIT_TIMEOUT_S:.0f} s after a {action} change at {sent_at:.0f} s; "
                    f"last messages: {' | '.join(session.recent[-8:])}"
                )
                continue
            except Exception as error:  # noqa: BLE001
                room.errors.append(f"student {number}: {action} change at {sent_at:.0f} s failed ({type(error).__name__}: {error})")
                return session
            room.waits.append(Wait(number, action, sent_at, seconds))
    finally:
        for text in session.log.exceptions:
            room.errors.append(f"student {number}: exception shown on the page: {text}")
    return session


async def _act(session: StreamlitSession, action: str, rng: random.Random) -> float:
    """Make one change through the widgets the page shows; seconds until the page updated."""
    widgets = session.widgets
    if action == "step_size":
        norm = list(widgets["norm"].proto.options).index(session.values["norm"].string_value) if "norm" in session.values else 0
        slider = widgets[("epsilon_infinity", "epsilon_l2", "epsilon_l1")[norm]].proto
        steps = int(round((slider.max - slider.min) / slider.step))
        return await session.change(slider.id.split("-", 2)[2], slider_value(slider.min + rng.randint(0, steps) * slider.step), shows_verdict, 2, WAIT_TIMEOUT_S)
    if action == "norm":
        return await session.change("norm", option_value(rng.choice(list(widgets["norm"].proto.options))), shows_verdict, 2, WAIT_TIMEOUT_S)
    if action == "image":
        if rng.random() < 0.3:
            return await session.change("test_class", option_value(rng.choice(list(widgets["test_class"].proto.options))), shows_verdict, 2, WAIT_TIMEOUT_S)
        index = next(key for key in reversed(list(widgets)) if key.startswith("test_index_"))
        slider = widgets[index].proto
        return await session.change(index, slider_value(rng.randint(int(slider.min), int(slider.max))), shows_verdict, 2, WAIT_TIMEOUT_S)
    layer = widgets["layer"]
    return await session.change(
        "layer", option_value(rng.choice(list(layer.proto.options))),
        lambda delta: delta.kind == "plotly_chart" and delta.fragment_id == layer.fragment_id, 1, WAIT_TIMEOUT_S,
    )  # fmt: skip


async def teacher(port: int, at: float, epochs: int, room: Classroom, runs_dir: Path) -> None:
    """At ``at`` seconds: press Teacher, unlock, start a retraining run; then watch for the switch."""
    await asyncio.sleep(max(0.0, at - room.now()))
    session = StreamlitSession(port)
    try:
        await session.connect(timeout=WAIT_TIMEOUT_S * 4)
        passcode_field = session.expect(lambda delta: delta.kind == "text_input")
        await session.send_rerun(session.widgets["teacher_button"].fragment_id, triggers={"teacher_button": trigger()})
        await asyncio.wait_for(passcode_field, WAIT_TIMEOUT_S)
        session.set_value("teacher_passcode", text_value(PASSCODE))
        form = session.expect(lambda delta: delta.kind == "number_input")
        await session.send_rerun(session.widgets["teacher_unlock"].fragment_id, triggers={"teacher_unlock": trigger()})
        await asyncio.wait_for(form, WAIT_TIMEOUT_S)
        session.set_value("train_adversarial_epochs", number_value(epochs))
        answer = session.expect(lambda delta: delta.kind == "alert" and "etrain" in delta.text)
        pointer = runs_dir / "active.json"
        await session.send_rerun(session.widgets["train_start"].fragment_id, triggers={"train_start": trigger()})
        await asyncio.wait_for(answer, WAIT_TIMEOUT_S)
        room.training_started = room.now()
        room.training_message = next((text for text in reversed(session.log.texts) if "etrain" in text), None)
        while not pointer.exists():  # the manager writes it when the new run is shown to the class
            await asyncio.sleep(0.5)
        room.models_swapped = room.now()
    except Exception as error:  # noqa: BLE001
        room.errors.append(f"teacher: retraining could not be started or watched ({type(error).__name__}: {error})")
    finally:
        room.errors.extend(f"teacher: exception shown on the page: {text}" for text in session.log.exceptions)
        await session.close()


def resident_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def sample_memory(pid: int, room: Classroom, deadline: float, every: float = 2.0) -> None:
    while time.monotonic() < deadline:
        rss = resident_mib(pid)
        if rss is not None:
            room.memory.append((room.now(), rss, len(room.waits)))
        await asyncio.sleep(every)


async def run_classroom(port: int, pid: int, students: int, duration: float, seed: int, retrain_at: float | None, retrain_epochs: int, runs_dir: Path) -> tuple[Classroom, list]:
    room = Classroom()
    deadline = time.monotonic() + duration
    tasks = [asyncio.create_task(sample_memory(pid, room, deadline))]
    if retrain_at is not None:
        tasks.append(asyncio.create_task(teacher(port, retrain_at, retrain_epochs, room, runs_dir)))
    pupils = []
    for number in range(students):  # students arrive over the first ~10 s, not in the same millisecond
        pupils.append(asyncio.create_task(student(number, port, deadline, room, seed)))
        await asyncio.sleep(10.0 / students)
    sessions = await asyncio.gather(*pupils)
    await asyncio.gather(*tasks)
    return room, [session for session in sessions if session is not None]


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    return {
        "count": len(values),
        "p50_s": round(float(np.percentile(array, 50)), 3),
        "p95_s": round(float(np.percentile(array, 95)), 3),
        "max_s": round(float(array.max()), 3),
    }


def memory_summary(room: Classroom, warm_up_s: float) -> dict:
    """RSS at start/end and its slope per interaction after warm-up (flat = no per-interaction growth)."""
    if not room.memory:
        return {}
    times, rss, counts = (np.asarray(column, float) for column in zip(*room.memory))
    after = times >= warm_up_s
    slope = None
    if after.sum() >= 3 and np.ptp(counts[after]) > 0:
        slope = float(np.polyfit(counts[after], rss[after], 1)[0]) * 1024  # KiB per interaction
    return {
        "rss_start_mib": round(float(rss[0]), 1),
        "rss_after_warm_up_mib": round(float(rss[after][0]), 1) if after.any() else None,
        "rss_end_mib": round(float(rss[-1]), 1),
        "rss_max_mib": round(float(rss.max()), 1),
        "growth_kib_per_interaction_after_warm_up": None if slope is None else round(slope, 2),
        "timeline": [  # (seconds, RSS MiB, interactions so far), every ~30 s
            (round(float(t)), round(float(r), 1), int(c)) for t, r, c in zip(times[::15], rss[::15], counts[::15])
        ],
    }


def summarize(room: Classroom, sessions: list, args: argparse.Namespace) -> dict:
    answered = [w for w in room.waits if w.seconds is not None]
    summary = {
        "label": args.label,
        "students": args.students,
        "duration_s": args.duration,
        "interactions": len(room.waits),
        "interactions_per_s": round(len(room.waits) / args.duration, 2),
        "wait": percentiles([w.seconds for w in answered]),
        "wait_by_action": {action: percentiles([w.seconds for w in answered if w.action == action]) for action in ACTIONS},
        "page_open": percentiles(room.connect_seconds),
        "errors": len(room.errors),
        "error_samples": room.errors[:20],
        "memory": memory_summary(room, args.warm_up),
        "cpu_count": os.cpu_count(),
    }
    if args.retrain_at is not None:
        start, swap = room.training_started, room.models_swapped
        during = [w.seconds for w in answered if start is not None and w.sent_at >= start and (swap is None or w.sent_at < swap)]
        before = [w.seconds for w in answered if start is None or w.sent_at < start]
        after = [w.seconds for w in answered if swap is not None and w.sent_at >= swap]
        new_stamp = None
        pointer = Path(args.runs_dir) / "active.json"
        if swap is not None and pointer.exists():
            run_folder = Path(args.runs_dir) / json.loads(pointer.read_text())["run"].split("/", 1)[1]
            new_stamp = json.loads((run_folder / "metadata.json").read_text()).get("trained_at")
        on_new = sum(1 for s in sessions if new_stamp and new_stamp in s.log.latest.get(MODELS_CAPTION, ""))
        summary["retraining"] = {
            "started_at_s": start,
            "swapped_at_s": swap,
            "message": room.training_message,
            "wait_before": percentiles(before),
            "wait_during_training": percentiles(during),
            "wait_after_swap": percentiles(after),
            "sessions_showing_new_models": f"{on_new}/{len(sessions)}",
            "training_seconds": None if start is None or swap is None else round(swap - start, 1),
        }
    return summary


def print_summary(summary: dict) -> None:
    wait = summary["wait"]
    print(f"\n== {summary['label']}: {summary['students']} students x {summary['duration_s']:.0f} s ==")
    if summary.get("warm_up_s") is not None:
        print(f"class started after the server's warm-up ({summary['warm_up_s']} s after start)")
    print(f"interactions          {summary['interactions']} ({summary['interactions_per_s']}/s)")
    if wait.get("count"):
        verdict = "PASS" if wait["p95_s"] <= TARGET_P95_S else "OVER"
        print(f"wait p50 / p95 / max  {wait['p50_s']:.3f} / {wait['p95_s']:.3f} / {wait['max_s']:.3f} s   (target p95 <= {TARGET_P95_S:g} s: {verdict})")
    for action, figures in summary["wait_by_action"].items():
        if figures.get("count"):
            print(f"  {action:<10}          p50 {figures['p50_s']:.3f}  p95 {figures['p95_s']:.3f}  max {figures['max_s']:.3f}  (n={figures['count']})")
    page = summary["page_open"]
    if page.get("count"):
        print(f"page open p50 / max   {page['p50_s']:.2f} / {page['max_s']:.2f} s")
    print(f"errors                {summary['errors']}")
    for line in summary["error_samples"][:5]:
        print(f"  {line}")
    memory = summary["memory"]
    if memory:
        print(
            f"server RSS            start {memory['rss_start_mib']} MiB, after warm-up {memory['rss_after_warm_up_mib']} MiB, "
            f"end {memory['rss_end_mib']} MiB, max {memory['rss_max_mib']} MiB; "
            f"growth {memory['growth_kib_per_interaction_after_warm_up']} KiB/interaction after warm-up"
        )
    retraining = summary.get("retraining")
    if retraining:
        print(f"retraining            started {retraining['started_at_s']} s, swapped {retraining['swapped_at_s']} s ({retraining['training_seconds']} s)")
        for phase in ("wait_before", "wait_during_training", "wait_after_swap"):
            figures = retraining[phase]
            if figures.get("count"):
                print(f"  {phase:<20}  p50 {figures['p50_s']:.3f}  p95 {figures['p95_s']:.3f}  max {figures['max_s']:.3f}  (n={figures['count']})")
        print(f"  sessions showing the new models at the end: {retraining['sessions_showing_new_models']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of classroom after the server is up")
    parser.add_argument("--retrain-at", type=float, help="seconds into the run at which the teacher starts retraining")
    parser.add_argument("--retrain-epochs", type=int, default=6, help="adversarial epochs of that run (the quick recipe keeps the shipped baseline)")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds excluded from the memory-growth fit")
    parser.add_argument("--checkpoint-dir", type=Path, default=REPO / "checkpoints", help="copied; the copy is served")
    parser.add_argument("--label", default=None, help="name of the results file (default: derived from the options)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--during-warm-up", action="store_true", help="start the class while the server still traces its attack graphs")
    parser.add_argument("--server-option", action="append", default=[], help="extra `streamlit run` option, e.g. runner.postScriptGC=true")
    args = parser.parse_args(argv)
    if not 1 <= args.students <= MAX_STUDENTS or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--students must be 1..{MAX_STUDENTS} and --duration 1..{MAX_DURATION_S} s")
    if not os.environ.get("BEANS_DATA_DIR"):
        parser.error("set BEANS_DATA_DIR to the Beans folder (e.g. ../shared/beans)")
    args.label = args.label or f"load_{args.students}x{int(args.duration)}" + ("_retrain" if args.retrain_at is not None else "")

    with tempfile.TemporaryDirectory(prefix="beanguard-load-") as scratch:
        checkpoint_copy = Path(scratch) / "checkpoints"
        shutil.copytree(args.checkpoint_dir, checkpoint_copy)
        args.checkpoint_copy = str(checkpoint_copy)
        args.runs_dir = str(Path(scratch) / "runs")
        port = free_port()
        env = {"BEANGUARD_CHECKPOINT_DIR": str(checkpoint_copy), "BEANGUARD_RUNS_DIR": args.runs_dir, "BEANGUARD_TEACHER_PASSCODE": PASSCODE}
        extra = [f"--{option.split('=')[0]}={option.split('=', 1)[1]}" for option in args.server_option]
        server = start_server(port, env, Path(scratch) / "server.log", extra_options=extra)
        try:
            started = time.monotonic()
            asyncio.run(_wait_until_serving(port, server))
            warm_up_s = None if args.during_warm_up else wait_for_warm_up(Path(scratch) / "server.log", started)
            room, sessions = asyncio.run(
                run_classroom(port, server.pid, args.students, args.duration, args.seed, args.retrain_at, args.retrain_epochs, Path(args.runs_dir))
            )
            summary = summarize(room, sessions, args)
            summary["warm_up_s"] = warm_up_s
        finally:
            stop_server(server)
            log_tail = (Path(scratch) / "server.log").read_text(errors="replace")[-3000:]
    summary["server_options"] = args.server_option
    summary["server_log_tail"] = log_tail
    print_summary(summary)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.label}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"(written to bench/results/{args.label}.json)")
    return 0


def wait_for_warm_up(log: Path, started: float, timeout: float = 900.0) -> float | None:
    """Seconds from server start until its background tracing of every attack graph is done (the
    server logs it), as a teacher starting the server before class would wait; None on timeout."""
    while time.monotonic() - started < timeout:
        if "Beanguard warm-up finished" in log.read_text(errors="replace"):
            return round(time.monotonic() - started, 1)
        time.sleep(1.0)
    return None


async def _wait_until_serving(port: int, server, timeout: float = 120.0) -> None:
    """Open one page (this also loads the models and warms the caches, as a teacher would)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        session = StreamlitSession(port)
        try:
            await session.connect(timeout=timeout)
            await session.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
