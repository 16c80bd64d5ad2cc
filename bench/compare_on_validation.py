"""Which trained NSL model should ship? Compare candidate runs on the *validation* split only.

The recipe's knobs are chosen here, never on test: for each run folder, the NSL model's clean
accuracy and its AutoAttack-grade robust accuracy (:mod:`core.autoattack`, the evaluation's
ensemble, nested L∞ 2 → 4 → 8 /255) on the 133 validation photos, each with its 95% interval,
and the score clean + 4/255 + 8/255: the run with the highest score among those at least
``--min-clean`` right on clean validation photos (the clean goal, 90%) is chosen.

Every candidate scored stays in the committed table ``bench/results/compare_on_validation.json``
(``--append`` adds runs to it, so candidates can be scored as they finish): its training
config (what differs from the full recipe), its numbers, and how long scoring took.
``--white-box-only`` scores without the Square stage (minutes instead of tens of minutes on
2 cores), for screening; a run is marked by the ensemble that scored it, and only runs scored with
the full ensemble can be chosen. ``--also-test`` adds each run's test-split numbers to its row,
marked as reported after the choice and never read by it.

    python -m bench.compare_on_validation RUN_DIR [RUN_DIR ...] --data-dir ../shared/beans --append
    python -m bench.compare_on_validation --markdown      # the committed table as docs/models.md shows it
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from core import autoattack, checkpoints, data, intervals  # noqa: E402
from core.metadata import relative_path  # noqa: E402
from core.evaluate import accuracy, autoattack_row_id  # noqa: E402

BUDGETS = (2.0 / 255, 4.0 / 255, 8.0 / 255)  # ascending: a photo fooled at 2/255 is fooled at 4 and 8/255
SCORED = ("autoattack_linf_4", "autoattack_linf_8")
OUTPUT = ROOT / "bench" / "results" / "compare_on_validation.json"
CRITERION = (
    "validation only: among NSL models at least min_clean right on clean validation photos and scored with the full "
    "ensemble, the highest clean + AutoAttack-grade L∞ 4/255 + 8/255 accuracy"
)


def recipe_changes(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's training config changes from today's full recipe (``core.train.RECIPES['full']``)."""
    from core.train import RECIPES

    full = dataclasses.asdict(RECIPES["full"])
    return {key: value for key, value in config.items() if key in full and full[key] != value and key != "init_from"}


def split_numbers(model, split: data.Split, ensemble: autoattack.Ensemble, seed: int) -> dict[str, Any]:
    """Clean and nested AutoAttack-grade L∞ accuracy of one model on one split, with 95% intervals."""
    photos = len(split.labels)
    values = {"clean": accuracy(model, split.images, split.labels)}
    for result in autoattack.robust_by_budget(model, split.images, split.labels, "infinity", BUDGETS, ensemble, seed):
        values[autoattack_row_id("infinity", result.epsilon)] = result.accuracy
    numbers: dict[str, Any] = {key: round(value, 4) for key, value in values.items()}
    numbers["score"] = round(values["clean"] + sum(values[key] for key in SCORED), 4)
    numbers["interval"] = {key: intervals.accuracy_interval(value, photos) for key, value in values.items()}
    return numbers


def score_run(folder: Path, splits: dict[str, data.Split], ensemble: autoattack.Ensemble, seed: int = 0) -> dict[str, Any]:
    """One run's row: its name, what its recipe changes, validation numbers (and test ones if asked)."""
    started = time.perf_counter()
    pair = checkpoints.load_pair(folder)
    config = dict(pair.metadata.get("config", {}))
    config["init_from"] = relative_path(config.get("init_from", ""))  # the committed table names no machine's folders
    row: dict[str, Any] = {
        "run": folder.name,
        "changes": recipe_changes(config),
        "config": config,
        "selection_epoch": pair.metadata.get("selection", {}).get("adversarial", {}).get("best_epoch"),
        "train_seconds": pair.metadata.get("timing", {}).get("total_train_seconds"),
        "ensemble": ensemble.name,
        "validation": split_numbers(pair.adversarial, splits["validation"], ensemble, seed),
    }
    if "test" in splits:
        row["test_reported_not_used"] = split_numbers(pair.adversarial, splits["test"], ensemble, seed)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def choose(rows: list[dict[str, Any]], min_clean: float, full_name: str) -> str | None:
    """The chosen run's name: full-ensemble rows at least ``min_clean`` clean, then the highest score."""
    eligible = [row for row in rows if row["ensemble"] == full_name and row["validation"]["clean"] >= min_clean]
    return max(eligible, key=lambda row: row["validation"]["score"])["run"] if eligible else None


def markdown(report: dict[str, Any]) -> str:
    """The selection table for docs/models.md: validation numbers with 95% intervals, test numbers after them."""

    def cell(numbers: dict[str, Any] | None, key: str) -> str:
        if not numbers:
            return "—"
        low, high = numbers["interval"][key]
        return f"{numbers[key]:.1%} [{100 * low:.1f}–{100 * high:.1f}]"

    lines = [
        "| run | changes from the full recipe | ensemble | validation clean | val. AA 4/255 | val. AA 8/255 | score | test clean | test AA 4/255 | test AA 8/255 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(report["candidates"], key=lambda row: -row["validation"]["score"]):
        changes = ", ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in row["changes"].items()) or "none"
        name = f"**{row['run']}** (chosen)" if row["run"] == report["chosen"] and row["ensemble"] == autoattack.Ensemble().name else row["run"]
        test = row.get("test_reported_not_used")
        lines.append(
            f"| {name} | {changes} | {row['ensemble']} | {cell(row['validation'], 'clean')} | {cell(row['validation'], 'autoattack_linf_4')} "
            f"| {cell(row['validation'], 'autoattack_linf_8')} | {row['validation']['score']:.3f} | {cell(test, 'clean')} "
            f"| {cell(test, 'autoattack_linf_4')} | {cell(test, 'autoattack_linf_8')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="checkpoint folders (each with metadata.json)")
    parser.add_argument("--data-dir", type=Path, default=data.resolve_data_dir())
    parser.add_argument("--min-clean", type=float, default=0.90, help="clean validation accuracy a run must reach to be chosen")
    parser.add_argument("--white-box-only", action="store_true", help="leave Square out (screening; such rows cannot be chosen)")
    parser.add_argument("--also-test", action="store_true", help="also report test-split numbers (never used to choose)")
    parser.add_argument("--append", action="store_true", help="keep the rows already in --output (a run scored again is replaced)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--markdown", action="store_true", help="print --output's table as markdown and stop")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.output.read_text())))
        return 0
    if not args.runs:
        parser.error("name at least one run folder (or --markdown)")
    ensemble = autoattack.Ensemble()
    scoring = ensemble.without_square() if args.white_box_only else ensemble
    splits = {"validation": data.load_split("validation", data.DEFAULT_IMAGE_SIZE, args.data_dir)}
    if args.also_test:
        splits["test"] = data.load_split("test", data.DEFAULT_IMAGE_SIZE, args.data_dir)
    rows = json.loads(args.output.read_text())["candidates"] if args.append and args.output.is_file() else []
    print(f"{'run':<30} {'ensemble':<26} {'clean':>6} {'AA 2':>6} {'AA 4':>6} {'AA 8':>6} {'score':>6}")
    for folder in args.runs:
        row = score_run(folder, splits, scoring)
        rows = [old for old in rows if not (old["run"] == row["run"] and old["ensemble"] == row["ensemble"])] + [row]
        numbers = row["validation"]
        print(f"{row['run']:<30} {row['ensemble']:<26} {numbers['clean']:>6.3f} {numbers['autoattack_linf_2']:>6.3f} "
              f"{numbers['autoattack_linf_4']:>6.3f} {numbers['autoattack_linf_8']:>6.3f} {numbers['score']:>6.3f}", flush=True)  # fmt: skip
    chosen = choose(rows, args.min_clean, ensemble.name)
    print(f"chosen on validation (full ensemble, clean >= {args.min_clean:g}, then the highest score): {chosen or 'none'}")
    report = {
        "split": "validation",
        "photos": len(splits["validation"].labels),
        "criterion": CRITERION,
        "min_clean": args.min_clean,
        "ensemble": dataclasses.asdict(ensemble),
        "budgets_255": [round(epsilon * 255, 4) for epsilon in BUDGETS],
        "candidates": rows,
        "chosen": chosen,
        "machine": f"{os.cpu_count()} CPUs, shared with other jobs (seconds are wall time)",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
