"""Section "Teacher tools": who is the teacher on this page. Students see one **Teacher** button; the
passcode unlocks the class activity's controls, retraining and the choice of runs on this page only.

Nothing of the teacher's tools (not even the passcode field) is in a student's page until someone
in that session presses **Teacher** or opens the page with ``?teacher=1``. Wrong tries lead to a
growing wait per page and per address (``dashboard/passcode.py``). A teacher can set a new passcode
here while the server runs; it is kept, hashed, in the class store, so every replica checks it.
"""

from __future__ import annotations

import streamlit as st

from core import teacher_passcode
from core.classroom import ClassroomError

from dashboard.class_store import shared_store
from dashboard.passcode import attempt, passcode_is_set
from dashboard.settings import TEACHER_REQUESTED, TEACHER_UNLOCKED

TEACHER_QUERY_PARAMETER = "teacher"
NOT_SET_UP = "The teacher tools are not set up on this server yet."


def teacher_requested() -> bool:
    """Whether this session asked for the teacher's tools (button, or ``?teacher=1`` in the address)."""
    return bool(st.session_state.get(TEACHER_REQUESTED)) or st.query_params.get(TEACHER_QUERY_PARAMETER) == "1"


@st.fragment
def render() -> None:
    if not teacher_requested():
        if not st.button("Teacher", key="teacher_button", help="Running a class round or a poll, retraining and choosing the class's models need the teacher passcode."):
            return
        st.session_state[TEACHER_REQUESTED] = True
    if not st.session_state.get(TEACHER_UNLOCKED):
        if not passcode_is_set():
            st.info(NOT_SET_UP)  # how to set one up is for whoever runs the server: the README says
            return
        _unlock()
        return
    st.success("You are the teacher on this page: the class activity, retraining and the runs are yours to run.")
    left, right = st.columns(2)
    with left.popover("Change the passcode"):
        _change_passcode()
    if right.button("Leave teacher mode", key="teacher_lock"):
        st.session_state[TEACHER_UNLOCKED] = st.session_state[TEACHER_REQUESTED] = False
        st.rerun()


def _unlock() -> None:
    with st.form("teacher_unlock_form", border=False):
        given = st.text_input("Teacher passcode", type="password", key="teacher_passcode")
        submitted = st.form_submit_button("Unlock", key="teacher_unlock")
    if not submitted:
        return
    result = attempt(given or "")
    if result.accepted:
        st.session_state[TEACHER_UNLOCKED] = True
        st.rerun()  # the whole page: every teacher control below appears
    st.error(result.message)


def _change_passcode() -> None:
    with st.form("teacher_passcode_form", border=False):
        first = st.text_input("New passcode", type="password", key="teacher_new_passcode")
        second = st.text_input("The same again", type="password", key="teacher_new_passcode_again")
        submitted = st.form_submit_button("Set the passcode", key="teacher_set_passcode")
    if not submitted:
        return
    if first != second:
        st.error("The two passcodes differ; nothing was changed.")
        return
    try:
        teacher_passcode.set_passcode(shared_store(), first)
    except ClassroomError as error:
        st.error(str(error))
        return
    st.success("New passcode set: every page of this class checks it from the next try.")
