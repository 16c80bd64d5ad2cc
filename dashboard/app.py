"""Beanguard: attack a bean-leaf classifier live and watch adversarial training (NSL) hold up.

    streamlit run dashboard/app.py                          # Beans from $BEANS_DATA_DIR, else TFDS
    streamlit run dashboard/app.py -- --data-dir PATH       # a local <root>/<split>/<class>/*.jpg folder

The class sees the run the teacher chose (``core.runs``; by default the shipped pair from
``$BEANGUARD_CHECKPOINT_DIR`` or ``checkpoints/``). Layout, in reading order:
controls in the sidebar (1 pick a photo, 2 change it), then the main area (3 what the models say —
the one screen a class sees at 1280×720 —, 4 why, 5 accuracy on all test photos, 6 many photos at
once, 7 retraining for the teacher, never in presentation mode). The URL holds the view
(:mod:`dashboard.page_state`), so a link opens the same screen.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` only puts dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401  (sets up TensorFlow with legacy Keras before anything else)
import streamlit as st  # noqa: E402

from core import checkpoints, data  # noqa: E402
from core.activations import conv_layer_names  # noqa: E402

from dashboard import attack_controls, lesson, page_state, resources, retrain_panel, runs_view, style  # noqa: E402
from dashboard.image_picker import pick_image, resolve_pending_image  # noqa: E402
from dashboard.panels import live_attack  # noqa: E402
from dashboard.wording import models_caption  # noqa: E402

TAGLINE = "Can a change too small to see fool a model that spots leaf diseases?"


@dataclass(frozen=True)
class Header:
    """Places in the title row that are filled once the models are loaded."""

    caption: Any
    lesson: Any


def render_main(folder: Path, data_dir: Path | None, presentation: bool, header: Header) -> int | None:
    """Everything except retraining; returns the models' input size, or None (with a message)
    when the models are missing or broken."""
    try:
        pair = resources.current_models(folder)
    except checkpoints.CheckpointMismatch as error:
        st.info(f"New models are being saved; reload the page in a few seconds. ({error})")
        return None
    except checkpoints.CheckpointError as error:
        if all(not (folder / name).exists() for name in checkpoints.MODEL_FILES.values()):
            st.warning(
                f"No trained models in `{folder}` yet. Train them with `python -m core.train` "
                "(add `--data-dir PATH` for a local Beans folder), or with **Retrain the models** at the "
                "bottom of this page (teacher passcode needed). The page picks them up as soon as they are saved."
            )
        else:
            st.error(str(error))
        return None
    size = resources.image_size(pair)
    caption, details = models_caption(pair.metadata, size)
    warm = resources.start_warm_up(pair, attack_controls.PGD_STEP_CHOICES, attack_controls.DEFAULT_PGD_STEPS) if st.session_state.get("drawn_once") else None
    if warm is not None and not warm.finished:
        caption += f" · getting the other attacks ready in the background ({warm.done} of {warm.total})"
    with header.caption:
        st.caption(caption, help=details)
    try:
        split = resources.load_test_split(str(data_dir) if data_dir is not None else None, size)
    except data.DataError as error:
        st.error(str(error))
        return size
    class_names = tuple(pair.metadata.get("class_names") or data.CLASS_NAMES)
    data_key = f"{data_dir or 'tfds'}@{size}"
    if lesson.current_step(st.session_state) is None:
        with header.lesson:
            lesson.start_button(conv_layer_names(pair.baseline))

    def good_examples():
        return resources.good_examples(pair, split, data_key, attack_controls.settings_from_state(st.session_state))

    def opening_example():
        return resources.opening_example(pair, split, data_key, attack_controls.settings_from_state(st.session_state))

    with st.sidebar:
        resolve_pending_image(split)
        sample = pick_image(split, class_names, size, data_key, good_examples, lambda: page_state.reset(st.session_state), opening_example)
    if sample is None:
        st.info("Pick a test photo or upload one in the sidebar to start.")
        return size
    if sample.warning:
        st.warning(sample.warning)
    live_attack(pair, sample, split, data_key, class_names, presentation)
    if not st.session_state.get("drawn_once"):
        # The first verdicts are on their way: only now trace every other attack, in the background.
        st.session_state["drawn_once"] = True
        resources.start_warm_up(pair, attack_controls.PGD_STEP_CHOICES, attack_controls.DEFAULT_PGD_STEPS)
    return size


def main() -> None:
    page_state.restore_once(st.session_state, st.query_params)
    presentation = bool(st.session_state.get("present", False))
    in_lesson = lesson.current_step(st.session_state) is not None
    st.set_page_config(page_title="Beanguard", page_icon="🫘", layout="wide", initial_sidebar_state="expanded")
    style.apply(presentation, in_lesson)
    if in_lesson:  # the lesson's own box takes the title row's place, so the verdicts stay on the first screen
        lesson_slot = st.empty()
    else:
        title, lesson_slot = st.columns([4, 1.5], vertical_alignment="center")
        title.markdown(f'<div class="bg-title">Beanguard</div><div class="bg-tagline">{TAGLINE}</div>', unsafe_allow_html=True)
    st.session_state.setdefault("present", False)
    st.sidebar.toggle("Presentation mode", key="present", help="Larger type and figures for a projector; teacher controls hidden. Remembered in the link.")
    header = Header(caption=st.container(key="models_caption"), lesson=lesson_slot)
    folder = runs_view.class_folder()  # the run the teacher chose for the class (the shipped pair by default)
    data_dir = resources.data_dir_setting()
    render_main(folder, data_dir, presentation, header)
    if not presentation:  # teacher controls: never on the projector; after section 6, in reading order
        retrain_panel.render(data_dir)
        runs_view.render(data_dir)


main()
