"""The dashboard, driven headless through Streamlit's AppTest on tiny real checkpoints.

The checkpoints are trained once per session by the real ``python -m core.train`` on a tiny image
folder written by the fixture; retraining tests start real subprocesses too.
"""

from __future__ import annotations

import base64
import json
import shutil
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from dashboard_helpers import APP_PATH, bad_uploads, unlock_teacher, write_tiny_beans
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

import core  # noqa: F401  (TensorFlow with legacy Keras before anything else)
from core import runs
from core.train import TrainConfig
from dashboard import passcode, retrain_panel, retraining
from dashboard.resources import command_line_data_dir
from dashboard.retraining import TRAINING_NICENESS, TrainingManager, shared_manager

PASSCODE = "bean-teacher-42"
UPLOADS = bad_uploads()


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch, tiny_beans, checkpoints_dir, tmp_path):
    """The app's environment; tests change it before the first ``run()``. Runs go to a private folder."""
    streamlit_config.set_option("client.showErrorDetails", "full")  # tests want the real message
    monkeypatch.setenv("BEANS_DATA_DIR", str(tiny_beans))
    monkeypatch.setenv("BEANGUARD_CHECKPOINT_DIR", str(checkpoints_dir))
    monkeypatch.setenv(runs.RUNS_DIR_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv("BEANGUARD_TEACHER_PASSCODE", raising=False)
    passcode.shared_lockout.clear()  # no wrong passcodes left over from another test
    return monkeypatch


@pytest.fixture
def app(environment) -> AppTest:
    return AppTest.from_file(str(APP_PATH), default_timeout=60)


@pytest.fixture
def own_checkpoints(environment, checkpoints_dir, tmp_path) -> Path:
    """A private copy of the tiny checkpoints, for tests that replace or break them."""
    folder = shutil.copytree(checkpoints_dir, tmp_path / "checkpoints")
    environment.setenv("BEANGUARD_CHECKPOINT_DIR", str(folder))
    return folder


# --- reading the page ------------------------------------------------------------------------------


def _values(encoded) -> np.ndarray:
    """Plotly 7 sends numpy arrays as {"dtype", "bdata"}; plain lists pass through."""
    if isinstance(encoded, dict):
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=np.dtype(encoded["dtype"]))
    return np.asarray(encoded, dtype=float)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def probabilities(at: AppTest) -> dict[str, dict[str, np.ndarray]]:
    """{model: {"clean": %, "perturbed": %}} read from the two probability bar charts (in page order),
    whose bars are labelled "before" and "after" the change."""
    bars = [f for f in figures(at) if [trace.get("name") for trace in f["data"]] == ["before", "after"]]
    assert len(bars) == 2, f"expected one bar chart per model, found {len(bars)}"
    which = {"before": "clean", "after": "perturbed"}
    return {name: {which[trace["name"]]: _values(trace["x"]) for trace in figure["data"]} for name, figure in zip(("baseline", "adversarial"), bars)}


def verdicts(at: AppTest) -> list[str]:
    """Both models' verdict cards (section 3), as their HTML."""
    return [m.value for m in at.markdown if 'class="bg-verdict' in m.value]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def open_class(at: AppTest, label: int) -> AppTest:
    """Show the first test photo of class ``label`` (the page opens on a good example of any class)."""
    at.selectbox(key="test_class").set_value(label).run()
    return at.slider(key=f"test_index_{label}").set_value(1).run()


def assert_page_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


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


def test_step_size_change_updates_both_models_perturbed_probabilities(app):
    app.run()
    before = probabilities(app)
    app.slider(key="epsilon_infinity").set_value(16).run()
    assert_page_ok(app)
    assert_both_perturbed_changed(before, probabilities(app))


def test_zero_step_size_leaves_the_image_unchanged(app):
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


def test_attack_source_change_updates_both_models_perturbed_probabilities(app):
    app.run()
    before = probabilities(app)
    app.radio(key="source").set_value("adversarial").run()
    assert_page_ok(app)
    assert_both_perturbed_changed(before, probabilities(app))
    assert any("transfer from the NSL model" in c.value for c in app.caption)


def test_white_box_source_shows_one_perturbation_per_model(app):
    app.run()
    app.radio(key="source").set_value("self").run()
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


def test_accuracy_curve_is_computed_on_a_button_and_then_cached(app):
    app.run()
    app.button(key="curve_button_l2").click().run()
    assert_page_ok(app)
    curve = next(f for f in figures(app) if "white-box PGD-10 L2" in f["layout"].get("title", {}).get("text", ""))
    assert [trace["name"] for trace in curve["data"]] == ["Baseline", "NSL model"]
    fresh = AppTest.from_file(str(APP_PATH), default_timeout=60).run()  # another session: no button needed
    assert any("white-box PGD-10 L2" in f["layout"].get("title", {}).get("text", "") for f in figures(fresh))


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
    assert len(app.error) == 1
    message = app.error[0].value
    assert message.startswith(filename) and "\n" not in message and "Traceback" not in message
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
    assert [e.value for e in app.error] == ["tiny.png: The image is only 5x5 pixels; photos need at least 32 pixels on each side to show a leaf."]
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


def test_without_a_local_folder_and_without_network_the_page_says_so_within_15_seconds(app, environment, tmp_path):
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
    assert any("looks offline" in e.value and "BEANS_DATA_DIR" in e.value for e in app.error), [e.value for e in app.error]


def test_data_dir_comes_from_the_command_line_after_a_double_dash():
    assert command_line_data_dir(["--data-dir", "/data/beans"]) == "/data/beans"
    assert command_line_data_dir(["-q", "tests"]) is None  # pytest's own arguments are ignored


# --- retraining ------------------------------------------------------------------------------------

FAKE_CONFIG = TrainConfig(epochs=1, adversarial_epochs=1)  # what the fake trainers below "train"


def test_student_pages_hold_no_retrain_form_and_no_password_field(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.run()
    assert_page_ok(app)
    assert [t.key for t in app.text_input] == []  # not even hidden: no passcode field in the page
    keys = {button.key for button in app.button}
    assert "teacher_button" in keys and not keys & {"train_start", "train_stop", "runs_show", "runs_restore", "runs_delete"}


def test_teacher_button_or_query_parameter_reveals_only_the_passcode_field(app, environment):
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    app.query_params["teacher"] = "1"
    app.run()
    assert [t.key for t in app.text_input] == ["teacher_passcode"]
    assert not {button.key for button in app.button} & {"train_start", "runs_show"}
    other = AppTest.from_file(str(APP_PATH), default_timeout=60).run()
    other.button(key="teacher_button").click().run()
    assert [t.key for t in other.text_input] == ["teacher_passcode"]


def test_retraining_is_disabled_without_a_configured_passcode(app):
    app.run()
    app.button(key="teacher_button").click().run()
    assert any("no teacher passcode is configured" in i.value for i in app.info)
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


def test_failed_retraining_keeps_no_run_and_says_why(app, environment, tmp_path):
    test_only = write_tiny_beans(tmp_path / "test_only", splits=("test",))  # the app works, training cannot
    environment.setenv("BEANS_DATA_DIR", str(test_only))
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    retraining.shared_manager.clear()
    app.run()
    old_version = app.session_state["pair_version"]
    unlock_teacher(app, PASSCODE)
    app.number_input(key="train_adversarial_epochs").set_value(1)
    app.button(key="train_start").click().run()
    status = shared_manager().wait(timeout=120)
    assert status.state == "failed"
    app.run()
    assert any("Training failed" in e.value and "nothing was kept" in e.value for e in app.error), [e.value for e in app.error]
    assert app.session_state["pair_version"] == old_version
    assert runs.trained_runs() == [] and not any(runs.runs_dir().iterdir())  # the partial folder is gone too
    assert len(verdicts(app)) == 2


def _fake_trainer(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_second_start_while_a_run_is_going_is_refused(tmp_path):
    manager = TrainingManager(_fake_trainer("import time; time.sleep(60)"))
    started, _ = manager.start(FAKE_CONFIG, None, runs_root=tmp_path)
    try:
        assert started
        again, message = manager.start(FAKE_CONFIG, None, runs_root=tmp_path)
        assert not again and "already in progress" in message
    finally:
        assert manager.cancel()[0]
    assert manager.status().state == "failed" and "stopped" in manager.status().message


def test_pages_poll_the_shared_run_slowly_when_idle_and_fast_while_one_trains(app, environment, tmp_path):
    manager = TrainingManager(_fake_trainer("import time; time.sleep(60)"))
    environment.setattr(retrain_panel, "shared_manager", lambda: manager)
    app.run()
    assert app.session_state["progress_polled_fast"] is False
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    try:
        app.run()
        assert app.session_state["progress_polled_fast"] is True
    finally:
        manager.cancel()


def test_training_runs_at_lower_priority_than_the_pages(tmp_path):
    report = tmp_path / "niceness.txt"
    manager = TrainingManager(_fake_trainer(f"import os, time; time.sleep(0.5); open({str(report)!r}, 'w').write(str(os.nice(0)))"))
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    manager.wait(timeout=30)
    assert int(report.read_text()) >= os.nice(0) + TRAINING_NICENESS


def test_a_finished_run_leaves_no_scratch_folder_but_keeps_its_log_tail(tmp_path):
    manager = TrainingManager(_fake_trainer("import sys; print('out of beans', file=sys.stderr); sys.exit(3)"))
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    progress_file = Path(manager.status().command[manager.status().command.index("--progress-file") + 1])
    status = manager.wait(timeout=30)
    assert status.state == "failed" and "out of beans" in status.log_tail
    assert not progress_file.parent.exists()


def test_progress_file_events_become_a_shared_progress_bar_and_error_message(tmp_path):
    script = (
        "import json, sys, time\n"
        "path = sys.argv[sys.argv.index('--progress-file') + 1]\n"
        "def log(**event):\n"
        "    open(path, 'a').write(json.dumps(event) + '\\n')\n"
        "log(event='start')\n"
        "log(event='epoch', model='baseline', epoch=1, epochs=1, seconds=0.1, metrics={'loss': 1.0, 'val_accuracy': 0.5})\n"
        "log(event='error', message='ValueError: out of beans')\n"
        "sys.exit(1)\n"
    )
    manager = TrainingManager(_fake_trainer(script))
    assert manager.start(FAKE_CONFIG, None, runs_root=tmp_path)[0]
    status = manager.wait(timeout=30)
    assert status.state == "failed" and "out of beans" in status.message
    assert len(status.epochs) == 1 and status.fraction == pytest.approx(0.5)
