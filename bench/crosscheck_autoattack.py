"""Cross-check our AutoAttack-grade rows against a peer AutoAttack (IBM ART) and PGD-50 with restarts.

For each model of a checkpoint pair and each headline budget (L∞ 2, 4, 8 /255; L2 0.5, 1.0) on
the real test split, three robust accuracies, each the worst case per photo over its attacks:

- ours: the stored rows of the pair's ``metadata.json`` (``python -m core.evaluate``: APGD-CE and
  APGD-T with the targeted DLR loss, 2 random starts at L∞ and 5 at L2, then ART's Square with
  5000 queries; nested over the budgets of a norm), after checking that the metadata names these
  very model files; ``--recompute`` computes them again instead;
- ART: ``art.attacks.evasion.AutoAttack`` composed of APGD-CE, APGD-DLR and Square, in that order,
  each run only on the photos still standing, on a ``TensorFlowV2Classifier`` wrapping the logits
  (with core.square's memo of repeated predictions, so Square costs one forward pass a query).
  AutoAttack's standard version: 1 random start per APGD, 100 steps, initial step 2ε (ART's own
  default is 0.1 whatever the budget), Square with 5000 queries and 1 restart; ART's AutoAttack
  would add DeepFool (unbounded, not part of AutoAttack; left out). Each budget is attacked on
  its own (no nesting), as AutoAttack reports it. ART counts a photo fooled only if its final
  point is misclassified and within ε (checked again here);
- PGD-50 with 5 restarts on logits (``core.apgd.pgd_robust``: step ε/4, restarts alternating
  cross-entropy and DLR), each budget on its own.

The bar (checked by ``tests/test_crosscheck.py`` on the committed output
``bench/results/crosscheck_autoattack.json``): ours is never above ART's AutoAttack by more
than one photo at any budget. ``square_extra``: photos only ART's Square fooled (> 0 would hint
at masked gradients).

    python bench/crosscheck_autoattack.py [checkpoints/] --data-dir ../shared/beans
    python bench/crosscheck_autoattack.py --peers-from bench/results/crosscheck_autoattack.json   # ours only

``--peers-from`` keeps the ART and PGD-50 × 5 columns of an earlier report of the very same model
files, data size and ART settings (checked), and refreshes only ours: what to run after
``python -m core.evaluate`` changes our rows and not the models (ART's part alone takes hours here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow, hence before ART)
from core import apgd, checkpoints, data, square  # noqa: E402
from core.attacks import budget_label  # noqa: E402
from core.evaluate import AUTOATTACK_BUDGETS, autoattack_row_id, headline_verdicts, row  # noqa: E402
from core.metadata import relative_path  # noqa: E402
from core.compat import tf  # noqa: E402

OUTPUT = ROOT / "bench" / "results" / "crosscheck_autoattack.json"


def art_autoattack(
    model: tf.keras.Model, images: np.ndarray, labels: np.ndarray, norm: str, epsilon: float, restarts: int = 1, square_queries: int = 5000
) -> tuple[np.ndarray, int]:
    """(robust per photo under ART's APGD-CE -> APGD-DLR -> Square, photos only Square fooled).

    ``square_queries=0`` leaves Square out (the white-box half only).
    """
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, SquareAttack

    classifier = square.art_classifier(model, tuple(images.shape[1:]))
    art_norm = square.NORMS[norm]
    common = dict(
        estimator=classifier, norm=art_norm, eps=epsilon, eps_step=2 * epsilon, max_iter=100, targeted=False,
        nb_random_init=restarts, batch_size=128, verbose=False,
    )
    attacks = [
        AutoProjectedGradientDescent(loss_type="cross_entropy", **common),
        AutoProjectedGradientDescent(loss_type="difference_logits_ratio", **common),
    ]
    if square_queries > 0:
        attacks.append(
            SquareAttack(estimator=classifier, norm=art_norm, max_iter=square_queries, eps=epsilon, p_init=square.P_INIT, nb_restarts=1, verbose=False)
        )
    auto = AutoAttack(estimator=classifier, norm=art_norm, eps=epsilon, eps_step=2 * epsilon, attacks=attacks, batch_size=128)
    np.random.seed(0)  # Square draws from NumPy's global state
    adversarial = auto.generate(images, labels)
    return _still_right(model, images, adversarial, labels, norm, epsilon), int(np.sum(auto.best_attacks == 2))


def _still_right(model, images, adversarial, labels, norm, epsilon) -> np.ndarray:
    """Right on the clean image and on the adversarial one; a move over budget does not count."""
    delta = (adversarial - images).reshape(len(images), -1).astype(np.float64)
    size = np.abs(delta).max(axis=1) if norm == "infinity" else np.sqrt((delta**2).sum(axis=1))
    clean_right = model.predict(images, verbose=0).argmax(axis=1) == labels
    adv_right = model.predict(adversarial, verbose=0).argmax(axis=1) == labels
    return clean_right & (adv_right | (size > epsilon * (1 + 1e-4)))


def stored_ours(folder: Path) -> dict[str, dict[str, float]]:
    """{row id: {model: accuracy}} from the pair's metadata, after checking it names these files."""
    pair = checkpoints.load_pair(folder, require_digests=True)
    evaluation = pair.metadata.get("evaluation") or {}
    if "ensemble" not in evaluation:
        raise SystemExit(f"{folder}/metadata.json has no evaluation from the current core.evaluate; run it first or pass --recompute.")
    return {autoattack_row_id(n, e): {k: row(evaluation, autoattack_row_id(n, e))[k] for k in ("baseline", "adversarial")} for n, e in AUTOATTACK_BUDGETS}


def _peers(path: Path, files: dict[str, str], examples: int, art_settings: dict) -> dict:
    """An earlier report's ART and PGD-50 x 5 columns, refused unless it attacked these very files the same way."""
    earlier = json.loads(path.read_text())
    for what, mine, theirs in (("model files", files, earlier.get("files")), ("photos", examples, earlier.get("examples")), ("ART settings", art_settings, earlier.get("art"))):
        if mine != theirs:
            raise SystemExit(f"{path} attacked other {what} ({theirs}, here {mine}): its ART and PGD-50 x 5 columns do not apply; run without --peers-from.")
    rows = {(item["norm"], round(item["epsilon"], 6), item["model"]): item for item in earlier["rows"]}
    source = earlier.get("peers_from", {"commit": earlier.get("commit"), "seconds": earlier.get("seconds")})
    return {"rows": rows, **source}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint_dir", nargs="?", default=str(ROOT / "checkpoints"))
    parser.add_argument("--data-dir", default=None, help="Beans folder (default: $BEANS_DATA_DIR)")
    parser.add_argument("--recompute", action="store_true", help="compute our rows again instead of reading metadata.json")
    parser.add_argument("--art-restarts", type=int, default=1, help="random starts per ART APGD (AutoAttack standard: 1)")
    parser.add_argument("--square-queries", type=int, default=5000, help="ART Square's queries (AutoAttack's: 5000)")
    parser.add_argument("--budgets", nargs="*", help="only these rows, e.g. autoattack_linf_8 autoattack_l2_1")
    parser.add_argument("--peers-from", type=Path, help="an earlier report of these files: keep its ART and PGD-50 x 5 columns")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args(argv)

    folder = Path(args.checkpoint_dir)
    pair = checkpoints.load_pair(folder)
    models = {"baseline": pair.baseline, "adversarial": pair.adversarial}
    test = data.load_split("test", pair.image_size, args.data_dir)
    images, labels = test.images, test.labels
    started = time.perf_counter()
    timings = {"ours": 0.0, "art": 0.0, "pgd50x5": 0.0}
    if args.recompute:
        tic = time.perf_counter()
        verdicts = {kind: headline_verdicts(model, images, labels) for kind, model in models.items()}
        ours = {row_id: {kind: verdicts[kind][row_id].accuracy for kind in models} for row_id in verdicts["baseline"]}
        timings["ours"] = time.perf_counter() - tic
    else:
        ours = stored_ours(folder)
    art_settings = {"restarts_per_apgd": args.art_restarts, "square_queries": args.square_queries, "apgd_eps_step": "2 eps"}
    peers = _peers(args.peers_from, pair.metadata.get(checkpoints.FILES_KEY, {}), len(labels), art_settings) if args.peers_from else None
    rows = []
    budgets = [(n, e) for n, e in AUTOATTACK_BUDGETS if not args.budgets or autoattack_row_id(n, e) in args.budgets]
    for norm, epsilon in budgets:
        for name, model in models.items():
            result = {"norm": norm, "epsilon": epsilon, "budget": budget_label(norm, epsilon), "model": name}
            result["ours"] = ours[autoattack_row_id(norm, epsilon)][name]
            if peers is not None:
                earlier = peers["rows"][(norm, round(epsilon, 6), name)]
                result["pgd50x5"], result["art"], result["square_extra"] = earlier["pgd50x5"], earlier["art"], earlier["square_extra"]
            else:
                tic = time.perf_counter()
                result["pgd50x5"] = float(apgd.pgd_robust(model, images, labels, norm, epsilon)[0].mean())
                timings["pgd50x5"] += time.perf_counter() - tic
                tic = time.perf_counter()
                robust, square_extra = art_autoattack(model, images, labels, norm, epsilon, args.art_restarts, args.square_queries)
                timings["art"] += time.perf_counter() - tic
                result["art"], result["square_extra"] = float(robust.mean()), square_extra
            result["ours_minus_art_photos"] = int(round((result["ours"] - result["art"]) * len(labels)))
            values = [result[key] for key in ("ours", "art", "pgd50x5")]
            result["spread_points"] = round(100 * (max(values) - min(values)), 2)
            rows.append(result)
            print(_line(result), flush=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {
        "checkpoint_dir": relative_path(str(folder)),
        "files": pair.metadata.get(checkpoints.FILES_KEY, {}),
        "commit": commit,
        "examples": int(len(labels)),
        "ours_from": "recomputed" if args.recompute else "metadata.json evaluation",
        "rows": rows,
        "seconds": {key: round(value, 1) for key, value in timings.items()} | {"total": round(time.perf_counter() - started, 1)},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (wall seconds)",
        "art": art_settings,
    }
    if peers is not None:  # whose ART and PGD-50 x 5 columns these are, and what they cost then
        report["peers_from"] = {"commit": peers["commit"], "seconds": peers["seconds"]}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"seconds: {report['seconds']}; wrote {output}")
    return 0


def _line(result: dict) -> str:
    cells = "  ".join(f"{key} {result[key]:6.1%}" for key in ("ours", "art", "pgd50x5"))
    return f"{result['budget']:>10} {result['model']:<12} {cells}  spread {result['spread_points']:.1f} pts  square_extra {result['square_extra']}  ours-art {result['ours_minus_art_photos']:+d} photos"


if __name__ == "__main__":
    raise SystemExit(main())
