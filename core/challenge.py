"""The rules of a class challenge round, without Streamlit: which photos a round is about, when a
submitted attack counts, and how the class compares with the strongest attack.

Two kinds of round (``core.classroom`` stores them): ``"smallest"`` — fool the model (the NSL model by
default) with the smallest budget ε; ``"targeted"`` — make the model answer a chosen class. The
server recomputes every submitted attack from its settings; these rules only judge the answer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

KINDS = ("smallest", "targeted")
ALL_PHOTOS = "all"


def photo_set(photo: str | None = None, class_name: str | None = None) -> str:
    """A round's photos as the store keeps them: ``"photo:<file>"``, ``"class:<class name>"`` or ``"all"``."""
    if photo:
        return f"photo:{photo}"
    if class_name:
        return f"class:{class_name}"
    return ALL_PHOTOS


def photos_in(spec: str, filenames: Sequence[str], labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Indices of the test photos a round is about (empty when the photo or class is not in this split)."""
    if spec == ALL_PHOTOS:
        return np.arange(len(filenames))
    kind, _, value = spec.partition(":")
    if kind == "photo":
        return np.array([i for i, name in enumerate(filenames) if name == value], dtype=np.int64)
    if kind == "class" and value in class_names:
        return np.flatnonzero(np.asarray(labels) == list(class_names).index(value))
    return np.array([], dtype=np.int64)


def describe_photos(spec: str, class_names: Sequence[str] = ()) -> str:
    """The photo set in words: "all test photos", "the bean rust photos", "the photo healthy_test_3.jpg"."""
    if spec == ALL_PHOTOS:
        return "all test photos"
    kind, _, value = spec.partition(":")
    return f"the {value.replace('_', ' ')} photos" if kind == "class" else f"the photo {value}"


def time_left(state: str, started_at: float, time_limit_s: float | None, now: float | None = None) -> str:
    """A round's clock in words: "4 min 10 s left", "no time limit" or "ended"."""
    if state != "open":
        return "ended"
    if time_limit_s is None:
        return "no time limit"
    left = max(0, int(started_at + time_limit_s - (time.time() if now is None else now)))
    return f"{left // 60} min {left % 60:02d} s left"


def counts(kind: str, true_label: int, answer: int, target: int | None) -> bool:
    """Whether a submitted attack counts: it fooled the model (``"smallest"``), or made it answer the
    aimed class, which is not the right one (``"targeted"``)."""
    if kind == "targeted":
        return target is not None and target != true_label and answer == target
    return answer != true_label


@dataclass(frozen=True)
class AgainstStrongest:
    """How the class did against the strongest attack, for one norm, within one budget ``top``."""

    top: float
    strongest_broke: int  # photos the strongest attack fools within ``top``
    class_broke: int  # of those, photos a student fooled within ``top``
    class_only: int  # photos a student fooled within ``top`` that the strongest attack did not (should stay 0)
    computed: int  # photos whose strongest budget is known so far
    photos: int  # photos in the round


def against_strongest(
    strongest: Mapping[str, float], class_best: Mapping[str, float], round_photos: Iterable[str], top: float
) -> AgainstStrongest:
    """``strongest``: photo -> smallest budget at which the strongest attack fools it (inf: not within
    its top); ``class_best``: photo -> the class's smallest fooling budget on it."""
    photos = list(round_photos)
    known = [photo for photo in photos if photo in strongest]
    broken = {photo for photo in known if strongest[photo] <= top}
    by_class = {photo for photo in photos if class_best.get(photo, math.inf) <= top}
    return AgainstStrongest(top, len(broken), len(broken & by_class), len(by_class - broken), len(known), len(photos))


def best_per_photo(attempts: Iterable, norm: str, kind: str) -> dict[str, float]:
    """photo -> the smallest budget ε with which any attempt (``core.classroom.Attempt``) in ``norm``
    counted: it fooled the model, and for a targeted round the model answered the aimed class."""
    best: dict[str, float] = {}
    for attempt in attempts:
        if attempt.norm != norm or not attempt.fooled or (kind == "targeted" and attempt.answer != attempt.target):
            continue
        best[attempt.photo] = min(best.get(attempt.photo, math.inf), float(attempt.epsilon))
    return best
