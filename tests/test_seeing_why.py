"""The "seeing why" sections on the page (AppTest, tiny checkpoints): how far each photo is from being
fooled, where the photos lie, which disease is weakest, an attacker without gradients, what can be
proven; a click on a map point or a confusion-matrix cell; the optional lesson step.

AppTest cannot click inside a Plotly chart, so :func:`select_points` sends what the browser sends:
the chart's widget state, the selection as JSON (``{"selection": {"points": [...]}}``), through
Streamlit's own deserializer and the chart's ``on_select`` callback.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from core import certify, checkpoints, data
from core.attacks import budget_label
from dashboard import jobs, lesson, proofs
from dashboard.settings import AttackSettings, settings_from_state
from dashboard.split_analysis import SplitResults, split_results
from core.examples import Outcomes
from tests.support.page import _values as values, assert_page_ok, captions, figures, shown_filename

NEW_SECTIONS = ("How far each photo is from being fooled", "Where the photos lie", "Which disease is weakest", "An attacker without gradients", "What can be proven")


def chart(at: AppTest, key: str):
    """The Plotly chart drawn with ``key`` (its element id ends with the key)."""
    found = [element for element in at.get("plotly_chart") if element.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"expected one chart {key!r}, found {len(found)}"
    return found[0]


def figure(at: AppTest, key: str) -> dict:
    return json.loads(chart(at, key).proto.spec)


def select_points(at: AppTest, key: str, points: list[dict]) -> AppTest:
    """What a click on a chart's point sends: the chart's selection state, with the page's other widgets as they are."""
    states = at._tree.get_widget_states()
    selection = {"selection": {"points": points, "point_indices": [p.get("point_index", 0) for p in points], "box": [], "lasso": []}}
    states.widgets.append(WidgetState(id=chart(at, key).proto.id, string_value=json.dumps(selection)))
    return at._run(widget_state=states)


def tiny_pair_and_split(tiny_beans, checkpoints_dir):
    pair = checkpoints.load_pair(checkpoints_dir)
    return pair, data.load_split("test", pair.image_size, tiny_beans)


def wait_for(job: jobs.Job, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.finished and job.error is None, job.error


# --- the page --------------------------------------------------------------------------------------


def test_the_five_sections_come_numbered_after_many_photos_and_before_retraining(app):
    app.run()
    assert_page_ok(app)
    titles = [header.value.split(" · ", 1)[1] for header in app.header if " · " in header.value]
    start = titles.index("Many photos at once")
    assert titles[start + 1 : start + 6] == list(NEW_SECTIONS)
    assert titles[start + 6] == "Retrain the models"
    keys = {button.key for button in app.button}
    assert {"photo_budget_button", "fooling_all_button", "map_button", "square_button", "certify_button"} <= keys


def _sections_during_an_open_poll():
    from types import SimpleNamespace

    from dashboard import black_box, fooling, per_class, photo_map, proofs
    from dashboard.page import Page

    page = Page(None, None, "", None, (), False, None, None, {}, SimpleNamespace(state="open"))
    fooling.this_photo(page)  # below the verdicts: nothing at all
    for section in (fooling, photo_map, per_class, black_box, proofs):
        section.render(page)


def test_an_open_poll_hides_every_new_section_behind_one_caption():
    at = AppTest.from_function(_sections_during_an_open_poll).run()
    assert_page_ok(at)
    assert [c.value for c in at.caption] == ["Hidden while the class votes: it would give the answer away."] * 5
    assert not at.button and not at.get("plotly_chart") and not at.markdown


# --- which disease is weakest ----------------------------------------------------------------------


def test_accuracy_per_class_counts_right_answers_among_each_true_class():
    labels = np.array([0, 0, 1, 1, 1, 2])
    clean = np.eye(3)[[0, 0, 1, 1, 1, 2]]
    changed = np.eye(3)[[0, 1, 1, 2, 0, 2]]  # class 0: 1 of 2 right, class 1: 1 of 3, class 2: 1 of 1
    outcomes = {name: Outcomes(clean, changed) for name in ("baseline", "adversarial")}
    results = SplitResults(AttackSettings(), labels, tuple(f"{i}.jpg" for i in range(6)), outcomes)
    np.testing.assert_allclose(results.class_accuracy("baseline", "perturbed", 3), [1 / 2, 1 / 3, 1.0])
    np.testing.assert_allclose(results.class_accuracy("baseline", "clean", 3), [1.0, 1.0, 1.0])
    assert np.isnan(results.class_accuracy("baseline", "perturbed", 4)[3])  # no photos of a fourth class
    np.testing.assert_array_equal(results.cell("baseline", 1, 2), [3])  # the one bean-rust photo answered healthy


def test_the_bars_show_each_models_accuracy_per_class_under_the_change(app, tiny_beans, checkpoints_dir):
    app.run()
    app.slider(key="epsilon_infinity").set_value(5).run()  # settings nobody has run on the whole split yet
    assert not [element for element in app.get("plotly_chart") if element.proto.id.endswith("-class_accuracy")]
    app.button(key="classes_button").click().run()
    assert_page_ok(app)
    bars = figure(app, "class_accuracy")
    pair, split = tiny_pair_and_split(tiny_beans, checkpoints_dir)
    expected = split_results(pair, split, settings_from_state(app.session_state))
    assert [trace["name"] for trace in bars["data"]] == ["Baseline", "NSL model"]
    for trace, name in zip(bars["data"], ("baseline", "adversarial")):
        np.testing.assert_allclose(values(trace["y"]), expected.class_accuracy(name, "perturbed", 3) * 100.0, atol=1e-9)
    assert any("is weakest on" in c for c in captions(app))


def test_a_click_on_a_confusion_cell_shows_just_those_photos_in_the_gallery(app, tiny_beans, checkpoints_dir):
    app.run()
    app.button(key="table_button").click().run()
    pair, split = tiny_pair_and_split(tiny_beans, checkpoints_dir)
    expected = split_results(pair, split, settings_from_state(app.session_state))
    matrix = expected.confusion("baseline", "perturbed", 3)
    true_class, answer = map(int, np.unravel_index(np.argmax(matrix), matrix.shape))  # the fullest cell
    select_points(app, "confusion_baseline", [{"customdata": [true_class, answer], "point_index": true_class * 3 + answer}])
    assert_page_ok(app)
    assert any("that the baseline answers" in m.value for m in app.markdown)
    count = len(expected.cell("baseline", true_class, answer))
    assert any(c.startswith(f"{count} of {len(split)} test photos") for c in captions(app)), captions(app)
    app.button(key="gallery_cell_clear").click().run()
    assert app.radio(key="gallery_filter") is not None and not any("that the baseline answers" in m.value for m in app.markdown)


# --- where the photos lie --------------------------------------------------------------------------


def test_the_map_is_drawn_on_a_button_and_a_click_on_a_point_opens_that_photo(app, tiny_beans, checkpoints_dir):
    app.run()
    assert not [f for f in figures(app) if "sees the test photos" in f["layout"].get("title", {}).get("text", "")]
    app.button(key="map_button").click().run()
    assert_page_ok(app)
    maps = {name: figure(app, f"map_{name}") for name in ("baseline", "adversarial")}
    _, split = tiny_pair_and_split(tiny_beans, checkpoints_dir)
    for drawn in maps.values():
        dots = [trace for trace in drawn["data"] if trace.get("name") in ("angular leaf spot", "bean rust", "healthy")]
        assert sorted(np.concatenate([values(trace["customdata"]) for trace in dots])) == list(range(len(split)))  # every photo once, by its index
    wanted = next(i for i, name in enumerate(split.filenames) if name != shown_filename(app))
    select_points(app, "map_adversarial", [{"customdata": wanted, "curve_number": 1, "point_index": 0}])
    assert_page_ok(app)
    assert shown_filename(app) == split.filenames[wanted]
    assert "The photo you clicked on the map." in captions(app)


# --- what can be proven ----------------------------------------------------------------------------


def test_the_proof_says_abstain_or_a_radius_no_larger_than_its_votes_can_prove(app):
    app.run()
    app.button(key="certify_button").click().run()
    assert_page_ok(app)
    table = next(frame.value for frame in app.dataframe if "smoothed answer" in frame.value.columns)
    assert len(table) == 4  # both models at both noise levels
    for _, row in table.iterrows():
        if row["smoothed answer"].startswith("abstains"):
            assert row[proofs.PROVEN] == "–"
        else:
            assert 0 < float(row[proofs.PROVEN]) <= float(row[proofs.MOST])
        assert row[proofs.MOST] == budget_label("l2", certify.max_certifiable_radius(row["noise σ"], 1000, 0.001))
    assert any("covers every L∞ change only up to r/√(32·32·3)" in c for c in captions(app))


# --- an attacker without gradients -----------------------------------------------------------------


def test_the_black_box_attack_counts_its_questions_for_both_models(app):
    app.run()
    app.select_slider(key="square_queries").set_value(100).run()
    app.button(key="square_button").click().run()
    assert_page_ok(app)
    lines = [m.value for m in app.markdown if m.value.startswith(("Baseline:", "NSL model:"))]
    assert len(lines) == 2, lines
    for line in lines:
        assert "questions" in line or "Wrong before any change" in line
        numbers = [int(word) for word in line.replace("*", " ").split() if word.isdigit()]
        assert all(0 < n <= 100 for n in numbers)


def test_the_black_box_attack_asks_for_an_l_inf_or_l2_budget(app):
    app.run()
    app.radio(key="norm").set_value("l1").run()
    assert_page_ok(app)
    assert any("works with an L∞ or L2 budget" in c for c in captions(app))
    assert "square_button" not in {button.key for button in app.button}


def test_the_black_box_attack_on_all_photos_runs_in_the_background(app, environment):
    environment.setenv(jobs.JOBS_ENV, "1")
    app.run()
    app.select_slider(key="square_queries").set_value(100).run()
    app.button(key="square_all_button").click().run()
    settings = settings_from_state(app.session_state)
    pair, split = tiny_pair_and_split(*_paths(environment))
    wait_for(jobs.find(jobs.square_all_key(pair, split, settings.norm, settings.epsilon, 100)))
    app.run()
    assert_page_ok(app)
    table = next(frame.value for frame in app.dataframe if any("without gradients" in str(row) for row in frame.value["row"]))
    assert list(table["threat model"]) == ["none", "black-box (answers only)"]
    assert all(table.loc[1, name] <= table.loc[0, name] for name in ("baseline", "adversarial"))


# --- how far each photo is from being fooled -------------------------------------------------------


def test_this_photos_smallest_fooling_budgets_come_from_a_background_search(app, environment):
    environment.setenv(jobs.JOBS_ENV, "1")
    app.run()
    app.button(key="photo_budget_button").click().run()
    assert_page_ok(app)
    pair, split = tiny_pair_and_split(*_paths(environment))
    index = split.filenames.index(shown_filename(app))
    job = jobs.find(jobs.photo_budgets_key(pair, f"test/{split.filenames[index]}/{index}", int(split.labels[index]), "infinity"))
    wait_for(job)
    app.run()
    line = next(m.value for m in app.markdown if m.value.startswith("Smallest change that fools each model on this photo"))
    for name, words in (("baseline", "the baseline"), ("adversarial", "the NSL model")):
        assert words in line
        budget = job.result[name]
        assert budget == 0 or math.isinf(budget) or f"{budget * 255:.3g}/255" in line


def test_all_photos_budgets_land_in_the_store_and_draw_the_share_fooled(app, environment):
    environment.setenv(jobs.JOBS_ENV, "1")
    app.run()
    app.button(key="fooling_all_button").click().run()
    pair, split = tiny_pair_and_split(*_paths(environment))
    wait_for(jobs.find(jobs.all_budgets_key(pair, split, "infinity")))
    jobs.recent_budgets.clear()
    app.run()
    assert_page_ok(app)
    stored = {name: jobs.stored_budgets(pair.version, name, "infinity") for name in ("baseline", "adversarial")}
    assert all(set(found) == set(split.filenames) for found in stored.values())
    drawn = figure(app, "fooling_share")
    for trace, name in zip(drawn["data"], ("baseline", "adversarial")):
        budgets = np.array([stored[name][f] for f in split.filenames])
        assert values(trace["y"])[-1] == pytest.approx(100.0 * np.isfinite(budgets).mean())  # photos never fooled stay out
    assert any("Read sideways" in c for c in captions(app))


def _paths(environment):
    import os
    from pathlib import Path

    return Path(os.environ["BEANS_DATA_DIR"]), Path(os.environ["BEANGUARD_CHECKPOINT_DIR"])


# --- the optional lesson step ----------------------------------------------------------------------


def test_the_optional_lesson_step_comes_after_the_eight_and_points_at_the_black_box_section(app):
    assert lesson.CORE_STEPS == 8 and lesson.STEPS[8].title == "Hiding the gradients would not help"
    assert lesson.step_heading(2) == "step 3 of 8" and lesson.step_heading(8) == "step 9 (optional)"
    app.run()
    app.button(key="lesson_start").click().run()
    for _ in range(8):
        app.button(key="lesson_next").click().run()
    assert_page_ok(app)
    assert any("step 9 (optional): Hiding the gradients would not help" in m.value for m in app.markdown)
    assert any("[Section 10](#blackbox)" in m.value for m in app.markdown)
    assert settings_from_state(app.session_state) == lesson.STEPS[8].settings
