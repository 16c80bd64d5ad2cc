"""What one slider move computes, as calls into ``core``: the attack, both models' answers and
activation maps, where each model looked (saliency), and the start-up warm-up of every graph.

No Streamlit here, so the benchmark and the tests time and check exactly what the app runs.
No TensorFlow math either: attacks, corruptions, predictions and activations come from ``core``;
this module only decides *which* model attacks *which* input and packs the results for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from core.activations import predict_with_activations
from core.attacks import CORRUPTIONS, NORMS, Attack, attack, corrupt, norm_symbol, perturbation_norm
from core.checkpoints import ModelPair
from core.evaluate import CURVE_EPSILONS
from core.explain import METHODS as EXPLAIN_METHODS, explain

MODEL_NAMES: tuple[str, ...] = ("baseline", "adversarial")
MODEL_SHORT = {"baseline": "baseline", "adversarial": "NSL model"}  # one name per model, in every sentence
SOURCES: tuple[str, ...] = ("baseline", "adversarial", "self")
KINDS: tuple[str, ...] = ("attack", "corruption")
CORRUPTION_SEED = 0  # the same noise for every rerun, so moving a slider back shows the same picture


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
    def name(self) -> str:
        """Short: "FGSM", "PGD-10" or the corruption's name."""
        if self.kind == "corruption":
            return corruption_title(self.corruption)
        return "FGSM" if self.iterations == 1 else f"PGD-{self.iterations}"

    @property
    def short_label(self) -> str:
        """One line for a caption: "FGSM L∞, budget ε 8/255" or "Blur, severity 3 of 5"."""
        if self.kind == "corruption":
            return f"{corruption_title(self.corruption)}, severity {self.severity} of 5"
        return f"{self.name} {norm_symbol(self.norm)}, budget ε {format_epsilon(self.norm, self.epsilon)}"

    @property
    def description(self) -> str:
        """One line a student can read aloud: what was done to the image, and by whom."""
        if self.kind == "corruption":
            return f"{self.short_label} (no model involved)"
        who = {
            "baseline": "computed on the baseline and shown to both models",
            "adversarial": "computed on the NSL model and shown to both models",
            "self": "each model attacked through its own gradients",
        }[self.source]
        return f"{self.short_label}, {who}"

    def threat_model(self, model_name: str) -> str:
        """White-box (the attacker is the model itself), transfer, or a natural corruption."""
        attacker = self.attacker_for(model_name)
        if attacker is None:
            return "natural corruption"
        return "white-box" if attacker == model_name else f"transfer from the {MODEL_SHORT[attacker]}"


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


def _read_only(array: np.ndarray) -> np.ndarray:
    """Results are shared by every session (one cached object, not a copy each): nobody may write."""
    array.setflags(write=False)
    return array


def _perturbation(original: np.ndarray, perturbed: np.ndarray, made_by: str | None) -> Perturbation:
    delta = (perturbed - original)[None]
    return Perturbation(_read_only(perturbed), _read_only(delta[0]), {norm: float(perturbation_norm(delta, norm)[0]) for norm in NORMS}, made_by)


def run_interaction(pair: ModelPair, image: np.ndarray, true_label: int | None, settings: AttackSettings) -> Interaction:
    """Perturb ``image`` as ``settings`` say, then read both models on the clean and perturbed input.

    Without a true label (an uploaded photo) each attack pushes away from its attacker's own clean
    prediction, which is what "make the model change its mind" means.
    """
    image = _read_only(np.array(image, dtype=np.float32))  # a copy: the caller's array stays writable
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
            clean_probabilities=_read_only(probabilities[0]),
            perturbed_probabilities=_read_only(probabilities[1]),
            clean_maps={layer: _read_only(values[0]) for layer, values in maps.items()},
            perturbed_maps={layer: _read_only(values[1]) for layer, values in maps.items()},
            pushed_away_from=pushed_away_from[name],
        )
    return Interaction(image, true_label, settings, perturbations, outcomes)


@dataclass(frozen=True)
class Explanation:
    """Where one model looked (saliency in [0, 1], input size) for its answer on the clean and on
    the perturbed image."""

    clean: np.ndarray  # (H, W)
    perturbed: np.ndarray
    clean_class: int
    perturbed_class: int


def explain_interaction(pair: ModelPair, result: Interaction, method: str = "grad_cam") -> dict[str, Explanation]:
    """Saliency (``core.explain``) of each model's own answer, clean and perturbed."""
    explained = {}
    for name in MODEL_NAMES:
        outcome = result.outcomes[name]
        classes = [outcome.clean_prediction, outcome.perturbed_prediction]
        maps = explain(pair[name], np.stack([result.image, result.perturbations[name].image]), classes, method)
        explained[name] = Explanation(_read_only(maps[0]), _read_only(maps[1]), *classes)
    return explained


def warm_up_plan(pgd_steps: Sequence[int], default_steps: int) -> list[AttackSettings]:
    """Every attack graph the controls can reach (each model attacked through its own gradients
    covers both attackers), most likely first: FGSM, PGD at the default step count, corruptions,
    then the other step counts."""
    others = [steps for steps in pgd_steps if steps != default_steps]
    plan = [AttackSettings(norm=norm, epsilon=CURVE_EPSILONS[norm][1], iterations=steps, source="self") for steps in (1, default_steps) for norm in NORMS]
    plan += [AttackSettings(kind="corruption", corruption=kind, severity=1) for kind in CORRUPTIONS]
    plan += [AttackSettings(norm=norm, epsilon=CURVE_EPSILONS[norm][1], iterations=steps, source="self") for steps in others for norm in NORMS]
    return plan


def warm_up(
    pair: ModelPair,
    image_size: int,
    plan: Sequence[AttackSettings],
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run every setting in ``plan`` (and both saliency methods) once on a grey image, so that each
    graph core builds on first use (about 0.1 s for FGSM, 1–2 s for PGD) is built before anybody
    asks for it. Meant for a background thread (results are thrown away); ``should_stop`` is asked
    between settings."""
    blank = np.full((image_size, image_size, 3), 0.5, np.float32)
    for done, settings in enumerate(plan, start=1):
        if should_stop():
            return
        result = run_interaction(pair, blank, 0, settings)
        if done == 1:
            for method in EXPLAIN_METHODS:
                explain_interaction(pair, result, method)
        if on_step is not None:
            on_step(done, len(plan))


def format_epsilon(norm: str, epsilon: float) -> str:
    """A budget or a measured size: L∞ in brightness steps out of 255 ("8/255", "7.94/255"); L2 and
    L1 as plain numbers. The one formatter for these everywhere on the page."""
    return f"{epsilon * 255:.3g}/255" if norm == "infinity" else f"{epsilon:.3g}"
