"""What every section of the page works on, as two plain values: the photo, and the page's state.

Why: a section is one function, ``render(page)``, that draws its part from a :class:`Page`; it does
not reach into another section's module for what it needs. ``dashboard/page_script.py`` builds the page
once per rerun and hands it to each section in reading order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from core.checkpoints import ModelPair
from core.data import Split

if TYPE_CHECKING:  # types only: made a floor above
    from core.classroom import Poll
    from dashboard.analysis import Interaction
    from dashboard.settings import AttackSettings


@dataclass(frozen=True)
class Sample:
    """The image every panel works on, and what we know about it."""

    image: np.ndarray  # model input (H, W, 3) in [0, 1]
    true_label: int | None
    key: str  # identifies the pixels for caches: "test/<file>/<index>" or "upload/<sha1>"
    title: str
    filename: str | None = None  # test photos only: what a shared link names
    warning: str | None = None  # e.g. "this does not look like the bean leaves…", shown next to the predictions


def test_photo_key(filename: str, index: int) -> str:
    """A test photo's key for caches (``Sample.key``): the same photo has the same key on every page."""
    return f"test/{filename}/{index}"


@dataclass(frozen=True)
class Page:
    """The models, the data, the photo and the change, as the sections below section 2 see them."""

    pair: ModelPair
    split: Split
    data_key: str  # what whole-split results depend on besides the models (``resources.data_key``)
    data_dir: Path | None
    class_names: Sequence[str]
    presentation: bool
    sample: Sample
    result: "Interaction"
    section_numbers: dict[str, int]  # anchor -> number, from the app's list of sections
    poll: "Poll | None" = None  # the class's poll while open or revealed: open hides every answer until the reveal
    teacher: bool = False  # the teacher unlocked this page

    @property
    def answers_hidden(self) -> bool:
        """While the class votes, no page shows what the models answer (the projector neither)."""
        return self.poll is not None and self.poll.state == "open"

    @property
    def settings(self) -> "AttackSettings":
        return self.result.settings
