"""A school on one address: two replicas behind a real nginx (``deploy/serve.py``) share one class.

A student whose browser nginx sends to replica A joins a round, a student on replica B joins and
submits, and the class board shows both whichever replica draws it. Then replica A is killed
(SIGKILL): B keeps serving, the first student's reload lands on B (nginx's passive health check
moves its affinity cookie there), and every attempt a page acknowledged is in the class store.

How a session is steered: like a browser, each student first asks nginx for ``/`` and keeps its
affinity cookie; the test asks again until nginx has handed out a cookie for the replica it wants.
Everything goes through nginx's one port; nothing talks to a replica's own port. Tiny models, a
SQLite class store in a temporary folder.
"""

from __future__ import annotations

import asyncio
import signal

from core.classroom import open_store
from deploy.serve import running_school
from tests.support.class_client import affinity, answered, board_text, join, replica_of, submit
from tests.support.server import server_env
from tests.support.streamlit_client import StreamlitSession

PAGE_TIMEOUT_S = 120.0  # a replica's first page loads TensorFlow's graphs (the machine may be busy)


def cookie_for(port: int, replica: str, tries: int = 60) -> dict[str, str]:
    """nginx's affinity cookie for a browser that nginx sends to ``replica``."""
    for _ in range(tries):
        headers, answered = affinity(port)
        if answered == replica:
            return headers
    raise AssertionError(f"nginx never sent a new browser to {replica} in {tries} tries")


async def student(port: int, headers: dict[str, str], code: str, nickname: str) -> StreamlitSession:
    session = StreamlitSession(port, headers=headers)
    await session.connect(timeout=PAGE_TIMEOUT_S)
    await join(session, code, nickname, timeout=PAGE_TIMEOUT_S)
    return session


async def board(port: int, headers: dict[str, str]) -> tuple[StreamlitSession, str]:
    session = StreamlitSession(port, headers=headers, query="board=1", follow_auto_reruns=False)
    await session.connect(timeout=PAGE_TIMEOUT_S)
    (fragment,) = list(session.auto_fragments)
    return session, fragment


def test_two_replicas_share_one_class_and_a_killed_replica_loses_nothing_acknowledged(nginx, tmp_path_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'class.db'}"
    store = open_store(url)
    code = store.create_round("smallest", "all", ["infinity", "l2", "l1"]).code
    env = server_env(tmp_path_factory.getbasetemp(), BEANGUARD_STORE_URL=url, BEANGUARD_RUNS_DIR=str(tmp_path / "runs"))

    with running_school(2, env, tmp_path / "school") as school:
        (port_a, replica_a), (port_b, replica_b) = [(port, f"127.0.0.1:{port}") for port in school.replicas]

        async def scenario() -> int:
            on_a, on_b = cookie_for(school.port, replica_a), cookie_for(school.port, replica_b)
            ann = await student(school.port, on_a, code, "Ann")
            bo = await student(school.port, on_b, code, "Bo")
            assert (answered(ann.response_headers["x-beanguard-replica"]), answered(bo.response_headers["x-beanguard-replica"])) == (replica_a, replica_b)
            acknowledged = [await submit(bo, PAGE_TIMEOUT_S), await submit(ann, PAGE_TIMEOUT_S)]

            boards = [await board(school.port, cookie) for cookie in (on_a, on_b)]  # the board drawn by A, and by B
            for session, fragment in boards:
                players = await board_text(session, fragment, PAGE_TIMEOUT_S)
                assert "Ann</span> · 1" in players and "Bo</span> · 1" in players, players

            school.replicas[port_a].send_signal(signal.SIGKILL)
            school.replicas[port_a].wait(timeout=10)
            await asyncio.sleep(0.5)
            assert ann.closed_reason is not None  # Ann's page lost its server
            assert replica_of(school.port, on_a) == replica_b  # nginx now sends Ann's browser to B
            ann_again = await student(school.port, on_a, code, "Ann again")  # her reload: a new session on B
            assert answered(ann_again.response_headers["x-beanguard-replica"]) == replica_b
            acknowledged.append(await submit(ann_again, PAGE_TIMEOUT_S))
            acknowledged.append(await submit(bo, PAGE_TIMEOUT_S))  # Bo never noticed

            session, fragment = boards[1]
            players = await board_text(session, fragment, PAGE_TIMEOUT_S)
            assert "Ann</span> · 1" in players and "Bo</span> · 2" in players and "Ann again</span> · 1" in players, players
            for page in (ann, bo, ann_again, *(s for s, _ in boards)):
                assert page.log.exceptions == [], page.log.exceptions
                await page.close()
            return len(acknowledged)

        acknowledged = asyncio.run(scenario())
        assert school.replicas[port_b].poll() is None and school.nginx.poll() is None

    attempts = store.attempts(code)
    assert len(attempts) == acknowledged == 4  # nothing the pages acknowledged was lost
    assert sorted(p.nickname for p in store.players(code)) == ["Ann", "Ann again", "Bo"]
