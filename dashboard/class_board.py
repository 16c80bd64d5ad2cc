"""The class board for the projector (``?board=1``): the round's code and what to do, a live
leaderboard per norm, how many photos the class broke against what the strongest attack breaks, and
the poll's votes next to the truth. It asks the class store again every ``REFRESH_S`` seconds (a
fragment: the page never reloads) and shows no teacher control.

Nicknames are shown as text in a table cell, never as markup: ``<img src=x onerror=…>`` appears
literally.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

import plotly.graph_objects as go
import streamlit as st

from core import challenge
from core.attacks import DEFAULT_BUDGETS, budget_label, norm_symbol
from core.checkpoints import ModelPair
from core.classroom import ClassroomError, Round
from core.data import Split

from dashboard import jobs, pictures
from dashboard.class_store import shared_store
from dashboard.style import CLEAN_COLOUR, MODEL_COLOURS
from dashboard.views import PLOT_CONFIG
from dashboard.wording import MODEL_SHORT, MODEL_TITLES, ROUND_KINDS, class_title

REFRESH_S = 2
BOARD_ROWS = 10
ROUND_PARAMETER = "round"


def render(pair: ModelPair, split: Split, class_names: Sequence[str]) -> None:
    st.markdown('<div class="bg-title">Beanguard · class board</div>', unsafe_allow_html=True)
    st.fragment(run_every=REFRESH_S)(_board)(pair, split, tuple(class_names))


def _chosen_round(store) -> Round | None:
    """The round the link names (``?round=CODE``), else the newest open one, else the newest."""
    wanted = st.query_params.get(ROUND_PARAMETER)
    if wanted:
        return store.get_round(wanted.strip().upper())
    pool = store.open_rounds() or store.rounds()[:1]
    return pool[0] if pool else None


def _board(pair: ModelPair, split: Split, class_names: tuple[str, ...]) -> None:
    try:
        store = shared_store()
        round_ = _chosen_round(store)
        poll = store.current_poll()
        results = store.poll_results(poll.id) if poll is not None and poll.state != "closed" else None
    except ClassroomError as error:
        st.error(str(error))
        return
    if round_ is None:
        st.info("No round yet: the teacher starts one in the teacher tools, and its code appears here.")
    else:
        _round(store, round_, pair, split, class_names)
    if results is not None:
        _poll(results)


def _round(store, round_: Round, pair: ModelPair, split: Split, class_names: tuple[str, ...]) -> None:
    code, what = st.columns([1, 2.2], vertical_alignment="center")
    code.markdown(f'<div class="bg-code">{round_.code}</div>', unsafe_allow_html=True)
    what.markdown(
        f"**{ROUND_KINDS.get(round_.kind, round_.kind)}** on {challenge.describe_photos(round_.photos)}, "
        f"in {' or '.join(norm_symbol(n) for n in round_.norms)}.  \n"
        "On your laptop: open this page's address, then **Class challenge** in the sidebar, this code and a nickname."
    )
    players = [player for player in store.players(round_.code) if not player.hidden]
    attempts = store.attempts(round_.code)
    what.caption(f"{challenge.time_left(round_.state, round_.started_at, round_.time_limit_s)} · {len(players)} playing · {len(attempts)} attempts")
    st.markdown(players_html(players, attempts), unsafe_allow_html=True)
    board = store.leaderboard(round_.code)
    index = {name: i for i, name in enumerate(split.filenames)}
    photos = [split.filenames[i] for i in challenge.photos_in(round_.photos, split.filenames, split.labels, class_names)]
    for column, norm in zip(st.columns(len(round_.norms), gap="large"), round_.norms):
        with column:
            st.subheader(f"Smallest change · {norm_symbol(norm)}")
            _strongest_line(round_, attempts, photos, pair, norm)
            entries = board.get(norm, [])
            if not entries:
                st.caption("No attempt counts yet.")
                continue
            st.markdown(leaderboard_html(entries[:BOARD_ROWS], norm, split, index), unsafe_allow_html=True)


def _strongest_line(round_: Round, attempts, photos: list[str], pair: ModelPair, norm: str) -> None:
    """"The class broke 11 of the 19 photos the strongest attack breaks within 8/255"."""
    if round_.kind != "smallest":
        return
    top = DEFAULT_BUDGETS[norm]
    strongest = jobs.stored_budgets(pair.version, round_.model, norm)
    result = challenge.against_strongest(strongest, challenge.best_per_photo(attempts, norm, round_.kind), photos, top)
    within = budget_label(norm, top)
    if result.computed < result.photos:
        st.caption(f"The strongest attack is still being run on these photos ({result.computed} of {result.photos} done).")
        return
    st.markdown(f"The class broke **{result.class_broke} of the {result.strongest_broke}** photos the strongest attack breaks within {within}.")
    if len(photos) == 1 and photos[0] in strongest:
        best = challenge.best_per_photo(attempts, norm, round_.kind).get(photos[0], math.inf)
        needs = strongest[photos[0]]
        class_words = f"the best student needed {budget_label(norm, best)}" if best < math.inf else "nobody has fooled it yet"
        attack_words = f"the strongest attack needs {budget_label(norm, needs)}" if needs < math.inf else "the strongest attack cannot fool it within the slider's range"
        st.caption(f"On this photo, {class_words}; {attack_words}.")


def players_html(players, attempts) -> str:
    """Who is playing, each with the number of attempts so far (nicknames escaped: shown as text)."""
    tries: dict[int, int] = {}
    for attempt in attempts:
        tries[attempt.player_id] = tries.get(attempt.player_id, 0) + 1
    names = "".join(f'<span class="bg-player"><span class="bg-nick">{html.escape(p.nickname)}</span> · {tries.get(p.id, 0)}</span>' for p in players)
    return f'<div class="bg-players">{names}</div>'


def leaderboard_html(entries, norm: str, split: Split, index: dict[str, int]) -> str:
    """The leaderboard as one HTML table; every nickname is escaped, so it shows as the text it is."""
    rows = []
    for entry in entries:
        thumbnail = _thumbnail(split, index.get(entry.photo))
        picture = f'<img src="{thumbnail}" alt="{html.escape(entry.photo)}"/>' if thumbnail else ""
        rows.append(
            f"<tr><td>{entry.rank}</td><td class='bg-nick'>{html.escape(entry.nickname)}</td><td>{picture}</td>"
            f"<td>{html.escape(budget_label(norm, entry.budget))}</td><td>{html.escape(class_title(entry.answer))}</td></tr>"
        )
    head = "<tr><th>#</th><th>nickname</th><th>photo</th><th>budget ε</th><th>made it say</th></tr>"
    return f'<table class="bg-board">{head}{"".join(rows)}</table>'


@st.cache_data(max_entries=256, show_spinner=False)
def _thumbnail_uri(key: str, _image) -> str:
    return pictures.data_uri(pictures.enlarge(_image, pictures.THUMBNAIL_PIXELS))


def _thumbnail(split: Split, index: int | None) -> str | None:
    if index is None:
        return None
    return _thumbnail_uri(f"{split.filenames[index]}@{split.images.shape[1]}", split.images[index])


def _poll(results) -> None:
    """The class's votes as bars, and the truth once revealed."""
    st.subheader("Predict, then reveal")
    st.caption(results.poll.question)
    names = ("baseline", "adversarial")
    said = [results.said_fooled(name) for name in names]
    figure = go.Figure(
        [go.Bar(x=[MODEL_TITLES[n] for n in names], y=said, name="say it will be fooled", marker_color=[MODEL_COLOURS[n] for n in names], text=said),
         go.Bar(x=[MODEL_TITLES[n] for n in names], y=[results.total - n for n in said], name="say it will hold", marker_color=CLEAN_COLOUR, text=[results.total - n for n in said])]
    )  # fmt: skip
    figure.update_layout(barmode="group", height=300, margin={"l": 8, "r": 8, "t": 8, "b": 8}, yaxis={"title": {"text": "votes"}}, legend={"orientation": "h"})
    st.plotly_chart(figure, config=PLOT_CONFIG, key="board_poll")
    if results.truth is None:
        st.caption(f"{results.total} vote{'s' if results.total != 1 else ''} so far; the answer is revealed by the teacher.")
        return
    truth = {"baseline": results.truth.get("baseline_fooled"), "adversarial": results.truth.get("nsl_fooled")}
    st.markdown("**The answer:** " + " · ".join(f"the {MODEL_SHORT[n]} was {'fooled' if truth[n] else 'not fooled'}" for n in names))
