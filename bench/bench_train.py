"""How long does `python -m core.train` (default config) take on this machine? Target: <= 300 s.

Runs the real command line on the real Beans images into a temporary folder (the shipped
checkpoints are not touched) and reports wall time, the split between data loading, the
baseline and the adversarial model, and the ratios that matter.

    BEANS_DATA_DIR=../shared/beans python bench/bench_train.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 300.0


def main() -> int:
    if not os.environ.get("BEANS_DATA_DIR"):
        print("Set BEANS_DATA_DIR to the Beans folder (e.g. ../shared/beans).", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as output:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "core.train", "--output-dir", output, "--no-evaluate", *sys.argv[1:]],
            cwd=REPO, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        timing = json.loads((Path(output) / "metadata.json").read_text())["timing"]
    baseline, adversarial = timing["baseline"], timing["adversarial"]
    per_epoch = {k: sum(t["seconds_per_epoch"]) / len(t["seconds_per_epoch"]) for k, t in (("baseline", baseline), ("adversarial", adversarial))}
    figures = {
        "wall_seconds": round(wall, 1),
        "target_seconds": TARGET_SECONDS,
        "wall_over_target": round(wall / TARGET_SECONDS, 3),
        "data_seconds": timing["data_seconds"],
        "baseline_seconds": baseline["seconds"],
        "adversarial_seconds": adversarial["seconds"],
        "process_overhead_seconds": round(wall - timing["total_train_seconds"], 1),
        "baseline_seconds_per_epoch": round(per_epoch["baseline"], 2),
        "adversarial_seconds_per_epoch": round(per_epoch["adversarial"], 2),
        "adversarial_over_baseline_per_epoch": round(per_epoch["adversarial"] / per_epoch["baseline"], 2),
        "cpu_count": os.cpu_count(),
    }
    for key, value in figures.items():
        print(f"{key:>36}: {value}")
    print("PASS" if wall <= TARGET_SECONDS else "OVER TARGET", f"({wall:.0f} s vs {TARGET_SECONDS:.0f} s)")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "train.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
