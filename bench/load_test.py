"""A classroom or a school on one machine: N simulated students on the real server, or on N replicas behind nginx.

The students (``bench/students.py``) speak the browser's protocol; each measures what it waits for.

    BEANS_DATA_DIR=../shared/beans python -m bench.load_test --students 30 --duration 300
    BEANS_DATA_DIR=../shared/beans python -m bench.load_test --students 30 --duration 300 --retrain-at 150
    BEANS_DATA_DIR=../shared/beans python -m bench.load_test --challenge --students 30 --duration 120
    BEANS_DATA_DIR=../shared/beans python -m bench.load_test --challenge --replicas 1,2 --students 60 --store postgresql
    BEANS_DATA_DIR=../shared/beans python -m bench.load_test --idle --students 30 --duration 180 --profile 60   # then bench/gil_profile.py

``--replicas 0`` (the default) is one ``streamlit run`` that the students reach directly; ``N``
starts N replicas with nginx in front (``deploy/serve.py``, sticky cookie); ``1,2`` measures each
in turn in the same run, for a comparison. ``--challenge``: a round is open, students join it with
its code and a nickname and some of their actions press **Submit this change**, while the class
board (``?board=1``) refreshes every 2 s; attempts the store holds are compared with those the
students' pages acknowledged. ``--store postgresql`` puts the class store in a throwaway PostgreSQL
cluster (``tests/support/postgres.py``), else a SQLite file (WAL).

The class starts once every replica has traced its attack graphs in the background (each logs it;
``--during-warm-up`` starts at once), as when a teacher starts the server before the lesson.
Bounded: at most 90 students and 15 minutes, and it only ever talks to 127.0.0.1. Each setup gets
its own copy of the checkpoints, runs folder and store; results go to ``bench/results/<name>.json``,
with the machine's load before and after each setup (anything else running skews the waits).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.students import ACTIONS, CHALLENGE_ACTIONS, MODELS_CAPTION, PASSCODE, Classroom, board, cpu_seconds, sample_memory, student, teacher
from core.classroom import open_store
from deploy.serve import running_school
from tests.support.beans import REPO_ROOT as REPO
from tests.support.server import free_port, start_server, stop_server, wait_until_healthy, warm_up_logged
from tests.support.streamlit_client import StreamlitSession

MAX_STUDENTS = 90
MAX_DURATION_S = 900
TARGET_P95_S = 1.0
BOARD_EVERY_S = 2.0  # dashboard/class_board.py's REFRESH_S
PROFILE_RATE = 100  # py-spy samples per second: (samples holding the GIL) / (rate x seconds) = the GIL's busy share


@dataclass
class Setup:
    """The servers one measurement runs against."""

    port: int  # what students open: nginx, or the one server
    pids: dict[str, int]  # replica name -> pid ("127.0.0.1:PORT" behind nginx)
    logs: list[Path]
    via_nginx: bool
    store_url: str
    runs_root: Path


def machine_load() -> dict:
    """The load average and whatever else uses the CPU now (a busy machine skews every wait)."""
    busy = subprocess.run(["ps", "-eo", "pcpu,ni,etime,args", "--sort=-pcpu"], capture_output=True, text=True).stdout.splitlines()[1:7]
    return {"load_1_5_15": [round(x, 2) for x in os.getloadavg()], "top_processes": [line.strip()[:140] for line in busy]}


@contextlib.contextmanager
def serving(replicas: int, scratch: Path, args: argparse.Namespace, store_url: str) -> Iterator[Setup]:
    checkpoints = scratch / "checkpoints"
    shutil.copytree(args.checkpoint_dir, checkpoints)
    env = {"BEANGUARD_CHECKPOINT_DIR": str(checkpoints), "BEANGUARD_RUNS_DIR": str(scratch / "runs"), "BEANGUARD_TEACHER_PASSCODE": PASSCODE, "BEANGUARD_STORE_URL": store_url}
    extra = [f"--{option.split('=')[0]}={option.split('=', 1)[1]}" for option in args.server_option]
    if replicas == 0:
        port = free_port()
        server = start_server(port, env, scratch / "server.log", extra_options=extra, root=args.app_root)
        try:
            wait_until_healthy(port, server)
            yield Setup(port, {"one server": server.pid}, [scratch / "server.log"], False, store_url, scratch / "runs")
        finally:
            stop_server(server)
        return
    with running_school(replicas, env, scratch / "school", extra_options=extra) as school:
        pids = {f"127.0.0.1:{port}": process.pid for port, process in school.replicas.items()}
        yield Setup(school.port, pids, [scratch / "school" / f"replica-{port}.log" for port in school.replicas], True, store_url, scratch / "runs")


async def open_every_replica(setup: Setup, timeout: float = 180.0) -> None:
    """One page on each replica's own port: it loads the models and starts that replica's warm-up."""
    ports = [int(name.rsplit(":", 1)[1]) for name in setup.pids] if setup.via_nginx else [setup.port]
    for port in ports:
        session = StreamlitSession(port)
        await session.connect(timeout=timeout)
        await session.close()


def wait_for_warm_ups(logs: list[Path], started: float, timeout: float = 900.0) -> float | None:
    """Seconds until every replica logged that it traced every attack graph; None on timeout."""
    while time.monotonic() - started < timeout:
        if warm_up_logged(*logs):
            return round(time.monotonic() - started, 1)
        time.sleep(1.0)
    return None


async def run_classroom(setup: Setup, args: argparse.Namespace, code: str | None) -> tuple[Classroom, list]:
    room = Classroom()
    deadline = time.monotonic() + args.duration
    tasks = [asyncio.create_task(sample_memory(list(setup.pids.values()), room, deadline))]
    if code is not None:
        tasks.append(asyncio.create_task(board(setup.port, deadline, room, setup.via_nginx, BOARD_EVERY_S)))
    if args.retrain_at is not None:
        tasks.append(asyncio.create_task(teacher(setup.port, args.retrain_at, args.retrain_epochs, room, setup.store_url)))
    if args.profile:
        tasks.extend(asyncio.create_task(profile(pid, name, args)) for name, pid in setup.pids.items())
    pupils = []
    for number in range(args.students):  # students arrive over the first ~10 s, not in the same millisecond
        pupils.append(asyncio.create_task(student(number, setup.port, deadline, room, args.seed, code, setup.via_nginx, args.idle)))
        await asyncio.sleep(10.0 / args.students)
    sessions = await asyncio.gather(*pupils)
    await asyncio.gather(*tasks)
    for session in sessions:
        if session is not None:
            await session.close()
    return room, [session for session in sessions if session is not None]


async def profile(pid: int, name: str, args: argparse.Namespace) -> None:
    """py-spy on one replica in the middle of the class: only stacks that hold the GIL (``--gil``),
    collapsed (one line per stack, its sample count last) into bench/results/<label>-gil-<replica>.txt.
    Without ``--profile-native`` it samples without pausing the server (``--nonblocking``)."""
    await asyncio.sleep(max(0.0, (args.duration - args.profile) / 2))
    output = REPO / "bench" / "results" / f"{args.label}-gil-{name.replace(':', '_').replace(' ', '_')}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    mode = ["--native"] if args.profile_native else ["--nonblocking"]
    command = ["py-spy", "record", "--pid", str(pid), "--gil", *mode, "--rate", str(PROFILE_RATE), "--duration", str(int(args.profile)), "--format", "raw", "--output", str(output)]
    done = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, error = await done.communicate()
    if done.returncode:  # e.g. not allowed to attach (ptrace): say so rather than leave no file
        print(f"py-spy on {name} failed ({done.returncode}): {error.decode(errors='replace').strip()[-500:]}")


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    return {"count": len(values), "p50_s": round(float(np.percentile(array, 50)), 3), "p95_s": round(float(np.percentile(array, 95)), 3), "max_s": round(float(array.max()), 3)}


def memory_summary(room: Classroom, warm_up_s: float) -> dict:
    """RSS of all replicas together at start/end and its slope per interaction after warm-up."""
    if not room.memory:
        return {}
    times, rss, counts = (np.asarray(column, float) for column in zip(*room.memory))
    after = times >= warm_up_s
    slope = None
    if after.sum() >= 3 and np.ptp(counts[after]) > 0:
        slope = float(np.polyfit(counts[after], rss[after], 1)[0]) * 1024  # KiB per interaction
    return {
        "rss_start_mib": round(float(rss[0]), 1), "rss_end_mib": round(float(rss[-1]), 1), "rss_max_mib": round(float(rss.max()), 1),
        "growth_kib_per_interaction_after_warm_up": None if slope is None else round(slope, 2),
    }  # fmt: skip


def summarize(room: Classroom, sessions: list, args: argparse.Namespace, replicas: int, setup: Setup, cpu: dict, code: str | None) -> dict:
    answered = [w for w in room.waits if w.seconds is not None]
    actions = CHALLENGE_ACTIONS if code else ACTIONS
    summary = {
        "replicas": replicas, "nginx": setup.via_nginx, "store": args.store, "students": args.students, "duration_s": args.duration,
        "challenge": code is not None, "idle": args.idle, "interactions": len(room.waits), "interactions_per_s": round(len(room.waits) / args.duration, 2),
        "wait": percentiles([w.seconds for w in answered]),
        "wait_by_action": {action: percentiles([w.seconds for w in answered if w.action == action]) for action in actions},
        "page_open": percentiles(room.connect_seconds), "errors": len(room.errors), "error_samples": room.errors[:20],
        "memory": memory_summary(room, args.warm_up), "cpu_count": os.cpu_count(),
        "by_replica": {
            name: {"students": sum(1 for r in room.replica_of.values() if r == name), "interactions": sum(1 for w in room.waits if w.replica == name),
                   "wait": percentiles([w.seconds for w in answered if w.replica == name]), "cpu_cores": cpu.get(name)}
            for name in setup.pids
        },
    }  # fmt: skip
    if code is not None:
        store = open_store(setup.store_url)
        held = len(store.attempts(code))
        store.close()
        summary["round"] = {"code": code, "submitted": room.submitted, "acknowledged": room.acknowledged, "in_store": held,
                            "lost": room.acknowledged - held if held < room.acknowledged else 0, "unacknowledged": room.submitted - room.acknowledged,
                            "board_refresh": percentiles(room.board_refresh), "board_refreshes_with_players": room.board_updates}  # fmt: skip
    if args.retrain_at is not None:
        start, swap = room.training_started, room.models_swapped
        during = [w.seconds for w in answered if start is not None and w.sent_at >= start and (swap is None or w.sent_at < swap)]
        summary["retraining"] = {
            "started_at_s": start, "swapped_at_s": swap, "message": room.training_message,
            "wait_before": percentiles([w.seconds for w in answered if start is None or w.sent_at < start]), "wait_during_training": percentiles(during),
            "wait_after_swap": percentiles([w.seconds for w in answered if swap is not None and w.sent_at >= swap]),
            "sessions_showing_the_new_models": sessions_on_new_run(sessions, setup.store_url, setup.runs_root),
            "training_seconds": None if start is None or swap is None else round(swap - start, 1),
        }  # fmt: skip
    return summary


def sessions_on_new_run(sessions: list, store_url: str, runs_root: Path) -> str:
    """How many pages show the new run's training time in their models caption at the end."""
    store = open_store(store_url)
    state = store.get_state("active_run")
    store.close()
    if state is None or "/" not in state.value.get("run", ""):
        return f"0/{len(sessions)}"
    stamp = json.loads((runs_root / state.value["run"].split("/", 1)[1] / "metadata.json").read_text()).get("trained_at")
    return f"{sum(1 for s in sessions if stamp and stamp in s.log.latest.get(MODELS_CAPTION, ''))}/{len(sessions)}"


def print_summary(summary: dict) -> None:
    wait = summary["wait"]
    where = f"{summary['replicas']} replica{'s' if summary['replicas'] != 1 else ''} behind nginx" if summary["nginx"] else "one server, no nginx"
    print(f"\n== {summary['students']} students x {summary['duration_s']:.0f} s, {where}, {summary['store']} store" + (", challenge round" if summary["challenge"] else "") + " ==")
    print(f"machine load before / after: {summary['load_before']['load_1_5_15']} / {summary['load_after']['load_1_5_15']}; warm-up {summary['warm_up_s']} s")
    print(f"interactions          {summary['interactions']} ({summary['interactions_per_s']}/s)")
    if wait.get("count"):
        verdict = "PASS" if wait["p95_s"] <= TARGET_P95_S else "OVER"
        print(f"wait p50 / p95 / max  {wait['p50_s']:.3f} / {wait['p95_s']:.3f} / {wait['max_s']:.3f} s   (target p95 <= {TARGET_P95_S:g} s: {verdict})")
    for action, figures in summary["wait_by_action"].items():
        if figures.get("count"):
            print(f"  {action:<10}          p50 {figures['p50_s']:.3f}  p95 {figures['p95_s']:.3f}  max {figures['max_s']:.3f}  (n={figures['count']})")
    for name, share in summary["by_replica"].items():
        figures = share["wait"]
        p95 = f"p95 {figures['p95_s']:.3f} s" if figures.get("count") else "no waits"
        print(f"  replica {name:<16} {share['students']} students, {share['interactions']} interactions, {p95}, {share['cpu_cores']} CPU cores busy")
    print(f"errors                {summary['errors']}")
    for line in summary["error_samples"][:5]:
        print(f"  {line[:300]}")
    if summary.get("round"):
        r = summary["round"]
        print(f"round                 {r['submitted']} submitted, {r['acknowledged']} acknowledged, {r['in_store']} in the store, {r['lost']} lost")
        if r["board_refresh"].get("count"):
            b = r["board_refresh"]
            print(f"board refresh         p50 {b['p50_s']:.3f}  p95 {b['p95_s']:.3f}  max {b['max_s']:.3f} s (n={b['count']})")
    memory = summary["memory"]
    if memory:
        print(f"server RSS (all)      start {memory['rss_start_mib']} MiB, end {memory['rss_end_mib']} MiB; growth {memory['growth_kib_per_interaction_after_warm_up']} KiB/interaction")
    if summary.get("retraining"):
        r = summary["retraining"]
        print(f"retraining            started {r['started_at_s']} s, swapped {r['swapped_at_s']} s; during training: {r['wait_during_training']}")


def measure(replicas: int, args: argparse.Namespace, postgres) -> dict:
    with tempfile.TemporaryDirectory(prefix="beanguard-load-") as scratch:
        scratch = Path(scratch)
        store_url = postgres.fresh_url() if postgres is not None else f"sqlite:///{scratch / 'class.db'}"
        store = open_store(store_url)
        code = store.create_round("smallest", "all", ["infinity", "l2", "l1"], max_players=args.students + 5).code if args.challenge else None
        store.close()
        load_before = machine_load()
        with serving(replicas, scratch, args, store_url) as setup:
            started = time.monotonic()
            asyncio.run(open_every_replica(setup))
            warm_up_s = None if args.during_warm_up else wait_for_warm_ups(setup.logs, started)
            cpu_start = {name: cpu_seconds(pid) for name, pid in setup.pids.items()}
            client_cpu = time.process_time()
            room, sessions = asyncio.run(run_classroom(setup, args, code))
            cpu = {name: round((cpu_seconds(pid) - cpu_start[name]) / args.duration, 2) for name, pid in setup.pids.items() if cpu_start[name] is not None}
            summary = summarize(room, sessions, args, replicas, setup, cpu, code)
            summary["client_cpu_cores"] = round((time.process_time() - client_cpu) / args.duration, 2)
            summary["log_tail"] = setup.logs[0].read_text(errors="replace")[-2000:]
        summary.update(warm_up_s=warm_up_s, load_before=load_before, load_after=machine_load(), server_options=args.server_option, profile_s=args.profile)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of classroom after the servers are warm")
    parser.add_argument("--replicas", default="0", help="0: one server, no nginx; N: N replicas behind nginx; 1,2: each in turn")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--challenge", action="store_true", help="a round: students join and submit while the board refreshes")
    parser.add_argument("--idle", action="store_true", help="students only keep their pages open: what the pages' periodic polls cost")
    parser.add_argument("--retrain-at", type=float, help="seconds into the run at which the teacher starts retraining")
    parser.add_argument("--retrain-epochs", type=int, default=6, help="adversarial epochs of that run (the quick recipe keeps the shipped baseline)")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds excluded from the memory-growth fit")
    parser.add_argument("--checkpoint-dir", type=Path, default=REPO / "checkpoints", help="copied; the copy is served")
    parser.add_argument("--label", default=None, help="name of the results file (default: derived from the options)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--during-warm-up", action="store_true", help="start the class while the servers still trace their attack graphs")
    parser.add_argument("--server-option", action="append", default=[], help="extra `streamlit run` option, e.g. runner.postScriptGC=true")
    parser.add_argument("--app-root", type=Path, default=REPO, help="serve another checkout's dashboard (a before/after measurement; --replicas 0 only)")
    parser.add_argument("--profile", type=float, default=0.0, help="seconds of py-spy (GIL holders only) on every replica, mid-class")
    parser.add_argument("--profile-native", action="store_true", help="with C/C++ frames (py-spy --native; pauses the server per sample)")
    args = parser.parse_args(argv)
    replica_counts = [int(part) for part in args.replicas.split(",")]
    if not 1 <= args.students <= MAX_STUDENTS or not 0 < args.duration <= MAX_DURATION_S or any(n < 0 or n > 8 for n in replica_counts):
        parser.error(f"--students must be 1..{MAX_STUDENTS}, --duration 1..{MAX_DURATION_S} s and --replicas 0..8")
    if not os.environ.get("BEANS_DATA_DIR"):
        parser.error("set BEANS_DATA_DIR to the Beans folder (e.g. ../shared/beans)")
    if args.profile and shutil.which("py-spy") is None:
        parser.error("--profile needs py-spy on the PATH (pip install py-spy; it is no dependency of Beanguard)")
    if args.profile >= args.duration:
        parser.error("--profile must be shorter than --duration (it samples the middle of the class)")
    if args.app_root.resolve() != REPO.resolve() and replica_counts != [0]:
        parser.error("--app-root serves another checkout with --replicas 0 only")
    kind = "challenge" if args.challenge else "load"
    args.label = args.label or f"{kind}_{args.students}x{int(args.duration)}_r{'-'.join(map(str, replica_counts))}_{args.store}" + ("_retrain" if args.retrain_at is not None else "")
    postgres = None
    if args.store == "postgresql":
        from tests.support.postgres import PostgresServer, binaries

        if binaries() is None:
            parser.error("--store postgresql needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql)")
        postgres = PostgresServer(binaries()).start()
    try:
        summaries = []
        for replicas in replica_counts:
            summaries.append(measure(replicas, args, postgres))
            print_summary(summaries[-1])
    finally:
        if postgres is not None:
            postgres.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.label}.json").write_text(json.dumps({"label": args.label, "commit": commit, "runs": summaries}, indent=2) + "\n")
    print(f"(written to bench/results/{args.label}.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
