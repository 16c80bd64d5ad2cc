"""The simulated class of ``bench/load_test.py``: students who move the controls and play a round, the
class board on the projector, and a teacher who retrains — each a browser session speaking
Streamlit's own protocol (``tests/support/streamlit_client.py``), with what each of them waited for.

A student opens the page (through nginx: first ``GET /`` like a browser, which gives nginx's
affinity cookie and names the replica that serves it), then every 1-3 s (a human pace) moves the
budget ε, switches the norm, picks another photo or another conv layer, and times the wait until
both models' new verdicts arrive (a layer change: the new maps). In a challenge round a student
first joins with the round code and a nickname, and some of its actions press **Submit this
change**: the wait then ends with the page's acknowledgement ("Counted: …" / "Recorded, but …"),
and every acknowledgement is counted, to compare with the attempts the class store holds.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.classroom import open_store
from tests.support.class_client import affinity, answered, join
from tests.support.class_client import submit as submit_change
from tests.support.server import shows_verdict
from tests.support.streamlit_client import StreamlitSession, number_value, option_value, slider_value, text_value, trigger

WAIT_TIMEOUT_S = 30.0  # a change that shows nothing for this long counts as an error
PASSCODE = "load-test"
MODELS_CAPTION = "Models trained"  # the page's first caption names the models' training time
ACTIONS = {"step_size": 0.5, "image": 0.2, "norm": 0.15, "layer": 0.15}  # how often a student does what
CHALLENGE_ACTIONS = {"step_size": 0.4, "image": 0.15, "norm": 0.1, "layer": 0.05, "submit": 0.3}  # playing a round
SINGLE = "one server"  # the replica name without nginx


@dataclass
class Wait:
    student: int
    action: str
    sent_at: float  # seconds since the test started
    seconds: float | None  # None: no update within WAIT_TIMEOUT_S
    replica: str = SINGLE


@dataclass
class Classroom:
    """Everything measured during one run."""

    started: float = field(default_factory=time.monotonic)
    waits: list[Wait] = field(default_factory=list)
    connect_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    memory: list[tuple[float, float, int]] = field(default_factory=list)  # (t, RSS MiB of every replica, interactions so far)
    replica_of: dict[int, str] = field(default_factory=dict)  # student -> the replica that served it
    submitted: int = 0
    acknowledged: int = 0
    board_refresh: list[float] = field(default_factory=list)  # seconds per board refresh (one fragment run)
    board_updates: int = 0  # refreshes that drew the round's player list
    training_started: float | None = None
    models_swapped: float | None = None
    training_message: str | None = None

    def now(self) -> float:
        return time.monotonic() - self.started


async def open_page(port: int, via_nginx: bool, **options) -> tuple[StreamlitSession, str]:
    """A session on the page (through nginx like a browser when ``via_nginx``) and its replica's name."""
    headers, replica = (await asyncio.to_thread(affinity, port)) if via_nginx else ({}, SINGLE)
    session = StreamlitSession(port, headers=headers, **options)
    await session.connect(timeout=WAIT_TIMEOUT_S * 4)
    return session, answered(session.response_headers.get("x-beanguard-replica", replica))


async def student(
    number: int, port: int, deadline: float, room: Classroom, seed: int, code: str | None = None, via_nginx: bool = False, idle: bool = False
) -> StreamlitSession | None:
    """One student: open the page (and join the round ``code``), then change something every 1-3 s
    until the deadline (``idle``: only keep the page open, as its periodic polls do)."""
    rng = random.Random(seed * 1000 + number)
    started = time.perf_counter()
    try:
        session, replica = await open_page(port, via_nginx, watch=(MODELS_CAPTION,))
        room.replica_of[number] = replica
        if code is not None:
            await join(session, code, f"student-{number:02d}")
    except Exception as error:  # noqa: BLE001  any failure to open the page or join is a session error
        room.errors.append(f"student {number}: could not open the page or join ({type(error).__name__}: {error})")
        return None
    room.connect_seconds.append(time.perf_counter() - started)
    actions = CHALLENGE_ACTIONS if code is not None else ACTIONS
    try:
        while idle and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
        while time.monotonic() + 3.0 < deadline:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            action = rng.choices(list(actions), weights=list(actions.values()))[0]
            sent_at = room.now()
            try:
                seconds = await (submit(session, room) if action == "submit" else act(session, action, rng))
            except asyncio.TimeoutError:
                room.waits.append(Wait(number, action, sent_at, None, replica))
                room.errors.append(
                    f"student {number}: no answer {WAIT_TIMEOUT_S:.0f} s after a {action} at {sent_at:.0f} s; last messages: {' | '.join(session.recent[-8:])}"
                )
                continue
            except Exception as error:  # noqa: BLE001
                room.errors.append(f"student {number}: {action} at {sent_at:.0f} s failed ({type(error).__name__}: {error})")
                return session
            room.waits.append(Wait(number, action, sent_at, seconds, replica))
    finally:
        for text in session.log.exceptions:
            room.errors.append(f"student {number}: exception shown on the page: {text}")
    return session


async def submit(session: StreamlitSession, room: Classroom) -> float:
    """Press **Submit this change**; seconds until the page acknowledged the attempt (counted both ways)."""
    room.submitted += 1
    seconds = await submit_change(session, WAIT_TIMEOUT_S)
    room.acknowledged += 1
    return seconds


async def act(session: StreamlitSession, action: str, rng: random.Random) -> float:
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


async def board(port: int, deadline: float, room: Classroom, via_nginx: bool, every: float) -> None:
    """The class board (``?board=1``) refreshing every ``every`` seconds like a browser; times each refresh."""
    try:
        session, _ = await open_page(port, via_nginx, query="board=1", follow_auto_reruns=False)
    except Exception as error:  # noqa: BLE001
        room.errors.append(f"board: could not open ({type(error).__name__}: {error})")
        return
    try:
        (fragment,) = list(session.auto_fragments)
        while time.monotonic() + every < deadline:
            await asyncio.sleep(every)
            drawn = session.expect(lambda delta: delta.kind == "markdown" and 'class="bg-players"' in delta.text)
            started = time.perf_counter()
            try:
                await session.rerun(fragment, wait_for_finish=WAIT_TIMEOUT_S, auto=True)
            except asyncio.TimeoutError:
                room.errors.append(f"board: no refresh within {WAIT_TIMEOUT_S:.0f} s at {room.now():.0f} s")
                continue
            room.board_refresh.append(time.perf_counter() - started)
            room.board_updates += drawn.done()
            drawn.cancel()  # not drawn this time: stop waiting for it
    except Exception as error:  # noqa: BLE001
        room.errors.append(f"board: failed ({type(error).__name__}: {error})")
    finally:
        room.errors.extend(f"board: exception shown on the page: {text}" for text in session.log.exceptions)
        await session.close()


async def teacher(port: int, at: float, epochs: int, room: Classroom, store_url: str) -> None:
    """At ``at`` seconds: press Teacher, unlock, start a retraining run; then watch the class store
    until the new run is what the class sees."""
    await asyncio.sleep(max(0.0, at - room.now()))
    session = StreamlitSession(port)
    store = open_store(store_url)
    before = store.get_state("active_run")
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
        await session.send_rerun(session.widgets["train_start"].fragment_id, triggers={"train_start": trigger()})
        await asyncio.wait_for(answer, WAIT_TIMEOUT_S)
        room.training_started = room.now()
        room.training_message = next((text for text in reversed(session.log.texts) if "etrain" in text), None)
        while store.get_state("active_run") == before:  # the manager writes it when the new run is shown to the class
            await asyncio.sleep(0.5)
        room.models_swapped = room.now()
    except Exception as error:  # noqa: BLE001
        room.errors.append(f"teacher: retraining could not be started or watched ({type(error).__name__}: {error})")
    finally:
        room.errors.extend(f"teacher: exception shown on the page: {text}" for text in session.log.exceptions)
        await session.close()
        store.close()


def resident_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sample_memory(pids: list[int], room: Classroom, deadline: float, every: float = 2.0) -> None:
    while time.monotonic() < deadline:
        sizes = [resident_mib(pid) for pid in pids]
        if all(size is not None for size in sizes):
            room.memory.append((room.now(), sum(sizes), len(room.waits)))
        await asyncio.sleep(every)
