"""The page's state: shareable links, reset, the lesson's steps, good examples, presentation mode,
plain-word captions, whole-split results, and the start-up warm-up of every attack graph.

Pure functions are tested directly; the page through Streamlit's AppTest on the tiny checkpoints.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import json

import numpy as np
import pytest

from core.attacks import DEFAULT_PGD_STEPS
from core.examples import Outcomes
from dashboard import lesson, settings as page_settings
from dashboard.analysis import run_interaction, warm_up, warm_up_plan
from dashboard.settings import PGD_STEP_CHOICES, AttackSettings, settings_from_state
from dashboard.split_analysis import SplitResults
from dashboard.wording import duration_words, models_caption, percent, short_label, time_ago, trained_budget
from tests.support.page import assert_page_ok, shown_filename

# --- links ----------------------------------------------------------------------------------------

SETTINGS = [
    AttackSettings(),
    AttackSettings(norm="l2", epsilon=1.5, iterations=5, attacker="self"),
    AttackSettings(norm="l1", epsilon=20.0, iterations=20, attacker="adversarial"),
    AttackSettings(norm="infinity", epsilon=0.0),
    AttackSettings(kind="corruption", corruption="jpeg", severity=4),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=short_label)
def test_a_link_round_trips_every_control(settings):
    link = page_settings.url_values(settings, "healthy_test_01.jpg", "conv2", present=True)
    state = page_settings.widget_values(link)
    assert settings_from_state(state) == settings
    assert state["layer"] == "conv2" and state["present"] is True and state[page_settings.PENDING_IMAGE] == "healthy_test_01.jpg"


def test_link_values_read_like_the_page():
    link = page_settings.url_values(AttackSettings(epsilon=8 / 255, iterations=10, attacker="self"), None, None, present=False)
    assert link == {"attack": "pgd", "norm": "linf", "budget": "8/255", "attacker": "self", "steps": "10"}


@pytest.mark.parametrize(
    "params",
    [{"norm": "l7"}, {"budget": "999/255"}, {"budget": "lots"}, {"steps": "7"}, {"attacker": "teacher"}, {"attack": "laser"}, {"budget": "nan"}],
)
def test_nonsense_in_a_link_is_skipped(params):
    assert page_settings.widget_values(params) == {}


def test_a_budget_between_slider_positions_snaps_to_the_nearest():
    assert page_settings.parse_budget("l2", "1.03") == pytest.approx(1.05)
    assert page_settings.parse_budget("infinity", "7.6") == 8


# --- words ----------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    "then, words",
    [
        (NOW - dt.timedelta(seconds=30), "just now"),
        (NOW - dt.timedelta(minutes=12), "12 minutes ago"),
        (NOW - dt.timedelta(days=1, hours=1), "yesterday"),
        (NOW - dt.timedelta(days=3), "3 days ago"),
        (NOW - dt.timedelta(days=40), "on 17 Oct 2026"),
    ],
)
def test_times_read_as_people_say_them(then, words):
    assert time_ago(then, NOW) == words


def test_durations_and_percentages_in_plain_numbers():
    assert duration_words(45) == "45 s" and duration_words(6 * 60 + 10) == "6 min" and duration_words(80 * 60) == "1 h 20 min"
    assert percent(0.973) == "97.3%" and percent(0.99996) == ">99.9%" and percent(1.0) == "100.0%"


def test_the_caption_says_where_the_models_trained():
    import os
    import platform

    here = {"host_cpus": os.cpu_count(), "gpus": [], "platform": platform.platform()}
    metadata = {"trained_at": "2026-11-26T14:55:00+00:00", "timing": {"total_train_seconds": 360}}
    assert models_caption({**metadata, "machine": here}, 64, now=NOW)[0].startswith("Models trained 5 minutes ago, 6 min of training on this machine")
    assert "6 min of training on 16 CPUs ·" in models_caption({**metadata, "machine": {**here, "host_cpus": 16, "platform": "elsewhere"}}, 64, now=NOW)[0]
    assert "on a GPU" in models_caption({**metadata, "machine": {**here, "gpus": ["/physical_device:GPU:0"]}}, 64, now=NOW)[0]


def test_a_fine_tuned_pair_says_its_time_is_the_fine_tuning_not_all_of_its_training():
    parent = {"checkpoints": "checkpoints", "files": {}, "commit": "d7872a81713cee8f9b700b473263b6828ff4c7e6"}
    metadata = {"trained_at": "2026-11-26T14:55:00+00:00", "timing": {"total_train_seconds": 877}, "config": {"epochs": 0, "adversarial_epochs": 40}, "parent": parent}
    caption, details = models_caption(metadata, 64, now=NOW)
    assert caption == "Models trained 5 minutes ago, fine-tuned for 15 min from an earlier pair · they see 64 px photos"
    assert "Fine-tuned from the pair shipped in commit d7872a8" in details
    assert "Epochs: 0 more (baseline) + 40 more (NSL model)" in details


def test_the_tooltip_names_the_training_attack_as_the_page_does():
    config = {"adv_norm": "infinity", "adv_epsilon": 8 / 255, "pgd_iterations": 3}
    assert "Training attack: L∞ 8/255, 3 PGD steps" in models_caption({"config": config}, 64, now=NOW)[1]


def test_models_caption_is_human_and_keeps_the_details_for_a_tooltip():
    metadata = {"trained_at": "2026-11-25T11:45:07+00:00", "timing": {"total_train_seconds": 171.3}, "config": {"epochs": 30, "adversarial_epochs": 30, "multiplier": 1.0}}
    caption, details = models_caption(metadata, 64, now=NOW)
    assert caption == "Models trained yesterday, 3 min of training · they see 64 px photos"
    assert "2026-11-25T11:45:07" in details and "NSL multiplier" in details
    assert models_caption({}, 32, now=NOW)[0] == "Models trained at an unknown time · they see 32 px photos"


# --- whole split ----------------------------------------------------------------------------------


def _results() -> SplitResults:
    labels = np.array([0, 0, 1, 2])
    onehot = np.eye(3)
    baseline = Outcomes(clean=onehot[[0, 0, 1, 1]], perturbed=onehot[[1, 0, 2, 1]])
    adversarial = Outcomes(clean=onehot[[0, 0, 1, 2]], perturbed=onehot[[0, 1, 1, 2]])
    return SplitResults(AttackSettings(), labels, ("a.jpg", "b.jpg", "c.jpg", "d.jpg"), {"baseline": baseline, "adversarial": adversarial})


def test_confusion_matrix_counts_true_class_against_answer():
    results = _results()
    np.testing.assert_array_equal(results.confusion("baseline", "perturbed", 3), [[1, 1, 0], [0, 0, 1], [0, 1, 0]])
    assert results.confusion("adversarial", "clean", 3).trace() == 4


def test_gallery_filters_pick_the_photos_they_name():
    results = _results()
    assert list(results.matching("flipped_held")) == [0, 2]  # baseline right -> wrong, NSL right -> right
    assert list(results.matching("both_flipped")) == []
    assert list(results.matching("changed")) == [0, 1, 2]
    assert list(results.matching("all")) == [0, 1, 2, 3]


def test_csv_has_one_row_per_photo_with_both_models_before_and_after():
    rows = list(csv.DictReader(io.StringIO(_results().to_csv(["angular_leaf_spot", "bean_rust", "healthy"]))))
    assert [row["photo"] for row in rows] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert rows[0]["Baseline: right before the change"] == "yes" and rows[0]["Baseline: answer on the changed photo"] == "bean rust"
    assert rows[3]["NSL model: right on the changed photo"] == "yes"
    assert rows[0]["Baseline: confidence before the change"].endswith("%")


def test_accuracy_table_rows_match_the_results():
    rows = _results().table_rows()
    assert rows[0]["baseline"] == 0.75 and rows[1]["baseline"] == 0.25 and rows[1]["adversarial"] == 0.75


# --- warm-up --------------------------------------------------------------------------------------


def test_the_warm_up_plan_reaches_every_attack_the_controls_offer():
    plan = warm_up_plan(PGD_STEP_CHOICES, DEFAULT_PGD_STEPS)
    traced = {(s.norm, s.iterations) for s in plan if s.kind == "attack" and s.attacker == "self" and s.target is None}  # "self" runs both models
    assert traced == {(norm, steps) for norm in ("infinity", "l2", "l1") for steps in (1, *PGD_STEP_CHOICES)}
    assert {s.corruption for s in plan if s.kind == "corruption"} == {"gaussian_noise", "blur", "jpeg", "misalignment"}
    aimed = {(s.norm, s.iterations) for s in plan if s.kind == "attack" and s.target is not None}
    assert aimed == traced  # "Aim at a class" is a graph of its own for every norm and step count
    assert plan[0] == AttackSettings(epsilon=plan[0].epsilon, attacker="self")  # the default attack first


def _graphs():
    """Every tf.function the dashboard's controls run (L1 has its own sparse attack graph)."""
    from core import activations, attacks, explain, sparse_l1

    return [attacks._perturb_graph, sparse_l1._sparse_l1_graph, explain._grad_cam_graph, explain._smooth_grad_graph, activations._forward_graph]


def test_after_the_warm_up_no_reachable_setting_traces_a_new_graph(checkpoints_dir):
    from core import checkpoints
    from dashboard.analysis import explain_interaction

    pair = checkpoints.load_pair(checkpoints_dir)  # two different models: one graph each
    plan = warm_up_plan((3,), 3)
    warm_up(pair, 32, plan)
    traces = [graph.experimental_get_tracing_count() for graph in _graphs()]
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    for settings in plan:
        if settings.kind == "attack":
            for attacker in ("baseline", "adversarial", "self"):
                epsilon = float(rng.uniform(0.01, 1.0)) * settings.epsilon * 4
                target = None if settings.target is None else int(rng.integers(3))
                result = run_interaction(pair, image, int(rng.integers(3)), AttackSettings(norm=settings.norm, epsilon=epsilon, iterations=settings.iterations, attacker=attacker, target=target))
                for method in ("grad_cam", "smooth_grad"):
                    explain_interaction(pair, result, method)
    assert [graph.experimental_get_tracing_count() for graph in _graphs()] == traces


@pytest.mark.parametrize("norm", ["infinity", "l2", "l1"])
def test_a_page_opening_before_the_warm_up_traces_no_graph_and_gets_the_traced_verdicts(checkpoints_dir, monkeypatch, norm):
    from core import checkpoints
    from core.attacks import DEFAULT_BUDGETS
    from dashboard import resources

    monkeypatch.setattr(resources, "_JOBS", [])  # this process has run no warm-up
    pair = checkpoints.load_pair(checkpoints_dir)  # new model objects: any graph they ran would be traced anew
    image = np.random.default_rng(1).uniform(size=(32, 32, 3)).astype(np.float32)
    settings = AttackSettings(norm=norm, epsilon=DEFAULT_BUDGETS[norm], iterations=1, attacker="self")
    traces = [graph.experimental_get_tracing_count() for graph in _graphs()]
    opening = resources.interaction(pair, f"opening-{norm}", image, 2, settings)
    assert [graph.experimental_get_tracing_count() for graph in _graphs()] == traces
    traced = run_interaction(pair, image, 2, settings)
    for name, outcome in opening.outcomes.items():
        np.testing.assert_allclose(outcome.perturbed_probabilities, traced.outcomes[name].perturbed_probabilities, atol=1e-5)
        np.testing.assert_allclose(opening.perturbations[name].image, traced.perturbations[name].image, atol=1e-6)


def test_after_its_warm_up_a_page_runs_through_the_traced_graphs(checkpoints_dir, monkeypatch):
    from core import checkpoints, data
    from dashboard import resources

    monkeypatch.setattr(resources, "_JOBS", [])
    monkeypatch.setattr(resources, "WARM_UP_DELAY_S", 0.0)
    monkeypatch.setenv(resources.WARM_UP_ENV, "0")  # nothing to trace: only the bookkeeping is under test
    pair = checkpoints.load_pair(checkpoints_dir)
    split = data.Split(np.zeros((2, 32, 32, 3), np.float32), np.array([0, 1]), ("a.jpg", "b.jpg"))
    assert not resources.graphs_traced(pair.version)
    status = resources.start_warm_up(pair, split, "warm-up-bookkeeping")  # its own thread, as in a server
    try:
        status.thread.join(timeout=60)
    finally:
        gc.unfreeze()  # the warm-up freezes what is alive; this test process is not a server
    assert resources.graphs_traced(pair.version)


def test_after_a_warm_up_full_collections_skip_the_pair_yet_a_later_warm_up_frees_what_is_gone():
    import gc
    import weakref

    from dashboard.resources import freeze_long_lived_objects

    class Node:
        pass

    cycle = Node()
    cycle.itself = cycle  # garbage only the cycle collector can free, like a dropped Keras model
    gone = weakref.ref(cycle)
    try:
        freeze_long_lived_objects()
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert gone() is not None  # frozen: a full collection no longer walks it
        freeze_long_lived_objects()  # the next pair's warm-up
        assert gone() is None
    finally:
        gc.unfreeze()


def test_one_slider_positions_results_cannot_be_written_by_the_sessions_that_share_them(checkpoints_dir):
    from core import checkpoints
    from dashboard.analysis import explain_interaction

    pair = checkpoints.load_pair(checkpoints_dir)
    image = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype(np.float32)
    result = run_interaction(pair, image, 1, AttackSettings(epsilon=8 / 255, attacker="self"))
    explanation = explain_interaction(pair, result)["baseline"]
    outcome, perturbation = result.outcomes["baseline"], result.perturbations["adversarial"]
    arrays = [result.image, perturbation.image, perturbation.delta, outcome.clean_probabilities, outcome.perturbed_maps["conv1"], explanation.clean]
    for array in arrays:
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    image[0, 0, 0] = 0.5  # the caller's own array stays theirs to change


# --- the page -------------------------------------------------------------------------------------


def test_a_shared_link_sets_every_control_before_the_page_draws(app):
    app.query_params.update({"image": "bean_rust_test_02.jpg", "attack": "pgd", "steps": "5", "norm": "l2", "budget": "1.5", "source": "self", "layer": "conv2"})  # a link made before "attacker" was named so
    app.run()
    assert_page_ok(app)
    assert shown_filename(app) == "bean_rust_test_02.jpg"
    assert app.radio(key="norm").value == "l2" and app.slider(key="epsilon_l2").value == pytest.approx(1.5)
    assert app.radio(key="method").value == "PGD" and app.radio(key="iterations").value == 5
    assert app.radio(key="attacker").value == "self" and app.selectbox(key="layer").value == "conv2"
    assert not app.toggle(key="present").value


def test_the_link_follows_the_controls(app):
    app.run()
    app.radio(key="norm").set_value("l1").run()
    app.slider(key="epsilon_l1").set_value(20.0).run()
    assert app.query_params["norm"] == "l1" and app.query_params["budget"] == "20"
    assert app.query_params["image"] == shown_filename(app)


def test_reset_brings_every_control_back_and_keeps_presentation_mode(app):
    app.run()
    first = shown_filename(app)
    app.toggle(key="present").set_value(True).run()
    app.radio(key="norm").set_value("l2").run()
    app.radio(key="method").set_value("PGD").run()
    app.selectbox(key="test_class").set_value(2).run()
    app.button(key="reset").click().run()
    assert_page_ok(app)
    assert app.radio(key="norm").value == "infinity" and app.radio(key="method").value == "FGSM"
    assert app.slider(key="epsilon_infinity").value == 8
    assert shown_filename(app) == first  # the best example again
    assert app.toggle(key="present").value


def test_good_example_and_random_choose_other_photos_and_say_why(app):
    app.run()
    first = shown_filename(app)
    app.button(key="random_image").click().run()
    assert_page_ok(app)
    assert shown_filename(app) != first
    assert any(c.value == "A random test photo." for c in app.caption)
    app.button(key="good_example").click().run()
    assert_page_ok(app)
    assert any("good example" in c.value.lower() or "closest one" in c.value for c in app.caption)


def test_the_lesson_sets_each_steps_controls_and_walks_back(app):
    app.run()
    layer = app.selectbox(key="layer")
    layer.set_value(layer.options[0]).run()
    app.button(key="lesson_start").click().run()
    seen = []
    for step in range(len(lesson.STEPS)):
        assert_page_ok(app)
        assert any(lesson.step_heading(step) in m.value for m in app.markdown)
        expected = lesson.STEPS[step].settings
        assert settings_from_state(app.session_state) == expected
        seen.append(expected)
        if step < len(lesson.STEPS) - 1:
            app.button(key="lesson_next").click().run()
    assert app.button(key="lesson_next").disabled
    layer = app.selectbox(key="layer")
    assert layer.value == layer.options[-1]  # the "where the models look" step chose the last conv layer
    for step in range(len(lesson.STEPS) - 2, -1, -1):
        app.button(key="lesson_back").click().run()
        assert_page_ok(app)
        assert settings_from_state(app.session_state) == seen[step]
    app.button(key="lesson_end").click().run()
    assert not any("Lesson · step" in m.value for m in app.markdown)


def test_the_budget_the_lesson_says_the_nsl_model_trained_against_comes_from_its_metadata():
    assert trained_budget({"config": {"adv_norm": "infinity", "adv_epsilon": 8 / 255}}) == "L∞ 8/255"
    assert trained_budget({"config": {"adv_norm": "l2", "adv_epsilon": 0.5}}) == "L2 0.5"
    assert trained_budget({"config": {}}) is None


def test_presentation_mode_hides_the_teacher_controls_and_enlarges_the_type(app):
    app.run()
    assert any(h.value.startswith("12 · Retrain") for h in app.header)
    app.toggle(key="present").set_value(True).run()
    assert_page_ok(app)
    assert not any("Retrain" in h.value for h in app.header)
    assert app.query_params["present"] == "1"
    from dashboard import style

    assert any(style.PRESENTATION.strip() in m.value for m in app.markdown)


def test_many_photos_shows_table_confusion_matrices_gallery_and_csv_on_request(app, tiny_beans):
    app.run()
    assert not [f for f in app.dataframe if "row" in f.value.columns]  # nothing whole-split until asked for (the runs comparison has its own table)
    app.button(key="table_button").click().run()
    assert_page_ok(app)
    assert list(next(f for f in app.dataframe if "row" in f.value.columns).value["row"])[0] == "Clean test images"
    titles = [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "") for chart in app.get("plotly_chart")]
    assert sum("% right" in title for title in titles) == 2  # one confusion matrix per model
    photos = len(list((tiny_beans / "test").glob("*/*.jpg")))
    app.radio(key="gallery_filter").set_value("all").run()
    gallery = next(element.proto.body for element in app.get("html") if "bg-gallery" in element.proto.body)
    assert gallery.count('class="bg-tile"') == photos
    assert gallery.count("&amp;image=") + gallery.count("&image=") == photos  # every photo links to the same view of itself
    csv_button = next(element for element in app.get("download_button"))
    assert csv_button.proto.label.startswith("Download every photo's answers")
