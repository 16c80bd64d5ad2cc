"""Sidebar controls: pick an image, set up the attack, retrain (teacher only).

Each function draws widgets and returns what the user chose; none of them computes anything.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import streamlit as st

from core.attacks import CORRUPTIONS, MAX_SEVERITY, NORMS, norm_symbol
from core.data import Split
from core.evaluate import CURVE_EPSILONS
from core.train import TrainConfig

from dashboard import explainers
from dashboard.analysis import SOURCES, AttackSettings, corruption_title
from dashboard.resources import decode_uploaded_file
from dashboard.retraining import TrainingRequest, configured_passcode, passcode_matches, shared_manager
from dashboard.uploads import ACCEPTED_TYPES
from dashboard.views import class_title, enlarge

# Slider defaults and steps per norm, in model units; the maximum comes from core's curve ranges.
EPSILON_DEFAULTS = {"infinity": 8.0 / 255, "l2": 1.0, "l1": 10.0}
EPSILON_STEPS = {"infinity": 1.0 / 255, "l2": 0.05, "l1": 1.0}
PGD_ITERATION_CHOICES = (3, 5, 10, 20)  # a fixed few: each new count compiles a new graph in core
SOURCE_TITLES = {
    "baseline": "The baseline (seed protocol)",
    "adversarial": "The adversarial model",
    "self": "Each model attacks itself (white-box)",
}
NOT_KNOWN = -1


@dataclass(frozen=True)
class Sample:
    """The image every panel works on, and what we know about it."""

    image: np.ndarray  # model input (H, W, 3) in [0, 1]
    true_label: int | None
    key: str  # identifies the pixels for caches: "test/<file>" or "upload/<sha1>"
    title: str


def pick_image(split: Split, class_names: Sequence[str], data_dir: Path | None, size: int) -> Sample | None:
    """Section 1: a test image by class and index, or an uploaded photo (None until one is usable)."""
    st.header("1 · Pick an image")
    source = st.radio(
        "Image source", ["test", "upload"], format_func={"test": "Test split", "upload": "My own photo"}.get, horizontal=True, key="image_source"
    )
    if source == "test":
        return _pick_test_image(split, class_names, data_dir)
    return _pick_upload(class_names, size)


def _pick_test_image(split: Split, class_names: Sequence[str], data_dir: Path | None) -> Sample:
    label = st.selectbox("Class", range(len(class_names)), format_func=lambda i: class_title(class_names[i]), key="test_class")
    members = np.flatnonzero(split.labels == label)
    if len(members) == 0:
        st.warning(f"The test split has no {class_title(class_names[label])} images.")
        members = np.arange(len(split))
    position = st.slider("Image number", 1, max(2, len(members)), 1, key=f"test_index_{label}", disabled=len(members) < 2) - 1
    index = int(members[min(position, len(members) - 1)])
    filename = split.filenames[index]
    true_label = int(split.labels[index])
    original = data_dir / "test" / class_names[true_label] / filename if data_dir is not None else None
    shown = str(original) if original is not None and original.is_file() else enlarge(split.images[index])  # full size if local
    st.image(shown, caption=f"True label: {class_title(class_names[true_label])} · {filename}", width="stretch")
    title = f"test image {filename} ({class_title(class_names[true_label])})"
    return Sample(split.images[index], true_label, f"test/{filename}/{index}", title)


def _pick_upload(class_names: Sequence[str], size: int) -> Sample | None:
    uploaded = st.file_uploader("Upload a photo of a bean leaf", type=list(ACCEPTED_TYPES), key="upload")
    if uploaded is None:
        st.info("Upload a JPEG or PNG photo (up to 10 MB). It is resized to what the models see.")
        return None
    data = uploaded.getvalue()
    digest = hashlib.sha1(data).hexdigest()
    result = decode_uploaded_file(uploaded.name, digest, data, size)
    if not result.ok:
        st.error(result.error)
        return None
    width, height = result.original_size
    st.image(result.preview, caption=f"{uploaded.name}, as uploaded ({width}×{height} px)", width="stretch")
    label = st.selectbox(
        "True label (optional)",
        [NOT_KNOWN, *range(len(class_names))],
        format_func=lambda i: "I don't know" if i == NOT_KNOWN else class_title(class_names[i]),
        key="upload_label",
    )
    if label == NOT_KNOWN:
        st.caption("No true label: the attack pushes each model away from **its own** prediction.")
    true_label = None if label == NOT_KNOWN else int(label)
    return Sample(result.model_input, true_label, f"upload/{digest}", f"your photo {uploaded.name}")


def _epsilon_slider(norm: str) -> float:
    """Step size ε with the norm's own range; L∞ is shown in 1/255 brightness steps."""
    maximum = CURVE_EPSILONS[norm][-1]
    if norm == "infinity":
        top, default = int(round(maximum * 255)), int(round(EPSILON_DEFAULTS[norm] * 255))
        steps = st.slider("Step size ε (brightness steps out of 255)", 0, top, default, 1, format="%d/255", key="epsilon_infinity")
        return steps / 255.0
    label = f"Step size ε ({norm_symbol(norm)} size of the change)"
    return float(st.slider(label, 0.0, float(maximum), EPSILON_DEFAULTS[norm], EPSILON_STEPS[norm], key=f"epsilon_{norm}"))


def attack_controls() -> AttackSettings:
    """Section 2: gradient attack (norm, ε, FGSM/PGD, attacker) or a natural corruption."""
    st.header("2 · Attack it")
    kinds = {"attack": "Adversarial attack", "corruption": "Natural corruption"}
    kind = st.radio("What changes the image?", list(kinds), format_func=kinds.get, horizontal=True, key="kind")
    if kind == "corruption":
        corruption = st.selectbox("Corruption", CORRUPTIONS, format_func=corruption_title, key="corruption")
        severity = st.slider("Severity", 0, MAX_SEVERITY, 3, key="severity")
        return AttackSettings(kind="corruption", corruption=corruption, severity=severity)
    norm = st.radio("Norm (how the change is measured)", NORMS, format_func=norm_symbol, horizontal=True, key="norm")
    epsilon = _epsilon_slider(norm)
    method = st.radio(
        "Attack", ["FGSM", "PGD"], horizontal=True, key="method", help="FGSM: one step. PGD: several smaller steps, each re-aimed; stronger."
    )
    iterations = 1
    if method == "PGD":
        iterations = st.select_slider("PGD iterations", PGD_ITERATION_CHOICES, value=10, key="iterations")
    source = st.radio("Whose gradients make the attack?", SOURCES, format_func=SOURCE_TITLES.get, key="source")
    return AttackSettings(kind="attack", norm=norm, epsilon=epsilon, iterations=iterations, source=source)


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
