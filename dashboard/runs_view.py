"""Which run the class sees, and every run side by side: what the multiplier or the budget buys and costs.

- :func:`class_run` reads ``core.runs``' pointer on every full rerun (one small file), so a run
  the teacher chooses reaches every page on its next rerun (at most one 10 s poll later). A run
  whose files do not match their digests is refused with a message, and the class sees the
  shipped pair instead.
- :func:`render` lines up every run (shipped, examples, retraining runs): training settings at
  once; clean and robust accuracy (white-box PGD-10 L∞ at a budget ε the page chooses) on a button,
  computed once per server for every session; a clean-vs-robust scatter; and any two runs side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import plotly.graph_objects as go
import streamlit as st

from core import checkpoints, runs
from core.attacks import Attack, attack, norm_symbol
from core.checkpoints import ModelPair
from core.data import DataError, Split
from core.evaluate import accuracy

from dashboard import resources
from dashboard.views import MODEL_COLOURS, MODEL_TITLES

PLOT_CONFIG = {"displayModeBar": False}
ROBUST_ITERATIONS = 10
MODEL_NAMES = ("baseline", "adversarial")
MAX_BUDGET_STEPS = 16  # budget ε in 1/255 steps, as on the attack slider


# --- what the class sees ---------------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def _refusal(key: str, name: str, folder: str, kind: str, version: str) -> str | None:
    """``core.runs.refusal`` once per version of the files (hashing is cheap, not free)."""
    return runs.refusal(runs.Run(key, name, Path(folder), kind))


def class_run() -> runs.Run:
    """The run every page shows now (the shipped pair unless the teacher chose another)."""
    st.session_state["class_run_key"] = runs.active_key()  # the progress poll reruns the page when it changes
    run = runs.active_run()
    problem = _refusal(run.key, run.name, str(run.folder), run.kind, checkpoints.pair_version(run.folder))
    if problem:
        st.error(f"{problem} The class sees the shipped models until the teacher chooses another run.")
        return runs.shipped_run()
    if run.kind != "shipped":
        st.caption(f"The class sees **{run.title}**, chosen by the teacher.")
    return run


def class_folder() -> Path:
    """The folder of :func:`class_run` (what ``dashboard/app.py`` loads)."""
    return class_run().folder


# --- measuring runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Test-split accuracy of a run's two models, clean and under one white-box attack."""

    clean: dict[str, float]
    robust: dict[str, float]
    attack: str


def measure(pair: ModelPair, split: Split, epsilon: float, iterations: int = ROBUST_ITERATIONS) -> Measurement:
    """Clean and white-box PGD accuracy (L∞, budget ``epsilon``) of both models on ``split``."""
    threat = Attack("infinity", float(epsilon), iterations)
    clean, robust = {}, {}
    for name in MODEL_NAMES:
        model = pair[name]
        clean[name] = accuracy(model, split.images, split.labels)
        robust[name] = accuracy(model, attack(split.images, split.labels, model, threat), split.labels)
    return Measurement(clean, robust, threat.label)


def run_settings(run: runs.Run) -> dict[str, Any]:
    """One table row of what a run was trained with (from its metadata.json)."""
    metadata = run.metadata()
    config = metadata.get("config", {})
    norm = config.get("adv_norm")
    epsilon = config.get("adv_epsilon")
    budget = None
    if epsilon is not None:
        budget = f"{float(epsilon) * 255:g}/255" if norm == "infinity" else f"{float(epsilon):g}"
    return {
        "run": run.title,
        "trained": (metadata.get("trained_at") or "")[:16].replace("T", " "),
        "multiplier": config.get("multiplier"),
        "norm": norm_symbol(norm) if norm else None,
        "budget ε": budget,
        "epochs": f"{config.get('epochs', '?')} + {config.get('adversarial_epochs', '?')}" if config else None,
        "input px": config.get("image_size"),
    }


def _measurement_key(run: runs.Run, data_key: str, epsilon: float) -> tuple:
    return ("run-measurement", run.key, checkpoints.pair_version(run.folder), data_key, round(float(epsilon), 6))


def _measure_all(choices: Sequence[runs.Run], data_dir: Path | None, epsilon: float) -> list[str]:
    """Measure every run not measured yet; returns the problems met (one line each)."""
    store, problems = resources.result_store(), []
    data_key = str(data_dir or "tfds")
    bar = st.progress(0.0, text="Measuring the runs…")
    for index, run in enumerate(choices):
        key = _measurement_key(run, data_key, epsilon)
        if store.get(key) is None:
            try:
                pair = runs.load_run(run)
                size = int(pair.baseline.input_shape[1])
                split = resources.load_test_split(str(data_dir) if data_dir is not None else None, size)
                store.put(key, measure(pair, split, epsilon))
            except (checkpoints.CheckpointError, DataError) as error:
                problems.append(f"{run.title}: {error}")
        bar.progress((index + 1) / len(choices), text=f"Measured {index + 1} of {len(choices)} runs")
    bar.empty()
    return problems


# --- the view --------------------------------------------------------------------------------------


def scatter_figure(points: Sequence[tuple[str, str, Measurement]]) -> go.Figure:
    """Clean accuracy (x) against robust accuracy (y): one marker per run and model."""
    figure = go.Figure()
    for model in MODEL_NAMES:
        mine = [(title, m) for title, name, m in points if name == model]
        figure.add_trace(
            go.Scatter(
                x=[100 * m.clean[model] for _, m in mine],
                y=[100 * m.robust[model] for _, m in mine],
                mode="markers+text",
                text=[title for title, _ in mine],
                textposition="top center",
                name=MODEL_TITLES[model],
                marker={"color": MODEL_COLOURS[model], "size": 12},
                hovertemplate="%{text}<br>clean %{x:.1f}%<br>robust %{y:.1f}%<extra></extra>",
            )
        )
    attack_label = points[0][2].attack if points else ""
    figure.update_layout(
        title={"text": f"Clean vs robust test accuracy ({attack_label}, white-box)"},
        xaxis={"title": "clean accuracy (%)", "range": [0, 102]},
        yaxis={"title": "robust accuracy (%)", "range": [0, 102]},
        height=420,
        margin={"l": 8, "r": 8, "t": 56, "b": 8},
        legend={"orientation": "h"},
    )
    return figure


def _budget() -> float:
    """Budget ε of the comparison's attack: starts at the attack slider's L∞ value (the current budget)."""
    current = int(st.session_state.get("epsilon_infinity", 8)) or 8
    steps = st.slider(
        "Budget ε for the robust accuracy (PGD-10 L∞)", 1, MAX_BUDGET_STEPS, min(current, MAX_BUDGET_STEPS), 1, format="%d/255", key="runs_budget"
    )
    return steps / 255.0


@st.fragment
def render(data_dir: Path | None) -> None:
    """The comparison section (everyone sees it; measuring is one button, shared by all pages)."""
    st.header("8 · Compare runs")
    st.caption(
        "Every pair of models the class can be shown: the shipped pair, the read-only examples and the "
        "teacher's runs. What did the multiplier or the budget ε buy (robust accuracy) and cost (clean accuracy)?"
    )
    choices = runs.list_runs()
    epsilon = _budget()
    data_key = str(data_dir or "tfds")
    store = resources.result_store()
    if st.button(f"Measure every run at this budget ({len(choices)} run{'s' if len(choices) != 1 else ''}, up to ~20 s each)", key="runs_measure"):
        for problem in _measure_all(choices, data_dir, epsilon):
            st.error(problem)
    measured = {run.key: store.get(_measurement_key(run, data_key, epsilon)) for run in choices}
    rows = []
    for run in choices:
        row = run_settings(run)
        result = measured[run.key]
        for model, short in (("baseline", "baseline"), ("adversarial", "NSL")):
            row[f"clean {short}"] = f"{result.clean[model]:.1%}" if result else "–"
            row[f"robust {short}"] = f"{result.robust[model]:.1%}" if result else "–"
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    points = [(run.name if run.kind != "shipped" else "shipped", model, measured[run.key]) for run in choices for model in MODEL_NAMES if measured[run.key]]
    if points:
        st.plotly_chart(scatter_figure(points), config=PLOT_CONFIG, key="runs_scatter")
    else:
        st.caption("Press the button to measure clean and robust accuracy of every run on the test split.")
    _side_by_side(choices, measured)


def _side_by_side(choices: Sequence[runs.Run], measured: dict[str, Measurement | None]) -> None:
    """Any two runs in two columns: settings, then accuracies with the difference between them."""
    st.subheader("Two runs side by side")
    keys = [run.key for run in choices]
    by_key = {run.key: run for run in choices}
    active = runs.active_key()
    second = keys.index(active) if active in keys and active != keys[0] else min(1, len(keys) - 1)
    picks = []
    for column, default, widget in zip(st.columns(2), (0, second), ("runs_left", "runs_right")):
        with column:
            picks.append(st.selectbox("Run", keys, index=default, format_func=lambda k: by_key[k].title, key=widget))
    results = [measured.get(key) for key in picks]
    for index, (column, key) in enumerate(zip(st.columns(2), picks)):
        with column:
            settings = run_settings(by_key[key])
            st.markdown("  \n".join(f"**{name}**: {value}" for name, value in settings.items() if name != "run" and value is not None))
            mine, other = results[index], results[1 - index]
            if mine is None:
                st.caption("Not measured at this budget yet.")
                continue
            for model in MODEL_NAMES:
                for kind in ("clean", "robust"):
                    value = getattr(mine, kind)[model]
                    delta = None if other is None else f"{100 * (value - getattr(other, kind)[model]):+.1f} points"
                    st.metric(f"{MODEL_TITLES[model]}: {kind}", f"{value:.1%}", delta, delta_color="normal")
