"""What the whole class shares besides rounds: polls, class state, locks, lock-out counters, photo budgets.

:class:`Database` is the store's transaction discipline (one transaction per write, retried when a
concurrent writer won a race); :class:`SharedStore` adds the shared tables on top of it, and
:class:`core.classroom.Store` adds rounds. :class:`StoreLockout` is the teacher-passcode lock-out
(``dashboard.passcode``) with its counters in the store, so every replica sees the same wrong tries.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from typing import Any, Callable, Iterable, Mapping, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from core.class_records import ClassroomError, Poll, PollClosed, PollResults, State, UnknownPoll
from core.store_schema import WRITE_OPTION, class_state, lockout_counters, locks, photo_budgets, polls, safe_url, unavailable, votes

T = TypeVar("T")
RETRIES = 8
MAX_FAILURES = 5  # wrong passcodes before the first wait
BASE_WAIT_S = 30.0  # the first wait; each further wrong try doubles it
MAX_WAIT_S = 3600.0
DEFAULT_QUESTION = "Will this change fool the baseline? Will it fool the NSL model?"


class Database:
    """An engine plus the store's rules for transactions: every write commits before its method returns."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.engine, self._clock, self._sleep = engine, clock, sleep
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        # SQLite has one writer at a time anyway; threads of one process queue here instead of in
        # SQLite's busy handler, whose sleeps (up to 100 ms) would leave the file idle. Other
        # processes still queue through the busy timeout. PostgreSQL writers run in parallel.
        self._one_writer = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @property
    def url(self) -> str:
        """The store's URL with the password hidden."""
        return safe_url(self.engine.url)

    def close(self) -> None:
        self.engine.dispose()

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self.engine.connect() as conn, conn.begin():
                return work(conn)
        except OperationalError as exc:
            raise unavailable(self.engine.url, exc) from exc

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction; returns after COMMIT. A unique-key race with another
        writer (two first votes of one voter at once) or a PostgreSQL deadlock is retried: ``work``
        looks again and finds the other writer's row."""
        for attempt in range(RETRIES):
            try:
                with self._one_writer, self._writer.begin() as conn:
                    return work(conn)
            except IntegrityError:
                if attempt == RETRIES - 1:
                    raise
            except DBAPIError as exc:
                if getattr(exc.orig, "pgcode", None) not in ("40001", "40P01") or attempt == RETRIES - 1:
                    if isinstance(exc, OperationalError):
                        raise unavailable(self.engine.url, exc) from exc
                    raise
            self._sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")


class SharedStore(Database):
    """Polls, class state, locks and per-photo budgets (rounds are in :class:`core.classroom.Store`)."""

    # --- polls: predict, then reveal ---------------------------------------------------------------

    def open_poll(self, view: Mapping[str, Any], question: str = DEFAULT_QUESTION) -> Poll:
        """Open a poll on the teacher's current ``view``; a poll still open is closed (one current poll)."""
        view = _json_value(dict(view), "A poll's view")

        def work(conn: Connection) -> Poll:
            now = self._clock()
            conn.execute(update(polls).where(polls.c.closed_at.is_(None)).values(closed_at=now))
            poll_id = conn.execute(insert(polls).values(view=view, question=str(question), opened_at=now)).inserted_primary_key[0]
            return _poll(conn, poll_id)

        return self._write(work)

    def vote(self, poll_id: int, voter: str, baseline_fooled: bool, nsl_fooled: bool) -> None:
        """One vote per ``voter`` (e.g. a browser session); voting again replaces the earlier vote."""
        if not str(voter).strip():
            raise ClassroomError("A vote needs a voter (the browser session's id).")

        def work(conn: Connection) -> None:
            poll = _poll(conn, poll_id)
            if poll.state != "open":
                raise PollClosed(f"Poll {poll_id} is {poll.state}: it takes no more votes.")
            answer = {"baseline_fooled": bool(baseline_fooled), "nsl_fooled": bool(nsl_fooled), "voted_at": self._clock()}
            mine = (votes.c.poll_id == poll_id) & (votes.c.voter == str(voter))
            if conn.execute(update(votes).where(mine).values(**answer)).rowcount == 0:
                conn.execute(insert(votes).values(poll_id=poll_id, voter=str(voter), **answer))

        self._write(work)

    def reveal(self, poll_id: int, truth: Mapping[str, Any]) -> Poll:
        """Show the answer (e.g. ``{"baseline_fooled": True, "nsl_fooled": False}``); voting stops."""
        truth = _json_value(dict(truth), "A poll's truth")

        def work(conn: Connection) -> Poll:
            _poll(conn, poll_id)
            conn.execute(update(polls).where(polls.c.id == poll_id).values(truth=truth, revealed_at=self._clock()))
            return _poll(conn, poll_id)

        return self._write(work)

    def close_poll(self, poll_id: int) -> Poll:
        """Close the poll (it stays readable); closing twice keeps the first time."""

        def work(conn: Connection) -> Poll:
            _poll(conn, poll_id)
            conn.execute(update(polls).where((polls.c.id == poll_id) & polls.c.closed_at.is_(None)).values(closed_at=self._clock()))
            return _poll(conn, poll_id)

        return self._write(work)

    def current_poll(self) -> Poll | None:
        """The poll not yet closed (open or revealed), None when there is none."""

        def work(conn: Connection) -> Poll | None:
            poll_id = conn.scalar(select(polls.c.id).where(polls.c.closed_at.is_(None)).order_by(polls.c.id.desc()).limit(1))
            return None if poll_id is None else _poll(conn, poll_id)

        return self._read(work)

    def poll_results(self, poll_id: int) -> PollResults:
        def work(conn: Connection) -> PollResults:
            poll = _poll(conn, poll_id)
            counts = {(b, n): 0 for b in (False, True) for n in (False, True)}
            for row in conn.execute(select(votes.c.baseline_fooled, votes.c.nsl_fooled).where(votes.c.poll_id == poll_id)):
                counts[(bool(row.baseline_fooled), bool(row.nsl_fooled))] += 1
            return PollResults(poll, counts, sum(counts.values()), poll.truth)

        return self._read(work)

    # --- class state: values every replica must agree on -------------------------------------------

    def get_state(self, key: str) -> State | None:
        return self._read(lambda conn: _state(conn, key))

    def set_state(self, key: str, value: Any) -> State:
        """Store a JSON value under ``key`` (e.g. "active_run", "teacher_view"); returns it with its new version."""
        value = _json_value(value, f"The class state {key!r}")

        def work(conn: Connection) -> State:
            old = conn.execute(select(class_state.c.version).where(class_state.c.key == key).with_for_update()).first()
            row = {"value": value, "updated_at": self._clock()}
            if old is None:
                conn.execute(insert(class_state).values(key=key, version=1, **row))
            else:
                conn.execute(update(class_state).where(class_state.c.key == key).values(version=old.version + 1, **row))
            return _state(conn, key)

        return self._write(work)

    # --- locks: one training job for the whole school at a time ------------------------------------

    def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take (or renew, for the same owner) the lock ``name`` for ``ttl_s`` seconds; False while another
        owner holds it. A lock whose time ran out (its holder died) can be taken over."""

        def work(conn: Connection) -> bool:
            now = self._clock()
            held = conn.execute(select(locks).where(locks.c.name == name).with_for_update()).first()
            if held is None:
                conn.execute(insert(locks).values(name=name, owner=owner, acquired_at=now, expires_at=now + ttl_s))
                return True
            if held.owner != owner and held.expires_at > now:
                return False
            since = held.acquired_at if held.owner == owner else now
            conn.execute(update(locks).where(locks.c.name == name).values(owner=owner, acquired_at=since, expires_at=now + ttl_s))
            return True

        return self._write(work)

    def release_lock(self, name: str, owner: str) -> bool:
        """Release the lock if ``owner`` holds it; True when it did."""
        mine = (locks.c.name == name) & (locks.c.owner == owner)
        return self._write(lambda conn: conn.execute(delete(locks).where(mine)).rowcount > 0)

    def lock_holder(self, name: str) -> str | None:
        """Who holds the lock now (None when free or expired)."""
        query = select(locks.c.owner).where((locks.c.name == name) & (locks.c.expires_at > self._clock()))
        return self._read(lambda conn: conn.scalar(query))

    # --- per-photo budgets of the strongest attack (a cache for the board) -------------------------

    def put_budgets(self, pair_version: str, model: str, norm: str, budgets: Mapping[str, float]) -> None:
        """Replace the cached budgets of one model pair, model and norm; ``inf`` (never fooled) is stored as NULL."""
        rows = []
        for photo, budget in budgets.items():
            budget = float(budget)
            if math.isnan(budget) or budget < 0:
                raise ClassroomError(f"The budget for {photo} must be a number >= 0 or infinity, not {budget}.")
            rows.append({"pair_version": pair_version, "model": model, "norm": norm, "photo": photo, "budget": None if math.isinf(budget) else budget})
        key = (photo_budgets.c.pair_version == pair_version) & (photo_budgets.c.model == model) & (photo_budgets.c.norm == norm)

        def work(conn: Connection) -> None:
            conn.execute(delete(photo_budgets).where(key))
            if rows:
                conn.execute(insert(photo_budgets), rows)

        self._write(work)

    def get_budgets(self, pair_version: str, model: str, norm: str) -> dict[str, float]:
        """``{photo: budget}`` as put (``inf`` for never fooled); empty when nothing is cached."""
        key = (photo_budgets.c.pair_version == pair_version) & (photo_budgets.c.model == model) & (photo_budgets.c.norm == norm)
        rows = self._read(lambda conn: conn.execute(select(photo_budgets.c.photo, photo_budgets.c.budget).where(key)).all())
        return {row.photo: math.inf if row.budget is None else float(row.budget) for row in rows}


class StoreLockout:
    """Wrong teacher passcodes per key ("session:<id>", "client:<address>"), counted in the store.

    The same rule as before, now shared by every replica: after ``max_failures`` wrong tries a key
    must wait ``base_wait`` seconds, every further failure doubles the wait, capped at ``max_wait``;
    the right passcode forgets the key. ``clock`` is wall-clock time (replicas share it, not a monotonic one).
    """

    def __init__(self, store: Database, max_failures: int = MAX_FAILURES, base_wait: float = BASE_WAIT_S, max_wait: float = MAX_WAIT_S, clock: Callable[[], float] = time.time):
        self.store, self.max_failures, self.base_wait, self.max_wait, self._clock = store, max_failures, base_wait, max_wait, clock

    def _rows(self, conn: Connection, keys: list[str], lock: bool = False) -> dict[str, Any]:
        query = select(lockout_counters).where(lockout_counters.c.key.in_(keys)).order_by(lockout_counters.c.key)
        return {row.key: row for row in conn.execute(query.with_for_update() if lock else query)}

    def wait_seconds(self, keys: Iterable[str]) -> float:
        """Seconds until any of ``keys`` may try again (0: it may try now)."""
        keys, now = list(keys), self._clock()
        rows = self.store._read(lambda conn: self._rows(conn, keys))
        return max([0.0, *(row.locked_until - now for row in rows.values())])

    def failure(self, keys: Iterable[str]) -> float:
        """Record one wrong passcode for every key; returns the wait it now imposes (0 before the limit)."""
        keys = sorted(set(keys))

        def work(conn: Connection) -> float:
            now, rows, waits = self._clock(), self._rows(conn, keys, lock=True), []
            for key in keys:
                old = rows.get(key)
                failures, locked_until = (old.failures + 1, old.locked_until) if old else (1, 0.0)
                if failures >= self.max_failures:
                    wait = min(self.max_wait, self.base_wait * 2 ** (failures - self.max_failures))
                    locked_until = max(locked_until, now + wait)
                values = {"failures": failures, "locked_until": locked_until}
                if old is None:
                    conn.execute(insert(lockout_counters).values(key=key, **values))
                else:
                    conn.execute(update(lockout_counters).where(lockout_counters.c.key == key).values(**values))
                waits.append(max(0.0, locked_until - now))
            return max(waits, default=0.0)

        return self.store._write(work)

    def tries_left(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        rows = self.store._read(lambda conn: self._rows(conn, keys))
        return max(0, self.max_failures - max([0, *(row.failures for row in rows.values())]))

    def success(self, keys: Iterable[str]) -> None:
        """The right passcode: forget the failures of this session and address."""
        keys = list(keys)
        self.store._write(lambda conn: conn.execute(delete(lockout_counters).where(lockout_counters.c.key.in_(keys))))


def _poll(conn: Connection, poll_id: int) -> Poll:
    row = conn.execute(select(polls).where(polls.c.id == poll_id)).first()
    if row is None:
        raise UnknownPoll(f"There is no poll {poll_id}.")
    return Poll(row.id, row.view, row.question, row.opened_at, row.truth, row.revealed_at, row.closed_at)


def _state(conn: Connection, key: str) -> State | None:
    row = conn.execute(select(class_state).where(class_state.c.key == key)).first()
    return None if row is None else State(row.key, row.value, row.version, row.updated_at)


def _json_value(value: Any, what: str) -> Any:
    """The value as JSON will give it back (tuples become lists); refuses what JSON cannot hold."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ClassroomError(f"{what} must be plain JSON (numbers, text, lists, dicts): {exc}.") from exc
