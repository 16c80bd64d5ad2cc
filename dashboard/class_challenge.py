"""Section "Class challenge" (sidebar, a student's side): join the teacher's round with its code and
a nickname, then submit the change on the page as an attempt.

The server judges every attempt from the page's own settings — the photo from the test split, the
change recomputed by ``resources.interaction`` — never from pixels or verdicts a browser sends. The
class store (``core.classroom``) keeps the round, the players and every attempt; this session keeps
only its player (id, round code, nickname).
"""

from __future__ import annotations

import streamlit as st

from core import challenge
from core.attacks import budget_label, norm_symbol
from core.classroom import ClassroomError, Round, StoreUnavailable

from dashboard.class_store import shared_store
from dashboard.page import Page
from dashboard.settings import CLASS_PLAYER, CLASS_RESULT, MODEL_NAMES
from dashboard.wording import MODEL_SHORT, ROUND_KINDS, class_title, method_name



def render(page: Page) -> None:
    """The join form, or the player's round, its rules and the **Submit this change** button."""
    player = st.session_state.get(CLASS_PLAYER)
    try:
        store = shared_store()
        if player is None:
            player = _join(store)
            if player is None:
                return
        round_ = store.get_round(player["round"])
    except StoreUnavailable:
        st.caption("Off while the class store cannot be reached (the top of the page says why).")
        return
    except ClassroomError as error:
        st.error(str(error))
        if st.button("Leave the round", key="class_leave"):
            st.session_state.pop(CLASS_PLAYER, None)
            st.rerun()
        return
    model = round_.model if round_.model in MODEL_NAMES else MODEL_NAMES[-1]
    goal = ROUND_KINDS.get(round_.kind, round_.kind).replace("the NSL model", f"the {MODEL_SHORT[model]}")
    st.markdown(f"Round **{round_.code}** as **{_escape(player['nickname'])}**: {goal[0].lower() + goal[1:]}.")
    clock = challenge.time_left(round_.state, round_.started_at, round_.time_limit_s)
    st.caption(f"On {challenge.describe_photos(round_.photos)}, {' or '.join(norm_symbol(n) for n in round_.norms)} · {clock}")
    problem = _why_not(page, round_)
    if st.button("Submit this change", key="class_submit", type="primary", width="stretch", disabled=problem is not None, help=problem):
        st.session_state[CLASS_RESULT] = _submit(store, player, page, round_, model)
    if problem:
        st.caption(problem)
    result = st.session_state.get(CLASS_RESULT)
    if result:
        (st.success if result[0] else st.info)(result[1])
    if st.button("Leave the round", key="class_leave"):
        st.session_state.pop(CLASS_PLAYER, None)
        st.session_state.pop(CLASS_RESULT, None)
        st.rerun()


def _escape(text: str) -> str:
    """A nickname inside markdown, shown as the text it is (never as markup or a link)."""
    return "".join(f"\\{char}" if char in "\\`*_{}[]()<>#+-.!|~" else char for char in text)


def _join(store) -> dict | None:
    """The join form (while a round is open); the new player once the store accepted the code and the nickname."""
    if not store.open_rounds():
        st.caption("When your teacher starts a round, join it here.")
        return None
    st.caption("Your teacher gives a round code: join with a nickname, then submit your best attacks.")
    with st.form("class_join", border=False):
        code = st.text_input("Round code", key="class_code", max_chars=8, placeholder="e.g. KQWX")
        nickname = st.text_input("Nickname", key="class_nickname", max_chars=24, help="1 to 24 characters; the class board shows it.")
        joined = st.form_submit_button("Join", key="class_join_button")
    if not joined:
        return None
    try:
        player = store.join(code.strip().upper(), nickname)
    except ClassroomError as error:
        st.error(str(error))
        return None
    st.session_state[CLASS_PLAYER] = {"id": player.id, "round": player.round_code, "nickname": player.nickname}
    return st.session_state[CLASS_PLAYER]


def _why_not(page: Page, round_: Round) -> str | None:
    """Why the change on the page cannot be submitted to this round, in one sentence (None: it can)."""
    settings, sample = page.settings, page.sample
    if round_.state != "open":
        return "This round has ended."
    if sample.filename is None or sample.true_label is None:
        return "Rounds are played on the test photos: pick one in section 1."
    if sample.filename not in {page.split.filenames[i] for i in challenge.photos_in(round_.photos, page.split.filenames, page.split.labels, page.class_names)}:
        return f"This round is about {challenge.describe_photos(round_.photos)}: pick one of them."
    if settings.kind != "attack":
        return "Submit an attack, not a camera problem."
    if settings.norm not in round_.norms:
        return f"This round measures the change in {' or '.join(norm_symbol(n) for n in round_.norms)}: switch the norm."
    if round_.kind == "targeted" and (settings.target is None or settings.target == sample.true_label):
        return "This round needs an aimed attack: switch on **Aim at a class** and pick a wrong class."
    return None


def _submit(store, player: dict, page: Page, round_: Round, model: str) -> tuple[bool, str]:
    """Record the page's change as an attempt; (counted, what to tell the student)."""
    settings, sample = page.settings, page.sample
    answer = page.result.outcomes[model].perturbed_prediction
    counted = challenge.counts(round_.kind, sample.true_label, answer, settings.target)
    target = page.class_names[settings.target] if settings.target is not None else None
    try:
        store.record_attempt(
            player["id"], sample.filename, settings.norm, settings.epsilon, method_name(settings), settings.iterations,
            settings.attacker, target, answer != sample.true_label, page.class_names[answer], model,
        )  # fmt: skip
    except ClassroomError as error:
        return False, str(error)
    budget = f"{norm_symbol(settings.norm)} {budget_label(settings.norm, settings.epsilon)}"
    said = class_title(page.class_names[answer])
    if counted:
        return True, f"Counted: at {budget} the {MODEL_SHORT[model]} says “{said}”. Can you do it with less?"
    return False, f"Recorded, but it does not count: at {budget} the {MODEL_SHORT[model]} says “{said}”. Try a bigger budget ε or a stronger attacker."
