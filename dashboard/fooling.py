"""Section "How far each photo is from being fooled": per photo, the smallest budget ε with which the
strongest attack here fools each model (``core.boundary``): for the photo on screen in one sentence
below the verdicts (:func:`this_photo`), for every test photo as each model's share fooled as ε grows.

Both are slow (the strongest attack, bisected: seconds for one photo, minutes for all of them), so
they run in the background (``dashboard/jobs.py``) from a button, never on a slider move; a slider
move only looks them up. All photos' budgets go into the class store (every replica reads them);
one photo's stay with its job on this server.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from core.attacks import budget_label, norm_symbol

from dashboard import jobs
from dashboard.page import Page
from dashboard.settings import MODEL_NAMES
from dashboard.views import PLOT_CONFIG, for_screen
from dashboard.views_seeing import budget_share_figure
from dashboard.wording import MODEL_SHORT

HOW = (
    "Found by halving the budget ε again and again with the strongest attack here (APGD, as in AutoAttack) until the "
    "answer flips within 5%. It is an upper bound: a stronger attack might need less. Photos are tried up to the "
    "largest budget the slider reaches."
)


def sentence(budgets: dict[str, float], norm: str, top: float, labelled: bool = True) -> str:
    """"Smallest change that fools each model here (L∞): the baseline from 1.3/255 on, the NSL model
    from 9.2/255 on." (0: wrong without a change; inf: not fooled even at ``top``)."""
    verb = "is fooled" if labelled else "changes its answer"
    parts = []
    for name in MODEL_NAMES:
        value = budgets[name]
        if value == 0:
            parts.append(f"the {MODEL_SHORT[name]} is wrong even without a change")
        elif math.isinf(value):
            parts.append(f"the {MODEL_SHORT[name]} is not fooled even at {budget_label(norm, top)}")
        else:
            parts.append(f"the {MODEL_SHORT[name]} {verb} from **{budget_label(norm, value)}** on")
    return f"Smallest change that fools each model on this photo ({norm_symbol(norm)} budget ε, strongest attack): {', '.join(parts)}."


def _stored_for(page: Page, norm: str) -> dict[str, float] | None:
    """Both models' budgets for the photo on screen, if the class store has them (a cached lookup)."""
    if page.sample.filename is None:
        return None
    found = {name: jobs.recent_budgets(page.pair.version, name, norm).get(page.sample.filename) for name in MODEL_NAMES}
    return None if None in found.values() else found


def this_photo(page: Page) -> None:
    """Below the verdicts: how far this photo is from fooling each model, from the store or on request."""
    if page.answers_hidden:
        return
    _this_photo(page)


@st.fragment
def _this_photo(page: Page) -> None:
    norm, sample = page.settings.norm, page.sample
    top = jobs.budget_top(norm)
    found = _stored_for(page, norm)
    key = jobs.photo_budgets_key(page.pair, sample.key, sample.true_label, norm)
    job = jobs.find(key)
    if found is None and job is not None and job.result is not None:
        found = job.result
    if found is not None:
        st.markdown(sentence(found, norm, top, sample.true_label is not None), help=HOW)
        return
    if job is None or job.error is not None:
        if job is not None:
            st.caption(jobs.describe(job))
        if st.button(f"How big a change fools each model on this photo? ({norm_symbol(norm)})", key="photo_budget_button",
                     help="Runs the strongest attack here at smaller and smaller budgets ε, in the background (some seconds)."):  # fmt: skip
            job = jobs.photo_budgets(page.pair, sample.key, sample.image, sample.true_label, norm)
        else:
            return
    if job.finished and job.result is None:
        st.caption(job.error or job.message)
        return
    jobs.watch(job)


def render(page: Page) -> None:
    """Every test photo's smallest fooling budget, both models, as the share fooled up to each budget ε."""
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    current = page.settings.epsilon if page.settings.kind == "attack" else None
    _all_photos(page.pair, page.split, page.settings.norm, current, page.presentation)


@st.fragment
def _all_photos(pair, split, norm: str, current: float | None, presentation: bool) -> None:
    top = jobs.budget_top(norm)
    stored = {name: jobs.recent_budgets(pair.version, name, norm) for name in MODEL_NAMES}
    missing = sum(filename not in stored[name] for name in MODEL_NAMES for filename in split.filenames)
    if missing == 0:
        budgets = {name: np.array([stored[name][filename] for filename in split.filenames]) for name in MODEL_NAMES}
        st.plotly_chart(for_screen(budget_share_figure(budgets, norm, top, current), presentation), config=PLOT_CONFIG, key="fooling_share")
        medians = ", ".join(f"the {MODEL_SHORT[name]} {_median_words(budgets[name], norm)}" for name in MODEL_NAMES)
        st.caption(
            f"Each line climbs as the budget ε grows: the share of the {len(split)} test photos fooled by a change of at most that size "
            f"(the strongest attack here, {norm_symbol(norm)}). Half of the photos fall by: {medians}. Read sideways, 100% minus this line is "
            "the accuracy curve of *Accuracy on all test photos*: the photos still right at a budget are those that need more to be fooled "
            "(with a stronger attack than the curve's PGD, so it may lie a little lower).",
            help=HOW,
        )  # fmt: skip
        return
    job = jobs.find(jobs.all_budgets_key(pair, split, norm))
    if job is None or job.error is not None or (job.finished and missing):
        if job is not None:
            st.caption(jobs.describe(job) if job.error else job.message)
        st.caption(
            f"How big a change does each test photo need to fool each model? The strongest attack here finds out for all {len(split)} "
            f"photos, both models, {norm_symbol(norm)}: minutes of work in the background, done once for everybody."
        )
        if not st.button(f"Measure all {len(split)} test photos ({norm_symbol(norm)})", key="fooling_all_button", type="primary"):
            return
        job = jobs.all_budgets(pair, split, norm)
    if not job.finished:
        jobs.watch(job)


def _median_words(budgets: np.ndarray, norm: str) -> str:
    median = float(np.median(budgets))
    return "more than the largest budget" if math.isinf(median) else budget_label(norm, median)
