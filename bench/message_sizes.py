"""What one student's page costs the server's event loop: the websocket messages a budget move sends.

A Streamlit server sends every element of a rerun as its own message from one thread (uvicorn's
event loop), so the number of messages per move, more than their bytes, decides how many students
one process can serve (docs/benchmarks.md). This opens one page on the real server, waits for its
first screen, moves the L∞ budget slider ``--moves`` times and counts the messages and bytes of
the first screen and of the moves, by kind, and the moves' messages by place on the page (the
top-level block of the main area or the sidebar they land in: which parts of the page a move redraws).

    BEANS_DATA_DIR=../shared/beans python -m bench.message_sizes --moves 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
from pathlib import Path

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from tests.support.server import free_port, shows_verdict, start_server, stop_server, wait_until_healthy
from tests.support.streamlit_client import StreamlitSession, slider_value

Tally = collections.Counter  # (phase, kind) -> bytes or messages


class CountingSession(StreamlitSession):
    """A student's page that also tallies every message it receives, by phase and kind."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.phase = "first screen"
        self.bytes: Tally = Tally()
        self.messages: Tally = Tally()
        self.places: Tally = Tally()  # (area, block) -> messages, during the moves

    def received(self, message: ForwardMsg, size: int) -> None:
        kind = message.WhichOneof("type")
        if kind == "delta":
            kind = message.delta.WhichOneof("type")
            if kind == "new_element":
                kind = message.delta.new_element.WhichOneof("type")
        self.bytes[(self.phase, kind)] += size
        self.messages[(self.phase, kind)] += 1
        path = tuple(message.metadata.delta_path)
        if self.phase == "budget moves" and len(path) >= 3:
            self.places[("main" if path[0] == 0 else "sidebar", path[2])] += 1


async def measure(port: int, moves: int, settle: float) -> CountingSession:
    page = CountingSession(port)
    await page.connect()  # returns once the first full run has finished
    await asyncio.sleep(settle)
    page.phase = "budget moves"
    slider = page.widgets["epsilon_infinity"].proto
    steps = int(round((slider.max - slider.min) / slider.step))
    for move in range(moves):
        value = slider.min + (move % steps + 1) * slider.step
        await page.change(slider.id.split("-", 2)[2], slider_value(value), shows_verdict, 2, 60.0)
        await asyncio.sleep(settle)
    await page.close()
    return page


def report(page: CountingSession, moves: int) -> None:
    for phase, per in (("first screen", 1), ("budget moves", moves)):
        kinds = [(kind, size) for (name, kind), size in page.bytes.items() if name == phase]
        total_bytes = sum(size for _, size in kinds)
        total_messages = sum(count for (name, _), count in page.messages.items() if name == phase)
        print(f"{phase}: {total_messages / per:.0f} messages, {total_bytes / per / 1024:.1f} KB" + (" per move" if per > 1 else ""))
        for kind, size in sorted(kinds, key=lambda item: -item[1])[:8]:
            print(f"    {kind:20s} {page.messages[(phase, kind)] / per:6.1f} messages  {size / per / 1024:7.1f} KB")
    counts = sorted((count / moves for count in page.places.values()), reverse=True)
    if counts:
        print(f"budget moves by place: {len(counts)} blocks redrawn, {counts[0]:.0f} messages in the busiest, "
              f"median {counts[len(counts) // 2]:.0f}: " + " ".join(f"{count:.0f}" for count in counts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--settle", type=float, default=2.5, help="seconds after each answer for the sections below it")
    args = parser.parse_args(argv)
    if not os.environ.get("BEANS_DATA_DIR"):
        parser.error("set BEANS_DATA_DIR to a Beans folder (e.g. ../shared/beans)")
    with tempfile.TemporaryDirectory(prefix="beanguard-messages-") as scratch:
        port = free_port()
        env = {"BEANGUARD_TEACHER_PASSCODE": "", "BEANGUARD_RUNS_DIR": str(Path(scratch) / "runs")}
        server = start_server(port, env, Path(scratch) / "server.log")
        try:
            wait_until_healthy(port, server)
            page = asyncio.run(measure(port, args.moves, args.settle))
        finally:
            stop_server(server)
    report(page, args.moves)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
