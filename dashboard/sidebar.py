"""Retraining (teacher only): the shared progress bar and the retraining form.

The photo picker and the attack controls moved to :mod:`dashboard.image_picker` and
:mod:`dashboard.attack_controls`; this module is to become ``retrain_panel.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import streamlit as st

from core.attacks import NORMS, norm_symbol
from core.train import TrainConfig

from dashboard import explainers
from dashboard.retraining import TrainingRequest, configured_passcode, passcode_matches, shared_manager

# --- retraining ----------------------------------------------------------------------------------

PROGRESS_POLL_RUNNING_S = 2
PROGRESS_POLL_IDLE_S = 10
CORE_DEFAULTS = TrainConfig()  # the recipe the shipped checkpoints were trained with
# (step per PGD iteration, budget ε) per norm: core's own for L∞, the same step/budget ratio for the others.
TRAINING_DEFAULTS = {
    "infinity": (CORE_DEFAULTS.adv_step_size, CORE_DEFAULTS.adv_epsilon),
    "l2": (0.5, 1.0),
    "l1": (5.0, 10.0),
}
TRAINING_ITERATION_CHOICES = tuple(sorted({1, 2, 3, 5, 10, CORE_DEFAULTS.pgd_iterations}))


def retrain_section(output_dir: Path, data_dir: Path | None, image_size: int) -> None:
    """Section 7: everybody's shared progress bar, and the teacher's retraining form."""
    st.header("7 · Retrain the models")
    with st.expander("What does retraining do?"):
        st.markdown(explainers.RETRAIN)
    # Every open page polls the shared run: every 2 s while one is going, every 10 s otherwise.
    # An idle class of 30 thus sends 3 polls a second instead of 15 (each one a script run, and each
    # a chance to collide with a student's own rerun request).
    fast = shared_manager().status().running
    st.session_state["progress_polled_fast"] = fast
    st.fragment(run_every=PROGRESS_POLL_RUNNING_S if fast else PROGRESS_POLL_IDLE_S)(_retrain_progress)()
    _retrain_form(output_dir, data_dir, image_size)


@st.fragment
def _retrain_form(output_dir: Path, data_dir: Path | None, image_size: int) -> None:
    passcode = configured_passcode()
    if passcode is None:
        st.info(
            "Retraining is disabled: no teacher passcode is configured. Set `teacher_passcode` in "
            "`.streamlit/secrets.toml` or the `BEANGUARD_TEACHER_PASSCODE` environment variable, then restart."
        )
        st.button("Start retraining", disabled=True, key="train_start")
        return
    with st.expander("Teacher: settings and start"):
        norm = st.selectbox("Training attack norm", NORMS, format_func=norm_symbol, key="train_norm")
        default_step, default_budget = TRAINING_DEFAULTS[norm]
        scale = 255.0 if norm == "infinity" else 1.0
        unit = " (in 1/255 steps)" if norm == "infinity" else ""
        with st.form("retrain_form", border=False):
            epochs = st.number_input(
                "Epochs per model", 1, 200, CORE_DEFAULTS.epochs, key="train_epochs", help="The shipped models used this many; fewer is faster and weaker."
            )
            multiplier = st.slider(
                "Multiplier (weight of the adversarial loss)", 0.0, 2.0, float(CORE_DEFAULTS.multiplier), 0.1, key="train_multiplier"
            )
            step = st.number_input(f"Step size{unit}", 0.0, 100.0 * scale, default_step * scale, key=f"train_step_{norm}")
            iterations = st.select_slider(
                "PGD iterations", TRAINING_ITERATION_CHOICES, value=CORE_DEFAULTS.pgd_iterations, key="train_iterations"
            )
            budget = st.number_input(f"PGD budget ε{unit}", 0.0, 100.0 * scale, default_budget * scale, key=f"train_budget_{norm}")
            evaluate = st.checkbox("Also compute the full evaluation table (slower)", key="train_evaluate")
            given = st.text_input("Teacher passcode", type="password", key="train_passcode")
            start = st.form_submit_button("Start retraining", type="primary", key="train_start")
            stop = st.form_submit_button("Stop the running job", key="train_stop")
    if not (start or stop):
        return
    if not passcode_matches(given or "", passcode):
        st.error("Wrong teacher passcode; nothing was started or stopped.")
        return
    manager = shared_manager()
    if stop:
        st.info(manager.cancel()[1])
        return
    request = TrainingRequest(
        epochs=int(epochs),
        image_size=image_size,
        multiplier=float(multiplier),
        adv_step_size=step / scale,
        adv_norm=norm,
        pgd_iterations=int(iterations),
        adv_epsilon=budget / scale,
        evaluate=bool(evaluate),
    )
    started, message = manager.start(request, output_dir, data_dir)
    (st.success if started else st.warning)(message)


def _retrain_progress() -> None:
    """Polled in every session (a fragment, see :func:`retrain_section`). A run that starts switches
    the page to fast polling, a finished one loads the new models: both by one full rerun."""
    status = shared_manager().status()
    if status.running and not st.session_state.get("progress_polled_fast", False):
        st.rerun()  # the whole app: the poll interval is chosen there
    if "seen_training_run" not in st.session_state:
        st.session_state["seen_training_run"] = status.run_id - 1 if status.running else status.run_id
    if not status.running and status.run_id > st.session_state["seen_training_run"]:
        st.session_state["seen_training_run"] = status.run_id
        if status.state == "succeeded":
            st.rerun()  # the whole app: pair_version changed, so the models reload
    if status.state == "idle":
        return
    if status.running:
        total = status.request.total_epochs if status.request else 0
        st.progress(status.fraction, text=f"Retraining: {status.phase} ({len(status.epochs)}/{total} epochs)")
    elif status.state == "succeeded":
        finished = time.strftime("%H:%M", time.localtime(status.finished_at or time.time()))
        st.success(f"{status.message} (finished at {finished})")
    else:
        st.error(status.message)
        if status.log_tail:
            with st.expander("Last lines of the training log"):
                st.code(status.log_tail, language=None)
    if status.epochs:
        st.dataframe(_epoch_rows(status.epochs[-6:]), hide_index=True, width="stretch")


def _epoch_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
    """The latest epochs, narrow enough for the sidebar."""
    return [
        {
            "model": "NSL" if record.model == "adversarial" else record.model,
            "epoch": f"{record.epoch}/{record.epochs}",
            "loss": round(record.metrics.get("loss", float("nan")), 2),
            "val acc": f"{record.metrics.get('val_accuracy', float('nan')):.0%}",
        }
        for record in records
    ]
