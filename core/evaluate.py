"""The honest evaluation table: every number says which attack made it and who it targeted.

Threat models reported (on the test split):
- **clean**: no attack.
- **AutoAttack-grade** (the headline): APGD-CE, APGD-DLR and targeted APGD-T on pre-softmax
  logits (:mod:`core.apgd`), L∞ 2, 4, 8 /255 and L2 0.5, 1; an example counts as robust only if it
  survives every attack of the ensemble. ``bench/crosscheck_autoattack.py`` checks these rows
  against IBM ART's AutoAttack and PGD-50 with restarts.
- **seed protocol**: FGSM perturbations computed on the *baseline* and fed to both models. That is
  white-box for the baseline but only a *transfer* attack for the adversarial model, which is why
  it flatters the adversarial model; we keep it because the seed reported it.
- **white-box**: each model is attacked through its own gradients (FGSM and PGD-10, the attacks
  the dashboard runs live; PGD-10 stops early, so it over-reports robustness).
- **curves**: white-box accuracy vs attack budget for each norm (for L1 the steps are sparse, see
  :mod:`core.sparse_l1`; the L1 grid reaches 80, where the seed-recipe baseline keeps 1.6% and
  the NSL model 34%: 80 is ~80 of the 12,288 values of a 64 px image flipped fully, or 1.7/255 on
  average); **corruptions**: natural noise,
  blur, JPEG and misalignment at severities 0..5.

Command line::

    python -m core.evaluate --data-dir ../shared/beans     # prints, and updates checkpoints/metadata.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core import apgd, checkpoints, data
from core.attacks import CORRUPTIONS, MAX_SEVERITY, Attack, attack, budget_label, corrupt, norm_symbol
from core.compat import tf

HEADLINE_EPSILON = 8.0 / 255
CURVE_EPSILONS: dict[str, tuple[float, ...]] = {
    "infinity": tuple(value / 255 for value in (0, 1, 2, 4, 8, 12, 16)),
    "l2": (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
    "l1": (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0),
}
CURVE_ITERATIONS = 10
# The headline budgets, evaluated with the APGD ensemble, each on its own as AutoAttack reports
# them (so the rows compare with a peer AutoAttack). Counting a photo fooled at 4/255 as fooled at
# 8/255 too would be a tighter bound (``apgd_robust(candidates=...)``; 38.3% instead of 39.8% for
# the shipped NSL model at 8/255), but not the protocol peers publish.
AUTOATTACK_BUDGETS: tuple[tuple[str, float], ...] = (
    ("infinity", 2.0 / 255),
    ("infinity", 4.0 / 255),
    ("infinity", 8.0 / 255),
    ("l2", 0.5),
    ("l2", 1.0),
)
ProgressCallback = Callable[[float, str], None]


def accuracy(model: tf.keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    probabilities = model.predict(np.asarray(images, np.float32), batch_size=256, verbose=0)
    return float((probabilities.argmax(axis=1) == labels).mean())


def autoattack_row_id(norm: str, epsilon: float) -> str:
    """``autoattack_linf_8`` for L∞ 8/255, ``autoattack_l2_0.5`` for L2 0.5 (the metadata's row ids)."""
    if norm == "infinity":
        return f"autoattack_linf_{round(epsilon * 255, 4):g}"
    return f"autoattack_{norm}_{epsilon:g}"


def robustness_curve(
    model: tf.keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    norm: str,
    epsilons: tuple[float, ...] | None = None,
    iterations: int = CURVE_ITERATIONS,
    source: tf.keras.Model | None = None,
) -> list[float]:
    """Accuracy of ``model`` under attacks of growing budget; ``source`` computes the attack
    (default: ``model`` itself, i.e. white-box)."""
    epsilons = CURVE_EPSILONS[norm] if epsilons is None else epsilons
    attacker = model if source is None else source
    return [
        accuracy(model, attack(images, labels, attacker, Attack(norm, eps, iterations)) if eps > 0 else images, labels)
        for eps in epsilons
    ]


def evaluate_pair(
    baseline: tf.keras.Model,
    adversarial: tf.keras.Model,
    test: data.Split,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    ensemble: apgd.Ensemble = apgd.Ensemble(),
) -> dict[str, Any]:
    """The full table for both models on ``test`` (a few minutes at 64 px on 2 cores, most of it APGD)."""
    tf.random.set_seed(seed)  # PGD's random start
    models = {"baseline": baseline, "adversarial": adversarial}
    images, labels = test.images, test.labels
    steps = 4 + len(AUTOATTACK_BUDGETS) + len(CURVE_EPSILONS) + len(CORRUPTIONS)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / steps, message)

    rows: list[dict[str, Any]] = []

    def add_row(row_id: str, name: str, threat_model: str, results: dict[str, float]) -> None:
        rows.append({"id": row_id, "name": name, "threat_model": threat_model, **{k: round(v, 4) for k, v in results.items()}})

    add_row("clean", "Clean accuracy", "none", {k: accuracy(m, images, labels) for k, m in models.items()})
    tick("clean")
    ensemble_name = " + ".join(apgd.ATTACK_NAMES[loss] for loss in ensemble.losses)
    for norm, epsilon in AUTOATTACK_BUDGETS:
        add_row(
            autoattack_row_id(norm, epsilon),
            f"AutoAttack-grade ({ensemble_name}) {norm_symbol(norm)} eps {budget_label(norm, epsilon)}",
            f"white-box on logits, worst case per example over the attacks ({ensemble.iterations} steps each)",
            {k: float(apgd.apgd_robust(m, images, labels, norm, epsilon, ensemble, seed)[0].mean()) for k, m in models.items()},
        )
        tick(f"AutoAttack-grade {norm_symbol(norm)} {budget_label(norm, epsilon)}")
    fgsm = Attack("infinity", HEADLINE_EPSILON, 1)
    from_baseline = attack(images, labels, baseline, fgsm)
    add_row(
        "seed_protocol_fgsm_linf_8",
        f"Seed protocol: {fgsm.label}, computed on the baseline",
        "white-box for baseline; transfer (black-box) for adversarial",
        {k: accuracy(m, from_baseline, labels) for k, m in models.items()},
    )
    tick("seed protocol")
    for threat, row_id in ((fgsm, "whitebox_fgsm_linf_8"), (Attack("infinity", HEADLINE_EPSILON, 10), "whitebox_pgd10_linf_8")):
        add_row(
            row_id,
            f"White-box {threat.label}",
            "white-box: each model attacked through its own gradients",
            {k: accuracy(m, attack(images, labels, m, threat), labels) for k, m in models.items()},
        )
        tick(threat.label)
    curves = {}
    for norm, epsilons in CURVE_EPSILONS.items():
        curves[norm] = {
            "epsilons": list(epsilons),
            "attack": f"white-box PGD-{CURVE_ITERATIONS} {norm_symbol(norm)}",
            **{k: [round(v, 4) for v in robustness_curve(m, images, labels, norm, epsilons)] for k, m in models.items()},
        }
        tick(f"{norm} curve")
    corruptions = {}
    for kind in CORRUPTIONS:
        severities = list(range(MAX_SEVERITY + 1))
        corruptions[kind] = {
            "severities": severities,
            **{
                k: [round(accuracy(m, corrupt(images, kind, s, seed=seed), labels), 4) for s in severities]
                for k, m in models.items()
            },
        }
        tick(kind)
    return {
        "split": "test",
        "examples": int(len(labels)),
        "image_size": int(images.shape[1]),
        "rows": rows,
        "curves": curves,
        "corruptions": corruptions,
    }


def row(evaluation: dict[str, Any], row_id: str) -> dict[str, Any]:
    """One row of the table by its id (e.g. ``"whitebox_pgd10_linf_8"``)."""
    return next(item for item in evaluation["rows"] if item["id"] == row_id)


def format_table(evaluation: dict[str, Any]) -> str:
    """The table as aligned text, for the terminal and the README."""
    lines = [
        f"Test split, {evaluation['examples']} images at {evaluation['image_size']} px",
        f"{'attack':<62} {'baseline':>9} {'adversarial':>12}  threat model",
    ]
    for item in evaluation["rows"]:
        lines.append(f"{item['name']:<62} {item['baseline']:>9.1%} {item['adversarial']:>12.1%}  {item['threat_model']}")
    for norm, curve in evaluation["curves"].items():
        lines.append(f"{curve['attack']} (eps: accuracy baseline / adversarial)")
        for eps, base, adv in zip(curve["epsilons"], curve["baseline"], curve["adversarial"]):
            lines.append(f"  eps {budget_label(norm, eps):>8}: {base:6.1%} / {adv:6.1%}")
    lines.append("Corruptions (severity 0..5: accuracy baseline / adversarial)")
    for kind, result in evaluation["corruptions"].items():
        cells = "  ".join(f"{b:.0%}/{a:.0%}" for b, a in zip(result["baseline"], result["adversarial"]))
        lines.append(f"  {kind:<15} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluate", description="Evaluate the checkpoints on the test split.")
    parser.add_argument("--data-dir", help=f"local Beans folder (default: ${data.DATA_DIR_ENV}, else TFDS)")
    parser.add_argument("--checkpoint-dir", help="folder with baseline.keras and adversarial.keras (default: checkpoints/)")
    parser.add_argument("--json", help="also write the table to this JSON file")
    parser.add_argument("--no-update-metadata", action="store_true", help="do not store the table in metadata.json")
    args = parser.parse_args(argv)
    try:
        pair = checkpoints.load_pair(args.checkpoint_dir)
        test = data.load_split("test", int(pair.baseline.input_shape[1]), args.data_dir)
    except (data.DataError, checkpoints.CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    evaluation = evaluate_pair(pair.baseline, pair.adversarial, test)
    print(format_table(evaluation))
    if args.json:
        checkpoints.write_json_atomic(evaluation, Path(args.json))
    if not args.no_update_metadata:
        folder = checkpoints.checkpoint_dir(args.checkpoint_dir)
        checkpoints.write_json_atomic({**pair.metadata, "evaluation": evaluation}, folder / checkpoints.METADATA_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
