"""Which run the class sees, and every run side by side: what the multiplier or the budget buys and costs.

- :func:`class_run` reads ``core.runs``' pointer in the class store on every full rerun (one indexed
  read; every replica of the class reads the same value), so a run the teacher chooses reaches every
  page on its next rerun (its class poll, every 2 s, notices). Without a reachable store it reads the runs
  folder's ``active.json`` (the page says at its top why the store is away). A run
  whose files do not match their digests is refused with a message, and the class sees the
  shipped pair instead.
- :func:`render` lines up every run (shipped, examples, retraining runs): training settings at
  once; clean and robust accuracy (white-box PGD-10 L∞ at a budget ε the page chooses) on a button,
  computed once for every session of every replica (shared through the class store); a clean-vs-robust
  scatter; and any two runs side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import streamlit as st

from core import checkpoints, runs
from core.attacks import DEFAULT_PGD_STEPS, Attack, attack, from_display
from core.checkpoints import ModelPair
from core.data import DataError, Split
from core.evaluate import accuracy

from dashboard import resources
from dashboard.class_store import store_or_none
from dashboard.settings import MODEL_NAMES, TEACHER_UNLOCKED, budget_key, budget_range
from dashboard.views import PLOT_CONFIG, runs_figure
from dashboard.wording import MODEL_TITLES, run_title, run_titles, trained_budget

ROBUST_ITERATIONS = DEFAULT_PGD_STEPS


# --- what the class sees ---------------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def _refusal(key: str, name: str, folder: str, kind: str, version: str) -> str | None:
    """``core.runs.refusal`` once per version of the files (hashing is cheap, not free)."""
    return runs.refusal(runs.Run(key, name, Path(folder), kind))


def class_run() -> runs.Run:
    """The run every page shows now (the shipped pair unless the teacher chose another)."""
    key = runs.active_key(store=store_or_none())
    st.session_state["class_run_key"] = key  # the progress poll reruns the page when it changes
    run = runs.shipped_run() if key == runs.SHIPPED_KEY else runs.find_run(key) or runs.shipped_run()
    problem = _refusal(run.key, run.name, str(run.folder), run.kind, checkpoints.pair_version(run.folder))
    if problem:
        st.error(f"{problem} The class sees the shipped models until the teacher chooses another run.")
        return runs.shipped_run()
    if run.kind != "shipped":
        st.caption(f"The class sees **{run_title(run.kind, run.name, run.metadata())}**, chosen by the teacher.")
    return run


def class_folder() -> Path:
    """The folder of :func:`class_run` (what ``dashboard/page_script.py`` loads)."""
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


def _measurement(value: dict) -> Measurement:
    """A measurement as the class store gives it back (shared by every replica)."""
    return Measurement(**value)


def run_settings(run: runs.Run, title: str) -> dict[str, Any]:
    """One table row of what a run was trained with (from its metadata.json), narrow enough for 1280 px."""
    metadata = run.metadata()
    config = metadata.get("config", {})
    return {
        "run": title,
        "multiplier": config.get("multiplier"),
        "budget ε": trained_budget(metadata),
        "epochs": f"{config.get('epochs', '?')} + {config.get('adversarial_epochs', '?')}" if config else None,
        "noise σ": config.get("noise_sigma", 0.0),  # Gaussian noise in training (a run made for randomized smoothing)
    }


def _measurement_key(run: runs.Run, data_dir: Path | None, epsilon: float) -> tuple:
    """A run's measurement depends on its files, the data source and the budget (each run keeps its own photo size)."""
    return ("run-measurement", run.key, checkpoints.pair_version(run.folder), str(data_dir or "tfds"), round(float(epsilon), 6))


def _measure_all(choices: Sequence[runs.Run], data_dir: Path | None, epsilon: float) -> list[str]:
    """Measure every run not measured yet; returns the problems met (one line each)."""
    store, problems = resources.result_store(), []
    bar = st.progress(0.0, text="Measuring the runs…")
    for index, run in enumerate(choices):
        key = _measurement_key(run, data_dir, epsilon)
        if store.get_shared(key, _measurement) is None:
            try:
                pair = runs.load_run(run)
                split = resources.load_test_split(str(data_dir) if data_dir is not None else None, pair.image_size)
                store.put_shared(key, measure(pair, split, epsilon), dataclasses.asdict)
            except (checkpoints.CheckpointError, DataError) as error:
                problems.append(f"{run.title}: {error}")
        bar.progress((index + 1) / len(choices), text=f"Measured {index + 1} of {len(choices)} runs")
    bar.empty()
    return problems


# --- the view --------------------------------------------------------------------------------------


def _budget() -> float:
    """Budget ε of the comparison's attack: starts at the attack slider's L∞ value (the current budget)."""
    top = int(budget_range("infinity")[1])
    current = int(st.session_state.get(budget_key("infinity"), 8)) or 8
    steps = st.slider(
        f"Budget ε for the robust accuracy (PGD-{ROBUST_ITERATIONS} L∞)", 1, top, min(current, top), 1, format="%d/255", key="runs_budget"
    )
    return from_display("infinity", steps)


@st.fragment
def render(data_dir: Path | None) -> None:
    """The comparison section (everyone sees it; measuring is one button, shared by all pages)."""
    st.caption(
        "Every pair of models the class can be shown: the shipped pair, the read-only examples and the "
        "teacher's runs. What did the multiplier or the budget ε buy (robust accuracy) and cost (clean accuracy)?"
    )
    choices = runs.list_runs()
    epsilon = _budget()
    store = resources.result_store()
    if st.session_state.get(TEACHER_UNLOCKED):  # whole-split work for every run: the teacher's to start, shared by all pages
        if st.button(f"Measure every run at this budget ({len(choices)} run{'s' if len(choices) != 1 else ''}, up to ~20 s each)", key="runs_measure"):
            for problem in _measure_all(choices, data_dir, epsilon):
                st.error(problem)
    measured = {run.key: store.get_shared(_measurement_key(run, data_dir, epsilon), _measurement) for run in choices}
    rows, titles = [], run_titles(choices)
    for run in choices:
        row = run_settings(run, titles[run.key])
        result = measured[run.key]
        for model in MODEL_NAMES:
            row[f"{MODEL_TITLES[model]}: clean"] = f"{result.clean[model]:.1%}" if result else "–"
            row[f"{MODEL_TITLES[model]}: robust"] = f"{result.robust[model]:.1%}" if result else "–"
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch", column_config={"run": st.column_config.TextColumn("run", width="large")})
    points = [(row["run"], measured[run.key]) for row, run in zip(rows, choices) if measured[run.key]]
    if points:
        st.plotly_chart(runs_figure([(title, m.clean, m.robust) for title, m in points], points[0][1].attack), config=PLOT_CONFIG, key="runs_scatter")
        st.caption("Each run is a line from its baseline (orange) to its NSL model (green): up is more robust, left is less right on unchanged photos.")
    else:
        who = "Press the button" if st.session_state.get(TEACHER_UNLOCKED) else "The teacher can measure"
        st.caption(f"{who} to measure clean and robust accuracy of every run on the test split.")
    _side_by_side(choices, titles, measured)


def _side_by_side(choices: Sequence[runs.Run], titles: dict[str, str], measured: dict[str, Measurement | None]) -> None:
    """Any two runs in two columns: settings, then accuracies with the difference between them."""
    st.subheader("Two runs side by side")
    keys = [run.key for run in choices]
    by_key = {run.key: run for run in choices}
    active = runs.active_key(store=store_or_none())
    second = keys.index(active) if active in keys and active != keys[0] else min(1, len(keys) - 1)
    picks = []
    for column, default, widget in zip(st.columns(2), (0, second), ("runs_left", "runs_right")):
        with column:
            picks.append(st.selectbox("Run", keys, index=default, format_func=titles.get, key=widget))
    results = [measured.get(key) for key in picks]
    for index, (column, key) in enumerate(zip(st.columns(2), picks)):
        with column:
            settings = run_settings(by_key[key], titles[key])
            st.markdown("  \n".join(f"**{name}**: {value}" for name, value in settings.items() if name != "run" and value is not None))
            mine, other = results[index], results[1 - index]
            if mine is None:
                st.caption("Not measured at this budget yet.")
                continue
            for model in MODEL_NAMES:
                for kind in ("clean", "robust"):
                    value = getattr(mine, kind)[model]
                    difference = None if other is None else 100 * (value - getattr(other, kind)[model])
                    same = difference is not None and abs(difference) < 0.05  # no arrow for no difference
                    delta = None if difference is None else ("no difference" if same else f"{difference:+.1f} points")
                    st.metric(f"{MODEL_TITLES[model]}: {kind}", f"{value:.1%}", delta, delta_color="off" if same else "normal")
