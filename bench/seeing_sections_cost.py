"""What the "seeing why" sections add to one slider move: the time each spends drawing, per move.

Runs the page headless (Streamlit's AppTest) on the shipped models and the real test split, moves
the budget slider back and forth, and times every call of the five sections' ``render`` and of
``fooling.this_photo`` (the sentence under the verdicts). Twice: before anything was computed
(each section shows its caption and button), and after the map, the bars, the black-box attack,
the proof and every photo's budgets are there (each draws its figure or table from the stores).
A slider move must only look results up: these times are what it pays for that.

    BEANS_DATA_DIR=../shared/beans nice -n 10 python -m bench.seeing_sections_cost [--moves 10] [--budgets FILE]

``--budgets``: a ``bench/bench_seeing_why.py --save-budgets`` file, loaded into a private class store.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import core  # noqa: F401
from dashboard import black_box, fooling, per_class, photo_map, proofs

REPO = Path(__file__).resolve().parents[1]
TIMED = {"this photo": (fooling, "this_photo"), "fooling": (fooling, "render"), "map": (photo_map, "render"),
         "classes": (per_class, "render"), "black box": (black_box, "render"), "proof": (proofs, "render")}  # fmt: skip


def timed(spent: dict[str, list[float]]) -> None:
    """Wrap every timed function so each call adds its seconds to ``spent``."""
    for label, (module, name) in TIMED.items():
        original = getattr(module, name)

        def wrapper(page, original=original, label=label):
            start = time.perf_counter()
            try:
                return original(page)
            finally:
                spent[label].append(time.perf_counter() - start)

        setattr(module, name, wrapper)


def moves(at, count: int, spent: dict[str, list[float]]) -> dict[str, float]:
    """Median ms per move of each section, over ``count`` moves of the budget slider (7/255 ↔ 8/255)."""
    for values in spent.values():
        values.clear()
    totals = []
    for index in range(count):
        start = time.perf_counter()
        at.slider(key="epsilon_infinity").set_value(7 if index % 2 == 0 else 8).run()
        totals.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    result = {label: 1000 * float(np.median(values)) for label, values in spent.items() if values}
    result["whole rerun (AppTest)"] = 1000 * float(np.median(totals))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--budgets", type=Path)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    from core import checkpoints
    from core.classroom import open_store

    folder = tempfile.mkdtemp(prefix="seeing-cost-")
    store = f"sqlite:///{folder}/class.db"
    os.environ.update(BEANGUARD_CHECKPOINT_DIR=str(REPO / "checkpoints"), BEANGUARD_STORE_URL=store, BEANGUARD_RUNS_DIR=f"{folder}/runs",
                      BEANGUARD_WARM_UP="0", BEANGUARD_JOBS="0")  # fmt: skip
    if args.budgets:
        saved = json.loads(args.budgets.read_text())
        version = checkpoints.load_pair(REPO / "checkpoints").version
        assert saved["pair_version"] == version, "the budgets were made for other models"
        for model, norms in saved["budgets"].items():
            for norm, budgets in norms.items():
                open_store(store).put_budgets(version, model, norm, {k: float("inf") if v is None else v for k, v in budgets.items()})
    spent: dict[str, list[float]] = defaultdict(list)
    timed(spent)
    at = AppTest.from_file(str(REPO / "dashboard" / "page_script.py"), default_timeout=600).run()
    at.slider(key="epsilon_infinity").set_value(8).run()
    before = moves(at, args.moves, spent)
    for key in ("map_button", "classes_button", "square_button", "certify_button"):
        for settings in (7, 8):
            at.slider(key="epsilon_infinity").set_value(settings).run()
            buttons = [button for button in at.button if button.key == key]
            if buttons:
                buttons[0].click().run()
    after = moves(at, args.moves, spent)
    print(f"Median ms per budget-slider move, {args.moves} moves, load average {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"{'':<24} {'nothing computed':>17} {'all computed':>13}")
    for label in before:
        print(f"{label:<24} {before[label]:>17.1f} {after.get(label, float('nan')):>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
