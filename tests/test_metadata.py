"""metadata.json is written by code only (core.metadata), and the README's table is the stored evaluation."""

from __future__ import annotations

import json
import shutil
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
