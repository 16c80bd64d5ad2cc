"""The class store's shared tables as a specification: polls, class state, locks, the passcode lock-out,
per-photo budgets, schema versions and migrations, and how an unreachable store is reported.

Every store test runs on a SQLite file and in an empty schema of a throwaway PostgreSQL cluster
(tests/support/store_fixtures.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError

from core import runs, store_schema
from core.classroom import ClassroomError, PollClosed, StoreLockout, StoreUnavailable, default_url, open_store

pytest_plugins = ["tests.support.store_fixtures"]  # the store fixtures: SQLite and PostgreSQL


# --- polls, class state, locks, lock-out, budgets --------------------------------------------------


def test_a_revote_replaces_the_earlier_vote_and_the_reveal_stops_voting(store):
    poll = store.open_poll({"photo": "leaf.jpg", "norm": "l2", "budget": 0.5})
    assert store.current_poll() == poll and poll.state == "open"
    store.vote(poll.id, "tab-1", True, True)
    store.vote(poll.id, "tab-1", True, False)  # changed my mind
    store.vote(poll.id, "tab-2", False, False)
    revealed = store.reveal(poll.id, {"baseline_fooled": True, "nsl_fooled": False})
    assert revealed.state == "revealed"
    with pytest.raises(PollClosed, match="revealed"):
        store.vote(poll.id, "tab-3", True, True)
    results = store.poll_results(poll.id)
    assert results.total == 2 and results.counts == {(True, False): 1, (False, False): 1, (True, True): 0, (False, True): 0}
    assert results.said_fooled("baseline") == 1 and results.truth == {"baseline_fooled": True, "nsl_fooled": False}


def test_opening_a_poll_closes_the_one_before(store):
    first = store.open_poll({"photo": "a.jpg"})
    second = store.open_poll({"photo": "b.jpg"})
    assert store.poll_results(first.id).poll.state == "closed" and store.current_poll() == second
    store.close_poll(second.id)
    assert store.current_poll() is None


def test_class_state_counts_its_versions_and_takes_only_json(store):
    assert store.get_state("active_run") is None
    store.set_state("active_run", {"key": "runs/a"})
    second = store.set_state("active_run", {"key": "runs/b"})
    assert store.get_state("active_run") == second and (second.version, second.value) == (2, {"key": "runs/b"})
    with pytest.raises(ClassroomError, match="plain JSON"):
        store.set_state("teacher_view", {"when": object()})


def test_a_lock_has_one_holder_until_it_is_released_or_expires(timed_store, clock):
    assert timed_store.acquire_lock("training", "replica-1", ttl_s=60)
    assert not timed_store.acquire_lock("training", "replica-2", ttl_s=60)
    assert not timed_store.release_lock("training", "replica-2") and timed_store.lock_holder("training") == "replica-1"
    clock.now += 61  # replica-1 died without releasing
    assert timed_store.lock_holder("training") is None
    assert timed_store.acquire_lock("training", "replica-2", ttl_s=60) and timed_store.lock_holder("training") == "replica-2"
    assert timed_store.release_lock("training", "replica-2") and timed_store.acquire_lock("training", "replica-1", ttl_s=5)


def test_the_passcode_lock_out_doubles_its_wait_up_to_an_hour_and_is_shared_by_replicas(store_url, clock):
    replica_a, replica_b = (StoreLockout(open_store(store_url), clock=clock) for _ in range(2))
    keys = ["session:a", "client:10.0.0.7"]
    assert [replica_a.failure(keys) for _ in range(4)] == [0.0] * 4 and replica_b.tries_left(keys) == 1
    assert replica_b.failure(keys) == 30.0 and replica_a.wait_seconds(["client:10.0.0.7"]) == 30.0  # counted across replicas
    waits = []
    for _ in range(10):
        clock.now += 10_000
        waits.append(replica_a.failure(keys))
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
    replica_b.success(keys)
    assert replica_a.wait_seconds(keys) == 0 and replica_a.tries_left(keys) == 5
    for replica in (replica_a, replica_b):
        replica.store.close()


def test_the_teacher_passcode_lock_out_outlives_a_server_restart(monkeypatch, tmp_path):
    from dashboard import passcode

    monkeypatch.delenv("BEANGUARD_STORE_URL", raising=False)
    monkeypatch.setenv(runs.RUNS_DIR_ENV, str(tmp_path / "runs"))
    passcode.shared_lockout.clear()
    keys = ["session:a", "client:10.0.0.7"]
    assert [passcode.attempt("guess", "right", keys=keys).accepted for _ in range(5)] == [False] * 5
    passcode.shared_lockout.clear()  # the server restarted, or the next try reached another replica
    assert "Too many wrong passcodes" in passcode.attempt("right", "right", keys=keys).message
    passcode.shared_lockout.clear()


def test_without_its_store_the_teacher_passcode_unlocks_nothing(monkeypatch):
    from dashboard import passcode

    monkeypatch.setenv("BEANGUARD_STORE_URL", "postgresql+psycopg2://teacher:secret@127.0.0.1:1/class")
    passcode.shared_lockout.clear()
    refused = passcode.attempt("right", "right", keys=["session:a"])
    assert not refused.accepted and refused.message.startswith("The class store postgresql+psycopg2://teacher:***@") and "secret" not in refused.message
    passcode.shared_lockout.clear()


def test_photo_budgets_round_trip_with_infinity_and_are_replaced_whole(store):
    store.put_budgets("pair-1", "adversarial", "infinity", {"a.jpg": 4.2 / 255, "b.jpg": float("inf")})
    assert store.get_budgets("pair-1", "adversarial", "infinity") == {"a.jpg": 4.2 / 255, "b.jpg": float("inf")}
    store.put_budgets("pair-1", "adversarial", "infinity", {"c.jpg": 0.5})
    assert store.get_budgets("pair-1", "adversarial", "infinity") == {"c.jpg": 0.5}
    assert store.get_budgets("pair-1", "adversarial", "l2") == {}


# --- schema versions -------------------------------------------------------------------------------


def test_an_empty_database_is_created_at_the_latest_schema_version(store):
    with store.engine.connect() as conn:
        applied = conn.execute(select(store_schema.schema_version.c.version).order_by(store_schema.schema_version.c.version)).scalars().all()
    assert applied == [number for number, _, _ in store_schema.MIGRATIONS] and applied[-1] == store_schema.LATEST_VERSION == 2


def test_a_sqlite_store_is_a_wal_file_with_foreign_keys_on(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'class.db'}")
    with store.engine.connect() as conn:  # the PRAGMAs are SQLite's own words: a check of the connection rules
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: a commit is on disk
    store.close()


def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_rows(store_url):
    engine = store_schema.make_engine(store_url)
    assert store_schema.upgrade(engine, target=1) == 1
    with engine.begin() as conn:
        conn.execute(insert(store_schema.rounds).values(code="OLDR", kind="smallest", photos="all", norms="infinity", model="adversarial",
                                                        max_players=60, created_at=time.time(), started_at=time.time()))
        player_id = conn.execute(insert(store_schema.players).values(round_code="OLDR", nickname="Old Timer", nickname_key="old timer",
                                                                     joined_at=time.time())).inserted_primary_key[0]
        conn.execute(insert(store_schema.attempts).values(round_code="OLDR", player_id=player_id, photo="leaf.jpg", norm="infinity", epsilon=0.02,
                                                          method="pgd", steps=10, attacker="adversarial", fooled=True, answer="healthy",
                                                          model="adversarial", created_at=time.time()))
    engine.dispose()
    store = open_store(store_url)
    assert [(e.nickname, e.budget) for e in store.leaderboard("OLDR")["infinity"]] == [("Old Timer", 0.02)]
    assert store.hide_player(player_id).hidden and store.set_state("k", 1).version == 1  # version-2 tables work
    assert store.acquire_lock("training", "me", 10)
    store.close()


def test_a_store_from_a_newer_beanguard_is_refused_with_one_sentence(store_url):
    open_store(store_url).close()
    engine = store_schema.make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(insert(store_schema.schema_version).values(version=99, description="from the future", applied_at=time.time()))
    engine.dispose()
    with pytest.raises(StoreUnavailable, match=r"has schema version 99, newer than this Beanguard's 2: update Beanguard before using it\.$"):
        open_store(store_url)


def _fails_first(times: int, error: Exception, monkeypatch) -> list[int]:
    """Make the store's version check raise ``error`` the first ``times`` calls; returns the call count."""
    calls, real = [0], store_schema.current_version

    def flaky(conn):
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return real(conn)

    monkeypatch.setattr(store_schema, "current_version", flaky)
    monkeypatch.setattr(store_schema.time, "sleep", lambda seconds: None)
    return calls


def test_a_database_locked_while_another_server_creates_it_is_retried(store_url, monkeypatch):
    """SQLite answers "database is locked" at once, without its busy timeout, where waiting could
    deadlock: replicas switching a new file to WAL while another writes the tables (seen in CI)."""
    locked = OperationalError("PRAGMA journal_mode=WAL", None, sqlite3.OperationalError("database is locked"))
    calls = _fails_first(3, locked, monkeypatch)
    store = open_store(store_url)
    assert calls[0] == 4 and store.create_round("smallest", "all", ["infinity"]).code
    store.close()


def test_other_operational_errors_at_opening_are_not_retried(store_url, monkeypatch):
    broken = OperationalError("SELECT 1", None, sqlite3.OperationalError("disk I/O error"))
    calls = _fails_first(1, broken, monkeypatch)
    with pytest.raises(StoreUnavailable, match="disk I/O error"):
        open_store(store_url)
    assert calls[0] == 1


def test_servers_opening_an_empty_database_at_once_all_get_the_same_schema(store_url):
    opened, errors = [], []

    def open_one() -> None:
        try:
            opened.append(open_store(store_url))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(opened) == 4
    code = opened[0].create_round("smallest", "all", ["infinity"]).code
    assert opened[3].get_round(code).code == code
    for store in opened:
        store.close()


# --- reaching the store ----------------------------------------------------------------------------


def test_an_unreachable_store_is_one_sentence_that_hides_the_password():
    with pytest.raises(StoreUnavailable) as refused:
        open_store("postgresql+psycopg2://u:secret@127.0.0.1:1/x")
    message = str(refused.value)
    assert "secret" not in message and "postgresql+psycopg2://u:***@127.0.0.1:1/x" in message
    assert message.endswith(".") and "\n" not in message


def test_a_sqlite_file_in_a_missing_folder_is_unavailable(tmp_path):
    with pytest.raises(StoreUnavailable, match="cannot be used"):
        open_store(f"sqlite:///{tmp_path / 'no such folder' / 'class.db'}")


def test_the_default_store_is_a_file_beside_the_runs_folder_unless_the_environment_names_one(monkeypatch, tmp_path):
    monkeypatch.delenv("BEANGUARD_STORE_URL", raising=False)
    monkeypatch.setenv(runs.RUNS_DIR_ENV, str(tmp_path / "runs"))
    assert default_url() == f"sqlite:///{tmp_path / 'beanguard.db'}"
    open_store().close()
    assert (tmp_path / "beanguard.db").is_file()
    monkeypatch.setenv("BEANGUARD_STORE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert default_url().endswith("elsewhere.db")
