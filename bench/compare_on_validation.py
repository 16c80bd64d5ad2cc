"""Which trained NSL model should ship? Compare candidate runs on the *validation* split only.

The full recipe's knobs (the training budget ε, the number of epochs) are chosen here, never on
test: for each run folder, the NSL model's clean accuracy and its AutoAttack-grade robust accuracy
(``core.apgd``, the evaluation's ensemble) at L∞ 4/255 and 8/255 on the 133 validation photos,
and their sum: the run with the highest sum among those at least ``--min-clean`` right on clean
validation photos (the issue's clean-accuracy goal, 90%) picks the recipe.

    python bench/compare_on_validation.py RUN_DIR [RUN_DIR ...] --data-dir ../shared/beans

Writes ``bench/results/compare_on_validation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from core import apgd, checkpoints, data  # noqa: E402
from core.evaluate import accuracy  # noqa: E402

BUDGETS = (4.0 / 255, 8.0 / 255)  # ascending: a photo fooled at 4/255 is fooled at 8/255


def score_run(folder: Path, split: data.Split, ensemble: apgd.Ensemble) -> dict:
    """Clean and AutoAttack-grade L∞ accuracy of one run's NSL model on ``split``."""
    started = time.perf_counter()
    pair = checkpoints.load_pair(folder)
    config = pair.metadata.get("config", {})
    row = {
        "run": str(folder),
        "adv_epsilon_255": round(float(config.get("adv_epsilon", float("nan"))) * 255, 2),
        "adversarial_epochs": config.get("adversarial_epochs"),
        "clean": accuracy(pair.adversarial, split.images, split.labels),
    }
    survivors = None
    for epsilon in BUDGETS:
        survivors = apgd.apgd_robust(pair.adversarial, split.images, split.labels, "infinity", epsilon, ensemble, candidates=survivors)[0]
        row[f"autoattack_linf_{epsilon * 255:g}"] = float(survivors.mean())
    row["score"] = row["clean"] + sum(row[f"autoattack_linf_{e * 255:g}"] for e in BUDGETS)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="checkpoint folders (each with metadata.json)")
    parser.add_argument("--data-dir", type=Path, default=data.resolve_data_dir())
    parser.add_argument("--min-clean", type=float, default=0.90, help="clean validation accuracy a run must reach to be chosen")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "compare_on_validation.json")
    args = parser.parse_args(argv)
    validation = data.load_split("validation", data.DEFAULT_IMAGE_SIZE, args.data_dir)
    rows = []
    print(f"{'run':<28} {'ε (/255)':>8} {'epochs':>6} {'clean':>6} {'AA 4':>6} {'AA 8':>6} {'score':>6}")
    for folder in args.runs:
        row = score_run(folder, validation, apgd.Ensemble())
        rows.append(row)
        print(f"{folder.name:<28} {row['adv_epsilon_255']:>8g} {row['adversarial_epochs']!s:>6} {row['clean']:>6.3f} "
              f"{row['autoattack_linf_4']:>6.3f} {row['autoattack_linf_8']:>6.3f} {row['score']:>6.3f}", flush=True)  # fmt: skip
    eligible = [row for row in rows if row["clean"] >= args.min_clean]
    best = max(eligible, key=lambda row: row["score"]) if eligible else None
    print(f"best on validation (clean >= {args.min_clean:g}, then the highest score): {best['run'] if best else 'none'}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"split": "validation", "photos": len(validation.labels), "min_clean": args.min_clean, "rows": rows, "best": best["run"] if best else None}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
