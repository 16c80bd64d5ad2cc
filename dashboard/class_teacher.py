"""Section "Class activity" (the teacher's side): start, end and reset a challenge round, hide a
nickname, download every attempt; open a predict-then-reveal poll on the current view and reveal
it; let the students' pages follow this one. Only on a page the teacher unlocked.

Everything goes through the class store (``core.classroom``), so every replica and the class board
see it at once. A round's photos get the strongest attack's smallest fooling budget in the
background (``dashboard/jobs.py``), so the board can compare the class with it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import streamlit as st

from core import challenge
from core.attacks import NORMS, norm_symbol
from core.checkpoints import ModelPair
from core.classroom import ClassroomError, Round
from core.data import Split

from dashboard import jobs, resources
from dashboard.class_store import shared_store
from dashboard.page import test_photo_key
from dashboard.settings import BROADCAST, CURRENT_VIEW, MODEL_NAMES, PENDING_IMAGE, TEACHER_UNLOCKED, defaults, settings_from_state, widget_values
from dashboard.widgets import csv_download
from dashboard.wording import MODEL_SHORT, ROUND_KINDS, class_title

TIME_LIMITS = {0: "no time limit", 300: "5 minutes", 600: "10 minutes", 900: "15 minutes"}


def render(pair: ModelPair, split: Split, data_key: str, class_names: Sequence[str]) -> None:
    """The whole section, for the unlocked teacher; a student's page shows nothing here."""
    if not st.session_state.get(TEACHER_UNLOCKED):
        return
    try:
        store = shared_store()
        open_rounds = store.open_rounds()
    except ClassroomError as error:
        st.error(str(error))
        return
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Challenge round")
        if open_rounds:
            _round_controls(store, open_rounds[0], pair, split, class_names)
        else:
            _start_round(store, pair, split, class_names)
    with right:
        st.subheader("Predict, then reveal")
        poll_controls(store, pair, split, data_key, class_names)
        st.subheader("Students' pages")
        st.session_state.setdefault(BROADCAST, True)
        st.toggle("Students' pages follow mine", key=BROADCAST, help="Each student can switch following off with one click on their page.")


def _current() -> dict[str, Any]:
    """The view the live sections drew last on this page: its link values, photo and true class."""
    return st.session_state.get(CURRENT_VIEW) or {}


def _start_round(store, pair: ModelPair, split: Split, class_names: Sequence[str]) -> None:
    current = _current()
    here = current.get("filename")
    with st.form("class_round_form", border=False):
        kind = st.radio("Kind", list(ROUND_KINDS), format_func=ROUND_KINDS.get, key="class_kind")
        choices = {"all": "All test photos"}
        if here:
            label = int(current["label"])
            choices = {f"photo:{here}": f"This photo ({here})", f"class:{class_names[label]}": f"This class ({class_title(class_names[label])})", **choices}
        photos = st.radio("Photos", list(choices), format_func=choices.get, key="class_photos")
        norms = st.multiselect("Norms allowed", NORMS, default=[current.get("norm", "infinity")], format_func=norm_symbol, key="class_norms")
        limit = st.selectbox("Time limit", list(TIME_LIMITS), format_func=TIME_LIMITS.get, key="class_limit")
        started = st.form_submit_button("Start the round", type="primary", key="class_start")
    if not started:
        return
    try:
        round_ = store.create_round(kind, photos, norms, time_limit_s=limit or None)
    except ClassroomError as error:
        st.error(str(error))
        return
    _budgets(round_, pair, split, class_names)
    st.rerun(scope="app")


def _budgets(round_: Round, pair: ModelPair, split: Split, class_names: Sequence[str]) -> jobs.Job | None:
    """The strongest attack's budget for every photo of a "smallest" round, in the background."""
    if round_.kind != "smallest" or round_.model not in MODEL_NAMES:
        return None
    chosen = challenge.photos_in(round_.photos, split.filenames, split.labels, class_names)
    return jobs.strongest_budgets(pair, split, round_.model, round_.norms, [split.filenames[i] for i in chosen])


def _round_controls(store, round_: Round, pair: ModelPair, split: Split, class_names: Sequence[str]) -> None:
    players = store.players(round_.code)
    attempts = store.attempts(round_.code)
    st.markdown(f"Round code **{round_.code}** · {ROUND_KINDS[round_.kind]} · {challenge.describe_photos(round_.photos)} · "
                f"{', '.join(norm_symbol(n) for n in round_.norms)}")  # fmt: skip
    st.caption(f"{len(players)} joined, {len(attempts)} attempts. Show the board on the projector: open this page with `?board=1`.")
    job = _budgets(round_, pair, split, class_names)
    if job is not None and jobs.describe(job):
        st.caption(jobs.describe(job))
    end, reset = st.columns(2)
    if end.button("End the round", key="class_end", width="stretch"):
        store.end_round(round_.code)
        st.rerun(scope="app")
    if reset.button("Start it over", key="class_reset", width="stretch", help="Clears every attempt; the players and the code stay."):
        store.reset_round(round_.code)
        st.rerun(scope="app")
    csv_download("Download every attempt (CSV)", store.export_csv(round_.code).lstrip("\ufeff"), f"beanguard_round_{round_.code}.csv", key="class_csv")
    if players:
        by_id = {p.id: p for p in players}
        chosen = st.selectbox("Nickname", list(by_id), format_func=lambda i: by_id[i].nickname + (" (hidden)" if by_id[i].hidden else ""), key="class_hide_who")
        hidden = by_id[chosen].hidden
        if st.button("Show on the board again" if hidden else "Hide from the board", key="class_hide"):
            store.hide_player(chosen, hidden=not hidden)
            st.rerun(scope="app")


def poll_controls(store, pair: ModelPair, split: Split, data_key: str, class_names: Sequence[str]) -> None:
    """Open a poll on this page's view, reveal it (the truth computed here from the poll's view), close it."""
    poll = store.current_poll()
    if poll is None or poll.state == "closed":
        st.caption("Ask the class whether each model will be fooled by the change on your screen; the answers stay hidden until you reveal them.")
        if st.button("Open a poll on this view", key="poll_open", type="primary", disabled=not _current().get("link")):
            store.open_poll(_current()["link"])
            st.rerun(scope="app")
        return
    results = store.poll_results(poll.id)
    st.caption(f"{results.total} vote{'s' if results.total != 1 else ''}: {results.said_fooled('baseline')} say the baseline falls, "
               f"{results.said_fooled('adversarial')} the {MODEL_SHORT['adversarial']}.")  # fmt: skip
    reveal, close = st.columns(2)
    if poll.state == "open" and reveal.button("Reveal", key="poll_reveal", type="primary", width="stretch"):
        try:
            store.reveal(poll.id, poll_truth(poll.view, pair, split, data_key))
        except (ClassroomError, ValueError) as error:
            st.error(str(error))
            return
        st.rerun(scope="app")
    if close.button("Close the poll", key="poll_close", width="stretch"):
        store.close_poll(poll.id)
        st.rerun(scope="app")


def poll_truth(view: dict[str, str], pair: ModelPair, split: Split, data_key: str) -> dict[str, bool]:
    """What really happens at a poll's view: is each model fooled? Computed by the server from the view."""
    values = widget_values(view)
    filename = values.get(PENDING_IMAGE)
    if filename not in split.filenames:
        raise ValueError(f"The poll's photo {filename!r} is not in this test split.")
    index = split.filenames.index(filename)
    settings = settings_from_state({**defaults(), **values})
    label = int(split.labels[index])
    result = resources.interaction(pair, test_photo_key(filename, index), split.images[index], label, settings)
    fooled = {name: bool(np.argmax(result.outcomes[name].perturbed_probabilities) != label) for name in MODEL_NAMES}
    return {"baseline_fooled": fooled["baseline"], "nsl_fooled": fooled["adversarial"]}
