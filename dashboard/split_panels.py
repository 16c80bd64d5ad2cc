"""The main area, sections 5 and 6: accuracy on all test photos, and many photos at once.

Whole-split work takes seconds, so it runs on a button press (or comes from the models' metadata)
and is kept in the process-wide result store: one press serves every student. Each section is a
nested fragment, so its buttons and filters rerun only that section.
"""

from __future__ import annotations

import html
import urllib.parse
from typing import Any, Sequence

import numpy as np
import streamlit as st

from core.attacks import NORMS, norm_symbol
from core.checkpoints import ModelPair
from core.data import Split
from core.evaluate import CURVE_EPSILONS, CURVE_ITERATIONS

from dashboard import explainers, page_state, pictures, resources
from dashboard.analysis import MODEL_NAMES, AttackSettings
from dashboard.split_analysis import FILTERS, SplitResults, accuracy_curve
from dashboard.views import MODEL_COLOURS, PLOT_CONFIG, confusion_figure, curve_figure, for_screen
from dashboard.wording import MODEL_TITLES, class_title, percent

OPENED_KEY = "many_opened"  # this session asked for section 6 once
GALLERY_LIMIT = 48  # thumbnails drawn before "show all" (each is a small inline JPEG)
ALL_CLASSES = -1


@st.fragment
def robustness(pair: ModelPair, split: Split, data_key: str, settings: AttackSettings, presentation: bool) -> None:
    """Section 5: white-box PGD accuracy vs budget ε for both models, per norm."""
    st.header("5 · Accuracy on all test photos", anchor="curves")
    store = resources.result_store()
    evaluation = pair.metadata.get("evaluation") or {}
    saved_curves = evaluation.get("curves") or {}
    for tab, norm in zip(st.tabs([f"{norm_symbol(norm)} budget ε" for norm in NORMS]), NORMS):
        with tab:
            key = ("curve", pair.version, data_key, norm)
            curve = store.get(key)
            origin = f"computed here on {len(split)} test photos"
            if curve is None and norm in saved_curves:
                curve, origin = saved_curves[norm], f"saved with the models, on {evaluation.get('examples', '?')} test photos"
            if curve is None:
                st.caption(
                    f"Not computed yet: the strongest attack here (white-box PGD-{CURVE_ITERATIONS}) at {len(CURVE_EPSILONS[norm])} budgets on all "
                    f"{len(split)} test photos, for both models (a little while on a laptop; done once for everybody)."
                )
                if st.button(f"Compute the {norm_symbol(norm)} curve", key=f"curve_button_{norm}"):
                    bar = st.progress(0.0, text="Starting…")
                    curve = accuracy_curve(pair, split, norm, progress=lambda fraction, message: bar.progress(fraction, text=message))
                    store.put(key, curve)
                    bar.empty()
            if curve is not None:
                current = settings.epsilon if settings.kind == "attack" and settings.norm == norm else None
                st.plotly_chart(for_screen(curve_figure(curve, norm, current), presentation), config=PLOT_CONFIG)
                st.caption(f"Accuracy vs budget ε, {origin}. At budget 0 you read the clean accuracy; the dotted line is guessing.")
    if evaluation.get("rows"):
        with st.expander(f"The evaluation table saved with these models ({evaluation.get('examples', '?')} test photos)"):
            accuracy_table([{"row": r["name"], "baseline": r["baseline"], "adversarial": r["adversarial"], "threat model": r["threat_model"]} for r in evaluation["rows"]])
    with st.expander("What am I looking at? (whole-split numbers)"):
        st.markdown(explainers.ROBUSTNESS)


@st.fragment
def many_images(pair: ModelPair, split: Split, data_key: str, settings: AttackSettings, class_names: Sequence[str], presentation: bool) -> None:
    """Section 6: the current change on every test photo — table, confusion matrices, gallery, CSV."""
    st.header("6 · Many photos at once", anchor="many")
    results = resources.split_results_for(pair, split, data_key, settings, compute=False)
    # Shown once asked for in this session (then for every setting already computed): a page that
    # opens, or a slider move, does not pay for a gallery nobody scrolled down to.
    if results is None or not st.session_state.get(OPENED_KEY):
        st.caption(f"Runs *{settings.description}* on all {len(split)} test photos: accuracy, per-class confusion, a gallery and a CSV file.")
        label = f"Show this change on all {len(split)} test photos" if results is not None else f"Run this change on all {len(split)} test photos"
        if not st.button(label, key="table_button", type="primary"):
            return
        st.session_state[OPENED_KEY] = True
        if results is None:
            bar = st.progress(0.0, text="Starting…")
            results = resources.split_results_for(pair, split, data_key, settings, progress=lambda fraction, message: bar.progress(fraction, text=message))
            bar.empty()
    accuracy_table(results.table_rows())
    st.download_button(
        "Download every photo's answers (CSV)", results.to_csv(class_names), file_name=f"beanguard_{_file_label(settings)}.csv", mime="text/csv", key="csv_download",
        help="One row per test photo: the right answer, and each model's answer and confidence before and after the change.",
    )  # fmt: skip
    st.subheader("Which class becomes which (confusion matrices, under the change)")
    classes = len(class_names)
    for column, name in zip(st.columns(len(MODEL_NAMES)), MODEL_NAMES):
        with column:
            figure = confusion_figure(results.confusion(name, "perturbed", classes), class_names, MODEL_TITLES[name], MODEL_COLOURS[name])
            st.plotly_chart(for_screen(figure, presentation), config=PLOT_CONFIG, key=f"confusion_{name}")
    _gallery(results, split, data_key, class_names, settings, presentation)


@st.fragment
def _gallery(results: SplitResults, split: Split, data_key: str, class_names: Sequence[str], settings: AttackSettings, presentation: bool) -> None:
    st.subheader("Gallery")
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
    return f"{'B' if name == 'baseline' else 'N'} {symbol[before]}→{symbol[after]}", state


@st.cache_data(max_entries=512, show_spinner=False)
def _thumbnail(data_key: str, filename: str, _image: np.ndarray) -> str:
    return pictures.data_uri(pictures.enlarge(_image, pictures.THUMBNAIL_PIXELS))


def gallery_html(results: SplitResults, split: Split, data_key: str, indices: np.ndarray, class_names: Sequence[str], settings: AttackSettings, presentation: bool) -> str:
    """Thumbnails as one HTML block; each links to the same view of that photo (a shared URL)."""
    tiles = []
    base = page_state.url_values(settings, None, st.session_state.get("layer"), presentation)
    for index in indices:
        index = int(index)
        filename = results.filenames[index]
        tooltip = [f"{filename} (right answer: {class_title(class_names[results.labels[index]])})"]
        for name in MODEL_NAMES:
            clean, perturbed = (getattr(results.outcomes[name], which)[index] for which in ("clean", "perturbed"))
            tooltip.append(f"{MODEL_TITLES[name]}: {class_title(class_names[clean.argmax()])} {percent(clean.max())} → {class_title(class_names[perturbed.argmax()])} {percent(perturbed.max())}")
        marks = "".join(f'<span class="bg-mark-{state}">{html.escape(text)}</span>' for text, state in (_marks(results, name, index) for name in MODEL_NAMES))
        link = "?" + urllib.parse.urlencode({**base, "image": filename})
        thumbnail = _thumbnail(data_key, filename, split.images[index])
        tiles.append(f'<a class="bg-tile" href="{html.escape(link)}" target="_self" title="{html.escape(chr(10).join(tooltip))}"><img src="{thumbnail}" alt="{html.escape(filename)}"/><span class="bg-marks">{marks}</span></a>')
    return f'<div class="bg-gallery">{"".join(tiles)}</div>'


def _file_label(settings: AttackSettings) -> str:
    values = page_state.url_values(settings, None, None, False)
    return "_".join(str(values[key]).replace("/", "-") for key in ("attack", "norm", "budget", "source", "steps") if key in values)


def accuracy_table(rows: list[dict[str, Any]]) -> None:
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "row": st.column_config.TextColumn("change", width="large"),
            "baseline": st.column_config.NumberColumn("baseline", format="percent"),
            "adversarial": st.column_config.NumberColumn("NSL model", format="percent"),
            "threat model": st.column_config.TextColumn("threat model", width="medium"),
        },
    )
