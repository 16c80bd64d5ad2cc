"""Section "Pick a leaf photo" (sidebar): a test photo by class and number, a good example, a random
one, or your own photo.

"Show me a good example" asks ``core.examples`` (through the caller's ``good_examples``) for the next
test photo that tells the lesson's story at the current settings; the first load of a page opens on
the best one. Choosing sets the widgets' Session State in a callback, before they are drawn.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, MutableMapping, Sequence

import numpy as np
import streamlit as st

from core.data import Split
from core.examples import CONDITIONS, GoodExamples

from dashboard.page import Sample, test_photo_key
from dashboard.resources import decode_uploaded_file, ood_reference
from dashboard.settings import PENDING_IMAGE, PENDING_NOTE, UPLOAD_REFUSED
from dashboard.uploads import ACCEPTED_TYPES, crop_note, familiarity_warning, preview_with_crop
from dashboard.widgets import show_picture
from dashboard.wording import class_title

NOT_KNOWN = -1
NOTE_KEY = "picker_note"  # one sentence about why this photo is shown, until the next choice
STARTED_KEY = "picker_started"  # the page has opened on its first photo (cleared by "reset all")
WANTED_KEY = "picker_wants_example"  # "Show me a good example" was pressed on this test photo index


def index_key(label: int) -> str:
    return f"test_index_{label}"


def select_test_image(state: MutableMapping, split: Split, index: int) -> None:
    """Make the picker show test image ``index`` (call before its widgets are drawn, or in a callback)."""
    label = int(split.labels[index])
    members = np.flatnonzero(split.labels == label)
    state["image_source"] = "test"
    state["test_class"] = label
    state[index_key(label)] = int(np.flatnonzero(members == index)[0]) + 1


def resolve_pending_image(split: Split) -> None:
    """A shared link's photo (by file name) becomes the picker's choice; an unknown name is said so."""
    filename = st.session_state.pop(PENDING_IMAGE, None)
    note = st.session_state.pop(PENDING_NOTE, "The photo from the link.")
    if filename is None:
        return
    if filename in split.filenames:
        select_test_image(st.session_state, split, split.filenames.index(filename))
        st.session_state[NOTE_KEY] = note
        st.session_state[STARTED_KEY] = True
    else:
        st.session_state[NOTE_KEY] = f"The link's photo {filename!r} is not in this test split; showing the best example instead."


def describe_choice(found: GoodExamples, index: int) -> str:
    """Why this photo: it fits the story, or it is only the closest one."""
    if found.matching and index in found.indices:
        return f"A good example: {', '.join(CONDITIONS)} ({found.matching} test photos fit at these settings)."
    return (
        "No test photo fits the whole story at these settings (" + ", ".join(CONDITIONS) + "); this is the "
        "closest one. Try a bigger budget ε or another attacker."
    )


def _ask_for_good_example(current: int | None) -> None:
    """A callback only records the wish: the search runs in the script, under a spinner (it attacks
    every test photo, seconds for PGD), before the picker's widgets are drawn."""
    st.session_state[WANTED_KEY] = -1 if current is None else current


def _choose_good_example(split: Split, good_examples: Callable[[], GoodExamples], current: int | None) -> None:
    with st.spinner("Looking for a good example on every test photo…"):
        found = good_examples()
    index = found.after(current)
    select_test_image(st.session_state, split, index)
    st.session_state[NOTE_KEY] = describe_choice(found, index)


def _show_random_image(split: Split, current: int | None) -> None:
    choices = [index for index in range(len(split)) if index != current] or [0]
    index = random.choice(choices)
    select_test_image(st.session_state, split, index)
    st.session_state[NOTE_KEY] = "A random test photo."


def render(
    split: Split,
    class_names: Sequence[str],
    size: int,
    data_key: str,
    good_examples: Callable[[], GoodExamples],
    reset: Callable[[], None],
    opening_example: Callable[[], int | None] = lambda: None,
) -> Sample | None:
    """Section 1: a test photo by class and number, or an uploaded photo (None until one is usable).

    A fresh page opens on ``opening_example()`` (a good example found cheaply, see
    ``core.examples.first_good_example``), else on the best of ``good_examples()``."""
    if not st.session_state.get(STARTED_KEY):  # a fresh page (or a reset): open on a good example
        st.session_state[STARTED_KEY] = True
        index = opening_example()
        if index is None:
            _choose_good_example(split, good_examples, None)
        else:
            select_test_image(st.session_state, split, index)
            st.session_state[NOTE_KEY] = f"A good example: {', '.join(CONDITIONS)}."
    elif WANTED_KEY in st.session_state:
        wanted = st.session_state.pop(WANTED_KEY)
        _choose_good_example(split, good_examples, None if wanted < 0 else wanted)
    st.session_state.setdefault("image_source", "test")
    source = st.radio("Photo", ["test", "upload"], format_func={"test": "A test photo", "upload": "My own photo"}.get, horizontal=True, key="image_source",
                      help="**Test photos** were never shown to the models while they learned, and we know the right answer.")  # fmt: skip
    if source == "upload":
        return _pick_upload(class_names, size, split, data_key)
    sample, index = _pick_test_image(split, class_names)
    st.button("Show me a good example", key="good_example", width="stretch", on_click=_ask_for_good_example, args=(index,),
              help="A test photo the baseline gets right and is sure of, that the current change fools, and that the NSL model still gets right — found by running both models now.")  # fmt: skip
    left, right = st.columns(2)
    left.button("Random", key="random_image", width="stretch", on_click=_show_random_image, args=(split, index), help="Any test photo, chosen at random.")
    right.button("Reset all", key="reset", width="stretch", on_click=reset, help="Every control back to its default, and the best example.")
    note = st.session_state.get(NOTE_KEY)
    if note:
        st.caption(note)
    return sample


def _pick_test_image(split: Split, class_names: Sequence[str]) -> tuple[Sample, int]:
    label = st.selectbox("Class", range(len(class_names)), format_func=lambda i: class_title(class_names[i]), key="test_class",
                         on_change=lambda: st.session_state.pop(NOTE_KEY, None))  # fmt: skip
    members = np.flatnonzero(split.labels == label)
    if len(members) == 0:
        st.warning(f"The test split has no {class_title(class_names[label])} photos.")
        members = np.arange(len(split))
    key = index_key(label)
    st.session_state.setdefault(key, 1)
    position = st.slider("Photo number", 1, max(2, len(members)), key=key, disabled=len(members) < 2, on_change=lambda: st.session_state.pop(NOTE_KEY, None)) - 1
    index = int(members[min(position, len(members) - 1)])
    filename = split.filenames[index]
    true_label = int(split.labels[index])
    st.caption(f"Right answer: **{class_title(class_names[true_label])}** · {filename}")
    title = f"{filename} ({class_title(class_names[true_label])})"
    return Sample(split.images[index], true_label, test_photo_key(filename, index), title, filename), index


def _pick_upload(class_names: Sequence[str], size: int, split: Split, data_key: str) -> Sample | None:
    st.session_state.pop(UPLOAD_REFUSED, None)
    uploaded = st.file_uploader("Upload a photo of a bean leaf", type=list(ACCEPTED_TYPES), key="upload")
    if uploaded is None:
        st.info("Upload a JPEG or PNG photo (up to 10 MB). Its centre square is resized to what the models see.")
        return None
    data = uploaded.getvalue()
    digest = hashlib.sha1(data).hexdigest()
    result = decode_uploaded_file(uploaded.name, digest, data, size)
    if not result.ok:
        st.error(result.error)
        st.session_state[UPLOAD_REFUSED] = f"Your photo {uploaded.name} was not used: {result.error}"  # the main area says it too
        return None
    width, height = result.original_size
    show_picture(st, preview_with_crop(result), f"{uploaded.name}, as uploaded ({width}×{height} px)")
    note = crop_note(result)
    if note:
        st.caption(note)
    warning = familiarity_warning(ood_reference(data_key, split), result.model_input)
    if warning:
        st.warning(warning)
    label = st.selectbox(
        "Right answer (optional)",
        [NOT_KNOWN, *range(len(class_names))],
        format_func=lambda i: "I don't know" if i == NOT_KNOWN else class_title(class_names[i]),
        key="upload_label",
    )
    if label == NOT_KNOWN:
        st.caption("No true label: the attack pushes each model away from **its own** answer.")
    true_label = None if label == NOT_KNOWN else int(label)
    return Sample(result.model_input, true_label, f"upload/{digest}", f"Your photo {uploaded.name}", warning=warning)
