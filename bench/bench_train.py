"""How long does a `python -m core.train` recipe take on this machine?

Targets: ``--recipe quick`` (the dashboard's retrain button) <= 120 s, ``--recipe full`` (the
shipped pair) <= 45 min, both on 2 cores. Runs the real command line on the real Beans images into
a temporary folder (the shipped checkpoints are only read, by the quick recipe) and reports wall
time, the split between data loading, the baseline and the adversarial model, and their ratios.

    BEANS_DATA_DIR=../shared/beans python -m bench.bench_train                   # quick
    BEANS_DATA_DIR=../shared/beans python -m bench.bench_train --recipe full     # ~30 min
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.train import command, parse_args

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = {"quick": 120.0, "full": 45 * 60.0}


def main() -> int:
    if not os.environ.get("BEANS_DATA_DIR"):
        print("Set BEANS_DATA_DIR to the Beans folder (e.g. ../shared/beans).", file=sys.stderr)
        return 2
    arguments = sys.argv[1:] if "--recipe" in sys.argv[1:] else ["--recipe", "quick", *sys.argv[1:]]
    config, options = parse_args(arguments)
    recipe = options.recipe
    target = TARGET_SECONDS[recipe]
    with tempfile.TemporaryDirectory() as output:
        started = time.perf_counter()
        result = subprocess.run(
            command(config, output_dir=output, data_dir=options.data_dir, evaluate=False), cwd=REPO, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        timing = json.loads((Path(output) / "metadata.json").read_text())["timing"]
    baseline, adversarial = timing["baseline"], timing["adversarial"]
    per_epoch = {
        k: sum(t["seconds_per_epoch"]) / max(1, len(t["seconds_per_epoch"])) for k, t in (("baseline", baseline), ("adversarial", adversarial))
    }
    figures = {
        "recipe": recipe,
        "wall_seconds": round(wall, 1),
        "target_seconds": target,
        "wall_over_target": round(wall / target, 3),
        "data_seconds": timing["data_seconds"],
        "baseline_seconds": baseline["seconds"],
        "adversarial_seconds": adversarial["seconds"],
        "process_overhead_seconds": round(wall - timing["total_train_seconds"], 1),
        "baseline_seconds_per_epoch": round(per_epoch["baseline"], 2),
        "adversarial_seconds_per_epoch": round(per_epoch["adversarial"], 2),
        "adversarial_over_baseline_per_epoch": round(per_epoch["adversarial"] / per_epoch["baseline"], 2) if per_epoch["baseline"] else None,
        "cpu_count": os.cpu_count(),
    }
    for key, value in figures.items():
        print(f"{key:>36}: {value}")
    print("PASS" if wall <= target else "OVER TARGET", f"({wall:.0f} s vs {target:.0f} s)")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"train_{recipe}.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
