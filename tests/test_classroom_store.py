"""The class store (core.classroom) as a specification: rounds, players, attempts, the board, the CSV export.

Every store test runs twice: on a SQLite file, and in an empty schema of a throwaway PostgreSQL
cluster (tests/support/store_fixtures.py). Polls, state, locks, lock-out, budgets and schema versions are
in tests/test_class_shared_store.py.
"""

from __future__ import annotations

import csv
import io
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.classroom import (
    CODE_LETTERS, CSV_COLUMNS, BadAttempt, BadNickname, ClassroomError, NicknameTaken, RoundClosed, RoundFull, UnknownRound, open_store,
)

pytest_plugins = ["tests.support.store_fixtures"]  # the store fixtures: SQLite and PostgreSQL
REPO = Path(__file__).resolve().parents[1]


def attempt(store, player, epsilon=0.01, norm="infinity", fooled=True, answer="healthy", target=None, photo="leaf.jpg"):
    return store.record_attempt(player.id, photo, norm, epsilon, "pgd", 10, "adversarial", target, fooled, answer, "adversarial")


# --- rounds ----------------------------------------------------------------------------------------


def test_a_new_round_is_open_and_has_a_short_code_without_ambiguous_letters(store):
    made = store.create_round("smallest", "all", ["l2", "infinity"], time_limit_s=300)
    assert len(made.code) == 4 and set(made.code) <= set(CODE_LETTERS) and not set(made.code) & set("IOL01")
    assert made.state == "open" and made.norms == ("infinity", "l2") and made.max_players == 60 and made.model == "adversarial"
    assert store.get_round(f" {made.code.lower()} ") == made  # typed in lower case with spaces: same round
    assert [r.code for r in store.rounds()] == [made.code]


def test_round_codes_are_unique(store):
    codes = [store.create_round("smallest", "all", ["infinity"]).code for _ in range(40)]
    assert len(set(codes)) == 40


def test_a_round_refuses_an_unknown_kind_or_norm(store):
    with pytest.raises(ClassroomError, match="'smallest' or 'targeted'"):
        store.create_round("fastest", "all", ["infinity"])
    with pytest.raises(ClassroomError, match="norms"):
        store.create_round("smallest", "all", ["l3"])


def test_a_round_expires_when_its_time_limit_runs_out(timed_store, clock):
    made = timed_store.create_round("smallest", "all", ["infinity"], time_limit_s=60)
    player = timed_store.join(made.code, "ann")
    clock.now += 59
    attempt(timed_store, player)
    clock.now += 1
    assert timed_store.get_round(made.code).state == "expired"
    with pytest.raises(RoundClosed, match="time limit"):
        attempt(timed_store, player)
    with pytest.raises(RoundClosed):
        timed_store.join(made.code, "bob")


def test_an_ended_round_refuses_joins_and_attempts_but_keeps_its_board(store):
    made = store.create_round("smallest", "all", ["infinity"])
    player = store.join(made.code, "ann")
    attempt(store, player)
    assert store.end_round(made.code).state == "ended"
    with pytest.raises(RoundClosed, match=f"Round {made.code} has ended"):
        store.join(made.code, "bob")
    with pytest.raises(RoundClosed, match="has ended"):
        attempt(store, player)
    assert [e.nickname for e in store.leaderboard(made.code)["infinity"]] == ["ann"]


def test_reset_round_starts_the_same_code_over_with_players_kept_and_attempts_cleared(timed_store, clock):
    made = timed_store.create_round("smallest", "all", ["infinity"], time_limit_s=60)
    player = timed_store.join(made.code, "ann")
    attempt(timed_store, player)
    clock.now += 120
    again = timed_store.reset_round(made.code)
    assert again.code == made.code and again.state == "open" and again.started_at == clock.now
    assert timed_store.attempts(made.code) == [] and timed_store.leaderboard(made.code) == {"infinity": []}
    assert [p.nickname for p in timed_store.players(made.code)] == ["ann"]
    assert attempt(timed_store, player).round_code == made.code  # the joined player plays on


# --- players ---------------------------------------------------------------------------------------


def test_nicknames_are_trimmed_and_stored_literally(store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    odd = "  <b>&amp; 'ε'</b>\\n  "
    player = store.join(code, odd)
    assert player.nickname == odd.strip()
    attempt(store, player)
    assert store.leaderboard(code)["infinity"][0].nickname == odd.strip()
    assert store.players(code)[0].nickname == odd.strip()


def test_nicknames_have_1_to_24_characters_and_no_control_characters(store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    assert store.join(code, "x" * 24).nickname == "x" * 24
    with pytest.raises(BadNickname, match="at most 24 characters; this one has 25"):
        store.join(code, "y" * 25)
    for empty in ("", "   "):
        with pytest.raises(BadNickname, match="at least one character"):
            store.join(code, empty)
    with pytest.raises(BadNickname, match="line breaks"):
        store.join(code, "two\nlines")


def test_a_nickname_is_unique_per_round_ignoring_case(store):
    first, second = (store.create_round("smallest", "all", ["infinity"]).code for _ in range(2))
    store.join(first, "Bean Queen")
    with pytest.raises(NicknameTaken, match=f"already taken in round {first}"):
        store.join(first, " bean QUEEN ")
    assert store.join(second, "bean queen").round_code == second


def test_an_unknown_round_code_is_refused_with_one_sentence(store):
    with pytest.raises(UnknownRound) as refused:
        store.join("abcd", "ann")
    assert str(refused.value) == "There is no round ABCD: check the code on the board."


def test_a_full_round_refuses_the_next_player(store):
    code = store.create_round("smallest", "all", ["infinity"], max_players=2).code
    store.join(code, "ann")
    store.join(code, "bob")
    with pytest.raises(RoundFull, match=f"Round {code} is full \\(2 players\\)"):
        store.join(code, "cid")


def test_a_hidden_player_leaves_the_board_and_can_come_back(store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    rude, nice = store.join(code, "rude"), store.join(code, "nice")
    attempt(store, rude, 0.01)
    attempt(store, nice, 0.02)
    assert store.hide_player(rude.id).hidden
    assert [e.nickname for e in store.leaderboard(code)["infinity"]] == ["nice"]
    store.hide_player(rude.id, hidden=False)
    assert [e.nickname for e in store.leaderboard(code)["infinity"]] == ["rude", "nice"]


# --- attempts and the board ------------------------------------------------------------------------


def test_the_third_attempt_in_a_second_waits_until_the_second_is_over_and_none_is_dropped(store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    player = store.join(code, "eager")
    start = time.monotonic()
    done = []
    for number in range(3):
        attempt(store, player, epsilon=0.01 * (number + 1))
        done.append(time.monotonic() - start)
    assert done[1] < 0.5, done  # two quick submissions go straight in
    assert 0.9 <= done[2] < 1.6, done  # the third waited for the first one's second to pass
    assert len(store.attempts(code)) == 3


def test_the_rate_limit_counts_per_player(store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    start = time.monotonic()
    for name in ("ann", "bob", "cid"):
        player = store.join(code, name)
        attempt(store, player)
        attempt(store, player)
    assert time.monotonic() - start < 0.9


def test_the_rate_limit_holds_for_one_player_whose_tabs_reach_two_replicas(store_url):
    replicas = [open_store(store_url) for _ in range(2)]
    code = replicas[0].create_round("smallest", "all", ["infinity"]).code
    player = replicas[0].join(code, "two tabs")
    start = threading.Barrier(6)

    def tab(replica) -> None:
        start.wait()
        attempt(replica, player)

    threads = [threading.Thread(target=tab, args=(replicas[n % 2],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    times = sorted(a.created_at for a in replicas[1].attempts(code))
    assert len(times) == 6  # every tab's attempt went in, none dropped
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[2:])), times  # never 3 within a second
    for replica in replicas:
        replica.close()


def test_an_attempt_must_use_a_norm_the_round_allows_and_a_finite_budget(store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    player = store.join(code, "ann")
    with pytest.raises(BadAttempt, match="allows the norms L∞, not 'l2'"):
        attempt(store, player, norm="l2")
    with pytest.raises(BadAttempt, match="finite number"):
        attempt(store, player, epsilon=float("nan"))
    assert store.attempts(code) == []


def test_the_board_keeps_each_players_smallest_fooling_budget_per_norm_earlier_time_first(timed_store, clock):
    code = timed_store.create_round("smallest", "all", ["infinity", "l2"]).code
    ann, bob, cid = (timed_store.join(code, name) for name in ("ann", "bob", "cid"))
    made = {}
    for player, epsilon, fooled, norm in [(ann, 0.03, True, "infinity"), (ann, 0.02, True, "infinity"), (ann, 0.001, False, "infinity"),
                                          (bob, 0.02, True, "infinity"), (ann, 0.02, True, "infinity"), (cid, 0.5, True, "l2"),
                                          (cid, 0.01, True, "infinity")]:
        clock.now += 1
        made.setdefault((player.nickname, epsilon), attempt(timed_store, player, epsilon, norm=norm, fooled=fooled))
    board = timed_store.leaderboard(code)
    assert [(e.rank, e.nickname, e.budget) for e in board["infinity"]] == [(1, "cid", 0.01), (2, "ann", 0.02), (3, "bob", 0.02)]
    assert board["infinity"][1].attempt_id == made[("ann", 0.02)].id  # ann's first 0.02, not her later one
    assert [(e.nickname, e.budget, e.norm, e.kind) for e in board["l2"]] == [("cid", 0.5, "l2", "smallest")]


def test_a_targeted_round_counts_only_attempts_that_made_the_model_answer_the_target(store):
    code = store.create_round("targeted", "angular_leaf_spot", ["l2"]).code
    ann, bob = store.join(code, "ann"), store.join(code, "bob")
    attempt(store, ann, 0.1, norm="l2", fooled=True, answer="bean_rust", target="healthy")  # fooled, but not into the target
    attempt(store, bob, 0.3, norm="l2", fooled=True, answer="healthy", target="healthy")
    with pytest.raises(BadAttempt, match="needs its target class"):
        attempt(store, ann, 0.2, norm="l2")
    [entry] = store.leaderboard(code)["l2"]
    assert (entry.nickname, entry.target, entry.answer, entry.kind) == ("bob", "healthy", "healthy", "targeted")


def brute_force_board(rows, hidden=frozenset()) -> dict[str, list[tuple[str, float]]]:
    best: dict[tuple[str, str], tuple] = {}
    for nickname, a in rows:
        if a.fooled and nickname not in hidden:
            key = (a.norm, nickname)
            best[key] = min(best.get(key, (a.epsilon, a.created_at, a.id)), (a.epsilon, a.created_at, a.id))
    board: dict[str, list] = {}
    for (norm, nickname), value in sorted(best.items(), key=lambda item: item[1]):
        board.setdefault(norm, []).append((nickname, value[0]))
    return board


def test_30_players_sending_20_attempts_at_once_lose_nothing_and_the_board_matches_the_rows(store_url):
    store = open_store(store_url, attempts_per_second=10)  # the limit still bites (20 attempts take >= 1.9 s each)
    code = store.create_round("smallest", "all", ["infinity", "l2"]).code
    players = [store.join(code, f"player {n:02d}") for n in range(30)]
    budgets = random.Random(7).sample(range(1, 100_000), 600)  # all distinct
    start, errors, returned = threading.Barrier(30), [], []

    def play(index: int) -> None:
        try:
            start.wait()
            for k in range(20):
                n = index * 20 + k
                returned.append(attempt(store, players[index], budgets[n] / 1e6, norm=("infinity", "l2")[n % 2], fooled=budgets[n] % 3 != 0))
        except Exception as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    rows = store.attempts(code)
    assert len(rows) == 600 and len({a.id for a in rows}) == 600
    assert sorted(a.id for a in returned) == sorted(a.id for a in rows)
    names = {p.id: p.nickname for p in players}
    board = {norm: [(e.nickname, e.budget) for e in entries] for norm, entries in store.leaderboard(code).items()}
    assert board == brute_force_board([(names[a.player_id], a) for a in rows])
    store.close()


def test_every_attempt_a_killed_writer_saw_committed_is_in_the_store(store_url):
    store = open_store(store_url)
    code = store.create_round("smallest", "all", ["infinity"]).code
    writer = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "classroom_writer.py"), store_url, code], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    printed = []
    try:
        assert writer.stdout.readline().strip() == "ready"
        while len(printed) < 40:
            line = writer.stdout.readline()
            assert line, "the writer stopped before it was killed"
            printed.append(int(line))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    printed += [int(line) for line in writer.stdout.read().split()]  # whatever it printed before it died
    store.close()
    reopened = open_store(store_url)
    stored = {a.id for a in reopened.attempts(code)}
    assert set(printed) <= stored and len(printed) >= 40
    player = reopened.join(code, "after the crash")
    assert attempt(reopened, player).id not in stored  # and it takes new writes
    reopened.close()


# --- the CSV export and its command line -----------------------------------------------------------


def filled_round(store) -> str:
    code = store.create_round("targeted", "all", ["infinity", "l2"]).code
    player = store.join(code, "Zoë <3")
    attempt(store, player, 4 / 255, norm="infinity", answer="healthy", target="healthy")
    attempt(store, player, 0.5, norm="l2", fooled=False, answer="bean_rust", target="healthy")
    return code


def test_export_csv_has_a_byte_order_mark_plain_headers_and_one_row_per_attempt(store):
    code = filled_round(store)
    text = store.export_csv(code)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert tuple(rows[0]) == CSV_COLUMNS and CSV_COLUMNS[2] == "budget ε"
    assert [(r[0], float(r[2]), r[3], r[7], r[8], r[9]) for r in rows[1:]] == [
        ("Zoë <3", 4 / 255, "L∞", "healthy", "yes", "healthy"), ("Zoë <3", 0.5, "L2", "healthy", "no", "bean_rust")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.classroom", *args], cwd=REPO, capture_output=True, timeout=120)


def test_the_command_line_exports_a_round_to_a_file_or_stdout(store, store_url, tmp_path):
    code = filled_round(store)
    output = tmp_path / "round.csv"
    done = run_cli("export", "--store", store_url, "--round", code.lower(), "--output", str(output))
    assert done.returncode == 0, done.stderr.decode()
    assert output.read_bytes().startswith(b"\xef\xbb\xbf") and output.read_bytes() == store.export_csv(code).encode("utf-8")
    printed = run_cli("export", "--store", store_url, "--round", code)
    assert printed.returncode == 0 and printed.stdout.decode("utf-8") == store.export_csv(code)


def test_the_command_line_refuses_an_unknown_round_with_exit_code_2_and_one_sentence(store, store_url):
    done = run_cli("export", "--store", store_url, "--round", "QQQQ")
    lines = [line for line in done.stderr.decode().splitlines() if not line.startswith(("I0000", "WARNING: All log"))]
    assert done.returncode == 2 and lines == ["There is no round QQQQ: check the code on the board."]
    assert done.stdout == b""


def test_open_rounds_leaves_out_ended_and_expired_rounds(timed_store, clock):
    ended = timed_store.create_round("smallest", "all", ["infinity"])
    timed_store.end_round(ended.code)
    clock.now += 1
    timed = timed_store.create_round("smallest", "all", ["infinity"], time_limit_s=60)
    clock.now += 1
    running = timed_store.create_round("targeted", "all", ["l2"])
    assert [r.code for r in timed_store.open_rounds()] == [running.code, timed.code]
    clock.now += 60
    assert [r.code for r in timed_store.open_rounds()] == [running.code]
