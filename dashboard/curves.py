"""Section "Accuracy on all test photos": white-box PGD accuracy against the budget ε, both models,
one tab per norm, with the current budget marked.

The curves come with the models (their metadata); a run saved without them gets them in the
background after its graphs, or at once on the teacher's button. Either way once for every session
of every replica (``resources.stored_curve``: shared through the class store). A nested fragment:
its button reruns only it.
"""

from __future__ import annotations

import streamlit as st

from core.attacks import NORMS, norm_symbol
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS

from dashboard import explainers, resources
from dashboard.page import Page
from dashboard.settings import TEACHER_UNLOCKED
from dashboard.split_analysis import accuracy_curve
from dashboard.views import PLOT_CONFIG, curve_figure, for_screen
from dashboard.widgets import evaluation_table, explainer, lazy_box


def render(page: Page) -> None:
    _curves(page.pair, page.split, page.data_key, page.settings, page.presentation)


@st.fragment
def _curves(pair, split, data_key, settings, presentation: bool) -> None:
    store = resources.result_store()
    evaluation = pair.metadata.get("evaluation") or {}
    saved_curves = evaluation.get("curves") or {}
    labels = {norm: f"{norm_symbol(norm)} budget ε" for norm in NORMS}
    # Only the open tab is drawn (a budget move would otherwise send all three figures); it first
    # opens on the page's own norm, so the current budget's mark is in view.
    tabs = st.tabs(list(labels.values()), key="curve_tab", default=labels.get(settings.norm), on_change="rerun")
    for tab, norm in zip(tabs, NORMS):
        if not tab.open:
            continue
        with tab:
            curve = resources.stored_curve(pair, data_key, norm)
            origin = f"saved with the models, on {evaluation.get('examples', '?')} test photos" if norm in saved_curves else f"computed here on {len(split)} test photos"
            if curve is None:
                st.caption(
                    f"Being prepared in the background: white-box PGD-{CURVE_ITERATIONS} at {len(CURVE_EPSILONS[norm])} budgets on all "
                    f"{len(split)} test photos, for both models; it appears here when done, for everybody."
                )
                if st.session_state.get(TEACHER_UNLOCKED) and st.button(f"Compute the {norm_symbol(norm)} curve now", key=f"curve_button_{norm}"):
                    bar = st.progress(0.0, text="Starting…")
                    curve = accuracy_curve(pair, split, norm, progress=lambda fraction, message: bar.progress(fraction, text=message))
                    store.put_shared(resources.curve_key(pair.version, data_key, norm), curve)  # every replica shows it
                    bar.empty()
            if curve is not None:
                current = settings.epsilon if settings.kind == "attack" and settings.norm == norm else None
                st.plotly_chart(for_screen(curve_figure(curve, norm, current), presentation), config=PLOT_CONFIG)
                st.caption(f"Accuracy vs budget ε, {origin}. At budget 0 you read the clean accuracy; the dotted line is guessing.")
    if evaluation.get("rows"):
        with lazy_box(f"The evaluation table saved with these models ({evaluation.get('examples', '?')} test photos)", "evaluation_table") as is_open:
            if is_open:
                evaluation_table(evaluation["rows"])
    explainer("What am I looking at? (whole-split numbers)", "explain_curves", explainers.ROBUSTNESS)
