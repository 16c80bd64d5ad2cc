"""Section "Where the photos lie": every test photo as each model sees it just before it answers (its
penultimate layer, ``core.embedding``), on a flat map, clean and under the current change.

Each model's map is fitted on its own clean photos (PCA: the two directions in which they differ
most), and the changed photos are placed on the same map, with an arrow from each photo to its
changed self. The changed photos need the change on the whole split: the same process-wide result
as "Many photos at once" (``resources.split_results_for``), on a button press, once per setting.
Clicking a point opens that photo above (through the picker's pending photo and a whole-page rerun).
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import streamlit as st

from core.checkpoints import ModelPair
from core.data import Split

from dashboard import resources
from dashboard.page import Page
from dashboard.settings import MODEL_NAMES, PENDING_IMAGE, PENDING_NOTE, AttackSettings
from dashboard.split_analysis import photo_map
from dashboard.views import PLOT_CONFIG, for_screen
from dashboard.views_seeing import photo_map_figure
from dashboard.wording import MODEL_SHORT, describe

OPEN_KEY = "map_open"  # set by a click on the map: the next run opens that photo on the whole page


def render(page: Page) -> None:
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    _map(page.pair, page.split, page.data_key, page.settings, page.class_names, page.sample.filename, page.presentation)


def _opened(chart_key: str, filenames: Sequence[str]) -> None:
    """A click on a point (callback): that photo becomes the picker's next choice."""
    selection = st.session_state.get(chart_key)
    points = selection["selection"]["points"] if selection else []
    for point in points:
        index = point.get("customdata")
        index = index[0] if isinstance(index, list) else index
        if isinstance(index, (int, float)) and 0 <= int(index) < len(filenames):
            st.session_state[PENDING_IMAGE] = filenames[int(index)]
            st.session_state[PENDING_NOTE] = "The photo you clicked on the map."
            st.session_state[OPEN_KEY] = True
            return


@st.fragment
def _map(pair: ModelPair, split: Split, data_key: str, settings: AttackSettings, class_names: Sequence[str], filename: str | None, presentation: bool) -> None:
    if st.session_state.pop(OPEN_KEY, False):
        st.rerun(scope="app")  # the picker sits outside this fragment: the whole page opens the photo
    store = resources.result_store()
    key = ("photo map", pair.version, data_key, settings)
    maps = store.get(key)
    results = resources.split_results_for(pair, split, data_key, settings, compute=False)
    if maps is None or results is None:
        ask = st.empty()  # the offer goes once the map is there
        with ask.container():
            st.caption(
                f"Runs *{describe(settings, class_names)}* on all {len(split)} test photos and draws where each model puts them, "
                "clean and changed: photos of one disease should sit together, and a change that fools a model carries a photo over to another group."
            )
            pressed = st.button(f"Draw the map of all {len(split)} test photos", key="map_button", type="primary")
        if not pressed:
            return
        ask.empty()
        if results is None:
            bar = st.progress(0.0, text="Starting…")
            results = resources.split_results_for(pair, split, data_key, settings, progress=lambda fraction, message: bar.progress(fraction, text=message))
            bar.empty()
        maps = photo_map(results)
        store.put(key, maps)
    current = results.filenames.index(filename) if filename in results.filenames else None
    for column, name in zip(st.columns(len(MODEL_NAMES)), MODEL_NAMES):
        with column:
            right = (results.right(name, "clean"), results.right(name, "perturbed"))
            figure = photo_map_figure(name, maps[name], results.labels, right, class_names, results.filenames, current)
            chart = f"map_{name}"
            st.plotly_chart(for_screen(figure, presentation), config=PLOT_CONFIG, key=chart, on_select=partial(_opened, chart, results.filenames), selection_mode="points")
    st.caption(
        "Each dot is a test photo as the model sees it just before it answers, coloured by its true disease; the arrow shows where "
        f"the change moves it, and ✗ marks a wrong answer. The ringed photo is the one above. Click any photo to open it. "
        f"Compare how far the {MODEL_SHORT['baseline']}'s photos travel with the {MODEL_SHORT['adversarial']}'s.",
        help="The features of the layer before the last (64 numbers per photo), flattened to two directions by principal component "
        "analysis (PCA) fitted on that model's clean photos; the axis titles say how much of the photos' spread each direction shows.",
    )
