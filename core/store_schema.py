"""The class store's tables, their forward migrations, and how a connection to the store is made.

Why versioned migrations: the store is a file (or a database) that outlives the code; a newer
Beanguard must open an older file in place and keep every row, and an older Beanguard must refuse a
newer file instead of writing into tables it does not know. ``schema_version`` holds one row per
applied migration; :data:`MIGRATIONS` is the ordered list, and each migration creates the tables
*as they were at its version* (so building a version-1 file stays possible after version 3 lands).

Version 2 only adds tables, so no migration needs ``ALTER TABLE`` (which SQLAlchemy Core cannot
write portably): hidden nicknames live in their own ``hidden_players`` table.

Connections: SQLite runs in WAL mode (readers never block the one writer), with ``synchronous=FULL``
(a commit is on disk when it returns), a busy timeout (writers queue instead of failing) and foreign
keys on. Python's sqlite3 starts transactions late (only before the first write), so a read-then-write
transaction would not be atomic; the documented SQLAlchemy recipe below takes over ``BEGIN``: every
write transaction starts with ``BEGIN IMMEDIATE`` (it holds the write lock from its first read), every
read transaction with a plain ``BEGIN`` (one consistent snapshot). PostgreSQL needs none of this.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Callable

from sqlalchemy import (
    JSON, Boolean, Column, Connection, Double, Engine, ForeignKey, Index, Integer, MetaData, PrimaryKeyConstraint,
    String, Table, UniqueConstraint, create_engine, event, func, insert, select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError, ProgrammingError

from core.class_records import StoreUnavailable

BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10
WRITE_OPTION = "beanguard_write"  # execution option: this transaction will write (SQLite: BEGIN IMMEDIATE)
UPGRADE_ATTEMPTS = 8  # waits of 0.05, 0.1, ... 3.2 s between them: 6.35 s in all


# --- version 1: rounds, players, attempts, polls and votes -----------------------------------------

V1 = MetaData()
schema_version = Table(
    "schema_version", MetaData(),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String, nullable=False),
    Column("applied_at", Double, nullable=False),
)
rounds = Table(
    "rounds", V1,
    Column("code", String(8), primary_key=True),
    Column("kind", String(16), nullable=False),  # "smallest" or "targeted"
    Column("photos", String, nullable=False),  # one photo file name, one class, or "all"
    Column("norms", String, nullable=False),  # comma-separated, e.g. "infinity,l2"
    Column("model", String, nullable=False),
    Column("time_limit_s", Double),
    Column("max_players", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double, nullable=False),  # reset_round restarts the clock
    Column("ended_at", Double),
)
players = Table(
    "players", V1,
    Column("id", Integer, primary_key=True),
    Column("round_code", String(8), ForeignKey("rounds.code", ondelete="CASCADE"), nullable=False),
    Column("nickname", String, nullable=False),  # as typed (trimmed), never escaped
    Column("nickname_key", String, nullable=False),  # casefolded: uniqueness ignores case
    Column("joined_at", Double, nullable=False),
    UniqueConstraint("round_code", "nickname_key", name="uq_players_round_nickname"),
    sqlite_autoincrement=True,
)
attempts = Table(
    "attempts", V1,
    Column("id", Integer, primary_key=True),
    Column("round_code", String(8), ForeignKey("rounds.code", ondelete="CASCADE"), nullable=False),
    Column("player_id", Integer, ForeignKey("players.id", ondelete="CASCADE"), nullable=False),
    Column("photo", String, nullable=False),
    Column("norm", String(16), nullable=False),
    Column("epsilon", Double, nullable=False),
    Column("method", String, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("attacker", String, nullable=False),  # whose gradients made the change
    Column("target", String),  # the class a targeted attempt aims for
    Column("fooled", Boolean, nullable=False),
    Column("answer", String, nullable=False),  # the attacked model's answer
    Column("model", String, nullable=False),  # the attacked model
    Column("created_at", Double, nullable=False),
    Index("ix_attempts_player_time", "player_id", "created_at"),
    Index("ix_attempts_round_norm", "round_code", "norm"),
    sqlite_autoincrement=True,  # ids are never reused, even after reset_round deletes attempts
)
polls = Table(
    "polls", V1,
    Column("id", Integer, primary_key=True),
    Column("view", JSON, nullable=False),  # the teacher's view: photo + change settings
    Column("question", String, nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("truth", JSON),
    Column("revealed_at", Double),
    Column("closed_at", Double),
    sqlite_autoincrement=True,
)
votes = Table(
    "votes", V1,
    Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), nullable=False),
    Column("voter", String, nullable=False),
    Column("baseline_fooled", Boolean, nullable=False),
    Column("nsl_fooled", Boolean, nullable=False),
    Column("voted_at", Double, nullable=False),
    PrimaryKeyConstraint("poll_id", "voter"),
)

# --- version 2: lock-out counters, class state, locks, hidden nicknames, per-photo budgets ------------

V2 = MetaData()
lockout_counters = Table(
    "lockout_counters", V2,
    Column("key", String, primary_key=True),  # "session:<id>" or "client:<address>"
    Column("failures", Integer, nullable=False),
    Column("locked_until", Double, nullable=False),
)
class_state = Table(
    "class_state", V2,
    Column("key", String, primary_key=True),
    Column("value", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
)
locks = Table(
    "locks", V2,
    Column("name", String, primary_key=True),
    Column("owner", String, nullable=False),
    Column("acquired_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
)
hidden_players = Table(
    "hidden_players", V2,
    Column("player_id", Integer, ForeignKey(players.c.id, ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("hidden_at", Double, nullable=False),
)
photo_budgets = Table(
    "photo_budgets", V2,
    Column("pair_version", String, nullable=False),
    Column("model", String, nullable=False),
    Column("norm", String(16), nullable=False),
    Column("photo", String, nullable=False),
    Column("budget", Double),  # NULL: no attack fooled the model (an infinite budget)
    PrimaryKeyConstraint("pair_version", "model", "norm", "photo"),
)

Migration = tuple[int, str, Callable[[Connection], None]]
MIGRATIONS: list[Migration] = [
    (1, "rounds, players, attempts, polls and votes", lambda conn: V1.create_all(conn)),
    (2, "lock-out counters, class state, locks, hidden nicknames, per-photo budgets", lambda conn: V2.create_all(conn)),
]
LATEST_VERSION = MIGRATIONS[-1][0]


# --- connections -----------------------------------------------------------------------------------


def safe_url(url: str | URL) -> str:
    """The URL as a message may show it: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the connection rules above (SQLite: WAL, FULL sync, busy timeout, FKs)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreUnavailable(f"The class store URL {url!r} is not a database URL (e.g. sqlite:///beanguard.db).") from exc
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
            parsed = parsed.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1 picks psycopg 3; requirements.txt installs psycopg2
        args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
        try:
            return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=args)
        except (ImportError, NoSuchModuleError) as exc:
            raise StoreUnavailable(f"The class store {safe_url(parsed)} needs a database driver that is not installed ({exc}).") from exc
    if parsed.database in (None, "", ":memory:"):
        raise StoreUnavailable(f"The class store {safe_url(parsed)} must be a file: an in-memory SQLite database is not shared.")
    engine = create_engine(parsed, pool_size=10, max_overflow=20, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we send BEGIN ourselves (_sqlite_begin)
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", f"busy_timeout={int(BUSY_TIMEOUT_S * 1000)}", "foreign_keys=ON", "synchronous=FULL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


# --- upgrading -------------------------------------------------------------------------------------


def current_version(conn: Connection) -> int:
    """The highest applied migration (0 for an empty database)."""
    schema_version.create(conn, checkfirst=True)
    return conn.scalar(select(func.max(schema_version.c.version))) or 0


def upgrade(engine: Engine, target: int = LATEST_VERSION, clock: Callable[[], float] = time.time) -> int:
    """Apply the missing migrations up to ``target`` in ONE transaction; returns the version reached.

    Each migration first inserts its ``schema_version`` row: two servers upgrading the same empty
    database at once collide on that row, and the loser retries and finds the work done. Replicas
    started together on a new SQLite file can also meet "database is locked" at once, without the
    busy timeout: each connection switches the file to WAL, and SQLite refuses a lock it could only
    wait for in a deadlock (one connection holding a read lock while another commits). That is
    retried too, with growing waits.
    """
    writer = engine.execution_options(**{WRITE_OPTION: True})
    for attempt in range(UPGRADE_ATTEMPTS):
        try:
            with writer.begin() as conn:
                version = current_version(conn)
                if version > LATEST_VERSION:
                    raise StoreUnavailable(
                        f"The class store {safe_url(engine.url)} has schema version {version}, newer than this "
                        f"Beanguard's {LATEST_VERSION}: update Beanguard before using it."
                    )
                for number, description, migrate in MIGRATIONS[version:target]:
                    conn.execute(insert(schema_version).values(version=number, description=description, applied_at=clock()))
                    migrate(conn)
                return max(version, min(target, LATEST_VERSION))
        except (IntegrityError, ProgrammingError, OperationalError) as exc:
            if attempt == UPGRADE_ATTEMPTS - 1 or (isinstance(exc, OperationalError) and not _locked(exc)):
                raise
            time.sleep(0.05 * 2**attempt)  # another server is upgrading: look again once it committed
    raise AssertionError("unreachable")


def _locked(exc: OperationalError) -> bool:
    """SQLite's SQLITE_BUSY ("database is locked"); any other operational error is not a collision."""
    return "database is locked" in str(exc.orig)


def unavailable(url: URL, exc: DBAPIError) -> StoreUnavailable:
    """One sentence for a database that cannot be used, with the driver's first line (password hidden)."""
    reason = (str(exc.orig or exc).strip().splitlines() or ["no reason given"])[0].rstrip(".")
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return StoreUnavailable(f"The class store {safe_url(url)} cannot be used ({reason}).")
