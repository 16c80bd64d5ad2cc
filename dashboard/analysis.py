"""What one slider move computes, and the whole-test-split numbers, as calls into ``core``.

No Streamlit here, so the benchmark and the tests time and check exactly what the app runs.
No TensorFlow math either: attacks, corruptions, predictions and activations come from ``core``;
this module only decides *which* model attacks *which* input and packs the results for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from core.activations import predict_with_activations
from core.attacks import CORRUPTIONS, NORMS, Attack, attack, corrupt, norm_symbol, perturbation_norm
from core.checkpoints import ModelPair
from core.data import Split
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS, accuracy

MODEL_NAMES: tuple[str, ...] = ("baseline", "adversarial")
SOURCES: tuple[str, ...] = ("baseline", "adversarial", "self")
KINDS: tuple[str, ...] = ("attack", "corruption")
CORRUPTION_SEED = 0  # the same noise for every rerun, so moving a slider back shows the same picture
ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class AttackSettings:
    """Everything the sidebar's attack controls decide, in model units (epsilon in [0, 1] pixels)."""

    kind: str = "attack"  # "attack" (gradient-based) or "corruption" (natural)
    norm: str = "infinity"
    epsilon: float = 8.0 / 255
    iterations: int = 1  # 1 = FGSM, more = PGD
    source: str = "baseline"  # whose gradients: "baseline", "adversarial" or "self" (each its own)
    corruption: str = "gaussian_noise"
    severity: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}.")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}.")
        if self.corruption not in CORRUPTIONS:
            raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {self.corruption!r}.")

    @property
    def threat(self) -> Attack:
        return Attack(self.norm, float(self.epsilon), int(self.iterations))

    def attacker_for(self, model_name: str) -> str | None:
        """The model whose gradients made the input ``model_name`` sees (None for corruptions)."""
        if self.kind == "corruption":
            return None
        return model_name if self.source == "self" else self.source

    @property
    def description(self) -> str:
        """One line a student can read aloud: what was done to the image, and by whom."""
        if self.kind == "corruption":
            return f"{corruption_title(self.corruption)}, severity {self.severity} of 5 (no model involved)"
        who = {
            "baseline": "computed on the baseline and shown to both models (the seed's protocol)",
            "adversarial": "computed on the adversarial model and shown to both models",
            "self": "each model attacked through its own gradients (white-box)",
        }[self.source]
        return f"{self.threat.label}, {who}"

    def threat_model(self, model_name: str) -> str:
        """White-box (the attacker is the model itself), transfer, or a natural corruption."""
        attacker = self.attacker_for(model_name)
        if attacker is None:
            return "natural corruption"
        return "white-box" if attacker == model_name else f"transfer from the {attacker} model"


@dataclass(frozen=True)
class Perturbation:
    """One perturbed input and how big the change is, in every norm."""

    image: np.ndarray  # (H, W, 3) in [0, 1]
    delta: np.ndarray  # image - original
    norms: dict[str, float]
    made_by: str | None  # the attacking model's name; None for a corruption


@dataclass(frozen=True)
class ModelOutcome:
    """One model's view of the clean and the perturbed image."""

    name: str
    clean_probabilities: np.ndarray  # (classes,)
    perturbed_probabilities: np.ndarray
    clean_maps: dict[str, np.ndarray] = field(repr=False)  # conv layer -> (h, w, channels)
    perturbed_maps: dict[str, np.ndarray] = field(repr=False)
    pushed_away_from: int | None  # the label the attack's loss used; None for corruptions

    @property
    def clean_prediction(self) -> int:
        return int(np.argmax(self.clean_probabilities))

    @property
    def perturbed_prediction(self) -> int:
        return int(np.argmax(self.perturbed_probabilities))


@dataclass(frozen=True)
class Interaction:
    """The result of one slider position: perturbations, both models' outcomes, their maps."""

    image: np.ndarray
    true_label: int | None
    settings: AttackSettings
    perturbations: dict[str, Perturbation]  # model name -> the input that model saw
    outcomes: dict[str, ModelOutcome]

    @property
    def shared_perturbation(self) -> bool:
        """True when both models saw the same perturbed image (one attacker, or a corruption)."""
        return self.settings.kind == "corruption" or self.settings.source != "self"

    @property
    def layer_names(self) -> list[str]:
        return list(self.outcomes[MODEL_NAMES[0]].clean_maps)


def corruption_title(kind: str) -> str:
    return {"gaussian_noise": "Gaussian noise", "blur": "Blur", "jpeg": "JPEG compression", "misalignment": "Misalignment"}[kind]


def _own_prediction(model, image: np.ndarray) -> int:
    probabilities, _ = predict_with_activations(model, image[None])
    return int(np.argmax(probabilities[0]))


def _perturbation(original: np.ndarray, perturbed: np.ndarray, made_by: str | None) -> Perturbation:
    delta = (perturbed - original)[None]
    return Perturbation(perturbed, delta[0], {norm: float(perturbation_norm(delta, norm)[0]) for norm in NORMS}, made_by)


def run_interaction(pair: ModelPair, image: np.ndarray, true_label: int | None, settings: AttackSettings) -> Interaction:
    """Perturb ``image`` as ``settings`` say, then read both models on the clean and perturbed input.

    Without a true label (an uploaded photo) each attack pushes away from its attacker's own clean
    prediction, which is what "make the model change its mind" means.
    """
    image = np.asarray(image, dtype=np.float32)
    perturbations: dict[str, Perturbation] = {}
    pushed_away_from: dict[str, int | None] = {}
    if settings.kind == "corruption":
        corrupted = corrupt(image[None], settings.corruption, settings.severity, seed=CORRUPTION_SEED)[0]
        shared = _perturbation(image, corrupted, None)
        perturbations = {name: shared for name in MODEL_NAMES}
        pushed_away_from = {name: None for name in MODEL_NAMES}
    else:
        by_attacker: dict[str, tuple[Perturbation, int]] = {}
        for name in MODEL_NAMES:
            attacker = settings.attacker_for(name)
            assert attacker is not None
            if attacker not in by_attacker:
                label = true_label if true_label is not None else _own_prediction(pair[attacker], image)
                adversarial = attack(image[None], np.array([label], np.int64), pair[attacker], settings.threat)[0]
                by_attacker[attacker] = (_perturbation(image, adversarial, attacker), label)
            perturbations[name], pushed_away_from[name] = by_attacker[attacker]
    outcomes = {}
    for name in MODEL_NAMES:
        probabilities, maps = predict_with_activations(pair[name], np.stack([image, perturbations[name].image]))
        outcomes[name] = ModelOutcome(
            name=name,
            clean_probabilities=probabilities[0],
            perturbed_probabilities=probabilities[1],
            clean_maps={layer: values[0] for layer, values in maps.items()},
            perturbed_maps={layer: values[1] for layer, values in maps.items()},
            pushed_away_from=pushed_away_from[name],
        )
    return Interaction(image, true_label, settings, perturbations, outcomes)


def warm_up(pair: ModelPair, image_size: int) -> None:
    """Trace FGSM in every norm on both models, and the activation extractors, at model-load time.

    The first call of each (model, norm, iterations) builds a TensorFlow graph inside core (about
    0.1 s for FGSM, 1 s for PGD); doing the FGSM ones here keeps them out of the first slider moves.
    PGD graphs are left to their first use: all of them would add tens of seconds to start-up.
    """
    blank = np.full((image_size, image_size, 3), 0.5, np.float32)
    for norm in NORMS:
        run_interaction(pair, blank, 0, AttackSettings(norm=norm, epsilon=CURVE_EPSILONS[norm][1], source="self"))


# --- whole test split ----------------------------------------------------------------------------


def split_accuracy_rows(
    pair: ModelPair, split: Split, settings: AttackSettings, progress: ProgressCallback | None = None
) -> list[dict[str, object]]:
    """The seed's table for the current settings: clean vs perturbed accuracy of both models."""
    report = progress or (lambda fraction, message: None)
    report(0.0, "clean accuracy")
    clean = {name: accuracy(pair[name], split.images, split.labels) for name in MODEL_NAMES}
    report(0.2, "perturbing the test split")
    perturbed_inputs: dict[str, np.ndarray] = {}
    if settings.kind == "corruption":
        corrupted = corrupt(split.images, settings.corruption, settings.severity, seed=CORRUPTION_SEED)
        perturbed_inputs = {name: corrupted for name in MODEL_NAMES}
    else:
        made: dict[str, np.ndarray] = {}
        for index, name in enumerate(MODEL_NAMES):
            attacker = settings.attacker_for(name)
            assert attacker is not None
            if attacker not in made:
                report(0.2 + 0.35 * index, f"attacking with the {attacker} model's gradients")
                made[attacker] = attack(split.images, split.labels, pair[attacker], settings.threat)
            perturbed_inputs[name] = made[attacker]
    report(0.9, "perturbed accuracy")
    perturbed = {name: accuracy(pair[name], perturbed_inputs[name], split.labels) for name in MODEL_NAMES}
    report(1.0, "done")
    return [
        {"row": "Clean test images", "baseline": clean["baseline"], "adversarial": clean["adversarial"], "threat model": "none"},
        {
            "row": settings.description,
            "baseline": perturbed["baseline"],
            "adversarial": perturbed["adversarial"],
            "threat model": "; ".join(f"{name}: {settings.threat_model(name)}" for name in MODEL_NAMES),
        },
    ]


def accuracy_curve(
    pair: ModelPair,
    split: Split,
    norm: str,
    iterations: int = CURVE_ITERATIONS,
    progress: ProgressCallback | None = None,
) -> dict[str, object]:
    """White-box PGD accuracy vs budget for both models, shaped like metadata's ``curves[norm]``."""
    from core.evaluate import robustness_curve

    epsilons = CURVE_EPSILONS[norm]
    curve: dict[str, object] = {"epsilons": list(epsilons), "attack": f"white-box PGD-{iterations} {norm_symbol(norm)}"}
    steps, done = len(epsilons) * len(MODEL_NAMES), 0
    for name in MODEL_NAMES:
        points = []
        for epsilon in epsilons:
            if progress is not None:
                progress(done / steps, f"{name} model at {format_epsilon(norm, epsilon)}")
            points.append(robustness_curve(pair[name], split.images, split.labels, norm, (epsilon,), iterations)[0])
            done += 1
        curve[name] = points
    if progress is not None:
        progress(1.0, "done")
    return curve


def format_epsilon(norm: str, epsilon: float) -> str:
    """L∞ budgets read as brightness steps out of 255; L2 and L1 as plain numbers."""
    return f"{epsilon * 255:g}/255" if norm == "infinity" else f"{epsilon:g}"
