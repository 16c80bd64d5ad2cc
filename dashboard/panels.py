"""The main area: see it, compare the models, look inside, robustness at a glance.

Everything below :func:`live_attack` is one ``st.fragment``: moving an attack slider reruns only
this part (one cached call into core, then plots), never model or data loading. "Look inside" and
"Robustness" are nested fragments, so choosing a channel or pressing a button reruns only them.
"""

from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from core.activations import top_channels
from core.attacks import NORMS, norm_symbol
from core.checkpoints import ModelPair
from core.data import Split
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS

from dashboard import explainers, resources
from dashboard.analysis import MODEL_NAMES, AttackSettings, Interaction, ModelOutcome, accuracy_curve, split_accuracy_rows
from dashboard.sidebar import Sample, attack_controls
from dashboard.views import MODEL_TITLES, activation_figure, class_title, curve_figure, perturbation_figure, probability_figure, top_channels_figure

PLOT_CONFIG = {"displayModeBar": False}
TOP_CHANNEL_COUNTS = (2, 3, 4, 6)


@st.fragment
def live_attack(pair: ModelPair, sample: Sample, split: Split, data_key: str, class_names: Sequence[str]) -> None:
    """Sections 2–6. The attack controls live in the sidebar but belong to this fragment."""
    with st.sidebar:
        settings = attack_controls()
    result = resources.interaction(pair, sample.key, sample.image, sample.true_label, settings)
    _see_it(sample, result)
    _compare(result, class_names)
    _look_inside(result)
    _robustness(pair, split, data_key, settings)


def _see_it(sample: Sample, result: Interaction) -> None:
    st.header("3 · See it")
    st.markdown(f"**{sample.title[0].upper()}{sample.title[1:]}** · {result.settings.description}.")
    if sample.true_label is None and result.settings.kind == "attack":
        st.caption("No true label was given, so each attack pushes its model away from that model's own answer on the clean image.")
    norm = result.settings.norm if result.settings.kind == "attack" else None
    if result.shared_perturbation:
        if result.settings.kind == "corruption":
            heading = "What both models see"
        else:
            heading = f"Made with the {result.settings.source} model's gradients, shown to both"
        st.plotly_chart(perturbation_figure(result.image, result.perturbations[MODEL_NAMES[0]], norm, heading), config=PLOT_CONFIG)
    else:
        for name in MODEL_NAMES:
            heading = f"{MODEL_TITLES[name]}, attacked through its own gradients"
            st.plotly_chart(perturbation_figure(result.image, result.perturbations[name], norm, heading), config=PLOT_CONFIG)
    with st.expander("What am I looking at? (the attack and the three pictures)"):
        st.markdown(explainers.ATTACK)
        st.markdown(explainers.SEE)
        st.markdown(explainers.PICK)


def _verdict(outcome: ModelOutcome, class_names: Sequence[str], true_label: int | None) -> str:
    """One line: the clean and the perturbed answer with confidence, marked right or wrong."""

    def answer(prediction: int, probabilities: Any) -> str:
        mark = "" if true_label is None else (" :green[**✓ right**]" if prediction == true_label else " :red[**✗ wrong**]")
        return f"**{class_title(class_names[prediction])}** {probabilities[prediction]:.1%}{mark}"

    clean = answer(outcome.clean_prediction, outcome.clean_probabilities)
    perturbed = answer(outcome.perturbed_prediction, outcome.perturbed_probabilities)
    if true_label is None:
        change = "kept its answer" if outcome.clean_prediction == outcome.perturbed_prediction else "changed its mind"
        return f"Clean: {clean} → perturbed: {perturbed} ({change})"
    return f"Clean: {clean} → perturbed: {perturbed}"


def _compare(result: Interaction, class_names: Sequence[str]) -> None:
    st.header("4 · Compare the models")
    for column, name in zip(st.columns(len(MODEL_NAMES), gap="large"), MODEL_NAMES):
        outcome = result.outcomes[name]
        with column, st.container(key=f"prediction_{name}", border=True):
            st.subheader(MODEL_TITLES[name])
            st.markdown(_verdict(outcome, class_names, result.true_label))
            reference = result.true_label if result.true_label is not None else outcome.clean_prediction
            reference_name = "the true class" if result.true_label is not None else "its clean answer"
            before, after = float(outcome.clean_probabilities[reference]), float(outcome.perturbed_probabilities[reference])
            st.metric(
                f"Confidence in {reference_name} ({class_title(class_names[reference])})",
                f"{after:.1%}",
                delta=f"{(after - before) * 100:+.1f} points",
                help=f"Clean image: {before:.1%}. Perturbed image: {after:.1%}.",
            )
            st.caption(f"Threat model: {result.settings.threat_model(name)}.")
            st.plotly_chart(probability_figure(outcome, class_names, result.true_label), config=PLOT_CONFIG)
    with st.expander("What am I looking at? (the two models)"):
        st.markdown(explainers.COMPARE)


@st.fragment
def _look_inside(result: Interaction) -> None:
    st.header("5 · Look inside")
    layers = result.layer_names
    layer_column, view_column, channel_column = st.columns([1, 1, 2])
    layer = layer_column.selectbox("Conv layer", layers, key="layer")
    view = view_column.radio("Show", ["channel", "top"], format_func={"channel": "One channel", "top": "Top channels"}.get, horizontal=True, key="channel_view")
    channels = result.outcomes[MODEL_NAMES[0]].clean_maps[layer].shape[-1]
    if view == "channel":
        busiest = top_channels(result.outcomes[MODEL_NAMES[0]].clean_maps[layer], 1)[0]  # a live channel, not a dead one
        channel = channel_column.slider("Channel", 0, channels - 1, busiest, key=f"channel_{layer}")
        figure = activation_figure(result.outcomes, layer, channel)
    else:
        count = channel_column.select_slider("Channels per model", [c for c in TOP_CHANNEL_COUNTS if c <= channels], value=min(4, channels), key="top_count")
        figure = top_channels_figure(result.outcomes, layer, count)
    st.plotly_chart(figure, config=PLOT_CONFIG)
    with st.expander("What am I looking at? (activation maps)"):
        st.markdown(explainers.INSIDE)


@st.fragment
def _robustness(pair: ModelPair, split: Split, data_key: str, settings: AttackSettings) -> None:
    st.header("6 · Robustness at a glance")
    store = resources.result_store()
    evaluation = pair.metadata.get("evaluation") or {}
    saved_curves = evaluation.get("curves") or {}
    for tab, norm in zip(st.tabs([f"{norm_symbol(norm)} accuracy curve" for norm in NORMS]), NORMS):
        with tab:
            key = ("curve", pair.version, data_key, norm)
            curve = store.get(key)
            origin = f"computed here on {len(split)} test images"
            if curve is None and norm in saved_curves:
                curve, origin = saved_curves[norm], f"saved with the models, on {evaluation.get('examples', '?')} test images"
            if curve is None:
                st.caption(
                    f"Not computed yet: white-box PGD-{CURVE_ITERATIONS} at {len(CURVE_EPSILONS[norm])} budgets on all "
                    f"{len(split)} test images, for both models (a little while on a laptop; done once for everybody)."
                )
                if st.button(f"Compute the {norm_symbol(norm)} curve", key=f"curve_button_{norm}"):
                    bar = st.progress(0.0, text="Starting…")
                    curve = accuracy_curve(pair, split, norm, progress=lambda fraction, message: bar.progress(fraction, text=message))
                    store.put(key, curve)
                    bar.empty()
            if curve is not None:
                current = settings.epsilon if settings.kind == "attack" and settings.norm == norm else None
                st.plotly_chart(curve_figure(curve, norm, current), config=PLOT_CONFIG)
                st.caption(f"Accuracy vs budget, {origin}.")
    st.subheader("Your settings on the whole test split")
    key = ("table", pair.version, data_key, settings)
    rows = store.get(key)
    if rows is None:
        st.caption(f"Runs *{settings.description}* on all {len(split)} test images and compares with clean accuracy.")
        if st.button("Run my settings on the whole test split", key="table_button"):
            bar = st.progress(0.0, text="Starting…")
            rows = split_accuracy_rows(pair, split, settings, progress=lambda fraction, message: bar.progress(fraction, text=message))
            store.put(key, rows)
            bar.empty()
    if rows is not None:
        _accuracy_table(rows)
    if evaluation.get("rows"):
        with st.expander(f"The evaluation table saved with these models ({evaluation.get('examples', '?')} test images)"):
            _accuracy_table([{"row": r["name"], "baseline": r["baseline"], "adversarial": r["adversarial"], "threat model": r["threat_model"]} for r in evaluation["rows"]])
    with st.expander("What am I looking at? (whole-split numbers)"):
        st.markdown(explainers.ROBUSTNESS)


def _accuracy_table(rows: list[dict[str, Any]]) -> None:
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "row": st.column_config.TextColumn("attack", width="large"),
            "baseline": st.column_config.NumberColumn("baseline", format="percent"),
            "adversarial": st.column_config.NumberColumn("adversarial", format="percent"),
            "threat model": st.column_config.TextColumn("threat model", width="medium"),
        },
    )
