"""Section "Retrain the models": everybody's progress bar; the teacher's form and run controls.

Students see only the shared progress of a run; the form and the run controls appear once the
teacher unlocked this page (section "Teacher tools", ``dashboard/teacher_access.py``).

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
from core.attacks import from_display, norm_symbol, to_display
from core.classroom import ClassroomError
from core.train import RECIPES, TrainConfig

from dashboard import explainers
from dashboard.class_store import problem, store_or_none
from dashboard.settings import TEACHER_UNLOCKED
from dashboard.retraining import shared_manager
from dashboard.widgets import explainer
from dashboard.wording import MODEL_TITLES, run_title, run_titles

PROGRESS_POLL_RUNNING_S = 2
SWITCH_WITHIN_S = 5  # every open page loads a run shown to the class within this (class_sync's 2 s poll)
# The TrainConfig fields a teacher may change; everything else keeps the quick recipe's value.
FORM_FIELDS: tuple[str, ...] = ("epochs", "adversarial_epochs", "multiplier", "adv_norm", "adv_step_size", "pgd_iterations", "adv_epsilon")
ITERATION_CHOICES = (1, 2, 3, 5, 10)
OTHER_NORM_BUDGETS = {"l2": 1.0, "l1": 10.0}  # budget ε for L2 / L1 training; the step keeps the recipe's step/budget ratio
MAX_EPOCHS = 200
FIELDS = {item.name: item for item in dataclasses.fields(TrainConfig)}


def render(data_dir: Path | None) -> None:
    """The whole section; call it inside ``st.sidebar`` (or anywhere)."""
    explainer("What does retraining do?", "explain_retrain", explainers.RETRAIN)
    # Every open page polls the shared run every 2 s while one is going. While none is, the page's
    # one class poll (``class_sync.watch``, every 2 s, one store read per server for all pages)
    # notices a run starting or another run shown to the class and reruns the page: a second,
    # idle poll here would only add a script run per page (an idle class of 30: 3 a second).
    fast = shared_manager().status().running
    st.session_state["progress_polled_fast"] = fast
    st.fragment(run_every=PROGRESS_POLL_RUNNING_S if fast else None)(_progress)()
    _teacher_tools(data_dir)


# --- the teacher's tools ---------------------------------------------------------------------------


@st.fragment
def _teacher_tools(data_dir: Path | None) -> None:
    """The retrain form and the run controls, for the unlocked teacher only (``teacher_access``)."""
    if not st.session_state.get(TEACHER_UNLOCKED):
        st.caption("The teacher starts retraining runs and chooses what the class sees.")
        return
    _retrain_form(data_dir)
    _run_controls()


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


def _budget_input(norm: str, default: float) -> float:
    """The training budget ε in the units the attack slider uses (L∞: whole 1/255 steps)."""
    if norm == "infinity":
        return st.number_input(f"{field_label('adv_epsilon')} (out of 255)", 0, 64, int(round(to_display(norm, default))), 1, key=f"train_adv_epsilon_{norm}")
    return st.number_input(field_label("adv_epsilon"), 0.0, 100.0, float(default), key=f"train_adv_epsilon_{norm}")


def _retrain_form(data_dir: Path | None) -> None:
    recipe = quick_config()
    with st.expander("Retrain", expanded=True):
        norms = FIELDS["adv_norm"].metadata.get("choices", ("infinity", "l2", "l1"))
        norm = st.selectbox(field_label("adv_norm"), norms, index=norms.index(recipe.adv_norm), format_func=norm_symbol, key="train_adv_norm")
        step_default, budget_default = norm_defaults(recipe, norm)
        step_share = step_default / budget_default  # each training step a fixed share of the budget, as in the recipe
        with st.form("retrain_form", border=False):
            values: dict[str, Any] = {"adv_norm": norm}
            values["epochs"] = st.number_input(
                field_label("epochs"), 0, MAX_EPOCHS, recipe.epochs, key="train_epochs", help=FIELDS["epochs"].metadata.get("help")
            )
            values["adversarial_epochs"] = st.number_input(field_label("adversarial_epochs"), 1, MAX_EPOCHS, recipe.adversarial_epochs, key="train_adversarial_epochs")
            values["multiplier"] = st.slider(field_label("multiplier"), 0.0, 2.0, float(recipe.multiplier), 0.05, key="train_multiplier")
            shown = _budget_input(norm, budget_default)
            values["adv_epsilon"] = from_display(norm, shown)
            values["adv_step_size"] = values["adv_epsilon"] * step_share
            choices = tuple(sorted({*ITERATION_CHOICES, recipe.pgd_iterations}))
            values["pgd_iterations"] = st.select_slider(field_label("pgd_iterations"), choices, value=recipe.pgd_iterations, key="train_pgd_iterations")
            label = st.text_input("Run name (optional)", key="train_label", max_chars=40, help="Becomes part of the run's folder name.")
            evaluate = st.checkbox("Also compute the full evaluation table (minutes more)", key="train_evaluate")
            start = st.form_submit_button("Start retraining", type="primary", key="train_start")
            stop = st.form_submit_button("Stop the running run", key="train_stop")
        st.caption(
            f"Starts from the shipped models' weights ({recipe.image_size} px photos); the shipped models themselves never "
            f"change. Each step of the training attack moves the photo by {step_share:.0%} of the budget ε. Each run is kept on its own."
        )
    if not st.session_state.get(TEACHER_UNLOCKED):  # the form is only drawn when unlocked; a stale submit is refused all the same
        st.error("Unlock the teacher tools first.")
        return
    manager = shared_manager()
    if stop:
        st.info(manager.cancel()[1])
    elif start:
        values = {**values, "epochs": int(values["epochs"]), "adversarial_epochs": int(values["adversarial_epochs"]), "pgd_iterations": int(values["pgd_iterations"])}
        started, message = manager.start(form_config(recipe, values), data_dir, label=label or "", evaluate=bool(evaluate))
        (st.success if started else st.warning)(message)


def _run_title(run: runs.Run, title: str, active: str) -> str:
    marks = [" · the class sees this" if run.key == active else "", " · read-only" if run.read_only else ""]
    return title + "".join(marks)


def _run_controls() -> None:
    """Which run the class sees (one value in the class store: every replica reads it), restoring
    the shipped pair, deleting runs, disk usage."""
    with st.expander("Runs: what the class sees", expanded=True):
        notice = st.session_state.pop("runs_notice", None)
        if notice:
            st.success(notice)
        store = store_or_none()
        if store is None:
            st.error(f"Choosing what the class sees needs the class store: {problem()}")
            return
        choices = runs.list_runs()
        active = runs.active_key(store=store)
        keys = [run.key for run in choices]
        by_key = {run.key: run for run in choices}
        default = keys.index(active) if active in keys else 0
        titles = run_titles(choices)
        key = st.selectbox("Run", keys, index=default, format_func=lambda k: _run_title(by_key[k], titles[k], active), key="runs_choice")
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
            _switched(runs.set_active(key, store=store), "now shown to the class")
        elif restore:
            _switched(runs.restore_shipped(store=store), "restored for the class")
        elif delete:
            title = titles[key]  # read before its folder goes
            runs.delete_run(key, store=store)
            _notice(f"Deleted {title}.")
    except (runs.RunError, ClassroomError) as error:
        st.error(str(error))


def _switched(run: runs.Run, what: str) -> None:
    """Reload this page with the new run; the other pages follow within one class poll (2 s)."""
    _notice(f"{run_title(run.kind, run.name, run.metadata())}: {what}. Every open page switches within {SWITCH_WITHIN_S} s.")


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
    active = runs.active_key(store=store_or_none())
    if st.session_state.get("class_run_key", active) != active:
        st.rerun()  # the teacher chose another run (on any replica): the whole app loads it
    if status.state == "idle":
        return
    if status.running:
        st.progress(status.fraction, text=f"Retraining: {status.phase}")
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
            "model": MODEL_TITLES.get(record.model, record.model),
            "epoch": f"{record.epoch}/{record.epochs}",
            "loss": round(record.metrics.get("loss", float("nan")), 2),
            "val acc": f"{record.metrics.get('val_accuracy', float('nan')):.0%}",
        }
        for record in records
    ]
