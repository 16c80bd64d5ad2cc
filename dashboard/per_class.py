"""Section "Which disease is weakest": under the current change, how many photos of each disease each
model still gets right (grouped bars), from the same whole-split result as "Many photos at once".

Computed on a button press and kept in the process-wide result store (one press serves every
student, once per setting); a slider move only looks it up. A nested fragment: its button reruns only it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import streamlit as st

from core.checkpoints import ModelPair
from core.data import Split

from dashboard import resources
from dashboard.page import Page
from dashboard.settings import MODEL_NAMES, AttackSettings
from dashboard.views import PLOT_CONFIG, for_screen
from dashboard.views_seeing import class_accuracy_figure
from dashboard.wording import MODEL_SHORT, class_title, describe


def render(page: Page) -> None:
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    _classes(page.pair, page.split, page.data_key, page.settings, page.class_names, page.presentation, page.section_numbers.get("many"))


@st.fragment
def _classes(pair: ModelPair, split: Split, data_key: str, settings: AttackSettings, class_names: Sequence[str], presentation: bool, many: int | None) -> None:
    results = resources.split_results_for(pair, split, data_key, settings, compute=False)
    if results is None:
        ask = st.empty()  # the offer goes once the bars are there
        with ask.container():
            st.caption(f"Runs *{describe(settings, class_names)}* on all {len(split)} test photos and counts, disease by disease, how many each model still gets right.")
            pressed = st.button(f"Run this change on all {len(split)} test photos", key="classes_button", type="primary")
        if not pressed:
            return
        ask.empty()
        bar = st.progress(0.0, text="Starting…")
        results = resources.split_results_for(pair, split, data_key, settings, progress=lambda fraction, message: bar.progress(fraction, text=message))
        bar.empty()
    classes = len(class_names)
    changed = {name: results.class_accuracy(name, "perturbed", classes) for name in MODEL_NAMES}
    clean = {name: results.class_accuracy(name, "clean", classes) for name in MODEL_NAMES}
    photos = np.bincount(results.labels, minlength=classes)
    st.plotly_chart(for_screen(class_accuracy_figure(changed, clean, photos, class_names), presentation), config=PLOT_CONFIG, key="class_accuracy")
    weakest = "; ".join(_weakest(name, changed[name], photos, class_names) for name in MODEL_NAMES)
    where = f"Section {many}" if many else "*Many photos at once*"
    st.caption(f"Under this change, {weakest}. To see those photos, click a cell of a confusion matrix in {where}: its gallery then shows just them.")


def _weakest(name: str, accuracy: np.ndarray, photos: np.ndarray, class_names: Sequence[str]) -> str:
    """"the baseline is weakest on bean rust (12% right)"."""
    shown = np.where(photos > 0, accuracy, np.inf)
    index = int(np.argmin(shown))
    return f"the {MODEL_SHORT[name]} is weakest on **{class_title(class_names[index])}** ({accuracy[index]:.0%} right)"
