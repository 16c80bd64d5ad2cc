"""Section "Why was it fooled?": where each model looked for its answer (saliency overlays, before and
after the change), then what each conv layer sees (activation maps).

"Inside the network" is a nested fragment: choosing a layer or a channel reruns only it.
"""

from __future__ import annotations

import streamlit as st

from core.activations import top_channels

from dashboard import explainers, pictures, resources
from dashboard.analysis import Interaction
from dashboard.page import Page
from dashboard.settings import LAYER, MODEL_NAMES, publish
from dashboard.views import PLOT_CONFIG, activation_figure, for_screen, top_channels_figure
from dashboard.widgets import explainer, show_picture
from dashboard.wording import MODEL_TITLES, class_title

TOP_CHANNEL_COUNTS = (2, 3, 4, 6)
EXPLAIN_TITLES = {"grad_cam": "Regions (Grad-CAM)", "smooth_grad": "Pixels (SmoothGrad)"}


def render(page: Page) -> None:
    """Saliency overlays of both models, clean and changed, then the conv layers."""
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    result = page.result
    st.session_state.setdefault("explain_method", "grad_cam")
    method = st.radio("Show where each model looked", list(EXPLAIN_TITLES), format_func=EXPLAIN_TITLES.get, horizontal=True, key="explain_method",
                      help="**Grad-CAM** weighs the last conv layer's maps by how much each raises the answer's score: coarse regions. **SmoothGrad** averages the input gradient over noisy copies of the photo: single pixels.")  # fmt: skip
    maps = resources.explanations(page.pair, page.sample.key, result, method)
    shown = []
    for name in MODEL_NAMES:
        explanation = maps[name]
        label = MODEL_TITLES[name]
        shown.append((f"{label}, before: “{class_title(page.class_names[explanation.clean_class])}”", pictures.saliency_overlay(result.image, explanation.clean)))
        after = result.perturbations[name].image
        shown.append((f"{label}, after: “{class_title(page.class_names[explanation.perturbed_class])}”", pictures.saliency_overlay(after, explanation.perturbed)))
    with st.container(key="why_pictures"):
        for column, (caption, picture) in zip(st.columns(len(shown), gap="small"), shown):
            show_picture(column, pictures.jpeg_bytes(picture), caption)
    st.caption("Bright = the spots the answer rests on most; each map is scaled to its own brightest spot.")
    explainer("What am I looking at? (where the models look)", "explain_why", explainers.WHY)
    _look_inside(result, page.presentation)


@st.fragment
def _look_inside(result: Interaction, presentation: bool) -> None:
    st.subheader("Inside the network: what each conv layer sees")
    layers = result.layer_names
    if st.session_state.get(LAYER) not in layers:
        # The deepest layer by default: where the evidence for a class is gathered, and its maps are
        # the smallest (16×16 at 64 px against conv1's 64×64: a twentieth of the data per slider move).
        st.session_state[LAYER] = layers[-1]
    layer_column, view_column, channel_column = st.columns([1, 1, 2])
    layer = layer_column.selectbox("Conv layer", layers, key=LAYER, help="A **convolutional layer** slides small pattern detectors (channels) over the photo.")
    publish(st.query_params, {"layer": layer}, keys=("layer",))
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
    explainer("What am I looking at? (activation maps)", "explain_inside", explainers.INSIDE)
