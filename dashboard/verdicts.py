"""Section "What the models say": the one screen a class sees — the photo, the change, the changed
photo and both verdicts in large type; below the fold, every class's probability.

The app sends this section first and pauses :data:`VERDICTS_FIRST_S` before the figures below it,
so the pictures here are small JPEGs and the verdicts plain HTML: nothing waits for Plotly.
"""

from __future__ import annotations

import streamlit as st

from core.classroom import ClassroomError

from dashboard import explainers, pictures
from dashboard.class_store import shared_store
from dashboard.page import Page
from dashboard.settings import MODEL_NAMES, url_values
from dashboard.views import PLOT_CONFIG, for_screen, probability_figure
from dashboard.widgets import explainer, show_picture
from dashboard.wording import MODEL_SHORT, MODEL_TITLES, measured_size, short_label, threat_model, verdict_html

# After the verdicts are sent, the browser gets this long to draw them before the figures below
# arrive. It draws whatever has arrived in one go, and redrawing four or five Plotly figures (~120 ms
# of the main thread per move) held the verdicts back: slider -> both verdicts p50 228/197/161 ms
# without the pause, 86/80/72 ms with it, in three runs of bench/bench_dashboard.py. At 40 ms the
# figures still caught up on a freshly opened page. What waits is below the verdicts, off the first
# screen at 1280×720. A pause, not a change to what is sent: Streamlit's frontend decides how it batches.
VERDICTS_FIRST_S = 0.08
VOTED_KEY = "poll_voted"  # the poll this page voted in


def _change_caption(what: str, reach: float) -> str:
    """"The change, stretched ×32 to be visible", "The change, as it is" (big enough to see), or "No change"."""
    if reach <= 0:
        return "No change"
    stretch = round(1 / reach)
    return f"{what}, as it is" if stretch <= 1 else f"{what}, stretched ×{stretch} to be visible"


def _picture_row(page: Page) -> None:
    """Original | the change, made visible | the changed photo (twice over for a white-box attack)."""
    result = page.result
    shown = [("The photo the models see", pictures.enlarge(result.image))]
    if page.settings.shared:
        perturbation = result.perturbations[MODEL_NAMES[0]]
        change, reach = pictures.change_picture(perturbation.delta)
        shown.append((_change_caption("The change", reach), change))
        shown.append(("The changed photo" if page.settings.kind == "attack" else "The corrupted photo", pictures.enlarge(perturbation.image)))
    else:
        for name in MODEL_NAMES:
            change, reach = pictures.change_picture(result.perturbations[name].delta)
            shown.append((_change_caption(f"Change for the {MODEL_SHORT[name]}", reach), change))
            shown.append((f"What the {MODEL_SHORT[name]} sees", pictures.enlarge(result.perturbations[name].image)))
    with st.container(key="stage_pictures"):
        for column, (caption, picture) in zip(st.columns(len(shown), gap="small"), shown):
            show_picture(column, pictures.jpeg_bytes(picture), caption)


def render(page: Page) -> None:
    """The photo, the change, the changed photo, and both verdicts in large type."""
    result, settings = page.result, page.settings
    norm = settings.norm if settings.kind == "attack" else None
    plain, technical = measured_size(result.perturbations[MODEL_NAMES[0]].norms, norm)
    if settings.shared:
        who = "no model involved" if settings.kind == "corruption" else f"computed on the {MODEL_SHORT[settings.attacker]}"
    else:
        who = "each model gets its own (white-box)"
    st.caption(f"**{page.sample.title}** · {short_label(settings, page.class_names)}, {who} · {plain}", help=technical)
    _picture_row(page)
    if page.answers_hidden:
        _vote(page)
        return
    view = " ".join([page.sample.key, *url_values(settings, None, None, False).values()])
    for column, name in zip(st.columns(len(MODEL_NAMES), gap="medium"), MODEL_NAMES):
        with column, st.container(key=f"verdict_{name}", border=True):
            st.markdown(verdict_html(result.outcomes[name], page.class_names, result.true_label, settings, view), unsafe_allow_html=True)
    if page.sample.true_label is None and settings.kind == "attack":
        st.caption("No true label was given, so each attack pushes its model away from that model's own answer on the clean photo.")


def _vote(page: Page) -> None:
    """Predict, then reveal: while the class votes, the verdict cards wait behind two questions."""
    poll = page.poll
    with st.container(key="poll_box", border=True):
        st.markdown(f"**Predict first.** {poll.question}")
        if page.teacher:
            results = shared_store().poll_results(poll.id)
            st.caption(f"{results.total} vote{'s' if results.total != 1 else ''} so far. Reveal the answer in the class activity's tools.")
            return
        voted = st.session_state.get(VOTED_KEY) == poll.id
        with st.form("poll_form", border=False):
            columns = st.columns(len(MODEL_NAMES))
            answers = [column.radio(f"Will the {MODEL_SHORT[name]} be fooled?", ("yes", "no"), index=None, horizontal=True, key=f"poll_{name}")
                       for column, name in zip(columns, MODEL_NAMES)]  # fmt: skip
            sent = st.form_submit_button("Change my vote" if voted else "Vote", key="poll_vote", type="primary")
        if sent:
            if None in answers:
                st.warning("Answer both questions, then vote.")
                return
            try:
                shared_store().vote(poll.id, _voter(), answers[0] == "yes", answers[1] == "yes")
            except ClassroomError as error:
                st.error(str(error))
                return
            st.session_state[VOTED_KEY] = poll.id
            voted = True
        st.caption("Your vote is in: the answers appear when the teacher reveals them." if voted else "The answers stay hidden until the teacher reveals them.")


def _voter() -> str:
    """One vote per page: the session id (a re-vote replaces the earlier one)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return context.session_id if context is not None else "no-session"


def render_details(page: Page) -> None:
    """Below the fold: every class's probability before and after, and the threat model in words."""
    if page.answers_hidden:
        return
    result = page.result
    for column, name in zip(st.columns(len(MODEL_NAMES), gap="medium"), MODEL_NAMES):
        with column, st.container(key=f"prediction_{name}"):
            st.markdown(f"**{MODEL_TITLES[name]}: every class, before (grey) and after the change (colour)**")
            st.plotly_chart(for_screen(probability_figure(result.outcomes[name], page.class_names, result.true_label), page.presentation), config=PLOT_CONFIG)
            st.caption(f"Threat model: {threat_model(page.settings, name)}.")
    explainer("What am I looking at? (the attack, the pictures, the two models)", "explain_attack", explainers.ATTACK, explainers.SEE, explainers.COMPARE)
