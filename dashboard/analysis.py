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
from core.attacks import CORRUPTIONS, NORMS, attack, corrupt, perturbation_norm
from core.checkpoints import ModelPair
from core.evaluate import CURVE_EPSILONS
from core.explain import METHODS as EXPLAIN_METHODS, explain

from dashboard.settings import CORRUPTION_SEED, MODEL_NAMES, AttackSettings

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
    def layer_names(self) -> list[str]:
        return list(self.outcomes[MODEL_NAMES[0]].clean_maps)


def _own_prediction(model, image: np.ndarray, eager: bool = False) -> int:
    probabilities, _ = predict_with_activations(model, image[None], eager)
    return int(np.argmax(probabilities[0]))


def _read_only(array: np.ndarray) -> np.ndarray:
    """Results are shared by every session (one cached object, not a copy each): nobody may write."""
    array.setflags(write=False)
    return array


def _perturbation(original: np.ndarray, perturbed: np.ndarray, made_by: str | None) -> Perturbation:
    delta = (perturbed - original)[None]
    return Perturbation(_read_only(perturbed), _read_only(delta[0]), {norm: float(perturbation_norm(delta, norm)[0]) for norm in NORMS}, made_by)


def run_interaction(pair: ModelPair, image: np.ndarray, true_label: int | None, settings: AttackSettings, eager: bool = False) -> Interaction:
    """Perturb ``image`` as ``settings`` say, then read both models on the clean and perturbed input.

    Without a true label (an uploaded photo) each attack pushes away from its attacker's own clean
    prediction, which is what "make the model change its mind" means. ``eager``: no graph is traced
    (:func:`core.attacks.perturb`), for a page whose graphs are not traced yet.
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
                label = true_label if true_label is not None else _own_prediction(pair[attacker], image, eager)
                adversarial = attack(image[None], np.array([label], np.int64), pair[attacker], settings.threat, eager=eager)[0]
                by_attacker[attacker] = (_perturbation(image, adversarial, attacker), label)
            perturbations[name], pushed_away_from[name] = by_attacker[attacker]
    outcomes = {}
    for name in MODEL_NAMES:
        probabilities, maps = predict_with_activations(pair[name], np.stack([image, perturbations[name].image]), eager)
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
    then the other step counts, then the same aimed at a class (a targeted attack is its own graph)."""
    others = [steps for steps in pgd_steps if steps != default_steps]
    plan = [AttackSettings(norm=norm, epsilon=CURVE_EPSILONS[norm][1], iterations=steps, attacker="self") for steps in (1, default_steps) for norm in NORMS]
    plan += [AttackSettings(kind="corruption", corruption=kind, severity=1) for kind in CORRUPTIONS]
    plan += [AttackSettings(norm=norm, epsilon=CURVE_EPSILONS[norm][1], iterations=steps, attacker="self") for steps in others for norm in NORMS]
    plan += [AttackSettings(norm=norm, epsilon=CURVE_EPSILONS[norm][1], iterations=steps, attacker="self", target=0) for steps in (1, *pgd_steps) for norm in NORMS]
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
