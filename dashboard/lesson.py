"""The guided lesson: eight steps that set the controls and say, in a sentence or two, what to look at.

Each step is data (:data:`STEPS`): a title, the control values it sets (through the same Session
State keys as the widgets, in a button callback, so it works from any state and on any photo), and
its text, written from what the models answer *now* — the lesson never claims a model was fooled
when on this photo it was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, MutableMapping, Sequence

import streamlit as st

from dashboard import attack_controls
from dashboard.analysis import AttackSettings, Interaction
from dashboard.wording import answer_is, answer_sentence

STEP_KEY = "lesson_step"  # None or missing: no lesson running
LAST_LAYER = "<last conv layer>"  # resolved to the model's deepest conv layer when the step starts


@dataclass(frozen=True)
class View:
    """What a step's text may use: the live result and the class names."""

    result: Interaction
    class_names: Sequence[str]

    def says(self, name: str, which: str = "perturbed") -> str:
        return answer_sentence(self.result.outcomes[name], self.class_names, self.result.true_label, which)

    def right(self, name: str, which: str = "perturbed") -> bool | None:
        return answer_is(self.result.outcomes[name], self.result.true_label, which)


@dataclass(frozen=True)
class Step:
    title: str
    settings: AttackSettings
    text: Callable[[View], str]
    extra: dict[str, Any] = field(default_factory=dict)  # other controls this step sets (e.g. the layer)


def _right_first(view: View) -> str:
    text = f"Two models name the disease on the same leaf photo. Nothing is changed yet (budget ε = 0). {view.says('baseline', 'clean')} {view.says('adversarial', 'clean')}"
    if view.right("baseline", "clean") is False:
        text += " This photo fools the baseline even unchanged: press **Show me a good example** for a clearer start."
    return text


def _invisible(view: View) -> str:
    return (
        "Now an attacker may change every pixel's brightness by at most **2 steps out of 255**. The middle "
        "picture shows that change, stretched so you can see it (red = brighter, blue = darker); on the right "
        "is the changed photo. Can you tell the two photos apart?"
    )


def _fooled(view: View) -> str:
    text = f"At **8/255** the change is still invisible to us. {view.says('baseline')}"
    if view.right("baseline") is True:
        return text + " This photo resists; press **Show me a good example**, or move the budget ε up."
    return text + " The change was computed from the baseline's own gradients: it pushes exactly where this model is weakest."


def _holds(view: View) -> str:
    return (
        f"The NSL model saw changed photos like these while it learned. {view.says('adversarial')} "
        "Careful: the change was computed on the *baseline*, so for the NSL model it is second-hand (a transfer attack)."
    )


def _stronger(view: View) -> str:
    text = (
        "Now the attacker knows **each** model inside out and takes 10 small steps, re-aiming after each one "
        f"(white-box PGD). {view.says('baseline')} {view.says('adversarial')}"
    )
    return text + " Robustness has limits: move the budget ε up and watch when the NSL model gives in."


def _inside(view: View) -> str:
    return (
        "Why? [Section 4](#why) paints where each model looked for its answer (bright = mattered most), "
        "before and after the change, then what its last conv layer saw. Whose attention moves more: the baseline's "
        "or the NSL model's?"
    )


def _corruption(view: View) -> str:
    return (
        "Real cameras add noise. This noise is far *bigger* than the attack's change — you can see it — but it "
        f"is not aimed at any model. {view.says('baseline')} {view.says('adversarial')}"
    )


def _curves(view: View) -> str:
    return (
        "One photo can be lucky. [Section 5](#curves) shows the accuracy on **all** test photos as the budget ε "
        "grows, for both models, under the strongest attack here; the dashed line is your budget. Where do the "
        "two curves part?"
    )


FGSM_8 = AttackSettings(epsilon=8.0 / 255)
STEPS: tuple[Step, ...] = (
    Step("The models are right", AttackSettings(epsilon=0.0), _right_first),
    Step("An invisible change", AttackSettings(epsilon=2.0 / 255), _invisible),
    Step("The baseline is fooled", FGSM_8, _fooled),
    Step("The NSL model holds", FGSM_8, _holds),
    Step("A stronger attacker", AttackSettings(epsilon=8.0 / 255, iterations=attack_controls.DEFAULT_PGD_STEPS, source="self"), _stronger),
    Step("Where the models look", AttackSettings(epsilon=8.0 / 255, iterations=attack_controls.DEFAULT_PGD_STEPS, source="self"), _inside, {"layer": LAST_LAYER}),
    Step("Natural corruptions", AttackSettings(kind="corruption", corruption="gaussian_noise", severity=3), _corruption),
    Step("All the test photos", FGSM_8, _curves),
)


def go_to(state: MutableMapping[str, Any], step: int, layers: Sequence[str] = ()) -> None:
    """Start step ``step`` (a callback, before the widgets are drawn): set its controls."""
    step = max(0, min(step, len(STEPS) - 1))
    state[STEP_KEY] = step
    state.update(attack_controls.state_for(STEPS[step].settings))
    for key, value in STEPS[step].extra.items():
        if value == LAST_LAYER:
            if layers:
                state[key] = layers[-1]
        else:
            state[key] = value


ENDED_KEY = "lesson_ended"  # set by "End the lesson": the page's title row comes back with a full rerun


def stop(state: MutableMapping[str, Any]) -> None:
    state.pop(STEP_KEY, None)
    state[ENDED_KEY] = True


def current_step(state: MutableMapping[str, Any]) -> int | None:
    step = state.get(STEP_KEY)
    return step if isinstance(step, int) and 0 <= step < len(STEPS) else None


def start_button(layers: Sequence[str]) -> None:
    st.button("▶ Start the lesson", key="lesson_start", type="primary", on_click=go_to, args=(st.session_state, 0, tuple(layers)),
              help="A guided tour in 8 steps: each step sets the controls and says what to look at. Works on any photo.")  # fmt: skip


def panel(result: Interaction, class_names: Sequence[str]) -> None:
    """The current step's box: title, text from the live result, Back / Next / End."""
    if st.session_state.pop(ENDED_KEY, False):
        st.rerun(scope="app")  # the lesson's layout (no title row, smaller pictures) is the whole page's
    step = current_step(st.session_state)
    if step is None:
        return
    layers = tuple(result.layer_names)
    with st.container(key="lesson_panel", border=True):
        title, back, forward, end = st.columns([5, 1, 1, 1.6], gap="small", vertical_alignment="center")
        title.markdown(f"**Lesson · step {step + 1} of {len(STEPS)}: {STEPS[step].title}**")
        back.button("Back", key="lesson_back", disabled=step == 0, width="stretch", on_click=go_to, args=(st.session_state, step - 1, layers))
        forward.button("Next", key="lesson_next", type="primary", disabled=step == len(STEPS) - 1, width="stretch", on_click=go_to, args=(st.session_state, step + 1, layers))
        end.button("End the lesson", key="lesson_end", width="stretch", on_click=stop, args=(st.session_state,))
        st.markdown(STEPS[step].text(View(result, class_names)))

