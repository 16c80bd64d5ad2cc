"""The retraining section: everybody's progress bar; the teacher's form and run controls behind a passcode.

Students see only the shared progress of a run. Nothing of the teacher's tools (not even the
passcode field) is in their page until someone in that session presses **Teacher** or opens the
page with ``?teacher=1``; the form and the run controls appear once the passcode is accepted
(``dashboard.passcode``: wrong tries lead to a growing wait per session and per address).

The form's fields, labels and defaults come from ``core.train.TrainConfig`` (its field help texts)
and the ``quick`` recipe, started from the shipped pair's weights; the form builds the config with
``dataclasses.replace`` and the manager turns it into ``python -m core.train`` flags.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import streamlit as st

from core import checkpoints, runs
from core.attacks import norm_symbol
from core.train import RECIPES, TrainConfig

from dashboard import explainers
from dashboard.passcode import attempt, configured_passcode
from dashboard.retraining import shared_manager

PROGRESS_POLL_RUNNING_S = 2
PROGRESS_POLL_IDLE_S = 10
TEACHER_QUERY_PARAMETER = "teacher"
# The TrainConfig fields a teacher may change; everything else keeps the quick recipe's value.
FORM_FIELDS: tuple[str, ...] = ("epochs", "adversarial_epochs", "multiplier", "adv_norm", "adv_step_size", "pgd_iterations", "adv_epsilon")
BUDGET_FIELDS = ("adv_step_size", "adv_epsilon")  # sizes of the change: shown in 1/255 steps for L∞
ITERATION_CHOICES = (1, 2, 3, 5, 10)
OTHER_NORM_BUDGETS = {"l2": 1.0, "l1": 10.0}  # budget ε for L2 / L1 training; the step keeps the recipe's step/budget ratio
MAX_EPOCHS = 200
FIELDS = {item.name: item for item in dataclasses.fields(TrainConfig)}


def render(data_dir: Path | None) -> None:
    """The whole section; call it inside ``st.sidebar`` (or anywhere)."""
    st.header("7 · Retrain the models")
    with st.expander("What does retraining do?"):
        st.markdown(explainers.RETRAIN)
    # Every open page polls the shared run: every 2 s while one is going, every 10 s otherwise.
    # An idle class of 30 thus sends 3 polls a second instead of 15 (each one a script run, and each
    # a chance to collide with a student's own rerun request). The same poll notices when the
    # teacher shows another run to the class.
    fast = shared_manager().status().running
    st.session_state["progress_polled_fast"] = fast
    st.fragment(run_every=PROGRESS_POLL_RUNNING_S if fast else PROGRESS_POLL_IDLE_S)(_progress)()
    _teacher_tools(data_dir)


# --- the teacher's tools ---------------------------------------------------------------------------


def teacher_requested() -> bool:
    """Whether this session asked for the teacher's tools (button, or ``?teacher=1`` in the address)."""
    return bool(st.session_state.get("teacher_requested")) or st.query_params.get(TEACHER_QUERY_PARAMETER) == "1"


def teacher_unlocked() -> bool:
    return bool(st.session_state.get("teacher_unlocked"))


@st.fragment
def _teacher_tools(data_dir: Path | None) -> None:
    if not teacher_requested():
        if not st.button("Teacher", key="teacher_button", help="Retraining and choosing the class's models need the teacher passcode."):
            return
        st.session_state["teacher_requested"] = True
    passcode = configured_passcode()
    if passcode is None:
        st.info(
            "Retraining is disabled: no teacher passcode is configured. Set `teacher_passcode` in "
            "`.streamlit/secrets.toml` or the `BEANGUARD_TEACHER_PASSCODE` environment variable, then restart."
        )
        return
    if not teacher_unlocked():
        _unlock(passcode)
        return
    _retrain_form(data_dir)
    _run_controls()
    if st.button("Leave teacher mode", key="teacher_lock"):
        st.session_state["teacher_unlocked"] = st.session_state["teacher_requested"] = False
        st.rerun()


def _unlock(passcode: str) -> None:
    with st.form("teacher_unlock_form", border=False):
        given = st.text_input("Teacher passcode", type="password", key="teacher_passcode")
        submitted = st.form_submit_button("Unlock", key="teacher_unlock")
    if not submitted:
        return
    result = attempt(given or "", passcode)
    if result.accepted:
        st.session_state["teacher_unlocked"] = True
        st.rerun()
    st.error(result.message)


def field_label(name: str) -> str:
    """A form label from TrainConfig's own help text for the field (one source of names)."""
    text = FIELDS[name].metadata.get("help", name.replace("_", " "))
    return text[0].upper() + text[1:]


def quick_config(checkpoint_dir: str | Path | None = None) -> TrainConfig:
    """The ``quick`` recipe started from the shipped pair: its weights, architecture and input size."""
    folder = checkpoints.checkpoint_dir(checkpoint_dir)
    try:
        trained_with = checkpoints.load_metadata(folder).get("config", {})
    except checkpoints.CheckpointError:
        trained_with = {}
    recipe = RECIPES["quick"]
    return dataclasses.replace(
        recipe,
        init_from=str(folder),
        arch=trained_with.get("arch", "seed"),  # checkpoints from before --arch are the seed's network
        image_size=int(trained_with.get("image_size", recipe.image_size)),
    )


def norm_defaults(recipe: TrainConfig, norm: str) -> tuple[float, float]:
    """(step, budget ε) for training against ``norm``: the recipe's for its norm, else the same ratio."""
    if norm == recipe.adv_norm:
        return recipe.adv_step_size, recipe.adv_epsilon
    budget = OTHER_NORM_BUDGETS[norm]
    return budget * recipe.adv_step_size / recipe.adv_epsilon, budget


def form_config(recipe: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """The run the form asks for: ``recipe`` with the teacher's values (budgets in model units)."""
    unknown = set(values) - set(FORM_FIELDS)
    if unknown:
        raise ValueError(f"Not form fields: {sorted(unknown)}")
    return dataclasses.replace(recipe, **values)


def _retrain_form(data_dir: Path | None) -> None:
    recipe = quick_config()
    with st.expander("Retrain", expanded=True):
        norms = FIELDS["adv_norm"].metadata.get("choices", ("infinity", "l2", "l1"))
        norm = st.selectbox(field_label("adv_norm"), norms, index=norms.index(recipe.adv_norm), format_func=norm_symbol, key="train_adv_norm")
        scale = 255.0 if norm == "infinity" else 1.0
        unit = " (in 1/255 steps)" if norm == "infinity" else ""
        defaults = dict(zip(BUDGET_FIELDS, norm_defaults(recipe, norm)))
        with st.form("retrain_form", border=False):
            values: dict[str, Any] = {"adv_norm": norm}
            values["epochs"] = st.number_input(
                field_label("epochs"), 0, MAX_EPOCHS, recipe.epochs, key="train_epochs", help=FIELDS["epochs"].metadata.get("help")
            )
            values["adversarial_epochs"] = st.number_input(field_label("adversarial_epochs"), 1, MAX_EPOCHS, recipe.adversarial_epochs, key="train_adversarial_epochs")
            values["multiplier"] = st.slider(field_label("multiplier"), 0.0, 2.0, float(recipe.multiplier), 0.05, key="train_multiplier")
            for name in BUDGET_FIELDS:
                shown = st.number_input(f"{field_label(name)}{unit}", 0.0, 100.0 * scale, defaults[name] * scale, key=f"train_{name}_{norm}")
                values[name] = float(shown) / scale
            choices = tuple(sorted({*ITERATION_CHOICES, recipe.pgd_iterations}))
            values["pgd_iterations"] = st.select_slider(field_label("pgd_iterations"), choices, value=recipe.pgd_iterations, key="train_pgd_iterations")
            label = st.text_input("Run name (optional)", key="train_label", max_chars=40, help="Becomes part of the run's folder name.")
            evaluate = st.checkbox("Also compute the full evaluation table (minutes more)", key="train_evaluate")
            start = st.form_submit_button("Start retraining", type="primary", key="train_start")
            stop = st.form_submit_button("Stop the running run", key="train_stop")
        st.caption(
            f"Starts from the shipped models' weights ({recipe.arch} network, {recipe.image_size} px); the shipped "
            "models themselves never change. Each run is kept in its own folder."
        )
    if not teacher_unlocked():  # the form is only drawn when unlocked; a stale submit is refused all the same
        st.error("Unlock the teacher tools first.")
        return
    manager = shared_manager()
    if stop:
        st.info(manager.cancel()[1])
    elif start:
        values = {**values, "epochs": int(values["epochs"]), "adversarial_epochs": int(values["adversarial_epochs"]), "pgd_iterations": int(values["pgd_iterations"])}
        started, message = manager.start(form_config(recipe, values), data_dir, label=label or "", evaluate=bool(evaluate))
        (st.success if started else st.warning)(message)


def _run_title(run: runs.Run, active: str) -> str:
    marks = [" · the class sees this" if run.key == active else "", " · read-only" if run.read_only else ""]
    return run.title + "".join(marks)


def _run_controls() -> None:
    """Which run the class sees, restoring the shipped pair, deleting runs, disk usage."""
    with st.expander("Runs: what the class sees", expanded=True):
        notice = st.session_state.pop("runs_notice", None)
        if notice:
            st.success(notice)
        choices = runs.list_runs()
        active = runs.active_key()
        keys = [run.key for run in choices]
        by_key = {run.key: run for run in choices}
        default = keys.index(active) if active in keys else 0
        key = st.selectbox("Run", keys, index=default, format_func=lambda k: _run_title(by_key[k], active), key="runs_choice")
        chosen = by_key[key]
        left, right = st.columns(2)
        show = left.button("Show to the class", key="runs_show", disabled=key == active, type="primary")
        delete = right.button("Delete this run", key="runs_delete", disabled=chosen.read_only or key == active)
        restore = st.button("Restore the shipped models", key="runs_restore", disabled=active == runs.SHIPPED_KEY)
        trained = runs.trained_runs()
        st.caption(
            f"Runs use {runs.format_bytes(runs.disk_usage())} in `{runs.runs_dir()}`: {len(trained)} kept, "
            f"at most the newest {runs.keep_runs()} (`{runs.KEEP_RUNS_ENV}`)."
        )
    try:
        if show:
            _switched(runs.set_active(key), "now shown to the class")
        elif restore:
            _switched(runs.restore_shipped(), "restored for the class")
        elif delete:
            deleted = runs.delete_run(key)
            _notice(f"Deleted {deleted.title}.")
    except runs.RunError as error:
        st.error(str(error))


def _switched(run: runs.Run, what: str) -> None:
    """Reload this page with the new run; the other pages follow within one poll (10 s)."""
    _notice(f"{run.title}: {what}. Every open page switches within {PROGRESS_POLL_IDLE_S} s.")


def _notice(message: str) -> None:
    """Say ``message`` after the whole page reloaded (the models it shows may have changed)."""
    st.session_state["runs_notice"] = message
    st.rerun()


# --- everybody: the shared run's progress ----------------------------------------------------------


def _progress() -> None:
    """Polled in every session (a fragment, see :func:`render`). A run that starts switches the page
    to fast polling; a finished run or another run chosen for the class reloads the whole page."""
    status = shared_manager().status()
    if status.running and not st.session_state.get("progress_polled_fast", False):
        st.rerun()  # the whole app: the poll interval is chosen there
    if "seen_training_run" not in st.session_state:
        st.session_state["seen_training_run"] = status.run_id - 1 if status.running else status.run_id
    if not status.running and status.run_id > st.session_state["seen_training_run"]:
        st.session_state["seen_training_run"] = status.run_id
        if status.state == "succeeded":
            st.rerun()  # the whole app: the class now sees the new run
    if st.session_state.get("class_run_key", runs.active_key()) != runs.active_key():
        st.rerun()  # the teacher chose another run: the whole app loads it
    if status.state == "idle":
        return
    if status.running:
        st.progress(status.fraction, text=f"Retraining: {status.phase} ({len(status.epochs)}/{status.total_epochs} epochs)")
    elif status.state == "succeeded":
        finished = time.strftime("%H:%M", time.localtime(status.finished_at or time.time()))
        st.success(f"{status.message} (finished at {finished})")
    else:
        st.error(status.message)
        if status.log_tail:
            with st.expander("Last lines of the training log"):
                st.code(status.log_tail, language=None)
    if status.epochs:
        st.dataframe(epoch_rows(status.epochs[-6:]), hide_index=True, width="stretch")


def epoch_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
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
