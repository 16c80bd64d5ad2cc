"""metadata.json is written by code only (core.metadata), and the README's table is the stored evaluation."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core import checkpoints, evaluate, metadata

ROOT = Path(__file__).resolve().parents[1]


def strings(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.fixture(scope="module")
def shipped() -> dict:
    return checkpoints.load_metadata(checkpoints.DEFAULT_DIR)


def test_shipped_metadata_names_no_absolute_path(shipped):
    absolute = [text for text in strings(shipped) if text.startswith("/") or text.startswith("~")]
    assert absolute == []
    assert not Path(shipped["data"]["source"]).is_absolute()


def test_shipped_selection_is_the_committed_selection_table(shipped):
    table = json.loads(metadata.SELECTION_FILE.read_text())
    pair = shipped["selection"]["pair"]
    assert pair == metadata.pair_selection(table, pair["chosen"], metadata.relative_path(str(metadata.SELECTION_FILE)))
    assert table["chosen"] == pair["chosen"]


def test_shipped_provenance_is_written_from_the_records(shipped):
    assert shipped["provenance"] == metadata.provenance(shipped, shipped["selection"]["pair"])


def test_docs_evaluation_table_is_the_stored_evaluation(shipped):
    models_doc = (ROOT / "docs" / "models.md").read_text()
    table = evaluate.format_table(shipped["evaluation"]).splitlines()
    rows = [line for line in table if any(line.startswith(item["name"]) for item in shipped["evaluation"]["rows"])]
    assert len(rows) == len(shipped["evaluation"]["rows"])
    missing = [line for line in rows if line not in models_doc]
    assert missing == [], "docs/models.md's evaluation table is not metadata.json's: paste `python -m core.evaluate`'s output"


def test_readme_models_table_shows_the_stored_headline_rows_with_their_intervals(shipped):
    readme_lines = (ROOT / "README.md").read_text().splitlines()
    for item in shipped["evaluation"]["rows"]:
        if item["role"] in ("clean", "headline"):
            cells = [evaluate.format_cell(item, kind) for kind in ("baseline", "adversarial")]
            assert any(all(cell in line for cell in cells) for line in readme_lines), f"README.md lacks {item['id']}: {cells}"


def test_relative_path_keeps_empty_and_non_file_sources():
    assert metadata.relative_path("") == ""
    assert metadata.relative_path("tfds:beans") == "tfds:beans"
    assert metadata.relative_path(str(ROOT / "checkpoints")) == "checkpoints"
    assert metadata.relative_path(str(ROOT.parent / "shared" / "beans")) == "../shared/beans"


@pytest.fixture
def run(checkpoints_dir, tmp_path) -> Path:
    """A finished run folder (a copy of the tiny trained pair) named like a candidate."""
    folder = tmp_path / "runs" / "candidate-a"
    shutil.copytree(checkpoints_dir, folder)
    record = json.loads((folder / "metadata.json").read_text())
    record["config"]["init_from"] = str(ROOT / "checkpoints")
    record["provenance"] = "typed by hand"
    checkpoints.write_json_atomic(record, folder / "metadata.json")
    return folder


def selection_table(path: Path, chosen: str) -> Path:
    numbers = {"clean": 0.9, "autoattack_linf_2": 0.8, "autoattack_linf_4": 0.7, "autoattack_linf_8": 0.45, "score": 2.05}
    rows = [{"run": name, "ensemble": "APGD-CE + APGD-T + Square", "changes": {}, "validation": numbers} for name in ("candidate-a", "candidate-b")]
    path.write_text(json.dumps({"criterion": "highest score", "photos": 133, "candidates": rows, "chosen": chosen}))
    return path


def test_ship_writes_the_assembled_metadata_next_to_the_run_s_models(run, tmp_path):
    destination = tmp_path / "shipped"
    written = metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"))
    pair = checkpoints.load_pair(destination, require_digests=True)
    assert pair.metadata == written
    assert written["config"]["init_from"] == "checkpoints" and not Path(written["data"]["source"]).is_absolute()
    assert [row["run"] for row in written["selection"]["pair"]["candidates"]] == ["candidate-a", "candidate-b"]
    assert written["provenance"] != "typed by hand" and "chosen among 2 candidate runs scored with APGD-CE + APGD-T + Square" in written["provenance"]
    assert "evaluation" not in written  # core.evaluate adds the current table


def test_ship_refuses_a_run_the_selection_table_did_not_choose(run, tmp_path):
    with pytest.raises(ValueError, match="chose 'candidate-b', not the run 'candidate-a'"):
        metadata.ship(run, tmp_path / "shipped", selection_table(tmp_path / "selection.json", "candidate-b"))
    assert not (tmp_path / "shipped").exists()


def test_ship_onto_the_same_files_writes_only_the_metadata_with_the_given_evaluation(run, tmp_path):
    destination = tmp_path / "shipped"
    shutil.copytree(run, destination)
    files_before = {name: (destination / name).read_bytes() for name in checkpoints.MODEL_FILES.values()}
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"examples": 8, "rows": []}))
    written = metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"), evaluation)
    assert {name: (destination / name).read_bytes() for name in checkpoints.MODEL_FILES.values()} == files_before
    assert checkpoints.load_pair(destination, require_digests=True).metadata == written
    assert written["evaluation"] == {"examples": 8, "rows": []} and written["provenance"] != "typed by hand"


def test_refreshing_the_selection_adds_later_candidates_and_keeps_the_models_and_evaluation(run, tmp_path):
    destination = tmp_path / "shipped"
    table = selection_table(tmp_path / "selection.json", "candidate-a")
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"examples": 8, "rows": []}))
    metadata.ship(run, destination, table, evaluation)
    files_before = {name: (destination / name).read_bytes() for name in checkpoints.MODEL_FILES.values()}
    later = json.loads(table.read_text())
    later["candidates"].append({**later["candidates"][0], "run": "candidate-c", "ensemble": "APGD-CE + APGD-T"})
    table.write_text(json.dumps(later))
    refreshed = metadata.refresh_selection(destination, table)
    assert [row["run"] for row in refreshed["selection"]["pair"]["candidates"]] == ["candidate-a", "candidate-b", "candidate-c"]
    assert "chosen among 2 candidate runs scored with APGD-CE + APGD-T + Square" in refreshed["provenance"]
    assert "1 more screened without the full ensemble" in refreshed["provenance"]
    assert {name: (destination / name).read_bytes() for name in checkpoints.MODEL_FILES.values()} == files_before
    assert checkpoints.load_pair(destination, require_digests=True).metadata == refreshed
    assert refreshed["evaluation"] == {"examples": 8, "rows": []}


def test_refreshing_refuses_a_table_that_now_chooses_another_run(run, tmp_path):
    destination = tmp_path / "shipped"
    metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"))
    before = (destination / "metadata.json").read_text()
    with pytest.raises(ValueError, match="chose 'candidate-b', not the run 'candidate-a'"):
        metadata.refresh_selection(destination, selection_table(tmp_path / "other.json", "candidate-b"))
    assert (destination / "metadata.json").read_text() == before


def git_repository_with_pair(folder: Path, pair: Path) -> tuple[Path, str]:
    """``folder`` as a git repository whose one commit holds ``pair`` under checkpoints/; returns (checkpoints, commit)."""
    shutil.copytree(pair, folder / "checkpoints")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "add", "checkpoints"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "ship"], check=True)
    return folder / "checkpoints", subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def fine_tuned_from(run: Path, parent: Path, init_files: dict | None) -> None:
    """Save ``run`` again (files of its own) with a record saying it was fine-tuned from ``parent``'s NSL model."""
    pair = checkpoints.load_pair(run)
    record = {key: value for key, value in pair.metadata.items() if key not in (checkpoints.FILES_KEY, "init_files")}
    record["config"].update(init_from=str(parent), warm_start=False, epochs=0)
    record["trained_at"] = "2026-12-03T12:00:00+00:00"  # a later training than the parent's
    if init_files is not None:
        record["init_files"] = init_files
    checkpoints.save_pair(pair.baseline, pair.adversarial, record, run)
    assert checkpoints.load_metadata(run)[checkpoints.FILES_KEY] != checkpoints.load_metadata(parent)[checkpoints.FILES_KEY]


def test_shipping_a_run_over_the_pair_it_started_from_names_that_pair_s_files_and_commit(run, checkpoints_dir, tmp_path):
    destination, commit = git_repository_with_pair(tmp_path / "repo", checkpoints_dir)
    replaced = checkpoints.load_metadata(destination)[checkpoints.FILES_KEY]
    fine_tuned_from(run, destination, replaced)
    written = metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"))
    assert written["parent"]["files"] == replaced and written["parent"]["commit"] == commit
    assert f"starting from the NSL model of the pair shipped in commit {commit[:7]}" in written["provenance"]
    assert "init_files" not in written


def test_shipping_the_same_run_again_keeps_its_parent(run, checkpoints_dir, tmp_path):
    destination, commit = git_repository_with_pair(tmp_path / "repo", checkpoints_dir)
    fine_tuned_from(run, destination, checkpoints.load_metadata(destination)[checkpoints.FILES_KEY])
    first = metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"))
    again = metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"))
    assert again["parent"] == first["parent"] and again["parent"]["commit"] == commit


def test_a_parent_whose_files_are_no_longer_the_shipped_ones_keeps_its_digests_without_a_commit(run, checkpoints_dir, tmp_path):
    destination, _ = git_repository_with_pair(tmp_path / "repo", checkpoints_dir)
    other = {"baseline.keras": "0" * 64, "adversarial.keras": "1" * 64}
    fine_tuned_from(run, destination, other)
    written = metadata.ship(run, destination, selection_table(tmp_path / "selection.json", "candidate-a"))
    assert written["parent"]["files"] == other and "commit" not in written["parent"]


def test_a_run_that_did_not_start_from_the_destination_has_no_parent(run, tmp_path):
    written = metadata.ship(run, tmp_path / "shipped", selection_table(tmp_path / "selection.json", "candidate-a"))
    assert "parent" not in written


def test_provenance_names_the_ensemble_that_chose_a_run_screened_before_it_was_scored(run, tmp_path):
    table = selection_table(tmp_path / "selection.json", "candidate-a")
    record = json.loads(table.read_text())
    screening = {**record["candidates"][0], "ensemble": "APGD-CE + APGD-T"}
    record["candidates"] = [screening, *record["candidates"]]  # candidate-a screened first, then scored in full
    table.write_text(json.dumps(record))
    written = metadata.ship(run, tmp_path / "shipped", table)
    assert "chosen among 2 candidate runs scored with APGD-CE + APGD-T + Square" in written["provenance"]
    assert "1 more screened" not in written["provenance"]
