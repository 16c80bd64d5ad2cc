"""Run folders: retraining never touches the shipped pair, the teacher chooses what the class sees.

The headline test drives a real retraining through the real app and the real manager (a real
``python -m core.train`` subprocess on the tiny image folder) and then checks, on disk and in other
sessions: the shipped files are byte-identical, the class sees the new run, "restore" brings the
shipped pair back for every session, and the oldest run is pruned past the limit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import checkpoints, runs
from dashboard import retraining
from tests.support.beans import REPO_ROOT
from tests.support.page import new_page, unlock_teacher

PASSCODE = "bean-teacher-42"
FILES = (*checkpoints.MODEL_FILES.values(), checkpoints.METADATA_FILE)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def copy_pair(source: Path, target: Path, metadata_changes: dict | None = None) -> Path:
    """The three checkpoint files of ``source`` in ``target`` (optionally with other metadata)."""
    target.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(source / name, target / name)
    if metadata_changes:
        metadata = json.loads((target / checkpoints.METADATA_FILE).read_text())
        for section, values in metadata_changes.items():
            if section == "config":
                metadata["config"].update(values)
            else:
                metadata[section] = values
        (target / checkpoints.METADATA_FILE).write_text(json.dumps(metadata))
    return target


@pytest.fixture
def shipped(checkpoints_dir, tmp_path) -> Path:
    """A private copy of the tiny trained pair, standing in for ``checkpoints/``."""
    return copy_pair(checkpoints_dir, tmp_path / "checkpoints")


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "runs"


# --- core.runs on real files -----------------------------------------------------------------------


def test_nothing_chosen_means_the_shipped_pair(shipped, root):
    assert runs.active_run(root, shipped) == runs.shipped_run(shipped)
    assert [run.key for run in runs.list_runs(root, shipped)] == ["shipped"]


def test_runs_are_listed_after_the_shipped_pair_and_the_examples_oldest_first(shipped, root):
    copy_pair(shipped, shipped / "examples" / "nsl-2of255")
    copy_pair(shipped, root / "20260102-000000Z-b")
    copy_pair(shipped, root / "20260101-000000Z-a")
    (root / f"{runs.PARTIAL_PREFIX}20260103-000000Z-c").mkdir()  # still training: not a run yet
    (root / "20260104-000000Z-empty").mkdir()  # no metadata.json: not a run
    listed = runs.list_runs(root, shipped)
    assert [run.key for run in listed] == ["shipped", "examples/nsl-2of255", "runs/20260101-000000Z-a", "runs/20260102-000000Z-b"]
    assert [run.read_only for run in listed] == [True, True, False, False]


def test_choosing_a_run_is_one_pointer_every_reader_sees(shipped, root):
    copy_pair(shipped, root / "20260101-000000Z-a")
    runs.set_active("runs/20260101-000000Z-a", root, shipped)
    assert runs.active_run(root, shipped).folder == root / "20260101-000000Z-a"
    assert json.loads((root / runs.ACTIVE_FILE).read_text())["run"] == "runs/20260101-000000Z-a"
    runs.restore_shipped(root, shipped)
    assert runs.active_run(root, shipped).kind == "shipped"


def test_a_pointer_to_a_run_that_is_gone_falls_back_to_the_shipped_pair(shipped, root):
    copy_pair(shipped, root / "20260101-000000Z-a")
    runs.set_active("runs/20260101-000000Z-a", root, shipped)
    shutil.rmtree(root / "20260101-000000Z-a")
    assert runs.active_run(root, shipped).kind == "shipped"
    with pytest.raises(runs.RunError, match="no run"):
        runs.set_active("runs/20260101-000000Z-a", root, shipped)


def test_new_run_names_start_with_utc_time_and_never_collide(root):
    import datetime as dt

    moment = dt.datetime(2026, 11, 26, 9, 5, 7, tzinfo=dt.timezone.utc)
    first = runs.new_run_name("Big budget!", root, moment)
    assert first == "20261126-090507Z-big-budget"
    runs.partial_folder(first, root).mkdir()
    assert runs.new_run_name("Big budget!", root, moment) == "20261126-090507Z-big-budget-2"


def test_short_name_says_what_the_config_changes():
    from core.train import TrainConfig

    assert runs.short_name(TrainConfig(multiplier=0.2, adv_norm="infinity", adv_epsilon=4 / 255)) == "nsl-x0.2-linf-4of255"
    assert runs.short_name(TrainConfig(multiplier=1.0, adv_norm="l2", adv_epsilon=1.0)) == "nsl-x1-l2-1"


def test_pruning_keeps_the_newest_runs_and_never_the_one_the_class_sees(shipped, root):
    names = [f"2026010{day}-000000Z-r{day}" for day in range(1, 6)]
    for name in names:
        copy_pair(shipped, root / name)
    runs.set_active(f"runs/{names[0]}", root, shipped)  # the oldest is on the projector
    removed = runs.prune(2, root)
    assert removed == names[1:3]
    assert [run.name for run in runs.trained_runs(root)] == [names[0], *names[3:]]


def test_keep_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(runs.KEEP_RUNS_ENV, "3")
    assert runs.keep_runs() == 3
    monkeypatch.setenv(runs.KEEP_RUNS_ENV, "lots")
    with pytest.raises(runs.RunError, match="not a whole number"):
        runs.keep_runs()


def test_deleting_refuses_the_shipped_pair_the_examples_and_the_run_on_the_projector(shipped, root):
    copy_pair(shipped, shipped / "examples" / "nsl-8of255")
    copy_pair(shipped, root / "20260101-000000Z-a")
    copy_pair(shipped, root / "20260102-000000Z-b")
    runs.set_active("runs/20260102-000000Z-b", root, shipped)
    for key, reason in (("shipped", "cannot be deleted"), ("examples/nsl-8of255", "cannot be deleted"), ("runs/20260102-000000Z-b", "what the class sees")):
        with pytest.raises(runs.RunError, match=reason):
            runs.delete_run(key, root, shipped)
    runs.delete_run("runs/20260101-000000Z-a", root, shipped)
    assert not (root / "20260101-000000Z-a").exists()
    assert snapshot(shipped / "examples" / "nsl-8of255") == {name: (shipped / name).read_bytes() for name in FILES}  # untouched


def test_disk_usage_counts_every_byte_in_the_runs_folder(shipped, root):
    assert runs.disk_usage(root) == 0
    copy_pair(shipped, root / "20260101-000000Z-a")
    assert runs.disk_usage(root) == sum(len(content) for content in snapshot(shipped).values())
    assert runs.format_bytes(1_234_567) == "1.2 MB"


def test_a_run_whose_model_file_changed_is_refused_with_a_message(shipped, root):
    run_folder = copy_pair(shipped, root / "20260101-000000Z-a")
    run = runs.find_run("runs/20260101-000000Z-a", root, shipped)
    assert runs.refusal(run) is None and runs.load_run(run).metadata["files"]
    shutil.copy(run_folder / "adversarial.keras", run_folder / "baseline.keras")  # a valid model, not the one recorded
    assert "baseline.keras do not match the SHA-256 digests" in runs.refusal(run)
    with pytest.raises(runs.RunRefused, match="refused"):
        runs.load_run(run)


def test_an_example_without_digests_is_refused(shipped):
    example = copy_pair(shipped, shipped / "examples" / "old", {"files": {}})
    run = runs.example_runs(shipped)[0]
    assert "do not match" in runs.refusal(run)
    with pytest.raises(runs.RunRefused, match="records no SHA-256 digest"):
        runs.load_run(run)
    assert example.is_dir()


def test_publishing_refuses_an_incomplete_run(shipped, root):
    partial = runs.partial_folder("20260101-000000Z-a", root)
    copy_pair(shipped, partial)
    (partial / "adversarial.keras").unlink()
    with pytest.raises(runs.RunRefused, match="incomplete"):
        runs.publish("20260101-000000Z-a", root)
    assert runs.trained_runs(root) == []


def test_the_passcode_file_and_the_runs_folder_are_ignored_by_git():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", ".streamlit/secrets.toml", "runs/20260101-000000Z-a/baseline.keras"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [".streamlit/secrets.toml", "runs/20260101-000000Z-a/baseline.keras"]


# --- the app: retrain, show, restore, prune --------------------------------------------------------


@pytest.fixture
def environment(environment, shipped, root):
    """The page's environment (conftest), on this file's shipped pair and runs folder, with a passcode."""
    environment.setenv(checkpoints.CHECKPOINT_DIR_ENV, str(shipped))
    environment.setenv(runs.RUNS_DIR_ENV, str(root))
    environment.setenv("BEANGUARD_TEACHER_PASSCODE", PASSCODE)
    return environment


session = new_page


def sees(at: AppTest) -> str:
    """What the page says the class sees: a run's title, or "shipped"."""
    notes = [c.value for c in at.caption if c.value.startswith("The class sees")]
    return notes[0] if notes else "shipped"


def clean_probabilities(at: AppTest) -> dict[str, np.ndarray]:
    import base64

    bars = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    bars = [f for f in bars if [trace.get("name") for trace in f["data"]] == ["before", "after"]]  # before/after the change

    def values(encoded):
        if isinstance(encoded, dict):
            return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=np.dtype(encoded["dtype"]))
        return np.asarray(encoded, float)

    return {name: values(figure["data"][0]["x"]) for name, figure in zip(("baseline", "adversarial"), bars)}


def test_a_retrain_becomes_a_run_the_class_sees_restore_brings_back_the_shipped_pair_and_old_runs_are_pruned(environment, shipped, root):
    environment.setenv(runs.KEEP_RUNS_ENV, "2")
    older, old = copy_pair(shipped, root / "20200101-000000Z-older"), copy_pair(shipped, root / "20200102-000000Z-old")
    repository_pair, shipped_before = snapshot(checkpoints.DEFAULT_DIR), snapshot(shipped)
    teacher, student = session().run(), session().run()
    assert sees(student) == "shipped"
    shipped_version, shipped_shown = student.session_state["pair_version"], clean_probabilities(student)

    unlock_teacher(teacher, PASSCODE)
    teacher.number_input(key="train_adversarial_epochs").set_value(2)
    teacher.select_slider(key="train_pgd_iterations").set_value(2)
    teacher.text_input(key="train_label").input("class demo")
    teacher.button(key="train_start").click().run()
    assert any("Retraining started" in s.value for s in teacher.success), [e.value for e in [*teacher.error, *teacher.exception]]
    student.run()  # another session sees the same run's progress bar
    assert any(bar.proto.text.startswith("Retraining:") for bar in student.get("progress"))
    status = retraining.shared_manager().wait(timeout=300)
    assert status.state == "succeeded", (status.message, status.log_tail)

    # The shipped files are byte-identical: the repository's and the ones the app was started with.
    assert snapshot(checkpoints.DEFAULT_DIR) == repository_pair
    assert snapshot(shipped) == shipped_before
    # The new run is a folder of its own, complete, and the oldest run was pruned (keep 2).
    new = [run for run in runs.trained_runs(root) if run.name.endswith("-class-demo")]
    assert len(new) == 1 and runs.refusal(new[0]) is None
    assert [run.name for run in runs.trained_runs(root)] == [old.name, new[0].name] and not older.exists()
    assert older.name in status.message

    # The class sees it: the student's page (and any new page) loads the new run.
    student.run()
    assert not student.exception, [e.value for e in student.exception]
    assert sees(student).startswith("The class sees **Retrained ") and sees(student).endswith("**, chosen by the teacher.")
    assert student.session_state["pair_version"] != shipped_version
    shown = clean_probabilities(student)
    np.testing.assert_allclose(shown["baseline"], shipped_shown["baseline"], atol=1e-4)  # the quick recipe keeps the baseline
    assert not np.allclose(shown["adversarial"], shipped_shown["adversarial"], atol=1e-4)  # and fine-tunes the NSL model
    assert sees(session().run()) == sees(student)

    # "Restore the shipped models": every session is back on the shipped pair.
    teacher.run()
    teacher.button(key="runs_restore").click().run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    for page in (student.run(), teacher, session().run()):
        assert sees(page) == "shipped"
        assert page.session_state["pair_version"] == shipped_version
    assert snapshot(shipped) == shipped_before


def test_the_teacher_shows_an_earlier_run_and_deletes_another(environment, shipped, root):
    first = copy_pair(shipped, root / "20260101-000000Z-first")
    second = copy_pair(shipped, root / "20260102-000000Z-second")
    teacher = unlock_teacher(session().run(), PASSCODE)
    teacher.selectbox(key="runs_choice").set_value(f"runs/{first.name}").run()
    teacher.button(key="runs_show").click().run()
    assert sees(teacher).startswith("The class sees **Retrained ")
    assert teacher.button(key="runs_delete").disabled  # the run on the projector cannot be deleted
    teacher.selectbox(key="runs_choice").set_value(f"runs/{second.name}").run()
    teacher.button(key="runs_delete").click().run()
    assert not second.exists() and first.exists()
    assert any(s.value.startswith("Deleted Retrained ") and s.value.endswith(f"({second.name}).") for s in teacher.success)  # two alike: named by folder
    assert any("Runs use" in c.value and "1 kept" in c.value for c in teacher.caption)


def test_a_tampered_run_is_refused_and_the_class_sees_the_shipped_pair(environment, shipped, root):
    run = copy_pair(shipped, root / "20260101-000000Z-a")
    runs.set_active(f"runs/{run.name}", root, shipped)
    shutil.copy(run / "adversarial.keras", run / "baseline.keras")
    page = session().run()
    assert not page.exception, [e.value for e in page.exception]
    assert any("was refused" in e.value and "SHA-256" in e.value and "shipped models" in e.value for e in page.error)
    assert sees(page) == "shipped" and len([m for m in page.markdown if 'class="bg-verdict' in m.value]) == 2


def comparison_table(at: AppTest):
    """The runs table (other tables, e.g. a robustness table cached by another test, may come first)."""
    return next(frame.value for frame in at.dataframe if "run" in frame.value.columns)


def test_examples_are_listed_read_only_and_every_run_is_measured_on_a_button(environment, shipped, root):
    copy_pair(shipped, shipped / "examples" / "nsl-2of255", {"config": {"adv_epsilon": 2 / 255}})
    copy_pair(shipped, root / "20260101-000000Z-a")
    example = shipped / "examples" / "nsl-2of255"  # its digests still name its (unchanged) model files
    metadata = json.loads((example / checkpoints.METADATA_FILE).read_text())
    assert metadata["files"] == {name: checkpoints.file_digest(example / name) for name in checkpoints.MODEL_FILES.values()}
    page = session().run()
    table = comparison_table(page)
    titles = list(table["run"])
    assert titles[:2] == ["Shipped models", "Example: NSL ×1 at L∞ 2/255"] and titles[2].startswith("Retrained ") and titles[2].endswith("NSL ×1 at L∞ 7/255")
    assert list(table["budget ε"])[1] == "L∞ 2/255"
    assert set(table["NSL model: clean"]) == {"–"}
    assert not any(b.key == "runs_measure" for b in page.button)  # a student cannot start measuring every run
    page = unlock_teacher(page, PASSCODE)
    page.button(key="runs_measure").click().run()
    assert not page.exception and not page.error, [e.value for e in [*page.exception, *page.error]]
    table = comparison_table(page)
    assert all(value.endswith("%") for value in [*table["Baseline: clean"], *table["NSL model: robust"]])
    figures = [json.loads(e.proto.spec) for e in page.get("plotly_chart")]
    scatter = next(f for f in figures if "Clean vs robust" in f["layout"].get("title", {}).get("text", ""))
    assert [trace["name"] for trace in scatter["data"]] == titles and all(len(trace["x"]) == 2 for trace in scatter["data"])  # one line per run
    assert all(value.endswith("%") for value in comparison_table(session().run())["NSL model: robust"])  # another page: measured once for everybody
    assert any(metric.label.startswith("NSL model: robust") for metric in page.metric)
    teacher = page
    teacher.selectbox(key="runs_choice").set_value("examples/nsl-2of255").run()
    assert teacher.button(key="runs_delete").disabled and not teacher.button(key="runs_show").disabled


# --- a real server: open pages follow the teacher's choice by themselves ---------------------------


def test_open_pages_follow_the_teachers_choice_within_one_poll(shipped, root, tiny_beans, tmp_path):
    """No reload, no click: a student's page (the browser's protocol, ``tests/streamlit_client.py``)
    switches to the run the teacher shows, and back when the shipped pair is restored."""
    import asyncio
    import time

    from tests.support.server import running_server, server_env
    from tests.support.streamlit_client import StreamlitSession

    from dashboard.retrain_panel import SWITCH_WITHIN_S

    from core.classroom import open_store

    run = copy_pair(shipped, root / "20260101-000000Z-a")
    store_url = f"sqlite:///{tmp_path / 'class.db'}"
    env = server_env(tmp_path, BEANS_DATA_DIR=str(tiny_beans), BEANGUARD_CHECKPOINT_DIR=str(shipped), BEANGUARD_STORE_URL=store_url, **{runs.RUNS_DIR_ENV: str(root)})
    store = open_store(store_url)  # what the teacher's buttons write to, on whichever replica

    async def scenario(port: int) -> list[float]:
        student = StreamlitSession(port)
        await student.connect()
        assert not any(text.startswith("The class sees") for text in student.log.texts)

        async def next_page(change) -> tuple[float, list[str]]:
            """Make ``change``, then collect the page's texts up to its models caption (drawn after
            the "class sees" note in every full run); returns the seconds it took and the texts."""
            texts: list[str] = []

            def collect(delta) -> bool:
                if delta.kind == "markdown":
                    texts.append(delta.text)
                return delta.kind == "markdown" and delta.text.startswith("Models trained")

            done = student.expect(collect)
            started = time.monotonic()
            change()
            await asyncio.wait_for(done, SWITCH_WITHIN_S + 20)
            return time.monotonic() - started, texts

        shown_after, texts = await next_page(lambda: runs.set_active(f"runs/{run.name}", root, shipped, store))  # "Show to the class"
        assert any(text.startswith("The class sees **Retrained ") for text in texts), texts
        restored_after, texts = await next_page(lambda: runs.restore_shipped(root, shipped, store))  # "Restore the shipped models"
        assert not any(text.startswith("The class sees") for text in texts), texts
        waits = [shown_after, restored_after]
        assert student.log.exceptions == [] and student.log.error_alerts == []
        await student.close()
        return waits

    with running_server(env, tmp_path / "server.log") as (port, _):
        waits = asyncio.run(scenario(port))
    assert max(waits) < SWITCH_WITHIN_S + 20, waits  # noticed within the poll, then the new pair loads
