"""Section "Many photos at once": the current change on every test photo — accuracy table,
confusion matrices per model (a click on a cell shows its photos in the gallery), a gallery with
filters, and every answer as a CSV file.

Whole-split work takes seconds, so it runs on a button press and is kept in the process-wide result
store: one press serves every student. A nested fragment: its buttons and filters rerun only it.
"""

from __future__ import annotations

import html
import urllib.parse
from functools import partial
from typing import Sequence

import numpy as np
import streamlit as st

from core.checkpoints import ModelPair
from core.data import Split

from dashboard import pictures, resources
from dashboard.page import Page
from dashboard.settings import LAYER, MANY_OPENED, MANY_PARAMETER, MODEL_NAMES, AttackSettings, url_values
from dashboard.split_analysis import FILTERS, SplitResults
from dashboard.style import MODEL_COLOURS
from dashboard.views import PLOT_CONFIG, confusion_figure, for_screen
from dashboard.widgets import accuracy_table, csv_download
from dashboard.wording import MODEL_INITIALS, MODEL_SHORT, MODEL_TITLES, class_title, describe, percent

OPENED_KEY = MANY_OPENED  # this session asked for this section once (a gallery link says so too)
GALLERY_LIMIT = 48  # thumbnails drawn before "show all" (each is a small inline JPEG)
ALL_CLASSES = -1
CELL_KEY = "gallery_cell"  # (model, true class, answer): the confusion-matrix cell the gallery shows, or absent

def render(page: Page) -> None:
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    _many(page.pair, page.split, page.data_key, page.settings, page.class_names, page.presentation)


@st.fragment
def _many(pair: ModelPair, split: Split, data_key: str, settings: AttackSettings, class_names: Sequence[str], presentation: bool) -> None:
    results = resources.split_results_for(pair, split, data_key, settings, compute=False)
    # Shown once asked for in this session (then for every setting already computed): a page that
    # opens, or a slider move, does not pay for a gallery nobody scrolled down to.
    if results is None or not st.session_state.get(OPENED_KEY):
        st.caption(f"Runs *{describe(settings, class_names)}* on all {len(split)} test photos: accuracy, per-class confusion, a gallery and a CSV file.")
        label = f"Show this change on all {len(split)} test photos" if results is not None else f"Run this change on all {len(split)} test photos"
        if not st.button(label, key="table_button", type="primary"):
            return
        st.session_state[OPENED_KEY] = True
        if results is None:
            bar = st.progress(0.0, text="Starting…")
            results = resources.split_results_for(pair, split, data_key, settings, progress=lambda fraction, message: bar.progress(fraction, text=message))
            bar.empty()
    accuracy_table(results.table_rows())
    csv_download(
        "Download every photo's answers (CSV)", results.to_csv(class_names), file_name=f"beanguard_{_file_label(settings)}.csv", key="csv_download",
        help="One row per test photo: the right answer, and each model's answer and confidence before and after the change.",
    )
    st.subheader("Which class becomes which (confusion matrices, under the change)")
    classes = len(class_names)
    for column, name in zip(st.columns(len(MODEL_NAMES)), MODEL_NAMES):
        with column:
            figure = confusion_figure(results.confusion(name, "perturbed", classes), class_names, MODEL_TITLES[name], MODEL_COLOURS[name])
            chart = f"confusion_{name}"
            st.plotly_chart(for_screen(figure, presentation), config=PLOT_CONFIG, key=chart, on_select=partial(_cell_chosen, name, chart), selection_mode="points")
    _gallery(results, split, data_key, class_names, settings, presentation)


def _cell_chosen(name: str, chart: str) -> None:
    """A click on a confusion-matrix cell (callback): the gallery shows that cell's photos."""
    selection = st.session_state.get(chart)
    for point in selection["selection"]["points"] if selection else []:
        cell = point.get("customdata")
        if isinstance(cell, list) and len(cell) == 2:
            st.session_state[CELL_KEY] = (name, int(cell[0]), int(cell[1]))
            return


@st.fragment
def _gallery(results: SplitResults, split: Split, data_key: str, class_names: Sequence[str], settings: AttackSettings, presentation: bool) -> None:
    st.subheader("Gallery")
    cell = st.session_state.get(CELL_KEY)
    if cell is not None and cell[0] in MODEL_NAMES and max(cell[1:]) < len(class_names):
        name, true_class, answer = cell
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.markdown(f"Photos of **{class_title(class_names[true_class])}** that the {MODEL_SHORT[name]} answers **{class_title(class_names[answer])}** after the change (a cell of its confusion matrix).")
        right.button("Show the filters again", key="gallery_cell_clear", on_click=lambda: st.session_state.pop(CELL_KEY, None))
        indices = results.cell(name, true_class, answer)
    else:
        st.session_state.setdefault("gallery_filter", "flipped_held")
        st.session_state.setdefault("gallery_class", ALL_CLASSES)
        left, right = st.columns([2, 1])
        selection = left.radio("Show", list(FILTERS), format_func=FILTERS.get, horizontal=True, key="gallery_filter")
        chosen_class = right.selectbox("Class", [ALL_CLASSES, *range(len(class_names))], format_func=lambda i: "All classes" if i == ALL_CLASSES else class_title(class_names[i]), key="gallery_class")
        indices = results.matching(selection)
        if chosen_class != ALL_CLASSES:
            indices = indices[results.labels[indices] == chosen_class]
    st.caption(f"{len(indices)} of {len(results)} test photos. B = baseline, N = NSL model; ✓/✗ = right/wrong before → after the change. Click a photo to open it above.")
    if len(indices) == 0:
        return
    show_all = len(indices) <= GALLERY_LIMIT or st.toggle(f"Show all {len(indices)} (the first {GALLERY_LIMIT} are shown)", key="gallery_all")
    shown = indices if show_all else indices[:GALLERY_LIMIT]
    st.html(gallery_html(results, split, data_key, shown, class_names, settings, presentation))


def _marks(results: SplitResults, name: str, index: int) -> tuple[str, str]:
    before, after = (bool(results.right(name, which)[index]) for which in ("clean", "perturbed"))
    symbol = {True: "✓", False: "✗"}
    state = "held" if before and after else ("flipped" if before else "wrong")
    return f"{MODEL_INITIALS[name]} {symbol[before]}→{symbol[after]}", state


@st.cache_data(max_entries=512, show_spinner=False)
def _thumbnail(data_key: str, filename: str, _image: np.ndarray) -> str:
    return pictures.data_uri(pictures.enlarge(_image, pictures.THUMBNAIL_PIXELS))


def gallery_html(results: SplitResults, split: Split, data_key: str, indices: np.ndarray, class_names: Sequence[str], settings: AttackSettings, presentation: bool) -> str:
    """Thumbnails as one HTML block; each links to the same view of that photo (a shared URL)."""
    tiles = []
    base = url_values(settings, None, st.session_state.get(LAYER), presentation)
    for index in indices:
        index = int(index)
        filename = results.filenames[index]
        tooltip = [f"{filename} (right answer: {class_title(class_names[results.labels[index]])})"]
        for name in MODEL_NAMES:
            clean, perturbed = (getattr(results.outcomes[name], which)[index] for which in ("clean", "perturbed"))
            tooltip.append(f"{MODEL_TITLES[name]}: {class_title(class_names[clean.argmax()])} {percent(clean.max())} → {class_title(class_names[perturbed.argmax()])} {percent(perturbed.max())}")
        marks = "".join(f'<span class="bg-mark-{state}">{html.escape(text)}</span>' for text, state in (_marks(results, name, index) for name in MODEL_NAMES))
        link = "?" + urllib.parse.urlencode({**base, "image": filename, MANY_PARAMETER: "1"})  # the new page opens this section again
        thumbnail = _thumbnail(data_key, filename, split.images[index])
        tiles.append(f'<a class="bg-tile" href="{html.escape(link)}" target="_self" title="{html.escape(chr(10).join(tooltip))}"><img src="{thumbnail}" alt="{html.escape(filename)}"/><span class="bg-marks">{marks}</span></a>')
    return f'<div class="bg-gallery">{"".join(tiles)}</div>'


def _file_label(settings: AttackSettings) -> str:
    values = url_values(settings, None, None, False)
    return "_".join(str(values[key]).replace("/", "-") for key in ("attack", "norm", "budget", "attacker", "target", "steps") if key in values)
