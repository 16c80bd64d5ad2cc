"""Section "Change the picture" (sidebar): what changes the image, by how much, and who computes the change.

Widget values live in ``st.session_state`` under ``settings.KEYS``; their defaults are set there
before a widget is drawn (``settings.ensure_defaults``), never as a widget argument, so the lesson,
a shared link and "reset all" can set any control. Plain words on the labels, the technical term in
each tooltip.
"""

from __future__ import annotations

from typing import Sequence

import streamlit as st

from core.attacks import ATTACKERS, CORRUPTIONS, MAX_SEVERITY, NORMS, norm_symbol

from dashboard.settings import BUDGET_INCREMENTS, PGD_STEP_CHOICES, AttackSettings, budget_key, budget_range, ensure_defaults, settings_from_state
from dashboard.wording import class_title, corruption_title

NORM_TITLES = {"infinity": "Every pixel a little (L∞)", "l2": "Overall distance (L2)", "l1": "A few pixels a lot (L1)"}
METHOD_TITLES = {"FGSM": "One big step (FGSM)", "PGD": "Many small steps (PGD)"}
KIND_TITLES = {"attack": "An attacker", "corruption": "A camera problem"}
ATTACKER_TITLES = {
    "baseline": "The attacker knows only the baseline",
    "adversarial": "The attacker knows only the NSL model",
    "self": "The attacker knows each model (strongest)",
}
ATTACKER_HELP = (
    "Whose gradients compute the change. *Knows only the baseline* is the seed project's protocol: "
    "the change is computed on the baseline and shown to both models — for the NSL model that is a "
    "**transfer attack** (second-hand). *Knows each model* is the **white-box** test: each model gets "
    "a change computed through its own gradients, its worst case."
)
TARGET_HELP = (
    "A **targeted attack**: instead of pushing the model away from the right answer, the change pulls it "
    "towards the class you choose (it lowers the loss of that class). Usually harder than just fooling it."
)
BUDGET_HELP = {
    "infinity": "**Budget ε** (L∞ norm): no pixel's brightness may change by more than ε steps out of 255.",
    "l2": "**Budget ε** (L2 norm): the straight-line length of the whole change, over all pixels.",
    "l1": "**Budget ε** (L1 norm): the sum of all pixel changes; spent on a few pixels it changes them a lot.",
}


def _hide(keys: list[str]) -> None:
    """Hide the containers ``box_<key>`` (they stay on the page, see :func:`render`)."""
    if keys:
        st.markdown("<style>" + " ".join(f".st-key-box_{key} {{ display: none; }}" for key in keys) + "</style>", unsafe_allow_html=True)


def render(class_names: Sequence[str]) -> AttackSettings:
    """An attack (how it is measured, budget ε, one or many steps, who attacks, aimed at a class or
    not) or a natural corruption (which, how strong); returns what the controls hold.

    Every control is drawn on every run, and those that do not apply are hidden. Why: a widget that
    leaves the page and comes back is rebuilt by the browser from the value it last *sent*, not the
    one the page last *set*. After the lesson set the budget to 0/255 and "Reset all" set 8/255,
    switching to L2 and back showed 0/255 while the page computed 8/255, and one → press jumped to
    1/255. A widget that never leaves the page always shows what the page set (the lesson, a link,
    "reset all", the teacher's view); ``tests/test_controls_browser.py`` walks those paths.
    """
    ensure_defaults(st.session_state)
    if st.session_state.get("target", 0) not in range(len(class_names)):
        st.session_state["target"] = 0  # a link's class index that these models do not have
    state = st.session_state
    kind, norm, method = state["kind"], state["norm"], state["method"]
    hidden = ["corruption"] if kind == "attack" else ["attack"]
    hidden += [f"budget_{other}" for other in NORMS if other != norm]
    if method != "PGD":
        hidden.append("steps")
    _hide(hidden)
    st.radio("What changes the picture?", list(KIND_TITLES), format_func=KIND_TITLES.get, horizontal=True, key="kind",
             help="An **adversarial attack** computes the change that fools the model most; a **natural corruption** is noise, blur, JPEG or a shifted photo.")  # fmt: skip
    with st.container(key="box_corruption"):
        st.selectbox("Camera problem", CORRUPTIONS, format_func=corruption_title, key="corruption")
        st.slider("How bad", 0, MAX_SEVERITY, key="severity", help="Severity 0 (none) to 5, as in the ImageNet-C benchmark.")
    with st.container(key="box_attack"):
        st.radio("How the change is measured", NORMS, format_func=NORM_TITLES.get, key="norm",
                 help="The **norm**: L∞ caps every pixel's change, L2 the overall distance, L1 the sum of all changes.")  # fmt: skip
        for each in NORMS:
            low, top = budget_range(each)
            with st.container(key=f"box_budget_{each}"):
                if each == "infinity":
                    st.slider("Budget ε: how much each pixel may change", int(low), int(top), step=1, format="%d/255", key=budget_key(each), help=BUDGET_HELP[each])
                else:
                    st.slider(f"Budget ε: size of the change ({norm_symbol(each)})", low, top, step=BUDGET_INCREMENTS[each], key=budget_key(each), help=BUDGET_HELP[each])
        st.radio("How the attacker searches", list(METHOD_TITLES), format_func=METHOD_TITLES.get, horizontal=True, key="method",
                 help="**FGSM**: one step of the full budget. **PGD**: several smaller steps, each re-aimed with a fresh gradient and kept inside the budget — a stronger attacker.")  # fmt: skip
        with st.container(key="box_steps"):
            st.radio("PGD steps", PGD_STEP_CHOICES, horizontal=True, key="iterations", help="How many small steps the attacker takes (each one a **step** of PGD).")
        st.radio("What the attacker knows", ATTACKERS, format_func=ATTACKER_TITLES.get, key="attacker", help=ATTACKER_HELP)
        aim, towards = st.columns([1, 1.4], vertical_alignment="center")
        aim.toggle("Aim at a class", key="targeted", help=TARGET_HELP)
        towards.selectbox("Class to aim at", range(len(class_names)), format_func=lambda i: class_title(class_names[i]), key="target",
                          disabled=not state["targeted"], label_visibility="collapsed")  # fmt: skip
    return settings_from_state(state)
