"""The whole test split under one setting, from one pass: attack every image once, read both models.

The accuracy table, the per-class confusion matrices, the gallery's filters, the CSV download, the
good examples, the accuracy per disease and the map of where the photos lie (each model's
penultimate-layer features, :func:`photo_map`) all come from the same :class:`SplitResults`, so they
can never disagree.
No Streamlit and no TensorFlow math here: attacks and predictions come from ``core``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from core import embedding
from core.attacks import attack, budget_label, corrupt, norm_symbol
from core.checkpoints import ModelPair
from core.data import Split
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS, robustness_curve
from core.examples import MIN_CONFIDENCE, GoodExamples, Outcomes, predict, rank_good_examples

from dashboard.settings import CORRUPTION_SEED, MODEL_NAMES, AttackSettings
from dashboard.wording import MODEL_SHORT, MODEL_TITLES, class_title, describe, percent, threat_model

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
    # model name -> penultimate-layer features (N, d), clean and perturbed: kilobytes, where the changed photos are megabytes
    features: dict[str, Outcomes] = field(default_factory=dict)

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

    def class_accuracy(self, name: str, which: str, classes: int) -> np.ndarray:
        """Accuracy on the photos of each true class, (classes,); nan for a class with no photos."""
        photos = np.bincount(self.labels, minlength=classes)
        right = np.bincount(self.labels, weights=self.right(name, which), minlength=classes)
        return np.where(photos > 0, right / np.maximum(photos, 1), np.nan)

    def cell(self, name: str, true_class: int, answer: int) -> np.ndarray:
        """Indices of the photos of ``true_class`` that ``name`` answers ``answer`` under the change
        (one cell of its confusion matrix), in split order."""
        return np.flatnonzero((self.labels == true_class) & (self.predictions(name, "perturbed") == answer))

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
                "row": describe(self.settings),
                **{name: self.accuracy(name, "perturbed") for name in MODEL_NAMES},
                "threat model": "; ".join(f"{MODEL_SHORT[name]}: {threat_model(self.settings, name)}" for name in MODEL_NAMES),
            },
        ]

    def to_csv(self, class_names: Sequence[str]) -> str:
        """One row per test photo, in the page's words: the right answer, and each model's answer,
        confidence and right or wrong before and after the change."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["photo", "right answer", "change"]
        for name in MODEL_NAMES:
            for which in ("before the change", "on the changed photo"):
                header += [f"{MODEL_TITLES[name]}: answer {which}", f"{MODEL_TITLES[name]}: confidence {which}", f"{MODEL_TITLES[name]}: right {which}"]
        writer.writerow(header)
        for index in range(len(self)):
            row: list[object] = [self.filenames[index], class_title(class_names[self.labels[index]]), describe(self.settings, class_names)]
            for name in MODEL_NAMES:
                for which in ("clean", "perturbed"):
                    probabilities = getattr(self.outcomes[name], which)[index]
                    answer = int(probabilities.argmax())
                    row += [class_title(class_names[answer]), percent(probabilities[answer]), "yes" if answer == self.labels[index] else "no"]
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
    features = {name: Outcomes(embedding.features(pair[name], split.images), embedding.features(pair[name], perturbed[name])) for name in MODEL_NAMES}
    report(1.0, "done")
    return SplitResults(settings, np.asarray(split.labels, np.int64), tuple(split.filenames), outcomes, features)


@dataclass(frozen=True)
class PhotoMap:
    """Where one model puts every test photo, clean and changed: 2-D coordinates on the PCA map of its
    clean photos' features (``core.embedding``), and the share of their spread each axis shows."""

    clean: np.ndarray  # (N, 2)
    changed: np.ndarray  # (N, 2)
    explained: np.ndarray  # (2,)


def photo_map(results: SplitResults) -> dict[str, PhotoMap]:
    """Each model's map, fitted on its own clean photos (the changed ones are placed on it unchanged)."""
    maps = {}
    for name in MODEL_NAMES:
        clean, changed = results.features[name].clean, results.features[name].perturbed
        projection = embedding.fit_projection(clean)
        maps[name] = PhotoMap(projection.apply(clean), projection.apply(changed), projection.explained_variance_ratio)
    return maps


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
                progress(done / steps, f"{MODEL_SHORT[name]} at budget ε {budget_label(norm, epsilon)}")
            points.append(robustness_curve(pair[name], split.images, split.labels, norm, (epsilon,), iterations)[0])
            done += 1
        curve[name] = points
    if progress is not None:
        progress(1.0, "done")
    return curve
