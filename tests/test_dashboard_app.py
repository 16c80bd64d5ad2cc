"""The dashboard, driven headless through Streamlit's AppTest on tiny real checkpoints.

The checkpoints are trained once per session by the real ``python -m core.train`` on a tiny image
folder written by the fixture; retraining tests start real subprocesses too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import retrain_panel
from dashboard.retraining import shared_manager
from dashboard.resources import command_line_data_dir
from tests.support.beans import bad_uploads
from tests.support.server import PAGE_SCRIPT
from tests.support.page import assert_page_ok, captions, figures, image_captions, open_class, probabilities, unlock_teacher, verdicts

PASSCODE = "bean-teacher-42"
UPLOADS = bad_uploads()


@pytest.fixture
def own_checkpoints(environment, checkpoints_dir, tmp_path) -> Path:
    """A private copy of the tiny checkpoints, for tests that replace or break them."""
    folder = shutil.copytree(checkpoints_dir, tmp_path / "checkpoints")
    environment.setenv("BEANGUARD_CHECKPOINT_DIR", str(folder))
    return folder


def assert_both_perturbed_changed(before, after) -> None:
    for name in ("baseline", "adversarial"):
        assert not np.allclose(before[name]["perturbed"], after[name]["perturbed"], atol=1e-6), f"{name} did not change"


# --- first load and picking images -----------------------------------------------------------------


def test_first_load_shows_both_models_clean_and_perturbed_predictions(app):
    app.run()
    assert_page_ok(app)
    assert len(verdicts(app)) == 2
    shown = probabilities(app)
    for name in ("baseline", "adversarial"):
        assert shown[name]["clean"].shape == (3,) and shown[name]["perturbed"].shape == (3,)
        assert abs(shown[name]["clean"].sum() - 100.0) < 0.1
    assert any("they see 32 px photos" in c for c in captions(app)), "the model size comes from the checkpoint"


def test_choosing_another_class_shows_that_image_and_its_predictions(app):
    app.run()
    open_class(app, 0)
    before = probabilities(app)
    app.selectbox(key="test_class").set_value(2).run()
    assert_page_ok(app)
    assert any("(healthy)" in c for c in captions(app))
    after = probabilities(app)
    assert not np.allclose(before["baseline"]["clean"], after["baseline"]["clean"])


def test_choosing_another_image_number_changes_the_clean_predictions(app):
    app.run()
    open_class(app, 0)
    before = probabilities(app)
    app.slider(key="test_index_0").set_value(3).run()
    assert_page_ok(app)
    assert any("angular_leaf_spot_test_02.jpg" in c for c in captions(app))
    assert not np.allclose(before["adversarial"]["clean"], probabilities(app)["adversarial"]["clean"])


# --- attack controls -------------------------------------------------------------------------------


def test_budget_change_updates_both_models_perturbed_probabilities(app):
    app.run()
    before = probabilities(app)
    app.slider(key="epsilon_infinity").set_value(16).run()
    assert_page_ok(app)
    assert_both_perturbed_changed(before, probabilities(app))


def test_zero_budget_leaves_the_image_unchanged(app):
    app.run()
    app.slider(key="epsilon_infinity").set_value(0).run()
    shown = probabilities(app)
    for name in ("baseline", "adversarial"):
        np.testing.assert_allclose(shown[name]["clean"], shown[name]["perturbed"], atol=1e-4)


def test_norm_change_updates_both_models_perturbed_probabilities(app):
    app.run()
    before = probabilities(app)
    app.radio(key="norm").set_value("l2").run()
    assert_page_ok(app)
    assert app.slider(key="epsilon_l2").value == pytest.approx(1.0)
    assert_both_perturbed_changed(before, probabilities(app))


def test_l1_attack_prints_its_measured_norm(app):
    app.run()
    app.radio(key="norm").set_value("l1").run()
    stage = next(c for c in app.caption if "budget ε" in c.value)
    assert "sum of all changes (L1) " in stage.value
    assert "‖δ‖₁ = " in stage.proto.help  # the technical name in the tooltip


def test_attacker_change_updates_both_models_perturbed_probabilities(app):
    app.run()
    before = probabilities(app)
    app.radio(key="attacker").set_value("adversarial").run()
    assert_page_ok(app)
    assert_both_perturbed_changed(before, probabilities(app))
    assert any("transfer from the NSL model" in c.value for c in app.caption)


def test_white_box_attacker_shows_one_perturbation_per_model(app):
    app.run()
    app.radio(key="attacker").set_value("self").run()
    assert_page_ok(app)
    shown = image_captions(app)
    assert sum(caption.startswith("Change for the") for caption in shown) == 2
    assert sum(caption.startswith("What the") and caption.endswith("sees") for caption in shown) == 2


def test_pgd_updates_both_models_perturbed_probabilities(app):
    app.run()
    before = probabilities(app)
    app.radio(key="method").set_value("PGD").run()
    assert_page_ok(app)
    assert app.radio(key="iterations").value == 10
    assert_both_perturbed_changed(before, probabilities(app))


def test_natural_corruption_shows_all_three_norms_and_updates_predictions(app):
    app.run()
    before = probabilities(app)
    app.radio(key="kind").set_value("corruption").run()
    app.selectbox(key="corruption").set_value("blur").run()
    assert_page_ok(app)
    stage = next(c for c in app.caption if "Blur, severity" in c.value)
    assert "no model involved" in stage.value
    assert all(words in stage.value for words in ("largest pixel change", "overall size (L2)", "sum of all changes (L1)"))
    assert_both_perturbed_changed(before, probabilities(app))


# --- look inside -----------------------------------------------------------------------------------


def test_layer_and_channel_change_redraw_the_activation_maps(app):
    app.run()
    app.selectbox(key="layer").set_value("conv2").run()
    app.slider(key="channel_conv2").set_value(5).run()
    assert_page_ok(app)
    activation = next(f for f in figures(app) if f["layout"].get("title", {}).get("text", "").startswith("Layer conv2, channel 5"))
    assert len(activation["data"]) == 6  # both models × clean, perturbed, change
    assert activation["data"][0]["coloraxis"] == activation["data"][1]["coloraxis"]  # one shared scale


def test_top_channels_view_shows_a_grid_for_both_models(app):
    app.run()
    app.radio(key="channel_view").set_value("top").run()
    assert_page_ok(app)
    grid = next(f for f in figures(app) if "4 busiest channels" in f["layout"].get("title", {}).get("text", ""))
    assert len(grid["data"]) == 4 * 6


# --- robustness ------------------------------------------------------------------------------------


def split_tables(app: AppTest) -> list:
    """Section 5's whole-split accuracy tables (they have a "row" column)."""
    return [frame.value for frame in app.dataframe if "row" in frame.value.columns]


def test_whole_split_table_compares_clean_and_perturbed_accuracy_on_a_button(app):
    app.run()
    app.slider(key="epsilon_infinity").set_value(5).run()  # settings nobody has run on the whole split yet
    assert not split_tables(app)  # (the runs comparison below has a table of its own)
    app.button(key="table_button").click().run()
    assert_page_ok(app)
    table = split_tables(app)[0]
    assert list(table["row"])[0] == "Clean test images"
    assert set(table.columns) >= {"baseline", "adversarial", "threat model"}


def open_curve_tab(app: AppTest, symbol: str) -> None:
    """Click section 5's tab of one norm ("L2"): only the open tab is drawn."""
    app.session_state["curve_tab"] = next(tab.label for tab in app.tabs if tab.label.startswith(f"{symbol} "))
    app.run()


def test_the_accuracy_curves_draw_only_the_open_tab_which_first_is_the_pages_norm(app):
    app.run()
    assert [tab.label for tab in app.tabs][:3] == ["L∞ budget ε", "L2 budget ε", "L1 budget ε"]
    assert len([tab for tab in app.tabs if tab.children]) == 1  # a budget move sends one figure, not three
    assert app.session_state["curve_tab"] == "L∞ budget ε"  # the page opens on L∞, so its tab is the open one
    open_curve_tab(app, "L1")
    assert app.session_state["curve_tab"] == "L1 budget ε"
    assert len([tab for tab in app.tabs if tab.children]) == 1


def test_a_closed_explainer_sends_only_its_title_and_its_text_once_opened(app):
    from dashboard import explainers

    app.run()
    box = next(box for box in app.expander if box.label == "What am I looking at? (where the models look)")
    assert not box.children
    app.session_state["explain_why"] = True
    app.run()
    box = next(box for box in app.expander if box.label == "What am I looking at? (where the models look)")
    assert [child.value for child in box.children.values()] == [explainers.WHY.strip()]


def test_a_missing_accuracy_curve_is_the_teachers_to_compute_now_and_then_everybodys(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.run()
    open_curve_tab(app, "L2")
    assert any("Being prepared" in c for c in captions(app))
    assert not any(b.key == "curve_button_l2" for b in app.button)  # a student waits for the background, never starts it
    unlock_teacher(app, PASSCODE)
    app.button(key="curve_button_l2").click().run()
    assert_page_ok(app)
    curve = next(f for f in figures(app) if "white-box PGD-10 L2" in f["layout"].get("title", {}).get("text", ""))
    assert [trace["name"] for trace in curve["data"]] == ["Baseline", "NSL model"]
    fresh = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=60).run()  # another session: no button needed
    open_curve_tab(fresh, "L2")
    assert any("white-box PGD-10 L2" in f["layout"].get("title", {}).get("text", "") for f in figures(fresh))


def test_a_new_pair_gets_its_good_examples_and_missing_curves_in_the_background(environment, checkpoints_dir, tiny_beans, tmp_path):
    from core import checkpoints, data
    from dashboard import resources

    environment.setenv("BEANGUARD_STORE_URL", f"sqlite:///{tmp_path / 'class.db'}")
    pair, split = checkpoints.load_pair(checkpoints_dir), data.load_split("test", 32, tiny_beans)
    assert all(resources.stored_curve(pair, "tiny", norm) is None for norm in ("infinity", "l2", "l1"))  # a retrain saves no curves
    status = resources.WarmUp(total=4)
    resources._prepare(pair, split, "tiny", status)
    assert status.done == 4
    assert all(resources.stored_curve(pair, "tiny", norm)["attack"].startswith("white-box PGD") for norm in ("infinity", "l2", "l1"))
    default = resources._example_settings(resources.settings_from_state({}))
    assert resources.split_results_for(pair, split, "tiny", default, compute=False) is not None  # "Show me a good example" waits for nothing


# --- uploads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [name for name, (_, _, accepted) in UPLOADS.items() if accepted])
def test_awkward_but_valid_upload_is_converted_and_attacked(app, case):
    filename, content, _ = UPLOADS[case]
    app.run()
    app.radio(key="image_source").set_value("upload").run()
    app.file_uploader(key="upload").set_value((filename, content, "application/octet-stream")).run()
    assert_page_ok(app)
    assert not app.error, [e.value for e in app.error]
    assert len(verdicts(app)) == 2
    assert any("No true label" in c.value for c in app.caption)


def test_exif_rotated_photo_is_shown_upright(app):
    filename, content, _ = UPLOADS["exif_rotated_jpeg"]  # stored 120×80, EXIF says rotate 90°
    app.run()
    app.radio(key="image_source").set_value("upload").run()
    app.file_uploader(key="upload").set_value((filename, content, "image/jpeg")).run()
    shown = image_captions(app)
    assert any("as uploaded (80×120 px)" in caption for caption in shown), shown


@pytest.mark.parametrize("case", [name for name, (_, _, accepted) in UPLOADS.items() if not accepted])
def test_unusable_upload_is_refused_with_one_sentence_and_the_app_keeps_running(app, case):
    filename, content, _ = UPLOADS[case]
    app.run()
    app.radio(key="image_source").set_value("upload").run()
    app.file_uploader(key="upload").set_value((filename, content, "application/octet-stream")).run()
    assert_page_ok(app)
    assert len(app.sidebar.error) == 1
    message = app.sidebar.error[0].value
    assert message.startswith(filename) and "\n" not in message and "Traceback" not in message and "Pillow" not in message
    assert [e.value for e in app.main.error] == [f"Your photo {filename} was not used: {message}"]  # said where the verdicts would be
    assert verdicts(app) == []
    app.radio(key="image_source").set_value("test").run()  # and the app still works afterwards
    assert len(verdicts(app)) == 2


def test_upload_with_a_chosen_true_label_marks_right_and_wrong(app):
    filename, content, _ = UPLOADS["grayscale_jpeg"]
    app.run()
    app.radio(key="image_source").set_value("upload").run()
    app.file_uploader(key="upload").set_value((filename, content, "image/jpeg")).run()
    app.selectbox(key="upload_label").set_value(2).run()
    assert all(("right" in v or "wrong" in v) for v in verdicts(app))
    assert not any("No true label" in c.value for c in app.caption)


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _upload(app: AppTest, name: str, content: bytes) -> AppTest:
    app.run()
    app.radio(key="image_source").set_value("upload").run()
    return app.file_uploader(key="upload").set_value((name, content, "image/png")).run()


def test_a_wide_photo_is_centre_cropped_and_the_page_says_so(app, tiny_beans):
    from PIL import Image

    leaf = np.asarray(Image.open(next((tiny_beans / "test" / "healthy").glob("*.jpg"))).convert("RGB"))
    wide = np.concatenate([np.zeros_like(leaf), leaf, np.zeros_like(leaf)], axis=1)  # 192×64, the leaf in the middle
    _upload(app, "wide.png", _png(wide))
    assert_page_ok(app)
    assert any("centre square inside the yellow frame (64×64 px of 192×64)" in c.value for c in app.caption), [c.value for c in app.caption]
    assert len(verdicts(app)) == 2 and not app.warning  # the crop is the leaf: familiar, no warning


def test_a_five_pixel_image_is_refused_with_its_size(app):
    _upload(app, "tiny.png", _png(np.full((5, 5, 3), 120)))
    assert_page_ok(app)
    assert [e.value for e in app.sidebar.error] == ["tiny.png: The image is only 5x5 pixels; photos need at least 32 pixels on each side to show a leaf."]
    assert verdicts(app) == []


def test_a_noise_image_is_classified_but_flagged_as_unlike_the_leaves(app):
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3))
    _upload(app, "noise.png", _png(noise))
    assert_page_ok(app)
    assert len(verdicts(app)) == 2  # the models still answer…
    warnings = [w.value for w in app.warning]
    assert len(warnings) == 2 and all("This does not look like the bean leaves the models were trained on" in w for w in warnings)  # sidebar and main area


# --- missing or broken inputs ----------------------------------------------------------------------


def test_missing_checkpoints_explain_how_to_train_them(app, environment, tmp_path):
    environment.setenv("BEANGUARD_CHECKPOINT_DIR", str(tmp_path / "empty"))
    app.run()
    assert_page_ok(app)
    assert any("python -m core.train" in w.value for w in app.warning)
    assert app.button(key="teacher_button") is not None  # the teacher's tools are one button away


def test_corrupt_checkpoint_is_named_in_an_error(app, own_checkpoints):
    (own_checkpoints / "adversarial.keras").write_bytes(b"not a keras file")
    app.run()
    assert_page_ok(app)
    assert any("adversarial.keras" in e.value for e in app.error)


def test_missing_data_folder_shows_core_data_error(app, environment, tmp_path):
    environment.setenv("BEANS_DATA_DIR", str(tmp_path / "nowhere"))
    app.run()
    assert_page_ok(app)
    assert any("does not exist" in e.value for e in app.error)


def test_without_a_local_folder_and_without_network_the_page_shows_the_shipped_photos_and_says_so(app, environment, tmp_path):
    import socket
    import time

    from core import data

    with socket.socket() as probe:  # a local port nobody listens on: connections are refused, as offline
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    environment.delenv("BEANS_DATA_DIR")
    environment.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))  # Beans not downloaded yet
    environment.setattr(data, "DOWNLOAD_SERVER", ("127.0.0.1", closed))
    started = time.monotonic()
    app.run()
    assert time.monotonic() - started < 15
    assert_page_ok(app)
    assert not app.error, [e.value for e in app.error]
    assert len(verdicts(app)) == 2
    assert any("shipped with Beanguard" in c and "BEANS_DATA_DIR" in c for c in captions(app)), captions(app)


def test_data_dir_comes_from_the_command_line_after_a_double_dash():
    assert command_line_data_dir(["--data-dir", "/data/beans"]) == "/data/beans"
    assert command_line_data_dir(["-q", "tests"]) is None  # pytest's own arguments are ignored


# --- retraining (the training manager itself: tests/test_training_manager.py) ----------------------


def test_student_pages_hold_no_retrain_form_and_no_password_field(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.run()
    assert_page_ok(app)
    assert [t.key for t in app.text_input] == []  # not even hidden: no passcode field in the page (and no round to join)
    keys = {button.key for button in app.button}
    assert "teacher_button" in keys and not keys & {"train_start", "train_stop", "runs_show", "runs_restore", "runs_delete"}


def test_teacher_button_or_query_parameter_reveals_only_the_passcode_field(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.query_params["teacher"] = "1"
    app.run()
    assert [t.key for t in app.text_input] == ["teacher_passcode"]
    assert not {button.key for button in app.button} & {"train_start", "runs_show"}
    other = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=60).run()
    other.button(key="teacher_button").click().run()
    assert [t.key for t in other.text_input] == ["teacher_passcode"]


def test_without_a_passcode_a_student_pressing_teacher_reads_one_plain_sentence(app):
    app.run()
    app.button(key="teacher_button").click().run()
    assert [i.value for i in app.info] == ["The teacher tools are not set up on this server yet."]  # no admin instructions
    assert [t.key for t in app.text_input] == [] and not any(b.key == "train_start" for b in app.button)


def test_wrong_passcode_unlocks_nothing(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.run()
    unlock_teacher(app, "guess")
    assert any("Wrong teacher passcode" in e.value and "4 tries left" in e.value for e in app.error)
    assert not any(b.key == "train_start" for b in app.button)
    assert not shared_manager().status().running


def test_the_right_passcode_shows_the_form_built_from_the_quick_recipe(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.run()
    unlock_teacher(app, PASSCODE)
    assert_page_ok(app)
    quick = retrain_panel.quick_config()
    assert app.number_input(key="train_adversarial_epochs").value == quick.adversarial_epochs
    assert app.number_input(key="train_adversarial_epochs").label == retrain_panel.field_label("adversarial_epochs")
    assert app.number_input(key="train_adv_epsilon_infinity").value == pytest.approx(quick.adv_epsilon * 255)
    assert app.slider(key="train_multiplier").value == pytest.approx(quick.multiplier)
    assert {"train_start", "runs_show", "runs_restore", "runs_delete"} <= {b.key for b in app.button}
