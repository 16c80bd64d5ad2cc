"""The committed cross-check (bench/crosscheck_autoattack.py): our rows against IBM ART's AutoAttack and PGD-50 × 5.

The run takes hours on 2 cores, so CI reads its committed output instead of repeating it; these
tests tie that output to the shipped files and apply the bar to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core import checkpoints, evaluate

REPORT = Path(__file__).resolve().parents[1] / "bench" / "results" / "crosscheck_autoattack.json"


@pytest.fixture(scope="module")
def report() -> dict:
    assert REPORT.is_file(), f"{REPORT} is missing: run bench/crosscheck_autoattack.py and commit its output."
    return json.loads(REPORT.read_text())


def test_the_crosscheck_is_of_the_shipped_files_and_their_stored_rows(report):
    metadata = checkpoints.load_metadata(checkpoints.DEFAULT_DIR)
    assert report["files"] == metadata[checkpoints.FILES_KEY]
    assert report["ours_from"] == "metadata.json evaluation" and report["examples"] == metadata["evaluation"]["examples"]
    for item in report["rows"]:
        stored = evaluate.row(metadata["evaluation"], evaluate.autoattack_row_id(item["norm"], item["epsilon"]))
        assert item["ours"] == stored[item["model"]]


def test_every_headline_budget_of_both_models_was_crosschecked_at_autoattack_strength(report):
    checked = {(item["norm"], round(item["epsilon"], 6), item["model"]) for item in report["rows"]}
    wanted = {(norm, round(epsilon, 6), model) for norm, epsilon in evaluate.AUTOATTACK_BUDGETS for model in ("baseline", "adversarial")}
    assert checked == wanted
    assert report["art"]["square_queries"] == 5000


ROWS = [(norm, epsilon, model) for norm, epsilon in evaluate.AUTOATTACK_BUDGETS for model in ("baseline", "adversarial")]


@pytest.mark.parametrize("norm, epsilon, model", ROWS)
def test_ours_is_never_above_arts_autoattack_or_pgd50_by_more_than_one_photo(report, norm, epsilon, model):
    item = next(row for row in report["rows"] if (row["norm"], round(row["epsilon"], 6), row["model"]) == (norm, round(epsilon, 6), model))
    photo = 1 / report["examples"]
    assert item["ours"] <= item["art"] + photo + 1e-9, item
    assert item["ours"] <= item["pgd50x5"] + photo + 1e-9, item


def test_a_refreshed_report_keeps_the_peers_columns_and_reads_ours_from_the_metadata(report, real_beans, tmp_path):
    from bench import crosscheck_autoattack

    output = tmp_path / "crosscheck.json"
    crosscheck_autoattack.main(["--data-dir", str(real_beans), "--peers-from", str(REPORT), "--output", str(output)])
    refreshed = json.loads(output.read_text())
    metadata = checkpoints.load_metadata(checkpoints.DEFAULT_DIR)
    for before, after in zip(report["rows"], refreshed["rows"]):
        assert {k: after[k] for k in ("art", "pgd50x5", "square_extra")} == {k: before[k] for k in ("art", "pgd50x5", "square_extra")}
        assert after["ours"] == evaluate.row(metadata["evaluation"], evaluate.autoattack_row_id(after["norm"], after["epsilon"]))[after["model"]]
    assert refreshed["peers_from"]["seconds"]["art"] > 0  # what ART's part cost when it ran


def test_peers_of_other_model_files_are_refused(report, real_beans, tmp_path):
    from bench import crosscheck_autoattack

    other = tmp_path / "other.json"
    other.write_text(json.dumps({**report, "files": {name: "0" * 64 for name in report["files"]}}))
    with pytest.raises(SystemExit, match="other model files"):
        crosscheck_autoattack.main(["--data-dir", str(real_beans), "--peers-from", str(other), "--output", os.devnull])
