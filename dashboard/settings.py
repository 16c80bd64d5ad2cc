"""What the page's controls hold, without Streamlit: the settings value, every control's default and
widget key, settings ↔ session state, and settings ↔ the shareable link.

Why one module: a control's default, its key, how it becomes an :class:`AttackSettings`, how the
lesson or a link sets it and how "reset all" clears it used to live in four files. A new control now
touches this file and the widget that draws it. Everything derives from ``core``'s constants
(budgets, norms, steps), so the page and the library cannot disagree.

A link holds ``image`` (a test photo's file name), ``attack`` (``fgsm``, ``pgd`` or a corruption),
``steps`` (PGD), ``norm`` (``linf``, ``l2``, ``l1``), ``budget`` (``8/255`` for L∞, a number for
L2/L1, the severity for a corruption), ``attacker`` (``baseline``, ``adversarial``, ``self``; links
made before it was renamed say ``source``), ``target`` (a class index: a targeted attack), ``layer``
(a conv layer) and ``present=1`` (presentation mode). Values that make no sense are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, MutableMapping

import numpy as np

from core import checkpoints
from core.attacks import (
    ATTACKERS,
    CORRUPTIONS,
    DEFAULT_BUDGETS,
    DEFAULT_PGD_STEPS,
    MAX_SEVERITY,
    NORM_SLUGS,
    NORMS,
    Attack,
    budget_label,
    from_display,
    to_display,
)
from core.evaluate import CURVE_EPSILONS

MODEL_NAMES: tuple[str, ...] = tuple(checkpoints.MODEL_FILES)  # ("baseline", "adversarial"), in page order
KINDS: tuple[str, ...] = ("attack", "corruption")
PGD_STEP_CHOICES = (3, 5, DEFAULT_PGD_STEPS, 20)  # a fixed few: each count is its own graph, all traced at start-up
BUDGET_INCREMENTS = {"infinity": from_display("infinity", 1.0), "l2": 0.05, "l1": 1.0}  # one slider step
DEFAULT_SEVERITY = 3
CORRUPTION_SEED = 0  # the same noise for every rerun, so moving a slider back shows the same picture


@dataclass(frozen=True)
class AttackSettings:
    """Everything the attack controls decide, in model units (epsilon in [0, 1] pixels)."""

    kind: str = "attack"  # "attack" (gradient-based) or "corruption" (natural)
    norm: str = "infinity"
    epsilon: float = DEFAULT_BUDGETS["infinity"]
    iterations: int = 1  # 1 = FGSM, more = PGD
    attacker: str = "baseline"  # whose gradients: "baseline", "adversarial" or "self" (each its own)
    corruption: str = CORRUPTIONS[0]
    severity: int = DEFAULT_SEVERITY
    target: int | None = None  # a targeted attack pushes towards this class; None: away from the right one

    def __post_init__(self) -> None:
        for name, value, allowed in (("kind", self.kind, KINDS), ("norm", self.norm, NORMS), ("attacker", self.attacker, ATTACKERS), ("corruption", self.corruption, CORRUPTIONS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")

    @property
    def threat(self) -> Attack:
        return Attack(self.norm, float(self.epsilon), int(self.iterations), self.target)

    def attacker_for(self, model_name: str) -> str | None:
        """The model whose gradients made the input ``model_name`` sees (None for corruptions)."""
        if self.kind == "corruption":
            return None
        return model_name if self.attacker == "self" else self.attacker

    @property
    def shared(self) -> bool:
        """Both models see the same changed photo (one attacker, or a corruption)."""
        return self.kind == "corruption" or self.attacker != "self"


# --- the controls' widget keys and defaults ----------------------------------------------------------


def budget_key(norm: str) -> str:
    """Each norm has its own budget slider (its own range and unit), hence its own key."""
    return f"epsilon_{norm}"


def slider_value(norm: str, epsilon: float) -> int | float:
    """A budget in model units as its slider holds it (L∞: whole 1/255 steps)."""
    shown = to_display(norm, epsilon)
    return int(round(shown)) if norm == "infinity" else round(shown, 6)


def budget_from_slider(norm: str, value: float) -> float:
    return from_display(norm, value)


def budget_range(norm: str) -> tuple[float, float]:
    """(0, top) in slider units; the top is the largest budget core's accuracy curve measures."""
    return 0.0, float(slider_value(norm, CURVE_EPSILONS[norm][-1]))


def defaults() -> dict[str, Any]:
    """Every control's default value, by widget key (L∞ budget in 1/255 steps, as its slider shows)."""
    values: dict[str, Any] = {
        "kind": "attack",
        "norm": "infinity",
        "method": "FGSM",
        "iterations": DEFAULT_PGD_STEPS,
        "attacker": "baseline",
        "targeted": False,
        "target": 0,
        "corruption": CORRUPTIONS[0],
        "severity": DEFAULT_SEVERITY,
    }
    for norm in NORMS:
        values[budget_key(norm)] = slider_value(norm, DEFAULT_BUDGETS[norm])
    return values


KEYS: tuple[str, ...] = tuple(defaults())


def ensure_defaults(state: MutableMapping[str, Any]) -> None:
    """Give every control not set yet its default (before the widgets are drawn, never as a widget
    argument: then the lesson, a link and "reset all" can set any control without a warning)."""
    for key, value in defaults().items():
        state.setdefault(key, value)


def settings_from_state(state: Mapping[str, Any]) -> AttackSettings:
    """The settings the controls hold now (defaults for any control not drawn yet)."""
    values = {**defaults(), **{key: state[key] for key in KEYS if key in state}}
    if values["kind"] == "corruption":
        return AttackSettings(kind="corruption", corruption=values["corruption"], severity=int(values["severity"]))
    norm = values["norm"]
    iterations = int(values["iterations"]) if values["method"] == "PGD" else 1
    target = int(values["target"]) if values["targeted"] else None
    return AttackSettings(
        kind="attack", norm=norm, epsilon=budget_from_slider(norm, values[budget_key(norm)]), iterations=iterations, attacker=values["attacker"], target=target
    )


def state_for(settings: AttackSettings) -> dict[str, Any]:
    """Widget values that make the controls show ``settings`` (the inverse of :func:`settings_from_state`)."""
    if settings.kind == "corruption":
        return {"kind": "corruption", "corruption": settings.corruption, "severity": int(settings.severity)}
    values: dict[str, Any] = {
        "kind": "attack", "norm": settings.norm, "attacker": settings.attacker, budget_key(settings.norm): slider_value(settings.norm, settings.epsilon),
        "method": "PGD" if settings.iterations > 1 else "FGSM", "targeted": settings.target is not None,
    }  # fmt: skip
    if settings.iterations > 1:
        values["iterations"] = int(settings.iterations)
    if settings.target is not None:
        values["target"] = int(settings.target)
    return values


# --- session keys other than the attack controls -----------------------------------------------------

PENDING_IMAGE = "url_image"  # a shared link's photo (file name), until the picker resolves it
UPLOAD_REFUSED = "upload_refused"  # why the photo just uploaded was not used (the main area says it)
PENDING_NOTE = "url_image_note"  # why that photo is opened, when not from a link (e.g. a click on the map of all photos)
TEACHER_REQUESTED = "teacher_requested"  # this page asked for the teacher's tools (button or ?teacher=1)
TEACHER_UNLOCKED = "teacher_unlocked"  # the right passcode was given on this page
CLASS_PLAYER = "class_player"  # this page's player in a class round: {"id", "round", "nickname"} (the store has the rest)
CLASS_RESULT = "class_result"  # what the last submission counted as, for the student to read
FOLLOW = "follow_teacher"  # this student's page follows the teacher's view
BROADCAST = "class_broadcast"  # this teacher's page publishes its view for the students to follow
TEACHER_VIEW = "teacher_view"  # the class store's key for the teacher's view
CURRENT_VIEW = "current_view"  # what the live sections drew last: {"link", "filename", "label", "norm"} (the teacher's tools read it)
LESSON_STEP = "lesson_step"  # None or missing: no lesson running
PRESENT = "present"  # presentation mode
LAYER = "layer"  # the conv layer "inside the network" shows
MANY_OPENED = "many_opened"  # "Many photos at once" was asked for in this session
MANY_PARAMETER = "many"  # a link with many=1 opens it (the gallery's photos link back to the page with it)
# Everything "reset all" clears: the picker's, the attack's and the panels' widgets, and the lesson.
RESET_KEYS = (*KEYS, "image_source", "test_class", "upload_label", LAYER, "channel_view", "top_count", "explain_method", "gallery_filter", "gallery_class", "gallery_cell", MANY_OPENED, "square_queries", PENDING_IMAGE)
RESET_PREFIXES = ("test_index_", "channel_", "lesson_", "picker_")


def reset(state: MutableMapping[str, Any]) -> None:
    """Every control back to its default (a callback: runs before the widgets are drawn). The
    picker then opens on the best example again; presentation mode stays as it is, and so does
    everything that is not a control of this page (retraining, the models' version)."""
    for key in list(state.keys()):
        if key in RESET_KEYS or key.startswith(RESET_PREFIXES):
            del state[key]


# --- the shareable link --------------------------------------------------------------------------------

RESTORED = "url_restored"  # set once per session: the link was read
URL_KEYS = ("image", "attack", "steps", "norm", "budget", "attacker", "target", "layer", "present")


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def parse_budget(norm: str, text: str) -> int | float | None:
    """"8/255" or "8" for L∞ (whole 1/255 steps), a number for L2/L1, in slider units; None when out of range."""
    text = str(text).strip()
    if norm == "infinity":
        steps = _number(text[: -len("/255")] if text.endswith("/255") else text)
        value: int | float | None = None if steps is None else int(round(steps))
    else:
        number = _number(text)
        increment = BUDGET_INCREMENTS[norm]
        value = None if number is None else round(round(number / increment) * increment, 6)
    low, top = budget_range(norm)
    return value if value is not None and low <= value <= top else None


def widget_values(params: Mapping[str, str]) -> dict[str, Any]:
    """The session state a shared link asks for (widget keys; the photo under :data:`PENDING_IMAGE`)."""
    values: dict[str, Any] = {}
    attack = str(params.get("attack", "")).lower()
    if attack in CORRUPTIONS:
        values.update(kind="corruption", corruption=attack)
        severity = _number(params.get("budget", ""))
        if severity is not None and 0 <= severity <= MAX_SEVERITY:
            values["severity"] = int(severity)
    elif attack in ("fgsm", "pgd"):
        values.update(kind="attack", method=attack.upper())
    norm = {slug: name for name, slug in NORM_SLUGS.items()}.get(str(params.get("norm", "")).lower())
    if norm is not None:
        values["norm"] = norm
    if attack not in CORRUPTIONS and "budget" in params:
        budget = parse_budget(norm or "infinity", params["budget"])
        if budget is not None:
            values[budget_key(norm or "infinity")] = budget
    steps = _number(params.get("steps", ""))
    if steps is not None and int(steps) in PGD_STEP_CHOICES:
        values["iterations"] = int(steps)
    attacker = params.get("attacker", params.get("source"))
    if attacker in ATTACKERS:
        values["attacker"] = attacker
    target = _number(params.get("target", ""))
    if target is not None and target == int(target) and target >= 0:
        values.update(targeted=True, target=int(target))  # checked against the class names where it is drawn
    if params.get("layer"):
        values[LAYER] = str(params["layer"])  # checked against the model's layers where it is drawn
    if params.get("image"):
        values[PENDING_IMAGE] = str(params["image"])
    if str(params.get("present", "")) in ("1", "true", "yes"):
        values[PRESENT] = True
    if str(params.get(MANY_PARAMETER, "")) == "1":
        values[MANY_OPENED] = True
    return values


def url_values(settings: AttackSettings, filename: str | None, layer: str | None, present: bool) -> dict[str, str]:
    """What the link should hold for this view (the inverse of :func:`widget_values`)."""
    values: dict[str, str] = {}
    if filename:
        values["image"] = filename
    if settings.kind == "corruption":
        values.update(attack=settings.corruption, budget=str(settings.severity))
    else:
        values.update(
            attack="pgd" if settings.iterations > 1 else "fgsm",
            norm=NORM_SLUGS[settings.norm],
            budget=budget_label(settings.norm, settings.epsilon),
            attacker=settings.attacker,
        )
        if settings.iterations > 1:
            values["steps"] = str(settings.iterations)
        if settings.target is not None:
            values["target"] = str(settings.target)
    if layer:
        values["layer"] = layer
    if present:
        values["present"] = "1"
    return values


def restore_once(state: MutableMapping[str, Any], params: Mapping[str, str]) -> None:
    """First run of a session: the link's values become the widgets' values."""
    if state.get(RESTORED):
        return
    state[RESTORED] = True
    state.update(widget_values(params))


def publish(current: MutableMapping[str, str], values: Mapping[str, str], keys: tuple[str, ...] = URL_KEYS) -> None:
    """Make the query parameters ``current`` (``st.query_params``) hold ``values`` for ``keys``
    (others in ``keys`` are removed); touching only what changed keeps the browser's history quiet."""
    for key in keys:
        wanted = values.get(key)
        if wanted is None:
            if key in current:
                del current[key]
        elif current.get(key) != wanted:
            current[key] = wanted
