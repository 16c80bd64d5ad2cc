"""Time the "seeing why" computations on the shipped pair and the real test split.

Wall seconds depend on what else runs on the machine; CPU seconds (all threads) much less so.

- smallest fooling budgets (``core.boundary``, the default APGD ensemble) for every test photo,
  per model and norm (L∞ up to 16/255, L2 up to 3.0: the curves' largest budgets); with
  ``--check``, the same attack rerun (seed 0) at each returned budget and at 0.9 times it: the
  share of photos it fools there (the search is tight when the second is small);
- one projection (``core.embedding``): features of the clean photos, PCA fit and apply, per model;
- one certification (``core.certify``): CERTIFY with n0 = 100, n = 1000 on one photo;
- the Square attack (``core.square``, ART's, black-box) on one photo, per model and norm, at the
  page's query budgets: seconds, queries spent, fooled or not;
- with ``--certify-photos K``, CERTIFY on K test photos spread over the split, per model and sigma:
  how many are right and proven, how many abstain (compare a run trained with ``--noise-sigma``);
- with ``--square-all Q``, the Square attack with at most Q queries on every test photo (L∞ 8/255).

    nice -n 10 python bench/bench_seeing_why.py --data-dir ../shared/beans [--photos 128] [--check] [--skip-budgets] [--save-budgets FILE]

``--save-budgets`` writes every photo's budget as JSON after each row ({"pair_version", "budgets":
{model: {norm: {file: budget or null for inf}}}}), e.g. to load into a class store for a screenshot.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import core  # noqa: E402,F401
from core import boundary, certify, checkpoints, data, embedding, square  # noqa: E402
from core.attacks import budget_label  # noqa: E402

TOPS = {"infinity": 16 / 255, "l2": 3.0}
SQUARE_BUDGETS = {"infinity": 8 / 255, "l2": 1.0}  # the page's default budgets
SQUARE_QUERIES = (1000, 5000)


def budgets_rows(pair, images, labels, check: bool, filenames=(), save: Path | None = None) -> list[str]:
    rows = []
    saved: dict = {"pair_version": pair.version, "budgets": {}}
    for norm, top in TOPS.items():
        for name in ("baseline", "adversarial"):
            model = pair[name]
            start, cpu = time.perf_counter(), time.process_time()
            result = boundary.find_fooling_budgets(model, images, labels, norm, top)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            budgets = result.budgets
            finite = np.isfinite(budgets) & (budgets > 0)
            median = np.median(budgets)
            cells = [
                f"{name:<12}", f"{norm:<9}", f"{len(images):>6}", f"{result.rounds:>6}", f"{seconds:>8.0f}", f"{cpu:>7.0f}",
                f"{budget_label(norm, median) if np.isfinite(median) else 'inf':>9}",
                f"{np.mean(budgets == 0):>6.1%}", f"{np.mean(np.isinf(budgets)):>6.1%}",
            ]
            if check:
                attack = boundary.default_attack(norm)
                start = time.perf_counter()
                at_budget, _ = attack(model, images[finite], labels[finite], norm, budgets[finite], 0)
                below, _ = attack(model, images[finite], labels[finite], norm, 0.9 * budgets[finite], 0)
                cells += [f"{at_budget.mean():>9.1%}", f"{below.mean():>9.1%}", f"{time.perf_counter() - start:>7.0f}"]
            rows.append(" ".join(cells))
            print(rows[-1], flush=True)
            if save is not None:
                found = {file: None if math.isinf(value) else float(value) for file, value in zip(filenames, budgets)}
                saved["budgets"].setdefault(name, {})[norm] = found
                save.write_text(json.dumps(saved, indent=1))
    return rows


def square_all(pair, images, labels, queries: int) -> None:
    """The black-box attack on the whole split, as the page's background job runs it."""
    epsilon = SQUARE_BUDGETS["infinity"]
    print(f"Square attack on all {len(images)} test photos, L∞ {budget_label('infinity', epsilon)}, at most {queries} queries")
    for name in ("baseline", "adversarial"):
        start = time.perf_counter()
        result = square.square_attack(pair[name], images, labels, "infinity", epsilon, max_queries=queries)
        right = pair[name].predict(images, verbose=0).argmax(axis=1) == labels
        spent = result.queries[result.fooled]
        print(
            f"  {name:<12} {time.perf_counter() - start:.0f} s; clean {right.mean():.1%}, after {np.mean(right & ~result.fooled):.1%}; "
            f"median queries of the fooled {int(np.median(spent)) if len(spent) else '-'}", flush=True
        )


def certify_summary(pair, images, labels, photos: int) -> None:
    """Certified accuracy on a spread of test photos: how often the smoothed model is right and proven,
    abstains, and how large its right answers' radii are (Cohen et al.'s table, on a few photos)."""
    chosen = np.arange(0, len(images), max(1, len(images) // photos))[:photos]
    print(f"Certification of {len(chosen)} test photos (every {max(1, len(images) // photos)}th): right and proven / abstains / median radius of the right ones")
    for name in ("baseline", "adversarial"):
        for sigma in (0.12, 0.25):
            start = time.perf_counter()
            found = [certify.certify(pair[name], images[i], sigma) for i in chosen]
            right = [c.radius for c, i in zip(found, chosen) if c.label == labels[i]]
            abstain = sum(c.label is None for c in found)
            median = f"{np.median(right):.3f}" if right else "-"
            print(f"  {name:<12} sigma {sigma}: {len(right)}/{len(chosen)} right and proven, {abstain} abstain, median radius {median}; {time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "beans"))
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--photos", type=int, default=128, help="the first N test photos (default: all 128)")
    parser.add_argument("--check", action="store_true", help="rerun the attack at each budget and at 0.9 times it")
    parser.add_argument("--skip-budgets", action="store_true")
    parser.add_argument("--save-budgets", type=Path, help="write every photo's budget here (JSON) after each row")
    parser.add_argument("--certify-photos", type=int, default=0, help="also certify every k-th test photo (k = 128 // this) and sum up per model and sigma")
    parser.add_argument("--skip-square", action="store_true")
    parser.add_argument("--square-all", type=int, default=0, help="also run Square with this many queries on every test photo (L∞ 8/255), both models")
    args = parser.parse_args(argv)
    pair = checkpoints.load_pair(args.checkpoint_dir)
    test = data.load_split("test", int(pair.baseline.input_shape[1]), args.data_dir)
    images, labels = test.images[: args.photos], test.labels[: args.photos]
    print(f"{platform.node()}, {os.cpu_count()} cores, load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])} at the start")
    if not args.skip_budgets:
        header = f"{'model':<12} {'norm':<9} {'photos':>6} {'rounds':>6} {'seconds':>8} {'cpu s':>7} {'median':>9} {'0':>6} {'inf':>6}"
        if args.check:
            header += f" {'rerun 1x':>9} {'rerun .9x':>9} {'check s':>7}"
        print("Smallest fooling budgets (default APGD ensemble; 0: already wrong, inf: not fooled up to the top)")
        print(header, flush=True)
        budgets_rows(pair, images, labels, args.check, test.filenames[: args.photos], args.save_budgets)
    print("Projection (features of the clean photos, PCA fit, apply)")
    for name in ("baseline", "adversarial"):
        start = time.perf_counter()
        features = embedding.features(pair[name], images)
        middle = time.perf_counter()
        projection = embedding.fit_projection(features)
        projection.apply(features)
        end = time.perf_counter()
        ratio = ", ".join(f"{value:.0%}" for value in projection.explained_variance_ratio)
        print(f"  {name:<12} features {features.shape}: {middle - start:.2f} s; fit + apply {end - middle:.3f} s; variance shown {ratio}")
    print("Certification (CERTIFY, n0 = 100, n = 1000, alpha = 0.001, first test photo)")
    for name in ("baseline", "adversarial"):
        for sigma in (0.12, 0.25):
            start = time.perf_counter()
            result = certify.certify(pair[name], images[0], sigma)
            seconds = time.perf_counter() - start
            print(
                f"  {name:<12} sigma {sigma}: {seconds:.1f} s; label {result.label} (true {labels[0]}), radius {result.radius:.3f} "
                f"(L∞ {certify.linf_equivalent(result.radius, images[0].shape) * 255:.2f}/255), counts {result.counts}"
            )
    if args.certify_photos:
        certify_summary(pair, test.images, test.labels, args.certify_photos)
    if args.square_all:
        square_all(pair, images, labels, args.square_all)
    if args.skip_square:
        return 0
    print("Square attack (ART, black-box) on the first test photo each model gets right")
    for name in ("baseline", "adversarial"):
        model = pair[name]
        right = np.flatnonzero(model.predict(images, verbose=0).argmax(axis=1) == labels)
        photo = int(right[0])
        for norm, epsilon in SQUARE_BUDGETS.items():
            for queries in SQUARE_QUERIES:
                start = time.perf_counter()
                result = square.square_attack(model, images[photo : photo + 1], labels[photo : photo + 1], norm, epsilon, max_queries=queries)
                seconds = time.perf_counter() - start
                print(
                    f"  {name:<12} photo {photo} {norm:<9} budget {budget_label(norm, epsilon):>7} at most {queries:>5} queries: "
                    f"{seconds:.1f} s, {int(result.queries[0])} queries spent, fooled {bool(result.fooled[0])}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
