"""How many random starts the white-box stage needs: photos left standing against starts, per norm.

    BEANS_DATA_DIR=../shared/beans python -m bench.random_starts
    BEANS_DATA_DIR=../shared/beans python -m bench.random_starts --model baseline --l2 0.5 --linf --starts 1 2 5

Why: one APGD run from one random start can miss a photo that another start fools, and the
evaluation's numbers are only as strong as the starts it takes (``core.apgd.Ensemble``). For each
budget, the ensemble's white-box stage (APGD-CE + APGD-T, 100 steps, seed 0) runs on all test
photos once per number of starts, each budget on its own (not nested); the table gives the photos
left standing, the photos a larger number of starts fools that a smaller leaves, and the wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from core import apgd, checkpoints, data  # noqa: E402
from core.attacks import budget_label  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-dir", default=str(checkpoints.DEFAULT_DIR))
    parser.add_argument("--data-dir", default=None, help="Beans folder (default: $BEANS_DATA_DIR)")
    parser.add_argument("--model", choices=("adversarial", "baseline"), default="adversarial")
    parser.add_argument("--l2", type=float, nargs="*", default=[1.0], help="L2 budgets")
    parser.add_argument("--linf", type=float, nargs="*", default=[8.0], help="L∞ budgets, in steps of 1/255")
    parser.add_argument("--starts", type=int, nargs="+", default=[2, 5])
    args = parser.parse_args(argv)
    pair = checkpoints.load_pair(args.checkpoint_dir)
    test = data.load_split("test", pair.image_size, args.data_dir)
    model = pair[args.model]
    print(f"{args.model} model, {len(test.labels)} test photos; white-box stage {' + '.join(apgd.ATTACK_NAMES[l] for l in apgd.DEFAULT_LOSSES)}")
    budgets = [("l2", value) for value in args.l2] + [("infinity", value / 255) for value in args.linf]
    for norm, epsilon in budgets:
        standing_before = None
        for starts in sorted(args.starts):
            ensemble = dataclasses.replace(apgd.Ensemble(), restarts=starts, l2_restarts=starts)
            started = time.perf_counter()
            robust, _ = apgd.apgd_robust(model, test.images, test.labels, norm, epsilon, ensemble)
            seconds = time.perf_counter() - started
            newly = "" if standing_before is None else f"; fools {int((standing_before & ~robust).sum())} that fewer starts left"
            print(f"{norm:>8} {budget_label(norm, epsilon):>6}  {starts} starts: {int(robust.sum()):3d} standing  {seconds:6.0f} s{newly}", flush=True)
            standing_before = robust
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
