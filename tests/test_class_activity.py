"""The class activity on the page (AppTest, tiny models): a student joins a round and submits, the
server judges the attempt; a poll hides the answers until the teacher reveals them; students follow
the teacher's view; the board shows the round. The store itself: tests/test_classroom_store.py."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.classroom import open_store
from dashboard.class_sync import STALE_S
from tests.support.page import assert_page_ok, new_page, unlock_teacher, verdicts

pytest_plugins = ["tests.support.store_fixtures"]  # the throwaway PostgreSQL cluster

PASSCODE = "class-teacher-7"


@pytest.fixture
def environment(environment, tmp_path):
    """The page's environment (conftest) with a passcode and a class store of its own."""
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    environment.setenv("BEANGUARD_STORE_URL", f"sqlite:///{tmp_path / 'class.db'}")
    return environment


@pytest.fixture
def store(environment, tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'class.db'}")


def teacher_page():
    return unlock_teacher(new_page().run(), PASSCODE)


def join(page, code: str, nickname: str):
    page.text_input(key="class_code").input(code)
    page.text_input(key="class_nickname").input(nickname)
    return page.button(key="class_join_button").click().run()


def shown_photo(page) -> str:
    return next(c.value for c in page.caption if c.value.startswith("Right answer:")).split(" · ")[-1]


def test_a_student_joins_submits_and_the_server_judges_the_attempt(app, store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    app.run()
    join(app, code, "  Ada  ")
    assert_page_ok(app)
    assert any(f"Round **{code}** as **Ada**" in m.value for m in app.markdown)
    app.slider(key="epsilon_infinity").set_value(16).run()
    app.button(key="class_submit").click().run()
    (attempt,) = store.attempts(code)
    nsl_answer = app.session_state["class_result"]  # what the page told the student
    assert attempt.photo == shown_photo(app) and attempt.epsilon == pytest.approx(16 / 255) and attempt.norm == "infinity"
    assert attempt.model == "adversarial" and attempt.attacker == "baseline"
    said_right = f"says “{attempt.answer.replace('_', ' ')}”" in nsl_answer[1]
    assert said_right and nsl_answer[0] == attempt.fooled


def test_without_an_open_round_a_student_page_has_nothing_to_fill_in(app, store):
    app.run()
    assert [t.key for t in app.text_input] == [] and any("When your teacher starts a round" in c.value for c in app.caption)


def test_joining_with_an_unknown_code_or_a_taken_nickname_says_why(app, store):
    code = store.create_round("smallest", "all", ["infinity"]).code
    store.join(code, "Ada")
    app.run()
    join(app, "ZZZZ", "Bo")
    assert any("no round" in e.value.lower() and "ZZZZ" in e.value for e in app.error), [e.value for e in app.error]
    join(app, code, "ada")
    assert any("taken" in e.value.lower() for e in app.error), [e.value for e in app.error]
    assert "class_player" not in app.session_state


def test_a_round_about_another_photo_or_norm_cannot_take_this_change(app, store):
    app.run()
    elsewhere = next(name for name in ("angular_leaf_spot_test_00.jpg", "bean_rust_test_00.jpg") if name != shown_photo(app))
    code = store.create_round("smallest", f"photo:{elsewhere}", ["l2"]).code
    app.run()
    join(app, code, "Ada")
    assert app.button(key="class_submit").disabled
    assert any("pick one of them" in c.value for c in app.caption)
    app.selectbox(key="test_class").set_value(int(elsewhere.startswith("bean_rust"))).run()
    app.slider(key=f"test_index_{int(elsewhere.startswith('bean_rust'))}").set_value(1).run()
    assert any("switch the norm" in c.value for c in app.caption)
    app.radio(key="norm").set_value("l2").run()
    assert not app.button(key="class_submit").disabled


def test_a_poll_hides_the_answers_until_the_teacher_reveals_them(app, store):
    teacher = teacher_page()
    teacher.button(key="poll_open").click().run()
    app.run()
    assert_page_ok(app)
    assert verdicts(app) == []
    assert any(m.value.startswith("**Predict first.**") for m in app.markdown)
    app.radio(key="poll_baseline").set_value("yes")
    app.radio(key="poll_adversarial").set_value("no")
    app.button(key="poll_vote").click().run()
    poll = store.current_poll()
    assert store.poll_results(poll.id).counts[(True, False)] == 1
    teacher.run()
    teacher.button(key="poll_reveal").click().run()
    truth = store.current_poll().truth
    app.run()
    assert len(verdicts(app)) == 2
    wrong = {name: 'class="bg-verdict bg-wrong' in card for name, card in zip(("baseline", "adversarial"), verdicts(app))}
    assert truth == {"baseline_fooled": wrong["baseline"], "nsl_fooled": wrong["adversarial"]}


def test_students_follow_the_teachers_view_unless_they_switch_it_off(app, store):
    teacher = teacher_page()
    teacher.radio(key="norm").set_value("l2").run()
    teacher.slider(key="epsilon_l2").set_value(1.5).run()
    app.run()
    assert app.radio(key="norm").value == "l2" and app.slider(key="epsilon_l2").value == pytest.approx(1.5)
    app.toggle(key="follow_teacher").set_value(False).run()
    teacher.radio(key="norm").set_value("l1").run()
    app.run()
    assert app.radio(key="norm").value == "l2"


def test_a_teachers_view_left_for_long_is_not_followed(app, store, tmp_path):
    view = {"link": {"norm": "l1"}, "lesson_step": None, "presenting": False, "broadcast": True}
    store.set_state("teacher_view", view)
    app.run()
    assert app.radio(key="norm").value == "l1"
    earlier = open_store(f"sqlite:///{tmp_path / 'class.db'}", clock=lambda: time.time() - STALE_S - 1)
    earlier.set_state("teacher_view", {**view, "link": {"norm": "l2"}})  # written by a teacher who left long ago
    fresh = new_page().run()
    assert fresh.radio(key="norm").value == "infinity"


def test_the_board_shows_the_round_and_nicknames_as_text(store, environment):
    code = store.create_round("smallest", "all", ["infinity"]).code
    player = store.join(code, "<svg onload=alert(1)>")
    store.record_attempt(player.id, "healthy_test_00.jpg", "infinity", 4 / 255, "PGD", 10, "self", None, True, "bean_rust", "adversarial")
    board = new_page()
    board.query_params["board"] = "1"
    board.run()
    assert_page_ok(board)
    assert any(code in m.value for m in board.markdown)
    (table,) = [m.value for m in board.markdown if 'class="bg-board"' in m.value]
    assert "<td class='bg-nick'>&lt;svg onload=alert(1)&gt;</td>" in table and "<td>4/255</td>" in table
    assert not any("<svg" in m.value for m in board.markdown)  # never markup


def test_the_teacher_starts_a_round_hides_a_nickname_and_ends_it(store):
    teacher = teacher_page()
    teacher.button(key="class_start").click().run()
    assert_page_ok(teacher)
    (round_,) = store.rounds()
    player = store.join(round_.code, "Rude")
    teacher.run()
    teacher.selectbox(key="class_hide_who").set_value(player.id)
    teacher.button(key="class_hide").click().run()
    assert store.players(round_.code)[0].hidden
    teacher.button(key="class_end").click().run()
    assert store.get_round(round_.code).state == "ended"
    assert np.all([r.state == "ended" for r in store.rounds()])


def test_on_postgresql_students_join_submit_follow_and_the_board_shows_them(app, environment, postgres):
    """The same page on the store a school runs on (a throwaway PostgreSQL cluster): join and submit,
    the teacher's passcode and view, the board."""
    url = postgres.fresh_url()
    environment.setenv("BEANGUARD_STORE_URL", url)
    store = open_store(url)
    code = store.create_round("smallest", "all", ["infinity", "l2"]).code
    app.run()
    join(app, code, "Ada")
    app.button(key="class_submit").click().run()
    assert_page_ok(app)
    assert [a.nickname for a in store.leaderboard(code)["infinity"]] in ([], ["Ada"]) and len(store.attempts(code)) == 1
    teacher = teacher_page()  # the passcode's lock-out counters live in PostgreSQL too
    teacher.radio(key="norm").set_value("l2").run()
    app.run()
    assert app.radio(key="norm").value == "l2"
    board = new_page()
    board.query_params["board"] = "1"
    board.run()
    assert_page_ok(board)
    assert any("Ada</span> · 1" in m.value for m in board.markdown)
    store.close()
