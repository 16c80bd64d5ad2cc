"""The class activity through the browser's protocol (``streamlit_client.py``): nginx's affinity
cookie, joining a round with its code and a nickname, pressing **Submit this change**, reading the board.

Shared by the school test (tests/test_school.py) and the load test (bench/students.py). Only
127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

from tests.support.streamlit_client import StreamlitSession, text_value, trigger, widget_key

ACKNOWLEDGED = ("Counted", "Recorded")  # how the page answers a submitted attempt
REPLICA_HEADER = "X-Beanguard-Replica"  # deploy/nginx.conf names the replica that answered


def answered(header: str | None) -> str:
    """The replica that answered, from nginx's ``$upstream_addr`` ("A, B" when A failed and B answered)."""
    return (header or "?").split(",")[-1].strip()


def affinity(port: int, timeout: float = 30.0) -> tuple[dict[str, str], str]:
    """What a browser gets from ``GET /`` through nginx: the affinity cookie (as a header to send on
    the websocket) and the replica that answered (``127.0.0.1:PORT``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as answer:
        cookie = (answer.headers.get("Set-Cookie") or "").split(";")[0]
        return ({"Cookie": cookie} if cookie else {}), answered(answer.headers.get(REPLICA_HEADER))


def replica_of(port: int, headers: dict[str, str], timeout: float = 30.0) -> str:
    """The replica nginx sends a browser with these headers (its cookie) to now."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/health", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answered(answer.headers.get(REPLICA_HEADER))


async def join(session: StreamlitSession, code: str, nickname: str, timeout: float = 30.0) -> None:
    """Type the round code and a nickname into the sidebar's join form and press **Join**."""
    session.set_value("class_code", text_value(code))
    session.set_value("class_nickname", text_value(nickname))
    joined = session.expect(lambda delta: delta.kind == "markdown" and delta.text.startswith(f"Round **{code}** as **"))
    button = session.expect(lambda delta: delta.kind == "button" and widget_key(delta.element.id) == "class_submit")  # drawn after it
    await session.send_rerun(session.widgets["class_join_button"].fragment_id, triggers={"class_join_button": trigger()})
    await asyncio.wait_for(asyncio.gather(joined, button), timeout)


async def submit(session: StreamlitSession, timeout: float = 30.0) -> float:
    """Press **Submit this change**; seconds until the page acknowledged the attempt ("Counted: …" or
    "Recorded, but …"). Raises ``asyncio.TimeoutError`` when no acknowledgement came."""
    answer = session.expect(lambda delta: delta.kind == "alert" and delta.text.startswith(ACKNOWLEDGED))
    started = time.perf_counter()
    await session.send_rerun(session.widgets["class_submit"].fragment_id, triggers={"class_submit": trigger()})
    await asyncio.wait_for(answer, timeout)
    return time.perf_counter() - started


async def board_text(session: StreamlitSession, fragment_id: str, timeout: float = 30.0) -> str:
    """Refresh the board's fragment once (as its 2 s timer does) and return its player list's HTML."""
    texts: list[str] = []

    def players(delta) -> bool:
        if delta.kind == "markdown" and 'class="bg-players"' in delta.text:
            texts.append(delta.text)
            return True
        return False

    drawn = session.expect(players)
    await session.rerun(fragment_id, auto=True)
    await asyncio.wait_for(drawn, timeout)
    return texts[-1]
