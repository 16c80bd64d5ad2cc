"""Fixtures for the class store tests: every store test runs on a SQLite file and on PostgreSQL.

The PostgreSQL half uses one throwaway cluster per test session (tests/support/postgres.py) and an
empty schema per test. Without PostgreSQL's binaries it is skipped locally and FAILS in CI (``$CI``
set), where .ci/run installs them. Test modules load this file with ``pytest_plugins``.
"""

from __future__ import annotations

import os

import pytest

from core.classroom import open_store
from tests.support.postgres import PostgresServer, binaries


class Clock:
    """A clock the test moves by hand; ``sleep`` moves it too (so a rate-limit wait takes no real time)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now, self.slept = now, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def postgres():
    bin_dir = binaries()
    if bin_dir is None:
        message = "PostgreSQL's initdb/pg_ctl are not in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must test the store on PostgreSQL too.")
        pytest.skip(message)
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'class.db'}"
    return request.getfixturevalue("postgres").fresh_url()


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(store_url, clock):
    """A store on the hand-moved clock (round time limits, lock expiry, lock-outs)."""
    opened = open_store(store_url, clock=clock, sleep=clock.sleep)
    yield opened
    opened.close()
