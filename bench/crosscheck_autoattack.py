"""Cross-check our AutoAttack-grade rows against a peer AutoAttack (IBM ART) and PGD-50 with restarts.

For each model of a checkpoint pair and each budget (L∞ 2, 4, 8 /255; L2 0.5, 1.0) on the real test
split, three robust accuracies, each the worst case per example over its attacks:

- ours: ``core.apgd.apgd_robust`` (APGD-CE, APGD-DLR, then APGD-T at each wrong class, on
  pre-softmax logits, 100 steps each);
- ART:  ``art.attacks.evasion.AutoAttack`` composed of APGD-CE, APGD-DLR and Square, in that
  order, each run only on the examples still standing, on a ``TensorFlowV2Classifier`` wrapping the
  logits model. ART's defaults, checked in art 1.20: its AutoAttack adds DeepFool (unbounded
  minimal perturbation, not part of AutoAttack; left out), uses 5 random starts per APGD,
  Square with 5000 queries and 5 restarts, and ``eps_step=0.1`` for APGD whatever the budget
  (12.75 ε at L∞ 8/255). We pass the paper's initial step 2ε, and default to 1 start per APGD
  (AutoAttack's "standard" APGD-CE) and 1000 Square queries to keep a run near 10 minutes on
  2 cores; ``--art-restarts 5 --square-queries 5000`` is ART's full strength. ART counts an
  example as fooled only if its final iterate is misclassified and within ε (checked again here);
- PGD-50 with 5 restarts on logits (``core.apgd.pgd_robust``: step ε/4, restarts alternating
  cross-entropy and DLR).

The issue's bar: the three agree within 3 points, and the black-box Square attack finds nothing
the white-box attacks missed (``square_extra``: examples only Square fooled; > 0 hints at masked
gradients).

    python bench/crosscheck_autoattack.py [checkpoints/] --data-dir /work/shared/beans
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import core  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow, hence before ART)
from core import apgd, checkpoints, data  # noqa: E402
from core.compat import tf  # noqa: E402
from core.attacks import budget_label  # noqa: E402
from core.evaluate import AUTOATTACK_BUDGETS, autoattack_row_id  # noqa: E402
from core.logits import logits_model  # noqa: E402


def art_autoattack(
    model: tf.keras.Model, images: np.ndarray, labels: np.ndarray, norm: str, epsilon: float, restarts: int, square_queries: int
) -> tuple[np.ndarray, int]:
    """(robust per example under ART's APGD-CE -> APGD-DLR -> Square, examples only Square fooled).

    ``square_queries=0`` leaves Square out (the white-box half only).
    """
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, SquareAttack
    from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(
        model=logits_model(model),
        nb_classes=int(model.output_shape[-1]),
        input_shape=tuple(images.shape[1:]),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 1.0),
    )
    art_norm = np.inf if norm == "infinity" else 2
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
            SquareAttack(estimator=classifier, norm=art_norm, max_iter=square_queries, eps=epsilon, p_init=0.8, nb_restarts=1, verbose=False)
        )
    auto = AutoAttack(estimator=classifier, norm=art_norm, eps=epsilon, eps_step=2 * epsilon, attacks=attacks, batch_size=128)
    adversarial = auto.generate(images, labels)
    return _still_right(model, images, adversarial, labels, norm, epsilon), int(np.sum(auto.best_attacks == 2))


def _still_right(model, images, adversarial, labels, norm, epsilon) -> np.ndarray:
    """Right on the clean image and on the adversarial one; a move over budget does not count."""
    delta = (adversarial - images).reshape(len(images), -1).astype(np.float64)
    size = np.abs(delta).max(axis=1) if norm == "infinity" else np.sqrt((delta**2).sum(axis=1))
    clean_right = model.predict(images, verbose=0).argmax(axis=1) == labels
    adv_right = model.predict(adversarial, verbose=0).argmax(axis=1) == labels
    return clean_right & (adv_right | (size > epsilon * (1 + 1e-4)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint_dir", nargs="?", default=str(ROOT / "checkpoints"))
    parser.add_argument("--data-dir", default=None, help="Beans folder (default: $BEANS_DATA_DIR)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    parser.add_argument("--art-restarts", type=int, default=1, help="random starts per ART APGD (ART's default: 5)")
    parser.add_argument("--square-queries", type=int, default=1000, help="Square's queries (AutoAttack's: 5000)")
    parser.add_argument("--skip-art", action="store_true")
    parser.add_argument("--budgets", nargs="*", help="only these rows, e.g. autoattack_linf_8 autoattack_l2_1")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "crosscheck_autoattack.json"))
    args = parser.parse_args(argv)

    pair = checkpoints.load_pair(args.checkpoint_dir)
    models = {"baseline": pair.baseline, "adversarial": pair.adversarial}
    test = data.load_split("test", int(pair.baseline.input_shape[1]), args.data_dir)
    images, labels = test.images[: args.limit], test.labels[: args.limit]
    rows, timings = [], {"ours": 0.0, "art": 0.0, "pgd50x5": 0.0}
    started = time.perf_counter()
    budgets = [(n, e) for n, e in AUTOATTACK_BUDGETS if not args.budgets or autoattack_row_id(n, e) in args.budgets]
    for norm, epsilon in budgets:
        for name, model in models.items():
            result = {"norm": norm, "epsilon": epsilon, "budget": budget_label(norm, epsilon), "model": name}
            tic = time.perf_counter()
            ours = apgd.apgd_robust(model, images, labels, norm, epsilon)[0]
            result["ours"] = float(ours.mean())
            timings["ours"] += time.perf_counter() - tic
            tic = time.perf_counter()
            result["pgd50x5"] = float(apgd.pgd_robust(model, images, labels, norm, epsilon)[0].mean())
            timings["pgd50x5"] += time.perf_counter() - tic
            if not args.skip_art:
                tic = time.perf_counter()
                robust, square_extra = art_autoattack(model, images, labels, norm, epsilon, args.art_restarts, args.square_queries)
                timings["art"] += time.perf_counter() - tic
                result["art"], result["square_extra"] = float(robust.mean()), square_extra
                result["only_ours_fooled"] = int(np.sum(robust & ~ours))  # per example: where the two disagree
                result["only_art_fooled"] = int(np.sum(ours & ~robust))
            values = [result[key] for key in ("ours", "art", "pgd50x5") if key in result]
            result["spread_points"] = round(100 * (max(values) - min(values)), 2)
            rows.append(result)
            print(_line(result), flush=True)
    report = {
        "checkpoint_dir": str(Path(args.checkpoint_dir).resolve()),
        "examples": int(len(labels)),
        "image_size": int(images.shape[1]),
        "rows": rows,
        "seconds": {key: round(value, 1) for key, value in timings.items()} | {"total": round(time.perf_counter() - started, 1)},
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "art": {"restarts_per_apgd": args.art_restarts, "square_queries": args.square_queries, "apgd_eps_step": "2 eps"},
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"seconds: {report['seconds']}; wrote {output}")
    return 0


def _line(result: dict) -> str:
    cells = "  ".join(f"{key} {result[key]:6.1%}" for key in ("ours", "art", "pgd50x5") if key in result)
    extra = "".join(f"  {key} {result[key]}" for key in ("square_extra", "only_ours_fooled", "only_art_fooled") if key in result)
    return f"{result['budget']:>10} {result['model']:<12} {cells}  spread {result['spread_points']:.1f} pts{extra}"


if __name__ == "__main__":
    raise SystemExit(main())
