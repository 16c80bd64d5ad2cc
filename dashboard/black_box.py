"""Section "An attacker without gradients": IBM ART's Square attack (``core.square``), which never
reads a gradient, only the models' answers, on the photo on screen and, in the background, on every
test photo, at the page's budget ε (L∞ or L2) and a number of questions per photo.

Why here: a model can look robust because its gradients lead attacks astray ("gradient masking")
while its answers are as easy to flip as ever. An attacker that only asks questions cannot be
led astray that way: if it fools the NSL model no more than the gradient attacks do, the NSL model's
robustness was not a trick of its gradients. Runs on a button (seconds per photo), never on a slider
move; one photo's result is kept in the process-wide result store for every session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import streamlit as st

from core import square
from core.attacks import budget_label, norm_symbol
from core.checkpoints import ModelPair
from core.data import Split
from core.models import predict

from dashboard import jobs, pictures, resources
from dashboard.page import Page, Sample
from dashboard.settings import MODEL_NAMES, AttackSettings
from dashboard.widgets import accuracy_table, show_picture
from dashboard.wording import MODEL_SHORT, MODEL_TITLES, class_title, percent

QUERY_CHOICES = (100, 300, 1000, 3000, 5000)
DEFAULT_QUERIES = 1000
REDRAW_S = 0.1  # the live count is redrawn at most this often
QUESTIONS_HELP = (
    "Each question shows the model one changed photo and reads its scores for the three diseases, nothing else. "
    "The attacker keeps a random square of change whenever the right answer's lead shrinks (Square attack, "
    "Andriushchenko et al. 2020, as in IBM's Adversarial Robustness Toolbox). AutoAttack asks 5000."
)


@dataclass(frozen=True)
class Attempt:
    """One model under the black-box attack on one photo."""

    fooled: bool
    queries: int
    image: np.ndarray  # the changed photo it was last shown
    probabilities: np.ndarray  # its answer on that photo


def render(page: Page) -> None:
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    settings = page.settings
    if settings.kind != "attack" or settings.norm not in square.NORMS:
        st.caption("This attacker works with an L∞ or L2 budget ε: choose one of them under *Change the picture*.")
        return
    if settings.epsilon <= 0:
        st.caption("Set a budget ε above 0 under *Change the picture* to let this attacker change the photo.")
        return
    _black_box(page.pair, page.split, page.sample, settings, page.class_names)


@st.fragment
def _black_box(pair: ModelPair, split: Split, sample: Sample, settings: AttackSettings, class_names: Sequence[str]) -> None:
    budget = f"{norm_symbol(settings.norm)} budget ε {budget_label(settings.norm, settings.epsilon)}"
    st.caption(
        f"This attacker cannot look inside the models: it only asks each one for its answer on changed photos, within the {budget}, "
        "and keeps whatever change makes the right answer less sure."
    )
    st.session_state.setdefault("square_queries", DEFAULT_QUERIES)
    queries = st.select_slider("Questions per photo", QUERY_CHOICES, key="square_queries", help=QUESTIONS_HELP)
    store = resources.result_store()
    key = ("square", pair.version, sample.key, sample.true_label, settings.norm, float(settings.epsilon), int(queries))
    found = store.get(key)
    if found is None:
        busy = jobs.running("square")
        if busy is not None:
            st.caption(f"Waiting for the black-box attack on all test photos to finish first ({busy.done:.0%}).")
        else:
            ask = st.empty()  # the button goes once the answers are there
            if ask.button("Attack this photo without gradients", key="square_button", type="primary"):
                ask.empty()
                found = _attack(pair, sample, settings, int(queries))
                store.put(key, found)
    if found is not None:
        _show(found, sample, class_names)
    _all_photos(pair, split, settings, int(queries))


def _attack(pair: ModelPair, sample: Sample, settings: AttackSettings, queries: int) -> dict[str, Attempt]:
    """Both models, one after the other, with a live count of the questions asked."""
    bar = st.progress(0.0, text="Starting…")
    found: dict[str, Attempt] = {}
    for number, name in enumerate(MODEL_NAMES):
        model = pair[name]
        label = sample.true_label if sample.true_label is not None else int(predict(model, sample.image[None])[0].argmax())
        drawn = [0.0]

        def count(event: square.SquareProgress, number=number, name=name) -> None:
            if time.monotonic() - drawn[0] >= REDRAW_S or event.fooled:
                drawn[0] = time.monotonic()
                state = "fooled" if event.fooled else "not fooled yet"
                bar.progress((number + event.queries / event.max_queries) / len(MODEL_NAMES), text=f"The {MODEL_SHORT[name]}: {event.queries} of {event.max_queries} questions asked, {state}")

        result = square.square_attack(model, sample.image[None], np.array([label]), settings.norm, settings.epsilon, queries, progress=count)
        found[name] = Attempt(bool(result.fooled[0]), int(result.queries[0]), result.adversarial[0], predict(model, result.adversarial)[0])
    bar.empty()
    return found


def _show(found: dict[str, Attempt], sample: Sample, class_names: Sequence[str]) -> None:
    with st.container(key="square_pictures"):
        for column, name in zip(st.columns(len(MODEL_NAMES), gap="medium"), MODEL_NAMES):
            attempt = found[name]
            answer = int(attempt.probabilities.argmax())
            said = f"**{class_title(class_names[answer])}** ({percent(attempt.probabilities[answer])})"
            if attempt.fooled:
                line = f"**Fooled after {attempt.queries} question{'s' if attempt.queries != 1 else ''}**: it now says {said}."
            elif attempt.queries == 0:
                line = f"Wrong before any change: it says {said}."
            else:
                line = f"**Held** after all {attempt.queries} questions: it still says {said}."
            with column:
                st.markdown(f"{MODEL_TITLES[name]}: {line}")
                show_picture(st, pictures.jpeg_bytes(pictures.enlarge(attempt.image, pictures.OVERLAY_PIXELS)), f"What the attacker last showed the {MODEL_SHORT[name]}", pictures.OVERLAY_PIXELS)
    if sample.true_label is None:
        st.caption("No true label was given, so the attacker tries to change each model's own answer.")


def _all_photos(pair: ModelPair, split: Split, settings: AttackSettings, queries: int) -> None:
    job = jobs.find(jobs.square_all_key(pair, split, settings.norm, settings.epsilon, queries))
    if job is not None and job.finished and job.result is not None:
        rows = [{"row": "Clean test photos", **{name: float(np.mean(job.result[name].right)) for name in MODEL_NAMES}, "threat model": "none"}]
        rows.append({
            "row": f"Attacker without gradients, {norm_symbol(settings.norm)} budget ε {budget_label(settings.norm, settings.epsilon)}, at most {queries} questions",
            **{name: job.result[name].accuracy for name in MODEL_NAMES}, "threat model": "black-box (answers only)",
        })  # fmt: skip
        accuracy_table(rows)
        spent = "; ".join(_questions_words(name, job.result[name]) for name in MODEL_NAMES)
        st.caption(f"On all {len(split)} test photos: {spent}. Compare with the gradient attacks in *Many photos at once* and *Accuracy on all test photos*.")
        return
    if job is not None and not job.finished:
        jobs.watch(job)
        return
    if job is not None:
        st.caption(job.error or job.message)
    if st.button(f"Run it on all {len(split)} test photos (in the background)", key="square_all_button",
                 help=f"Both models, {queries} questions per photo at most: a few minutes, once for everybody."):  # fmt: skip
        jobs.watch(jobs.square_all(pair, split, settings.norm, settings.epsilon, queries))


def _questions_words(name: str, result: jobs.BlackBoxSplit) -> str:
    fooled = result.queries[result.fooled]
    if len(fooled) == 0:
        return f"the {MODEL_SHORT[name]} was never fooled"
    return f"the {MODEL_SHORT[name]} was fooled on {len(fooled)} photos, after {int(np.median(fooled))} questions (median)"
