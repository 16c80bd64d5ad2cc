"""Beanguard's page: attack a bean-leaf classifier live and watch adversarial training (NSL) hold up.

Streamlit runs this script for every browser; the server is ``streamlit run dashboard/app.py``.

Where things go (the house rule):
- **A new section** is one module with ``render(page)`` (``dashboard/page.py``'s :class:`Page`) and one
  line in :data:`SECTIONS` below; its number is its place in that list, nowhere else. A section
  imports only the floors below it (settings, resources, views, wording, pictures, widgets, page),
  never another section.
- **A new control** is a default, a key and its place in :class:`AttackSettings` in
  ``dashboard/settings.py`` (which also carries it through the lesson, a link and "reset all"), and
  its widget in ``dashboard/attack_controls.py``.
- Anything slow is cached in ``dashboard/resources.py`` (one documented policy); TensorFlow math is
  in ``core/``, never here.

The class sees the run the teacher chose (``core.runs``; by default the shipped pair). The URL holds
the view (``dashboard/settings.py``), so a link opens the same screen.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # Streamlit only puts dashboard/ on the path
    sys.path.insert(0, str(ROOT))

from dashboard import warm_start  # noqa: E402

warm_start.wait()  # the server may already be importing what follows (dashboard/app.py)

import core  # noqa: E402,F401  (sets up TensorFlow with legacy Keras before anything else)
import streamlit as st  # noqa: E402

from core import checkpoints, data, embedded  # noqa: E402
from core.activations import conv_layer_names  # noqa: E402

from dashboard import (  # noqa: E402
    attack_controls,
    black_box,
    class_board,
    class_store,
    class_challenge,
    class_sync,
    class_teacher,
    curves,
    fooling,
    gone_sessions,
    image_picker,
    lesson,
    many_photos,
    per_class,
    photo_map,
    proofs,
    resources,
    retrain_panel,
    runs_view,
    style,
    teacher_access,
    verdicts,
    why,
)
from dashboard.page import Page, Sample  # noqa: E402
from dashboard.settings import CURRENT_VIEW, LAYER, PRESENT, TEACHER_UNLOCKED, UPLOAD_REFUSED, publish, reset, restore_once, settings_from_state, url_values  # noqa: E402
from dashboard.wording import models_caption, trained_budget  # noqa: E402

TAGLINE = "Can a change too small to see fool a model that spots leaf diseases?"


@dataclass(frozen=True)
class Section:
    """One numbered part of the page. ``draw`` takes the :class:`Page` (sections that run on every
    slider move); sections drawn elsewhere in :func:`main` have none. With ``pause_after``, the
    page's answer goes out first and ``below_fold`` (each in turn) follows ``verdicts.VERDICTS_FIRST_S`` later."""

    anchor: str
    title: str
    draw: Callable[[Page], None] | None = None
    below_fold: tuple[Callable[[Page], None], ...] = ()
    pause_after: bool = False


# The page in reading order: the sidebar (pick, change), the live sections every slider move
# reruns, then the teacher's sections (never in presentation mode).
SECTIONS: tuple[Section, ...] = (
    Section("pick", "Pick a leaf photo"),
    Section("change", "Change the picture"),
    Section("verdicts", "What the models say", verdicts.render, (verdicts.render_details, fooling.this_photo), pause_after=True),
    Section("why", "Why was it fooled?", why.render),
    Section("curves", "Accuracy on all test photos", curves.render),
    Section("many", "Many photos at once", many_photos.render),
    Section("distance", "How far each photo is from being fooled", fooling.render),
    Section("map", "Where the photos lie", photo_map.render),
    Section("classes", "Which disease is weakest", per_class.render),
    Section("blackbox", "An attacker without gradients", black_box.render),
    Section("proof", "What can be proven", proofs.render),
    Section("retrain", "Retrain the models"),
    Section("runs", "Compare runs"),
    Section("teacher", "Teacher tools"),
    Section("class", "Class activity"),  # drawn on the teacher's page only: it comes last, so no number is missing on a student's
)
NUMBERS = {section.anchor: number for number, section in enumerate(SECTIONS, start=1)}
BY_ANCHOR = {section.anchor: section for section in SECTIONS}


def header(anchor: str) -> None:
    """A section's title, numbered by its place in :data:`SECTIONS`."""
    st.header(f"{NUMBERS[anchor]} · {BY_ANCHOR[anchor].title}", anchor=anchor)


@st.fragment
def live_sections(pair: checkpoints.ModelPair, sample: Sample, split: data.Split, data_key: str, data_dir: Path | None, class_names: tuple[str, ...], presentation: bool) -> None:
    """Everything a slider move changes, as one fragment: the attack controls (in the sidebar) and
    every section with a ``draw``. Moving a control reruns only this, never model or data loading."""
    with st.sidebar:
        header("change")
        settings = attack_controls.render(class_names)
    result = resources.interaction(pair, sample.key, sample.image, sample.true_label, settings)
    teacher = class_sync.is_teacher(st.session_state)
    page = Page(pair, split, data_key, data_dir, class_names, presentation, sample, result, NUMBERS, class_sync.current_poll(), teacher)
    lesson.panel(result, class_names, NUMBERS, hidden=page.answers_hidden, trained_for=trained_budget(pair.metadata))
    for section in SECTIONS:
        if section.draw is None:
            continue
        header(section.anchor)
        section.draw(page)
        if section.pause_after:
            time.sleep(verdicts.VERDICTS_FIRST_S)  # the page's answer first; the figures below it follow
            link = url_values(settings, sample.filename, st.session_state.get(LAYER), presentation)
            publish(st.query_params, link)
            _share_view(page, link)
        for draw in section.below_fold:
            draw(page)


def _share_view(page: Page, link: dict[str, str]) -> None:
    """What this page shows, for the teacher's tools (a poll on this view) and, on the teacher's
    page, for the students who follow it; then the student's own challenge box."""
    view = {key: value for key, value in link.items() if key != "present"}
    st.session_state[CURRENT_VIEW] = {"link": view, "filename": page.sample.filename, "label": page.sample.true_label, "norm": page.settings.norm}
    presenting = page.presentation and lesson.current_step(st.session_state) is not None
    class_sync.publish_view(st.session_state, view, presenting)
    if not page.teacher:
        with st.sidebar:
            st.subheader("Class challenge")
            class_challenge.render(page)


@dataclass(frozen=True)
class Header:
    """Places in the title row that are filled once the models are loaded."""

    caption: Any
    lesson: Any


@dataclass(frozen=True)
class Loaded:
    """The models and the test photos the page works with."""

    pair: checkpoints.ModelPair
    split: data.Split
    class_names: tuple[str, ...]
    data_key: str


def load(folder: Path, data_dir: Path | None) -> Loaded | None:
    """The class's models and the test split; says so (and returns None) when either is missing."""
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
    try:
        split = resources.load_test_split(str(data_dir) if data_dir is not None else None, pair.image_size)
    except data.DataError as error:
        st.error(str(error))
        return None
    class_names = tuple(pair.metadata.get("class_names") or data.CLASS_NAMES)
    return Loaded(pair, split, class_names, resources.data_key(data_dir, pair.image_size))


def render_main(loaded: Loaded, data_dir: Path | None, presentation: bool, title_row: Header) -> None:
    """The title row's captions, the photo picker and the live sections."""
    pair, split, class_names, data_key = loaded.pair, loaded.split, loaded.class_names, loaded.data_key
    caption, details = models_caption(pair.metadata, pair.image_size)
    warm = resources.start_warm_up(pair, split, data_key) if st.session_state.get("drawn_once") else None
    if warm is not None and not warm.finished:
        caption += f" · getting everything ready in the background ({warm.done} of {warm.total})"
    with title_row.caption:
        st.caption(caption, help=details)
        if split.source == embedded.SOURCE:
            st.caption("Offline copy: the 128 Beans test photos shipped with Beanguard. Full dataset: set `BEANS_DATA_DIR` or go online.",
                       help=f"No Beans folder is set, TFDS has no Beans in its cache and this machine looks offline, so the page shows {embedded.SOURCE}.")  # fmt: skip
    if lesson.current_step(st.session_state) is None:
        with title_row.lesson:
            lesson.start_button(conv_layer_names(pair.baseline))

    def good_examples():
        return resources.good_examples(pair, split, data_key, settings_from_state(st.session_state))

    def opening_example():
        return resources.opening_example(pair, split, data_key, settings_from_state(st.session_state))

    with st.sidebar:
        header("pick")
        image_picker.resolve_pending_image(split)
        sample = image_picker.render(split, class_names, pair.image_size, data_key, good_examples, lambda: reset(st.session_state), opening_example)
    if sample is None:
        refused = st.session_state.get(UPLOAD_REFUSED)
        if refused:
            st.error(refused)
        else:
            st.info("Pick a test photo or upload one in the sidebar to start.")
        return
    if sample.warning:
        st.warning(sample.warning)
    live_sections(pair, sample, split, data_key, data_dir, class_names, presentation)
    if not st.session_state.get("drawn_once"):
        # The first verdicts are on their way: only now trace every other attack, in the background.
        st.session_state["drawn_once"] = True
        resources.start_warm_up(pair, split, data_key)


def board_page(folder: Path, data_dir: Path | None) -> None:
    """``?board=1``: the class board for the projector, nothing else."""
    st.set_page_config(page_title="Beanguard · class board", page_icon="🫘", layout="wide", initial_sidebar_state="collapsed")
    style.apply(presentation=True)
    loaded = load(folder, data_dir)
    if loaded is not None:
        class_board.render(loaded.pair, loaded.split, loaded.class_names)


STORE_AWAY = "Rounds, polls, following the teacher and retraining are off until it can be reached; the rest of the page works."


def main() -> None:
    gone_sessions.remember_this_session()  # its files are freed once its browser has gone for good
    trouble = class_store.problem()  # one sentence naming the URL (password hidden), never a stack trace
    if trouble:
        st.error(f"{trouble} {STORE_AWAY}")
    folder = runs_view.class_folder()  # the run the teacher chose for the class (the shipped pair by default)
    data_dir = resources.data_dir_setting()
    if st.query_params.get("board") == "1":
        board_page(folder, data_dir)
        return
    restore_once(st.session_state, st.query_params)
    class_sync.follow(st.session_state)  # the teacher's view (or a new poll's), before any widget is drawn
    presentation = bool(st.session_state.get(PRESENT, False))
    in_lesson = lesson.current_step(st.session_state) is not None
    st.set_page_config(page_title="Beanguard", page_icon="🫘", layout="wide", initial_sidebar_state="expanded")
    style.apply(presentation, in_lesson)
    if in_lesson:  # the lesson's own box takes the title row's place, so the verdicts stay on the first screen
        lesson_slot = st.empty()
    else:
        title, lesson_slot = st.columns([4, 1.5], vertical_alignment="center")
        title.markdown(f'<div class="bg-title">Beanguard</div><div class="bg-tagline">{TAGLINE}</div>', unsafe_allow_html=True)
    st.session_state.setdefault(PRESENT, False)
    with st.sidebar:
        st.toggle("Presentation mode", key=PRESENT, help="Larger type and figures for a projector; teacher controls hidden. Remembered in the link.")
        class_sync.follow_toggle(st.session_state)
        class_sync.watch()
    title_row = Header(caption=st.container(key="models_caption"), lesson=lesson_slot)
    loaded = load(folder, data_dir)
    if loaded is not None:
        render_main(loaded, data_dir, presentation, title_row)
    teacher = bool(st.session_state.get(TEACHER_UNLOCKED))
    if presentation:  # teacher controls never on the projector, but the teacher may still open or reveal a poll
        store = class_store.store_or_none()
        if teacher and loaded is not None and store is not None:
            with st.sidebar.expander("Poll (teacher)", expanded=True):
                class_teacher.poll_controls(store, loaded.pair, loaded.split, loaded.data_key, loaded.class_names)
        return
    header("retrain")
    retrain_panel.render(data_dir)
    header("runs")
    runs_view.render(data_dir)
    header("teacher")
    teacher_access.render()
    if teacher and loaded is not None:
        header("class")
        class_teacher.render(loaded.pair, loaded.split, loaded.data_key, loaded.class_names)


main()
