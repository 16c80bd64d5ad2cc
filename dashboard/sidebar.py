"""Sidebar controls: pick an image, set up the attack (retraining lives in ``retrain_panel``).

Each function draws widgets and returns what the user chose; none of them computes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import streamlit as st

from core.attacks import CORRUPTIONS, MAX_SEVERITY, NORMS, norm_symbol
from core.data import Split
from core.evaluate import CURVE_EPSILONS

from dashboard.analysis import SOURCES, AttackSettings, corruption_title
from dashboard.resources import decode_uploaded_file, ood_reference
from dashboard.uploads import ACCEPTED_TYPES, crop_note, familiarity_warning, preview_with_crop
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
    warning: str | None = None  # e.g. "this does not look like the bean leaves…", shown next to the predictions


def pick_image(split: Split, class_names: Sequence[str], data_dir: Path | None, size: int) -> Sample | None:
    """Section 1: a test image by class and index, or an uploaded photo (None until one is usable)."""
    st.header("1 · Pick an image")
    source = st.radio(
        "Image source", ["test", "upload"], format_func={"test": "Test split", "upload": "My own photo"}.get, horizontal=True, key="image_source"
    )
    if source == "test":
        return _pick_test_image(split, class_names, data_dir)
    return _pick_upload(class_names, size, split, f"{data_dir or 'tfds'}@{size}")


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


def _pick_upload(class_names: Sequence[str], size: int, split: Split, data_key: str) -> Sample | None:
    uploaded = st.file_uploader("Upload a photo of a bean leaf", type=list(ACCEPTED_TYPES), key="upload")
    if uploaded is None:
        st.info("Upload a JPEG or PNG photo (up to 10 MB). Its centre square is resized to what the models see.")
        return None
    data = uploaded.getvalue()
    digest = hashlib.sha1(data).hexdigest()
    result = decode_uploaded_file(uploaded.name, digest, data, size)
    if not result.ok:
        st.error(result.error)
        return None
    width, height = result.original_size
    st.image(preview_with_crop(result), caption=f"{uploaded.name}, as uploaded ({width}×{height} px)", width="stretch")
    note = crop_note(result)
    if note:
        st.caption(note)
    warning = familiarity_warning(ood_reference(data_key, split), result.model_input)
    if warning:
        st.warning(warning)
    label = st.selectbox(
        "True label (optional)",
        [NOT_KNOWN, *range(len(class_names))],
        format_func=lambda i: "I don't know" if i == NOT_KNOWN else class_title(class_names[i]),
        key="upload_label",
    )
    if label == NOT_KNOWN:
        st.caption("No true label: the attack pushes each model away from **its own** prediction.")
    true_label = None if label == NOT_KNOWN else int(label)
    return Sample(result.model_input, true_label, f"upload/{digest}", f"your photo {uploaded.name}", warning)


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
