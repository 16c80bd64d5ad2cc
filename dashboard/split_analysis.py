"""The whole test split under one setting, from one pass: attack every image once, read both models.

The accuracy table, the per-class confusion matrices, the gallery's filters, the CSV download and
the good examples all come from the same :class:`SplitResults`, so they can never disagree.
No Streamlit and no TensorFlow math here: attacks and predictions come from ``core``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from core.attacks import attack, corrupt, norm_symbol
from core.checkpoints import ModelPair
from core.data import Split
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS, robustness_curve
from core.examples import MIN_CONFIDENCE, GoodExamples, Outcomes, predict, rank_good_examples

from dashboard.analysis import CORRUPTION_SEED, MODEL_NAMES, MODEL_SHORT, AttackSettings, format_epsilon

ProgressCallback = Callable[[float, str], None]
FILTERS = {
    "flipped_held": "The baseline flipped, the NSL model held",
    "both_flipped": "Both models flipped",
    "changed": "Any model changed its answer",
    "all": "All test photos",
}


@dataclass(frozen=True)
class SplitResults:
    """Both models' class probabilities on every test image, clean and under ``settings``."""

    settings: AttackSettings
    labels: np.ndarray  # (N,)
    filenames: tuple[str, ...]
    outcomes: dict[str, Outcomes]  # model name -> probabilities (N, classes), clean and perturbed

    def __len__(self) -> int:
        return len(self.labels)

    def predictions(self, name: str, which: str) -> np.ndarray:
        return getattr(self.outcomes[name], which).argmax(axis=1)

    def accuracy(self, name: str, which: str) -> float:
        return float(np.mean(self.predictions(name, which) == self.labels)) if len(self) else float("nan")

    def right(self, name: str, which: str) -> np.ndarray:
        return self.predictions(name, which) == self.labels

    def flipped(self, name: str) -> np.ndarray:
        """Right on the clean image, wrong on the perturbed one."""
        return self.right(name, "clean") & ~self.right(name, "perturbed")

    def matching(self, selection: str) -> np.ndarray:
        """Indices of the images a gallery filter (a key of :data:`FILTERS`) keeps, in split order."""
        baseline, adversarial = MODEL_NAMES
        masks = {
            "flipped_held": self.flipped(baseline) & self.right(adversarial, "clean") & self.right(adversarial, "perturbed"),
            "both_flipped": self.flipped(baseline) & self.flipped(adversarial),
            "changed": np.logical_or.reduce([self.predictions(name, "clean") != self.predictions(name, "perturbed") for name in MODEL_NAMES]),
            "all": np.ones(len(self), bool),
        }
        if selection not in masks:
            raise ValueError(f"Unknown filter {selection!r}; expected one of {tuple(FILTERS)}.")
        return np.flatnonzero(masks[selection])

    def confusion(self, name: str, which: str, classes: int) -> np.ndarray:
        """Counts (true class, predicted class), ``classes`` × ``classes``."""
        pairs = self.labels * classes + self.predictions(name, which)
        return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)

    def good_examples(self, min_confidence: float = MIN_CONFIDENCE) -> GoodExamples:
        return rank_good_examples(self.labels, self.outcomes[MODEL_NAMES[0]], self.outcomes[MODEL_NAMES[1]], min_confidence)

    def table_rows(self) -> list[dict[str, object]]:
        """The seed's table for these settings: clean vs perturbed accuracy of both models."""
        return [
            {"row": "Clean test images", **{name: self.accuracy(name, "clean") for name in MODEL_NAMES}, "threat model": "none"},
            {
                "row": self.settings.description,
                **{name: self.accuracy(name, "perturbed") for name in MODEL_NAMES},
                "threat model": "; ".join(f"{MODEL_SHORT[name]}: {self.settings.threat_model(name)}" for name in MODEL_NAMES),
            },
        ]

    def to_csv(self, class_names: Sequence[str]) -> str:
        """One row per test image: both models' answers and confidences, clean and perturbed."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["file", "true_class", "change"]
        for name in MODEL_NAMES:
            header += [f"{name}_{which}_{field}" for which in ("clean", "perturbed") for field in ("answer", "confidence", "right")]
        writer.writerow(header)
        rows = np.arange(len(self))
        for index in rows:
            row: list[object] = [self.filenames[index], class_names[self.labels[index]], self.settings.description]
            for name in MODEL_NAMES:
                for which in ("clean", "perturbed"):
                    probabilities = getattr(self.outcomes[name], which)[index]
                    answer = int(probabilities.argmax())
                    row += [class_names[answer], f"{probabilities[answer]:.4f}", int(answer == self.labels[index])]
            writer.writerow(row)
        return buffer.getvalue()


def split_results(pair: ModelPair, split: Split, settings: AttackSettings, progress: ProgressCallback | None = None) -> SplitResults:
    """Perturb every test image as ``settings`` say (each attacker once) and read both models."""
    report = progress or (lambda fraction, message: None)
    perturbed: dict[str, np.ndarray] = {}
    if settings.kind == "corruption":
        report(0.1, "corrupting the test photos")
        corrupted = corrupt(split.images, settings.corruption, settings.severity, seed=CORRUPTION_SEED)
        perturbed = {name: corrupted for name in MODEL_NAMES}
    else:
        made: dict[str, np.ndarray] = {}
        for index, name in enumerate(MODEL_NAMES):
            attacker = settings.attacker_for(name)
            assert attacker is not None
            if attacker not in made:
                report(0.1 + 0.4 * index, f"attacking with the {MODEL_SHORT[attacker]}'s gradients")
                made[attacker] = attack(split.images, split.labels, pair[attacker], settings.threat)
            perturbed[name] = made[attacker]
    report(0.9, "reading both models")
    outcomes = {name: Outcomes(predict(pair[name], split.images), predict(pair[name], perturbed[name])) for name in MODEL_NAMES}
    report(1.0, "done")
    return SplitResults(settings, np.asarray(split.labels, np.int64), tuple(split.filenames), outcomes)


def accuracy_curve(
    pair: ModelPair,
    split: Split,
    norm: str,
    iterations: int = CURVE_ITERATIONS,
    progress: ProgressCallback | None = None,
) -> dict[str, object]:
    """White-box PGD accuracy vs budget for both models, shaped like metadata's ``curves[norm]``."""
    epsilons = CURVE_EPSILONS[norm]
    curve: dict[str, object] = {"epsilons": list(epsilons), "attack": f"white-box PGD-{iterations} {norm_symbol(norm)}"}
    steps, done = len(epsilons) * len(MODEL_NAMES), 0
    for name in MODEL_NAMES:
        points = []
        for epsilon in epsilons:
            if progress is not None:
                progress(done / steps, f"{MODEL_SHORT[name]} at budget ε {format_epsilon(norm, epsilon)}")
            points.append(robustness_curve(pair[name], split.images, split.labels, norm, (epsilon,), iterations)[0])
            done += 1
        curve[name] = points
    if progress is not None:
        progress(1.0, "done")
    return curve
