"""The guided lesson: eight steps that set the controls and say, in a sentence or two, what to look at,
then optional ones for a class with time left (numbered on, marked optional).

Each step is data (:data:`STEPS`): a title, the control values it sets (through the same Session
State keys as the widgets, in a button callback, so it works from any state and on any photo), and
its text, written from what the models answer *now* — the lesson never claims a model was fooled
when on this photo it was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, MutableMapping, Sequence

import streamlit as st
import streamlit.components.v1 as components

from core.attacks import DEFAULT_PGD_STEPS, from_display

from dashboard.analysis import Interaction
from dashboard.settings import LAYER, LESSON_STEP, AttackSettings, state_for
from dashboard.wording import answer_is, answer_sentence

STEP_KEY = LESSON_STEP
LAST_LAYER = "<last conv layer>"  # resolved to the model's deepest conv layer when the step starts


@dataclass(frozen=True)
class View:
    """What a step's text may use: the live result and the class names."""

    result: Interaction
    class_names: Sequence[str]
    section_numbers: dict[str, int] = field(default_factory=dict)  # anchor -> number, from the app's list
    trained_for: str | None = None  # the budget the NSL model trained against ("L∞ 8/255"), from its metadata

    def section(self, anchor: str) -> str:
        """A link to a section by its anchor, numbered as the page numbers it."""
        number = self.section_numbers.get(anchor)
        return f"[Section {number}](#{anchor})" if number else f"[the section below](#{anchor})"

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
    scroll_to: str | None = None  # the section the step talks about: the page scrolls there when the step starts


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
        f"Why? {view.section('why')} paints where each model looked for its answer (bright = mattered most), "
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
        f"One photo can be lucky. {view.section('curves')} shows the accuracy on **all** test photos as the budget ε "
        f"grows, for both models, each attacked through its own gradients with {DEFAULT_PGD_STEPS} small steps — the attack "
        "your controls now show; the dashed line is your budget. Where do the two curves part?"
    )


def _black_box(view: View) -> str:
    text = (
        "Could the NSL model only be *hiding* its gradients, so that attacks which follow them lose their way? "
        f"{view.section('blackbox')} has an attacker that never looks inside a model: it only asks for answers and keeps any "
        f"random square of change that makes the right answer less sure. Against the gradient attack above: {view.says('adversarial')}"
    )
    if view.right("adversarial") is False:
        trained = f" (it trained against changes up to {view.trained_for})" if view.trained_for else ""
        return text + f" On this photo it gives in{trained}: move the budget ε down until it holds, then press **Attack this photo without gradients**."
    return text + (
        " Press **Attack this photo without gradients**: if the NSL model were only hiding its gradients, this attacker would fool it "
        "where the gradient attack could not. Does it? Then run it on all test photos and compare with the curves."
    )


FGSM_8 = AttackSettings(epsilon=from_display("infinity", 8))
WHITE_BOX_8 = AttackSettings(epsilon=from_display("infinity", 8), iterations=DEFAULT_PGD_STEPS, attacker="self")
CORE_STEPS = 8  # the lesson proper; the steps after it are optional
STEPS: tuple[Step, ...] = (
    Step("The models are right", AttackSettings(epsilon=0.0), _right_first),
    Step("An invisible change", AttackSettings(epsilon=from_display("infinity", 2)), _invisible),
    Step("The baseline is fooled", FGSM_8, _fooled),
    Step("The NSL model holds", FGSM_8, _holds),
    Step("A stronger attacker", WHITE_BOX_8, _stronger),
    Step("Where the models look", WHITE_BOX_8, _inside, {LAYER: LAST_LAYER}, scroll_to="why"),
    Step("Natural corruptions", AttackSettings(kind="corruption", corruption="gaussian_noise", severity=3), _corruption),
    Step("All the test photos", WHITE_BOX_8, _curves, scroll_to="curves"),  # the curves' own attack: white-box PGD-10
    Step("Hiding the gradients would not help", WHITE_BOX_8, _black_box),
)


def step_heading(step: int) -> str:
    """"step 3 of 8", or "step 9 (optional)" past the lesson proper."""
    return f"step {step + 1} of {CORE_STEPS}" if step < CORE_STEPS else f"step {step + 1} (optional)"


def go_to(state: MutableMapping[str, Any], step: int, layers: Sequence[str] = ()) -> None:
    """Start step ``step`` (a callback, before the widgets are drawn): set its controls."""
    step = max(0, min(step, len(STEPS) - 1))
    state[STEP_KEY] = step
    state.update(state_for(STEPS[step].settings))
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
              help=f"A guided tour in {CORE_STEPS} steps (and {len(STEPS) - CORE_STEPS} optional): each step sets the controls and says what to look at. Works on any photo.")  # fmt: skip


def panel(result: Interaction, class_names: Sequence[str], section_numbers: dict[str, int], hidden: bool = False, trained_for: str | None = None) -> None:
    """The current step's box: title, text from the live result, Back / Next / End."""
    if st.session_state.pop(ENDED_KEY, False):
        st.rerun(scope="app")  # the lesson's layout (no title row, smaller pictures) is the whole page's
    step = current_step(st.session_state)
    if step is None:
        return
    layers = tuple(result.layer_names)
    with st.container(key="lesson_panel", border=True):
        title, back, forward, end = st.columns([4.4, 1, 1, 2], gap="small", vertical_alignment="center")
        title.markdown(f"**Lesson · {step_heading(step)}: {STEPS[step].title}**")
        back.button("Back", key="lesson_back", disabled=step == 0, width="stretch", on_click=go_to, args=(st.session_state, step - 1, layers))
        forward.button("Next", key="lesson_next", type="primary", disabled=step == len(STEPS) - 1, width="stretch", on_click=go_to, args=(st.session_state, step + 1, layers))
        end.button("End the lesson", key="lesson_end", width="stretch", on_click=stop, args=(st.session_state,))
        if hidden:  # the class is voting on this view: the step's sentences would give the answer away
            st.markdown("The class is voting: predict what each model will say, then wait for the teacher to reveal it.")
        else:
            st.markdown(STEPS[step].text(View(result, class_names, section_numbers, trained_for)))
    _scroll_once(step)


SCROLLED_KEY = "lesson_scrolled"  # the step whose section this page last scrolled to
# Waits (up to 10 s) for the section's title, which is drawn after this box, then scrolls the page to it.
SCROLL_SCRIPT = """<script>
const target = {anchor!r}; let tries = 0;
const timer = setInterval(() => {{
  const element = window.parent.document.getElementById(target);
  if (element) {{ element.scrollIntoView({{behavior: "smooth", block: "start"}}); clearInterval(timer); }}
  if (++tries > 100) clearInterval(timer);
}}, 100);
</script>"""


def _scroll_once(step: int) -> None:
    """When a step that talks about a section below starts, bring that section into view (once).

    The script goes into a slot drawn on every run of a step: an element that came and went here
    shifted everything below it by one place between two runs, and the browser then kept an old
    verdict card beside the new ones (three cards at step 6, tests/test_dashboard_lesson_browser.py)."""
    slot = st.empty()
    anchor = STEPS[step].scroll_to
    if anchor is None or st.session_state.get(SCROLLED_KEY) == step:
        return
    st.session_state[SCROLLED_KEY] = step
    with slot:
        components.html(SCROLL_SCRIPT.format(anchor=anchor), height=0)

