"""The main area, sections 3 and 4: what the models say, and why.

Everything from :func:`live_attack` down is one ``st.fragment``: moving an attack control reruns only
this part (one cached call into core, then pictures and figures), never model or data loading.
Section 3 is drawn first and from small JPEGs and text, and the figures below it are sent
:data:`VERDICTS_FIRST_S` later, so the browser draws both verdicts on their own before it redraws
any Plotly figure; "inside the network" is a nested fragment, so choosing a layer or a channel
reruns only it.
"""

from __future__ import annotations

import time
from typing import Sequence

import streamlit as st

from core.activations import top_channels
from core.checkpoints import ModelPair
from core.data import Split

from dashboard import attack_controls, explainers, lesson, page_state, pictures, resources, split_panels
from dashboard.analysis import MODEL_NAMES, MODEL_SHORT, Interaction, Perturbation, format_epsilon
from dashboard.image_picker import Sample
from dashboard.views import PLOT_CONFIG, activation_figure, for_screen, probability_figure, top_channels_figure
from dashboard.wording import MODEL_TITLES, class_title, verdict_html

TOP_CHANNEL_COUNTS = (2, 3, 4, 6)
EXPLAIN_TITLES = {"grad_cam": "Regions (Grad-CAM)", "smooth_grad": "Pixels (SmoothGrad)"}
# After section 3 is sent, the browser gets this long to draw it before the figures below arrive. It
# draws whatever has arrived in one go, and redrawing four or five Plotly figures (~120 ms of the main
# thread per move) held the verdicts back: slider -> both verdicts p50 228/197/161 ms without the
# pause, 86/80/72 ms with it, in three runs of bench/bench_dashboard.py. At 40 ms the figures still
# caught up on a freshly opened page. What waits is below the verdicts, off the first screen at
# 1280×720. A pause, not a change to what is sent: Streamlit's frontend decides how it batches.
VERDICTS_FIRST_S = 0.08
SIZE_WORDS = {"infinity": "largest pixel change", "l2": "overall size (L2)", "l1": "sum of all changes (L1)"}


@st.fragment
def live_attack(pair: ModelPair, sample: Sample, split: Split, data_key: str, class_names: Sequence[str], presentation: bool) -> None:
    """Sections 2–6 (the attack controls are drawn in the sidebar, inside this fragment)."""
    with st.sidebar:
        settings = attack_controls.attack_controls()
    result = resources.interaction(pair, sample.key, sample.image, sample.true_label, settings)
    lesson.panel(result, class_names)
    stage(sample, result, class_names)
    time.sleep(VERDICTS_FIRST_S)  # the page's answer first; the figures below it follow
    page_state.publish(page_state.url_values(settings, sample.filename, st.session_state.get("layer"), presentation))
    details(result, class_names, presentation)
    why_fooled(pair, sample, result, class_names, presentation)
    split_panels.robustness(pair, split, data_key, settings, presentation)
    split_panels.many_images(pair, split, data_key, settings, class_names, presentation)


def measured_size(perturbation: Perturbation, norm: str | None) -> tuple[str, str]:
    """(plain words, the norms for a tooltip): the attack's own norm, or all three for a corruption."""
    norms = [norm] if norm is not None else list(SIZE_WORDS)
    plain = ", ".join(f"{SIZE_WORDS[n]} {format_epsilon(n, perturbation.norms[n])}" for n in norms)
    symbols = {"infinity": "‖δ‖∞", "l2": "‖δ‖₂", "l1": "‖δ‖₁"}
    technical = " · ".join(f"{symbols[n]} = {format_epsilon(n, perturbation.norms[n])}" for n in SIZE_WORDS)
    return plain, f"The perturbation δ (changed photo − original), measured in each norm: {technical}."


def _change_caption(what: str, reach: float) -> str:
    """"The change, stretched ×32 to be visible", or "No change" at budget 0."""
    return f"{what}, stretched ×{1 / reach:.0f} to be visible" if reach > 0 else "No change"


def _picture_row(result: Interaction) -> None:
    """Original | the change, made visible | the changed photo (twice over for a white-box attack)."""
    original = pictures.enlarge(result.image)
    if result.shared_perturbation:
        perturbation = result.perturbations[MODEL_NAMES[0]]
        shown = [("The photo the models see", original)]
        change, reach = pictures.change_picture(perturbation.delta)
        shown.append((_change_caption("The change", reach), change))
        shown.append(("The changed photo" if result.settings.kind == "attack" else "The corrupted photo", pictures.enlarge(perturbation.image)))
    else:
        shown = [("The photo the models see", original)]
        for name in MODEL_NAMES:
            change, reach = pictures.change_picture(result.perturbations[name].delta)
            shown.append((f"Change for the {MODEL_SHORT[name]}, ×{1 / reach:.0f}" if reach > 0 else f"No change for the {MODEL_SHORT[name]}", change))
            shown.append((f"What the {MODEL_SHORT[name]} sees", pictures.enlarge(result.perturbations[name].image)))
    with st.container(key="stage_pictures"):
        for column, (caption, picture) in zip(st.columns(len(shown), gap="small"), shown):
            column.image(pictures.jpeg_bytes(picture), caption=caption, width="stretch")


def stage(sample: Sample, result: Interaction, class_names: Sequence[str]) -> None:
    """Section 3, the one screen a class sees: the photo, the change, the changed photo, and both
    verdicts in large type."""
    st.header("3 · What the models say", anchor="verdicts")
    title = sample.title
    norm = result.settings.norm if result.settings.kind == "attack" else None
    plain, technical = measured_size(result.perturbations[MODEL_NAMES[0]], norm)
    if result.shared_perturbation:
        who = "no model involved" if result.settings.kind == "corruption" else f"computed on the {MODEL_SHORT[result.settings.source]}"
    else:
        who = "each model gets its own (white-box)"
    st.caption(f"**{title}** · {result.settings.short_label}, {who} · {plain}", help=technical)
    _picture_row(result)
    view = " ".join([sample.key, *page_state.url_values(result.settings, None, None, False).values()])
    for column, name in zip(st.columns(len(MODEL_NAMES), gap="medium"), MODEL_NAMES):
        with column, st.container(key=f"verdict_{name}", border=True):
            st.markdown(verdict_html(result.outcomes[name], class_names, result.true_label, result.settings, view), unsafe_allow_html=True)
    if sample.true_label is None and result.settings.kind == "attack":
        st.caption("No true label was given, so each attack pushes its model away from that model's own answer on the clean photo.")


def details(result: Interaction, class_names: Sequence[str], presentation: bool) -> None:
    """Below the fold of section 3: every class's probability, the threat model in words."""
    for column, name in zip(st.columns(len(MODEL_NAMES), gap="medium"), MODEL_NAMES):
        with column, st.container(key=f"prediction_{name}"):
            st.markdown(f"**{MODEL_TITLES[name]}: every class, before (grey) and after the change (colour)**")
            st.plotly_chart(for_screen(probability_figure(result.outcomes[name], class_names, result.true_label), presentation), config=PLOT_CONFIG)
            st.caption(f"Threat model: {result.settings.threat_model(name)}.")
    with st.expander("What am I looking at? (the attack, the pictures, the two models)"):
        st.markdown(explainers.ATTACK)
        st.markdown(explainers.SEE)
        st.markdown(explainers.COMPARE)


def why_fooled(pair: ModelPair, sample: Sample, result: Interaction, class_names: Sequence[str], presentation: bool) -> None:
    """Section 4: where each model looked for its answer (saliency overlays), then its conv layers."""
    st.header("4 · Why was it fooled?", anchor="why")
    st.session_state.setdefault("explain_method", "grad_cam")
    method = st.radio("Show where each model looked", list(EXPLAIN_TITLES), format_func=EXPLAIN_TITLES.get, horizontal=True, key="explain_method",
                      help="**Grad-CAM** weighs the last conv layer's maps by how much each raises the answer's score: coarse regions. **SmoothGrad** averages the input gradient over noisy copies of the photo: single pixels.")  # fmt: skip
    maps = resources.explanations(pair, sample.key, result, method)
    shown = []
    for name in MODEL_NAMES:
        explanation = maps[name]
        label = MODEL_TITLES[name]
        shown.append((f"{label}, before: “{class_title(class_names[explanation.clean_class])}”", pictures.saliency_overlay(result.image, explanation.clean)))
        after = result.perturbations[name].image
        shown.append((f"{label}, after: “{class_title(class_names[explanation.perturbed_class])}”", pictures.saliency_overlay(after, explanation.perturbed)))
    with st.container(key="why_pictures"):
        for column, (caption, picture) in zip(st.columns(len(shown), gap="small"), shown):
            column.image(pictures.jpeg_bytes(picture), caption=caption, width="stretch")
    st.caption("Bright = the spots the answer rests on most; each map is scaled to its own brightest spot.")
    with st.expander("What am I looking at? (where the models look)"):
        st.markdown(explainers.WHY)
    _look_inside(result, presentation)


@st.fragment
def _look_inside(result: Interaction, presentation: bool) -> None:
    st.subheader("Inside the network: what each conv layer sees")
    layers = result.layer_names
    if st.session_state.get("layer") not in layers:
        # The deepest layer by default: where the evidence for a class is gathered, and its maps are
        # the smallest (16×16 at 64 px against conv1's 64×64: a twentieth of the data per slider move).
        st.session_state["layer"] = layers[-1]
    layer_column, view_column, channel_column = st.columns([1, 1, 2])
    layer = layer_column.selectbox("Conv layer", layers, key="layer", help="A **convolutional layer** slides small pattern detectors (channels) over the photo.")
    page_state.publish({"layer": layer}, keys=("layer",))
    st.session_state.setdefault("channel_view", "channel")
    view = view_column.radio("Show", ["channel", "top"], format_func={"channel": "One channel", "top": "Busiest channels"}.get, horizontal=True, key="channel_view")
    channels = result.outcomes[MODEL_NAMES[0]].clean_maps[layer].shape[-1]
    if view == "channel":
        busiest = top_channels(result.outcomes[MODEL_NAMES[0]].clean_maps[layer], 1)[0]  # a live channel, not a dead one
        key = f"channel_{layer}"
        st.session_state.setdefault(key, busiest)
        channel = channel_column.slider("Channel", 0, channels - 1, key=key)
        figure = activation_figure(result.outcomes, layer, channel)
    else:
        choices = [c for c in TOP_CHANNEL_COUNTS if c <= channels]
        st.session_state.setdefault("top_count", min(4, channels) if min(4, channels) in choices else choices[-1])
        count = channel_column.select_slider("Channels per model", choices, key="top_count")
        figure = top_channels_figure(result.outcomes, layer, count)
    st.plotly_chart(for_screen(figure, presentation), config=PLOT_CONFIG)
    with st.expander("What am I looking at? (activation maps)"):
        st.markdown(explainers.INSIDE)

