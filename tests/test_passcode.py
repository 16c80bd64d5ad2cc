"""The teacher passcode: 5 wrong tries, then a growing wait, per session and per client address.

The headline test drives the real app: a client that guessed wrong five times cannot unlock the
teacher's tools, even with the right passcode, so it cannot start training; nor can a new session
from the same address.
"""

from __future__ import annotations

import logging

import pytest

from core.classroom import StoreLockout, open_store
from dashboard import passcode, retraining
from dashboard.passcode import attempt
from tests.support.page import new_page, unlock_teacher

SECRET = "bean-teacher-42"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lockout(clock, tmp_path) -> StoreLockout:
    store = open_store(f"sqlite:///{tmp_path / 'class.db'}")
    return StoreLockout(store, max_failures=5, base_wait=30.0, max_wait=3600.0, clock=clock)


SESSION_A, SESSION_B, ADDRESS, OTHER_ADDRESS = "session:a", "session:b", "client:10.0.0.7", "client:10.0.0.8"


def wrong(lockout: StoreLockout, times: int, keys=(SESSION_A, ADDRESS)) -> list[passcode.Attempt]:
    return [attempt("guess", SECRET, lockout, list(keys)) for _ in range(times)]


# --- the lock-out rule -----------------------------------------------------------------------------


def test_four_wrong_tries_count_down_and_the_fifth_locks_for_30_seconds(lockout):
    results = wrong(lockout, 5)
    assert [r.accepted for r in results] == [False] * 5
    assert [r.message for r in results[:4]] == [f"Wrong teacher passcode ({n} {'try' if n == 1 else 'tries'} left before a wait)." for n in (4, 3, 2, 1)]
    assert "try again in 30 s" in results[4].message
    assert lockout.wait_seconds([SESSION_A]) == pytest.approx(30.0)


def test_a_locked_out_client_is_refused_even_with_the_right_passcode(lockout, clock):
    wrong(lockout, 5)
    refused = attempt(SECRET, SECRET, lockout, [SESSION_A, ADDRESS])
    assert not refused.accepted and "Too many wrong passcodes" in refused.message
    clock.now += 31
    assert attempt(SECRET, SECRET, lockout, [SESSION_A, ADDRESS]).accepted


def test_every_further_wrong_try_doubles_the_wait_up_to_an_hour(lockout, clock):
    waits = []
    for _ in range(10):
        wrong(lockout, 1)
        waits.append(round(lockout.wait_seconds([SESSION_A])))
        clock.now += 10_000  # let each wait pass, so the next try is compared
    assert waits == [0, 0, 0, 0, 30, 60, 120, 240, 480, 960]
    for _ in range(5):
        wrong(lockout, 1)
        clock.now += 10_000
    wrong(lockout, 1)
    assert lockout.wait_seconds([SESSION_A]) == pytest.approx(3600.0)


def test_the_address_is_locked_for_a_new_session_and_other_addresses_are_not(lockout):
    wrong(lockout, 5, (SESSION_A, ADDRESS))
    assert not attempt(SECRET, SECRET, lockout, [SESSION_B, ADDRESS]).accepted  # a reload does not help
    assert attempt(SECRET, SECRET, lockout, [SESSION_B, OTHER_ADDRESS]).accepted


def test_the_right_passcode_forgets_earlier_wrong_tries(lockout):
    wrong(lockout, 4)
    assert attempt(SECRET, SECRET, lockout, [SESSION_A, ADDRESS]).accepted
    assert lockout.tries_left([SESSION_A, ADDRESS]) == 5


def test_wrong_tries_and_lock_outs_are_logged_with_session_and_address(lockout, caplog):
    with caplog.at_level(logging.INFO, logger="dashboard.passcode"):
        wrong(lockout, 6)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 6 and all(SESSION_A in m and ADDRESS in m for m in messages)
    assert "locked out for 30 s" in messages[4] and "refused" in messages[5]


# --- the app ---------------------------------------------------------------------------------------


@pytest.fixture
def client(monkeypatch) -> dict[str, str]:
    """Who the next page run comes from: AppTest has no real client address, and gives every
    session the same id, so the test says which session and laptop it plays."""
    who = {"session": "first-tab", "address": "10.0.0.7"}
    monkeypatch.setattr(passcode, "session_id", lambda: who["session"])
    monkeypatch.setattr(passcode, "client_address", lambda: who["address"])
    return who


@pytest.fixture
def environment(environment, client):
    """The page's environment (conftest) with a teacher passcode, for the client the test plays."""
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", SECRET)
    return environment


def test_a_locked_out_client_cannot_start_training(environment, client):
    page = new_page().run()
    page.button(key="teacher_button").click().run()
    for _ in range(5):
        page.text_input(key="teacher_passcode").input("guess")
        page.button(key="teacher_unlock").click().run()
    assert any("try again in 30 s" in e.value for e in page.error), [e.value for e in page.error]
    page.text_input(key="teacher_passcode").input(SECRET)
    page.button(key="teacher_unlock").click().run()
    assert any("Too many wrong passcodes" in e.value for e in page.error)
    assert not any(button.key == "train_start" for button in page.button), "the retrain form is in the page"

    client["session"] = "reloaded-tab"  # same laptop, new session
    reloaded = unlock_teacher(new_page().run(), SECRET)
    assert any("Too many wrong passcodes" in e.value for e in reloaded.error)
    assert not any(button.key == "train_start" for button in reloaded.button)
    assert retraining.shared_manager().status().state == "idle"  # nothing was started

    client.update(session="teacher-laptop", address="10.0.0.8")  # another laptop is not affected
    other = unlock_teacher(new_page().run(), SECRET)
    assert any(button.key == "train_start" for button in other.button)


def test_the_teacher_changes_the_passcode_without_a_restart_and_every_page_checks_the_new_one(environment):
    teacher = unlock_teacher(new_page().run(), SECRET)
    teacher.text_input(key="teacher_new_passcode").input("fresh-beans-2027")
    teacher.text_input(key="teacher_new_passcode_again").input("fresh-beans-2027")
    teacher.button(key="teacher_set_passcode").click().run()
    assert any("New passcode set" in s.value for s in teacher.success)
    refused = unlock_teacher(new_page().run(), SECRET)
    assert any("Wrong teacher passcode" in e.value for e in refused.error)
    accepted = unlock_teacher(new_page().run(), "fresh-beans-2027")
    assert any(b.key == "train_start" for b in accepted.button)


def test_without_any_passcode_the_store_one_alone_unlocks(environment, monkeypatch):
    from core import teacher_passcode
    from dashboard.class_store import shared_store

    monkeypatch.delenv("BEANGUARD_TEACHER_PASSCODE")
    assert any(i.value.startswith("The teacher tools are not set up") for i in new_page().run().button(key="teacher_button").click().run().info)
    teacher_passcode.set_passcode(shared_store(), "set-from-a-shell")  # python -m core.classroom passcode
    assert any(b.key == "train_start" for b in unlock_teacher(new_page().run(), "set-from-a-shell").button)
