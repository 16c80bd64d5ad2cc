"""Reading an AppTest page the way a person reads the screen: verdict cards, probability bars,
captions, and the one assertion every page test starts with."""

from __future__ import annotations

import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.support.server import PAGE_SCRIPT

MODEL_NAMES = ("baseline", "adversarial")


def new_page() -> AppTest:
    """A fresh session of the dashboard, headless (the ``app`` fixture is one; tests that play a
    teacher and a student open more)."""
    return AppTest.from_file(str(PAGE_SCRIPT), default_timeout=60)


def assert_page_ok(at: AppTest) -> None:
    """The page ran without an exception."""
    assert not at.exception, [e.value for e in at.exception]


def assert_quiet(at: AppTest) -> None:
    """No exception, error or warning, and no 'being saved' notice: what a class should see."""
    assert_page_ok(at)
    assert not at.error, [e.value for e in at.error]
    assert not at.warning, [w.value for w in at.warning]
    assert not any("being saved" in i.value for i in at.info), [i.value for i in at.info]


def _values(encoded) -> np.ndarray:
    """Plotly 7 sends numpy arrays as {"dtype", "bdata"}; plain lists pass through."""
    if isinstance(encoded, dict):
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=np.dtype(encoded["dtype"]))
    return np.asarray(encoded, dtype=float)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def probabilities(at: AppTest) -> dict[str, dict[str, np.ndarray]]:
    """{model: {"clean": %, "perturbed": %}} read from the two probability bar charts (in page order),
    whose bars are labelled "before" and "after" the change."""
    bars = [f for f in figures(at) if [trace.get("name") for trace in f["data"]] == ["before", "after"]]
    assert len(bars) == 2, f"expected one bar chart per model, found {len(bars)}"
    which = {"before": "clean", "after": "perturbed"}
    return {name: {which[trace["name"]]: _values(trace["x"]) for trace in figure["data"]} for name, figure in zip(MODEL_NAMES, bars)}


def verdicts(at: AppTest) -> list[str]:
    """Both models' verdict cards, as their HTML."""
    return [m.value for m in at.markdown if '<div class="bg-verdict' in m.value]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def shown_filename(at: AppTest) -> str:
    """The test photo the picker shows (its caption "Right answer: … · <file>")."""
    return next(c.value for c in at.caption if c.value.startswith("Right answer:")).split(" · ")[-1]


def open_class(at: AppTest, label: int) -> AppTest:
    """Show the first test photo of class ``label`` (the page opens on a good example of any class)."""
    at.selectbox(key="test_class").set_value(label).run()
    return at.slider(key=f"test_index_{label}").set_value(1).run()


def unlock_teacher(at: AppTest, passcode: str) -> AppTest:
    """Press **Teacher**, type ``passcode``, press **Unlock**; returns ``at`` after the run."""
    at.button(key="teacher_button").click().run()
    at.text_input(key="teacher_passcode").input(passcode)
    return at.button(key="teacher_unlock").click().run()
