"""The class store: rounds, players, attempts and the leaderboard that a whole class shares (plus its CLI).

Why a store: the class activity is served by several Streamlit replicas behind nginx, and every
student's attempt, vote and nickname must be seen by all of them and survive a restart. Process
memory cannot do that, so everything the class shares lives in ONE database: a SQLite file by
default, PostgreSQL when ``$BEANGUARD_STORE_URL`` says so. Every write is one transaction and a
method returns only after COMMIT: an attempt the page acknowledged is on disk.

Why SQLAlchemy Core: one set of table definitions and queries for SQLite and PostgreSQL, no
hand-written dialect SQL (only SQLite's connection PRAGMAs), and no ORM session state to go stale
between replicas. Why WAL: readers (60 boards polling) never block the writer. Why the rate limit
lives in the store: a student's two browser tabs may reach two replicas; only the store sees both
(at most ``attempts_per_second`` per player; an eager caller WAITS, an attempt is never dropped).

Public API (``from core.classroom import ...``)::

    open_store(url=None, *, clock=time.time, sleep=time.sleep, attempts_per_second=2, max_wait_s=30) -> Store
    Store.create_round(kind, photos, norms, time_limit_s=None, max_players=60, model="adversarial") -> Round
    Store.get_round(code) / end_round(code) / reset_round(code) -> Round;  Store.rounds() / open_rounds() -> list[Round]
    Store.join(code, nickname) -> Player;  players(code) -> list[Player];  hide_player(player_id, hidden=True) -> Player
    Store.record_attempt(player_id, photo, norm, epsilon, method, steps, attacker, target, fooled, answer, model) -> Attempt
    Store.leaderboard(code) -> dict[norm, list[Entry]];  attempts(code) -> list[Attempt];  export_csv(code) -> str
    Store.open_poll(view, question=...) -> Poll;  vote(poll_id, voter, baseline_fooled, nsl_fooled);  reveal(poll_id, truth)
    Store.close_poll(poll_id);  current_poll() -> Poll | None;  poll_results(poll_id) -> PollResults
    Store.get_state(key) -> State | None;  set_state(key, value) -> State
    Store.acquire_lock(name, owner, ttl_s) -> bool;  release_lock(name, owner) -> bool;  lock_holder(name) -> str | None
    Store.put_budgets(pair_version, model, norm, {photo: budget});  get_budgets(pair_version, model, norm) -> dict
    StoreLockout(store, max_failures=5, base_wait=30, max_wait=3600, clock=time.time)   (teacher-passcode lock-out)
    Errors: ClassroomError > StoreUnavailable, UnknownRound, RoundClosed, RoundFull, BadNickname, NicknameTaken, ...

``reset_round`` starts the SAME round over (the code on the board stays valid): its attempts are
deleted, its players stay joined, an ended round reopens and its time limit restarts. Export the
CSV first to keep the old attempts. CLI: ``python -m core.classroom export --store URL --round CODE [--output FILE]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import math
import os
import secrets
import sys
import time
import unicodedata
from typing import Callable, Iterable

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from core.paths import runs_dir
from core.class_records import (  # noqa: F401  (re-exported: the whole API is importable from here)
    Attempt, BadAttempt, BadNickname, ClassroomError, Entry, NicknameTaken, Player, Poll, PollClosed, PollResults, Round, RoundClosed,
    RoundFull, State, StoreUnavailable, TooManyAttempts, UnknownPlayer, UnknownPoll, UnknownRound,
)
from core.class_shared import BASE_WAIT_S, DEFAULT_QUESTION, MAX_FAILURES, MAX_WAIT_S, SharedStore, StoreLockout  # noqa: F401
from core.store_schema import attempts, hidden_players, make_engine, players, rounds, unavailable, upgrade

__all__ = [
    "open_store", "default_url", "Store", "StoreLockout", "Round", "Player", "Attempt", "Entry", "Poll", "PollResults", "State",
    "ClassroomError", "StoreUnavailable", "UnknownRound", "RoundClosed", "RoundFull", "BadNickname", "NicknameTaken", "UnknownPlayer",
    "BadAttempt", "TooManyAttempts", "UnknownPoll", "PollClosed", "KINDS", "NORMS", "CODE_LETTERS", "CSV_COLUMNS", "STORE_URL_ENV",
    "MAX_FAILURES", "BASE_WAIT_S", "MAX_WAIT_S", "DEFAULT_QUESTION", "main",
]
STORE_URL_ENV = "BEANGUARD_STORE_URL"
STORE_FILE = "beanguard.db"  # beside the runs folder
KINDS = ("smallest", "targeted")
NORMS = ("infinity", "l2", "l1")
NORM_TITLES = {"infinity": "L∞", "l2": "L2", "l1": "L1"}
CODE_LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"  # no I, L, O: nothing to mistake for 1 or 0
MAX_NICKNAME = 24
CSV_COLUMNS = ("nickname", "photo", "budget ε", "norm", "method", "steps", "attacker knows", "target", "fooled", "answer", "time")


def default_url() -> str:
    """``$BEANGUARD_STORE_URL``, else the SQLite file ``beanguard.db`` beside the runs folder."""
    return os.environ.get(STORE_URL_ENV) or f"sqlite:///{runs_dir().parent / STORE_FILE}"


def open_store(url: str | None = None, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep, attempts_per_second: int = 2, max_wait_s: float = 30.0) -> "Store":
    """Open (creating or upgrading in place) the class store at ``url`` (default: :func:`default_url`).

    Raises :class:`StoreUnavailable` (one sentence, password hidden) when it cannot be reached or
    its schema is newer than this code's.
    """
    url = url or default_url()
    engine = make_engine(url)
    try:
        upgrade(engine, clock=clock)
    except DBAPIError as exc:
        engine.dispose()
        raise unavailable(engine.url, exc) from exc
    except ClassroomError:
        engine.dispose()
        raise
    return Store(engine, clock=clock, sleep=sleep, attempts_per_second=attempts_per_second, max_wait_s=max_wait_s)


class Store(SharedStore):
    """The class store. Open it with :func:`open_store`; one Store is safe to share between threads."""

    def __init__(self, engine, clock=time.time, sleep=time.sleep, attempts_per_second: int = 2, max_wait_s: float = 30.0):
        super().__init__(engine, clock, sleep)
        if attempts_per_second < 1:
            raise ValueError("attempts_per_second must be at least 1")
        self.attempts_per_second, self.max_wait_s = int(attempts_per_second), float(max_wait_s)

    # --- rounds ------------------------------------------------------------------------------------

    def create_round(self, kind: str, photos: str, norms: Iterable[str], time_limit_s: float | None = None, max_players: int = 60, model: str = "adversarial") -> Round:
        """A new open round with a fresh 4-letter code (5 letters once 4 keep colliding)."""
        if kind not in KINDS:
            raise ClassroomError(f"A round's kind is 'smallest' or 'targeted', not {kind!r}.")
        norms = [norms] if isinstance(norms, str) else list(norms)
        if not norms or any(norm not in NORMS for norm in norms):
            raise ClassroomError(f"A round allows one or more of the norms {', '.join(NORMS)}, not {norms!r}.")
        if not str(photos).strip() or not str(model).strip():
            raise ClassroomError("A round needs its photos (a file name, a class, or 'all') and the model to attack.")
        if time_limit_s is not None and not time_limit_s > 0:
            raise ClassroomError(f"A round's time limit must be a positive number of seconds, not {time_limit_s!r}.")
        if int(max_players) < 1:
            raise ClassroomError(f"A round needs room for at least one player, not {max_players!r}.")
        values = {"kind": kind, "photos": str(photos).strip(), "norms": ",".join(n for n in NORMS if n in norms), "model": str(model),
                  "time_limit_s": None if time_limit_s is None else float(time_limit_s), "max_players": int(max_players)}

        def work(conn: Connection) -> Round:
            for tries in range(40):
                code = "".join(secrets.choice(CODE_LETTERS) for _ in range(4 if tries < 20 else 5))
                if conn.scalar(select(rounds.c.code).where(rounds.c.code == code)) is None:
                    now = self._clock()
                    conn.execute(insert(rounds).values(code=code, created_at=now, started_at=now, **values))
                    return self._round(conn, code)
            raise ClassroomError("No free round code was found in 40 tries; try again.")

        return self._write(work)

    def get_round(self, code: str) -> Round:
        return self._read(lambda conn: self._round(conn, code))

    def rounds(self) -> list[Round]:
        """Every round, newest first."""
        return self._read(lambda conn: [self._round(conn, c) for c in conn.scalars(select(rounds.c.code).order_by(rounds.c.created_at.desc()))])

    def open_rounds(self) -> list[Round]:
        """The rounds still taking attempts, newest first: one indexed query, cheap enough for every rerun of every page."""
        query = select(rounds.c.code).where(rounds.c.ended_at.is_(None)).order_by(rounds.c.created_at.desc())
        return self._read(lambda conn: [r for r in (self._round(conn, c) for c in conn.scalars(query)) if r.state == "open"])

    def end_round(self, code: str) -> Round:
        """The teacher ends the round: no more joins or attempts; the board stays."""

        def work(conn: Connection) -> Round:
            round_ = self._round(conn, code, lock=True)
            if round_.ended_at is None:
                conn.execute(update(rounds).where(rounds.c.code == round_.code).values(ended_at=self._clock()))
            return self._round(conn, round_.code)

        return self._write(work)

    def reset_round(self, code: str) -> Round:
        """Start the same round over: attempts deleted, players kept, reopened, time limit restarted."""

        def work(conn: Connection) -> Round:
            round_ = self._round(conn, code, lock=True)
            conn.execute(delete(attempts).where(attempts.c.round_code == round_.code))
            conn.execute(update(rounds).where(rounds.c.code == round_.code).values(started_at=self._clock(), ended_at=None))
            return self._round(conn, round_.code)

        return self._write(work)

    # --- players -----------------------------------------------------------------------------------

    def join(self, code: str, nickname: str) -> Player:
        """Join an open round under ``nickname`` (trimmed, 1-24 characters, unique per round ignoring case)."""
        nickname = _checked_nickname(nickname)

        def work(conn: Connection) -> Player:
            round_ = self._open_round(conn, code, lock=True)
            taken = conn.scalar(select(players.c.id).where((players.c.round_code == round_.code) & (players.c.nickname_key == nickname.casefold())))
            if taken is not None:
                raise NicknameTaken(f"That nickname is already taken in round {round_.code}: choose another.")
            if conn.scalar(select(func.count()).select_from(players).where(players.c.round_code == round_.code)) >= round_.max_players:
                raise RoundFull(f"Round {round_.code} is full ({round_.max_players} players).")
            values = {"round_code": round_.code, "nickname": nickname, "nickname_key": nickname.casefold(), "joined_at": self._clock()}
            return _player(conn, conn.execute(insert(players).values(**values)).inserted_primary_key[0])

        return self._write(work)

    def players(self, code: str) -> list[Player]:
        """The round's players in joining order, hidden ones included (the teacher's list)."""

        def work(conn: Connection) -> list[Player]:
            round_ = self._round(conn, code)
            return [_player(conn, pid) for pid in conn.scalars(select(players.c.id).where(players.c.round_code == round_.code).order_by(players.c.id))]

        return self._read(work)

    def hide_player(self, player_id: int, hidden: bool = True) -> Player:
        """The teacher hides an offensive nickname from the board (``hidden=False`` shows it again)."""

        def work(conn: Connection) -> Player:
            _player(conn, player_id)
            conn.execute(delete(hidden_players).where(hidden_players.c.player_id == player_id))
            if hidden:
                conn.execute(insert(hidden_players).values(player_id=player_id, hidden_at=self._clock()))
            return _player(conn, player_id)

        return self._write(work)

    # --- attempts ----------------------------------------------------------------------------------

    def record_attempt(self, player_id: int, photo: str, norm: str, epsilon: float, method: str, steps: int, attacker: str,
                       target: str | None, fooled: bool, answer: str, model: str) -> Attempt:
        """Record one attempt the server computed; returns after COMMIT.

        Over the rate limit the call sleeps until the player's oldest attempt of the last second is
        a second old, then records it (bounded by ``max_wait_s``: then :class:`TooManyAttempts`).
        """
        epsilon = float(epsilon)
        if not math.isfinite(epsilon) or epsilon < 0:
            raise BadAttempt(f"An attempt's budget ε must be a finite number >= 0, not {epsilon}.")
        if int(steps) < 0:
            raise BadAttempt(f"An attempt's number of steps cannot be negative ({steps}).")
        values = {"photo": str(photo), "norm": norm, "epsilon": epsilon, "method": str(method), "steps": int(steps), "attacker": str(attacker),
                  "target": None if target is None else str(target), "fooled": bool(fooled), "answer": str(answer), "model": str(model)}
        deadline = self._clock() + self.max_wait_s
        while True:
            result = self._write(lambda conn: self._try_attempt(conn, player_id, values))
            if isinstance(result, Attempt):
                return result
            if self._clock() + result > deadline:
                raise TooManyAttempts("Too many attempts at once from this player: wait a moment and try again.")
            self._sleep(result)

    def _try_attempt(self, conn: Connection, player_id: int, values: dict) -> Attempt | float:
        """Insert the attempt, or return how long to wait first. Locking the player's row makes two
        replicas take turns for the same player (SQLite: BEGIN IMMEDIATE already serializes writers)."""
        code = conn.scalar(select(players.c.round_code).where(players.c.id == player_id).with_for_update())
        if code is None:
            raise UnknownPlayer(f"There is no player {player_id}: join the round again.")
        round_ = self._open_round(conn, code)
        if values["norm"] not in round_.norms:
            raise BadAttempt(f"Round {code} allows the norms {', '.join(NORM_TITLES[n] for n in round_.norms)}, not {values['norm']!r}.")
        if round_.kind == "targeted" and not values["target"]:
            raise BadAttempt(f"Round {code} is a targeted round: an attempt needs its target class.")
        now = self._clock()
        recent = conn.scalars(select(attempts.c.created_at).where((attempts.c.player_id == player_id) & (attempts.c.created_at > now - 1.0))
                              .order_by(attempts.c.created_at.desc()).limit(self.attempts_per_second)).all()
        if len(recent) >= self.attempts_per_second:
            return max(0.001, recent[-1] + 1.0 - now)
        attempt_id = conn.execute(insert(attempts).values(round_code=code, player_id=player_id, created_at=now, **values)).inserted_primary_key[0]
        return Attempt(attempt_id, player_id, code, created_at=now, **values)

    def attempts(self, code: str) -> list[Attempt]:
        """Every attempt of the round, oldest first."""

        def work(conn: Connection) -> list[Attempt]:
            round_ = self._round(conn, code)
            query = select(attempts).where(attempts.c.round_code == round_.code).order_by(attempts.c.created_at, attempts.c.id)
            return [Attempt(**row._asdict()) for row in conn.execute(query)]

        return self._read(work)

    def leaderboard(self, code: str) -> dict[str, list[Entry]]:
        """Per norm of the round, each visible player's best fooling attempt, best first.

        Best = smallest budget ε, then the earlier time. An attempt counts when it fooled the model;
        in a "targeted" round only when the model answered the target.
        """

        def work(conn: Connection) -> dict[str, list[Entry]]:
            round_ = self._round(conn, code)
            counts = and_(attempts.c.round_code == round_.code, attempts.c.fooled.is_(True), players.c.id.not_in(select(hidden_players.c.player_id)))
            if round_.kind == "targeted":
                counts = and_(counts, attempts.c.answer == attempts.c.target)
            order = (attempts.c.epsilon, attempts.c.created_at, attempts.c.id)
            place = func.row_number().over(partition_by=(attempts.c.player_id, attempts.c.norm), order_by=order).label("place")
            ranked = select(attempts, players.c.nickname, place).join(players, players.c.id == attempts.c.player_id).where(counts).subquery()
            best = select(ranked).where(ranked.c.place == 1).order_by(ranked.c.epsilon, ranked.c.created_at, ranked.c.id)
            board: dict[str, list[Entry]] = {norm: [] for norm in round_.norms}
            for row in conn.execute(best):
                entries = board.setdefault(row.norm, [])
                entries.append(Entry(len(entries) + 1, row.player_id, row.nickname, row.photo, row.norm, row.epsilon, round_.kind,
                                     row.target, row.answer, row.method, row.created_at, row.id))
            return board

        return self._read(work)

    def export_csv(self, code: str) -> str:
        """Every attempt of the round as CSV text, starting with a UTF-8 byte-order mark (so spreadsheets read ε and ∞)."""
        names = {p.id: p.nickname for p in self.players(code)}
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for a in self.attempts(code):
            when = _dt.datetime.fromtimestamp(a.created_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
            writer.writerow([names[a.player_id], a.photo, repr(a.epsilon), NORM_TITLES.get(a.norm, a.norm), a.method, a.steps, a.attacker,
                             a.target or "", "yes" if a.fooled else "no", a.answer, when])
        return "\ufeff" + out.getvalue()

    # --- helpers -----------------------------------------------------------------------------------

    def _round(self, conn: Connection, code: str, lock: bool = False) -> Round:
        code = str(code).strip().upper()
        query = select(rounds).where(rounds.c.code == code)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            shown = code if code.isalnum() and len(code) <= 8 else "with that code"  # never echo markup a student typed
            raise UnknownRound(f"There is no round {shown}: check the code on the board.")
        state = "ended" if row.ended_at is not None else "open"
        if state == "open" and row.time_limit_s is not None and self._clock() >= row.started_at + row.time_limit_s:
            state = "expired"
        values = row._asdict()
        values["norms"] = tuple(values["norms"].split(","))
        return Round(state=state, **values)

    def _open_round(self, conn: Connection, code: str, lock: bool = False) -> Round:
        round_ = self._round(conn, code, lock)
        if round_.state == "ended":
            raise RoundClosed(f"Round {round_.code} has ended: ask the teacher for the next round's code.")
        if round_.state == "expired":
            raise RoundClosed(f"Round {round_.code} is over: its time limit has run out.")
        return round_


def _checked_nickname(nickname: str) -> str:
    nickname = str(nickname).strip()
    if not nickname:
        raise BadNickname("A nickname needs at least one character.")
    if len(nickname) > MAX_NICKNAME:
        raise BadNickname(f"A nickname has at most {MAX_NICKNAME} characters; this one has {len(nickname)}.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in nickname):
        raise BadNickname("A nickname cannot contain line breaks or other invisible control characters.")
    return nickname


def _player(conn: Connection, player_id: int) -> Player:
    row = conn.execute(select(players).where(players.c.id == player_id)).first()
    if row is None:
        raise UnknownPlayer(f"There is no player {player_id}: join the round again.")
    hidden = conn.scalar(select(hidden_players.c.player_id).where(hidden_players.c.player_id == player_id)) is not None
    return Player(row.id, row.round_code, row.nickname, row.joined_at, hidden)


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.classroom", description="The class store's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="Write every attempt of a round as CSV (UTF-8 with a byte-order mark).")
    export.add_argument("--store", default=None, help=f"store URL (default: ${STORE_URL_ENV}, else sqlite:///<repo>/{STORE_FILE})")
    export.add_argument("--round", required=True, dest="code", help="the round code, e.g. KQWX")
    export.add_argument("--output", default=None, help="CSV file to write (default: standard output)")
    passcode = commands.add_parser("passcode", help="Set the teacher passcode every server of this store checks (asked for twice).")
    passcode.add_argument("--store", default=None, help=f"store URL (default: ${STORE_URL_ENV}, else sqlite:///<repo>/{STORE_FILE})")
    args = parser.parse_args(argv)
    if args.command == "passcode":
        return _set_passcode(parser, args.store)
    try:
        text = open_store(args.store).export_csv(args.code)
    except ClassroomError as exc:
        parser.exit(2, f"{exc}\n")
    data = text.encode("utf-8")
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _set_passcode(parser: argparse.ArgumentParser, url: str | None) -> int:
    import getpass

    from core import teacher_passcode

    first = getpass.getpass("New teacher passcode: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    second = getpass.getpass("The same again: ") if sys.stdin.isatty() else first
    if first != second:
        parser.exit(2, "The two passcodes differ; nothing was changed.\n")
    try:
        teacher_passcode.set_passcode(open_store(url), first)
    except ClassroomError as exc:
        parser.exit(2, f"{exc}\n")
    print("The teacher passcode is set; every server using this store checks it from the next try.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
