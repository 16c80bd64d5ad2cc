"""Section 2, "Change the picture": what changes the image, by how much, and who computes the change.

Widget values live in ``st.session_state`` under :data:`KEYS`; the defaults are set there before a
widget is drawn (never as a widget argument), so the lesson, a shared URL and "reset" can set any
control without Streamlit's "default value *and* Session State" warning. Plain words on the labels,
the technical term in each tooltip.
"""

from __future__ import annotations

from typing import Any, MutableMapping

import streamlit as st

from core.attacks import CORRUPTIONS, MAX_SEVERITY, NORMS, norm_symbol
from core.evaluate import CURVE_EPSILONS

from dashboard.analysis import SOURCES, AttackSettings, corruption_title

PGD_STEP_CHOICES = (3, 5, 10, 20)  # a fixed few: each count is its own graph, all traced at start-up
DEFAULT_PGD_STEPS = 10
# Slider defaults and increments per norm, in model units; the maximum comes from core's curve ranges.
BUDGET_DEFAULTS = {"infinity": 8.0 / 255, "l2": 1.0, "l1": 10.0}
BUDGET_INCREMENTS = {"infinity": 1.0 / 255, "l2": 0.05, "l1": 1.0}
DEFAULT_SEVERITY = 3
NORM_TITLES = {"infinity": "Every pixel a little (L∞)", "l2": "Overall distance (L2)", "l1": "A few pixels a lot (L1)"}
METHOD_TITLES = {"FGSM": "One big step (FGSM)", "PGD": "Many small steps (PGD)"}
KIND_TITLES = {"attack": "An attacker", "corruption": "A camera problem"}
SOURCE_TITLES = {
    "baseline": "The attacker knows only the baseline",
    "adversarial": "The attacker knows only the NSL model",
    "self": "The attacker knows each model (strongest)",
}
SOURCE_HELP = (
    "Whose gradients compute the change. *Knows only the baseline* is the seed project's protocol: "
    "the change is computed on the baseline and shown to both models — for the NSL model that is a "
    "**transfer attack** (second-hand). *Knows each model* is the **white-box** test: each model gets "
    "a change computed through its own gradients, its worst case."
)


def budget_key(norm: str) -> str:
    return f"epsilon_{norm}"


def defaults() -> dict[str, Any]:
    """Every control's default value, by widget key (L∞ budget in 1/255 steps, as its slider shows)."""
    values: dict[str, Any] = {
        "kind": "attack",
        "norm": "infinity",
        "method": "FGSM",
        "iterations": DEFAULT_PGD_STEPS,
        "source": "baseline",
        "corruption": CORRUPTIONS[0],
        "severity": DEFAULT_SEVERITY,
    }
    for norm in NORMS:
        values[budget_key(norm)] = slider_value(norm, BUDGET_DEFAULTS[norm])
    return values


def slider_value(norm: str, epsilon: float) -> int | float:
    """A budget in model units as its slider holds it (L∞: whole 1/255 steps)."""
    return int(round(epsilon * 255)) if norm == "infinity" else float(epsilon)


KEYS: tuple[str, ...] = tuple(defaults())


def budget_from_slider(norm: str, value: float) -> float:
    return value / 255.0 if norm == "infinity" else float(value)


def budget_range(norm: str) -> tuple[float, float]:
    """(0, top) in slider units; the top is the largest budget core's accuracy curve measures."""
    return 0.0, float(slider_value(norm, CURVE_EPSILONS[norm][-1]))


def settings_from_state(state: MutableMapping[str, Any]) -> AttackSettings:
    """The settings the controls hold now (defaults for any control not drawn yet)."""
    values = {**defaults(), **{key: state[key] for key in KEYS if key in state}}
    if values["kind"] == "corruption":
        return AttackSettings(kind="corruption", corruption=values["corruption"], severity=int(values["severity"]))
    norm = values["norm"]
    iterations = int(values["iterations"]) if values["method"] == "PGD" else 1
    return AttackSettings(kind="attack", norm=norm, epsilon=budget_from_slider(norm, values[budget_key(norm)]), iterations=iterations, source=values["source"])


def state_for(settings: AttackSettings) -> dict[str, Any]:
    """Widget values that make the controls show ``settings`` (the inverse of :func:`settings_from_state`)."""
    if settings.kind == "corruption":
        return {"kind": "corruption", "corruption": settings.corruption, "severity": int(settings.severity)}
    values: dict[str, Any] = {"kind": "attack", "norm": settings.norm, "source": settings.source, budget_key(settings.norm): slider_value(settings.norm, settings.epsilon)}
    values["method"] = "PGD" if settings.iterations > 1 else "FGSM"
    if settings.iterations > 1:
        values["iterations"] = int(settings.iterations)
    return values


def ensure_defaults(state: MutableMapping[str, Any]) -> None:
    for key, value in defaults().items():
        state.setdefault(key, value)


def _budget_slider(norm: str) -> float:
    """Budget ε with the norm's own range; L∞ is shown in 1/255 brightness steps."""
    low, top = budget_range(norm)
    help_text = {
        "infinity": "**Budget ε** (L∞ norm): no pixel's brightness may change by more than ε steps out of 255.",
        "l2": "**Budget ε** (L2 norm): the straight-line length of the whole change, over all pixels.",
        "l1": "**Budget ε** (L1 norm): the sum of all pixel changes; spent on a few pixels it changes them a lot.",
    }[norm]
    if norm == "infinity":
        value = st.slider("Budget ε: how much each pixel may change", int(low), int(top), step=1, format="%d/255", key=budget_key(norm), help=help_text)
    else:
        value = st.slider(f"Budget ε: size of the change ({norm_symbol(norm)})", low, top, step=BUDGET_INCREMENTS[norm], key=budget_key(norm), help=help_text)
    return budget_from_slider(norm, value)


def attack_controls() -> AttackSettings:
    """Section 2: an attack (how it is measured, budget ε, one or many steps, who attacks) or a
    natural corruption (which, how strong)."""
    ensure_defaults(st.session_state)
    st.header("2 · Change the picture")
    kind = st.radio("What changes the picture?", list(KIND_TITLES), format_func=KIND_TITLES.get, horizontal=True, key="kind",
                    help="An **adversarial attack** computes the change that fools the model most; a **natural corruption** is noise, blur, JPEG or a shifted photo.")  # fmt: skip
    if kind == "corruption":
        corruption = st.selectbox("Camera problem", CORRUPTIONS, format_func=corruption_title, key="corruption")
        severity = st.slider("How bad", 0, MAX_SEVERITY, key="severity", help="Severity 0 (none) to 5, as in the ImageNet-C benchmark.")
        return AttackSettings(kind="corruption", corruption=corruption, severity=severity)
    norm = st.radio("How the change is measured", NORMS, format_func=NORM_TITLES.get, key="norm",
                    help="The **norm**: L∞ caps every pixel's change, L2 the overall distance, L1 the sum of all changes.")  # fmt: skip
    epsilon = _budget_slider(norm)
    method = st.radio("How the attacker searches", list(METHOD_TITLES), format_func=METHOD_TITLES.get, horizontal=True, key="method",
                      help="**FGSM**: one step of the full budget. **PGD**: several smaller steps, each re-aimed with a fresh gradient and kept inside the budget — a stronger attacker.")  # fmt: skip
    iterations = 1
    if method == "PGD":
        # A radio, not a select_slider: its code is already in the browser, so the first switch to
        # PGD waits for nothing the later ones do not (a new widget type loads a script chunk).
        iterations = st.radio("PGD steps", PGD_STEP_CHOICES, horizontal=True, key="iterations", help="How many small steps the attacker takes (each one a **step** of PGD).")
    source = st.radio("What the attacker knows", SOURCES, format_func=SOURCE_TITLES.get, key="source", help=SOURCE_HELP)
    return AttackSettings(kind="attack", norm=norm, epsilon=epsilon, iterations=iterations, source=source)
