"""The "seeing why" sections in a real browser at 1280×720: each button computes and shows its result,
a real click on a point of the map opens that photo, and nothing raises.

One ``streamlit run`` server with background jobs on (the shipped models on the real Beans test
split when they are here, else the tiny ones) and a private class store; headless Debian Chromium
through Playwright. Every photo's smallest fooling budgets take minutes with the real models: with
``BEANGUARD_BUDGETS_JSON`` (``bench/bench_seeing_why.py --save-budgets``) they are loaded into the
store first, as a finished job would leave them; without it, the real models' share-fooled figure
is skipped (the tiny ones compute it on the page).

``BEANGUARD_UPDATE_SCREENSHOT=1`` (with the real models) saves each section's screen as a small
PNG under ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.support.beans import REPO_ROOT, tiny_checkpoints
from tests.support.server import open_when_ready, running_server, server_env

SHOTS = REPO_ROOT / "docs" / "screenshots"
SHIPPED = REPO_ROOT / "checkpoints"
BUDGETS_ENV = "BEANGUARD_BUDGETS_JSON"


@pytest.fixture(scope="module")
def server_setup(tmp_path_factory):
    """(url, real, server, store url)."""
    base = tmp_path_factory.getbasetemp()
    real_beans = Path(os.environ.get("BEANS_DATA_DIR", "/nonexistent"))
    real = (real_beans / "test").is_dir() and (SHIPPED / "metadata.json").is_file()
    store = f"sqlite:///{tmp_path_factory.mktemp('seeing_store') / 'class.db'}"
    env = server_env(base, BEANGUARD_JOBS="1", BEANGUARD_STORE_URL=store)
    if real:
        env.update(BEANS_DATA_DIR=str(real_beans), BEANGUARD_CHECKPOINT_DIR=str(SHIPPED))
        _load_budgets(store, SHIPPED)
    else:
        tiny_checkpoints(base)
    with running_server(env, tmp_path_factory.mktemp("seeing_server") / "server.log", wait=False) as (port, server):
        yield f"http://127.0.0.1:{port}", real, server


def _load_budgets(store_url: str, folder: Path) -> None:
    """A saved run of the budgets (if given and made for these models) into the class store."""
    path = os.environ.get(BUDGETS_ENV)
    if not path:
        return
    from core import checkpoints
    from core.classroom import open_store

    saved = json.loads(Path(path).read_text())
    version = checkpoints.load_pair(folder).version  # the digest the page's jobs key the store by
    assert saved["pair_version"] == version, f"{path} was made for other models"
    store = open_store(store_url)
    for model, norms in saved["budgets"].items():
        for norm, budgets in norms.items():
            store.put_budgets(version, model, norm, {name: float("inf") if value is None else value for name, value in budgets.items()})


@pytest.fixture
def page(browser, server_setup):
    url, _, server = server_setup
    opened = browser.new_page(viewport={"width": 1280, "height": 720})
    open_when_ready(opened, url, server, timeout=120)
    opened.locator(".st-key-verdict_adversarial .bg-verdict").wait_for(timeout=180_000)
    _idle(opened)
    try:
        yield opened
    finally:
        opened.close()


def _idle(page, timeout_ms: int = 300_000) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()


def _to(page, anchor: str) -> None:
    """Scroll so that the section's title is at the top of the screen."""
    page.evaluate("anchor => document.getElementById(anchor).scrollIntoView({block: 'start'})", anchor)
    page.wait_for_timeout(300)


def _live(page, key: str):
    """The element with this key in the page's latest run (a rerun keeps the old one, marked stale, until it is redrawn)."""
    return page.locator(f".st-key-{key}:not([data-stale=true])").last


def _press(page, key: str, timeout_ms: int = 600_000) -> None:
    _live(page, key).locator("button[data-testid^=stBaseButton]:visible").first.click()  # a button with a tooltip has a hidden twin
    page.wait_for_timeout(500)
    _idle(page, timeout_ms)


def _shot(page, server_setup, name: str, anchor: str | None = None) -> None:
    """The screen as a small palette PNG in docs/screenshots (real models, on request only)."""
    if os.environ.get("BEANGUARD_UPDATE_SCREENSHOT") != "1" or not server_setup[1]:
        return
    from PIL import Image

    page.mouse.move(640, 719)  # no tooltip over the picture
    if anchor:
        _to(page, anchor)
    page.wait_for_timeout(1500)  # Plotly's transitions
    SHOTS.mkdir(parents=True, exist_ok=True)
    raw = SHOTS / f"{name}.raw.png"
    page.screenshot(path=str(raw))
    Image.open(raw).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(SHOTS / f"{name}.png", optimize=True)
    raw.unlink()


def _point_on_screen(page, chart_key: str, trace_name: str) -> tuple[float, float, int]:
    """Where the first point of a map's trace is drawn (page pixels), and its photo's index."""
    plot = _live(page, chart_key).locator(".js-plotly-plot")
    box = plot.bounding_box()
    x, y, index = plot.evaluate(
        "(plot, name) => { const t = plot._fullData.find(d => d.name === name); const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;"
        " return [xa._offset + xa.l2p(t.x[0]), ya._offset + ya.l2p(t.y[0]), Number(t.customdata[0])]; }",
        trace_name,
    )
    return box["x"] + x, box["y"] + y, index


def test_this_photos_distance_from_being_fooled_arrives_below_the_verdicts(page, server_setup):
    line = page.get_by_text(re.compile("Smallest change that fools each model on this photo"))
    if line.count() == 0:  # not in the class store yet: on request
        _live(page, "photo_budget_button").scroll_into_view_if_needed()
        _press(page, "photo_budget_button")
    line.wait_for(timeout=600_000)
    assert re.search(r"the baseline (is fooled from [\d.]+/255 on|is wrong even|is not fooled)", line.inner_text())
    _no_exception(page)
    page.evaluate("() => document.querySelector('.st-key-prediction_baseline').scrollIntoView({block: 'start'})")
    _shot(page, server_setup, "seeing_this_photo")


def test_every_photos_share_fooled_is_drawn_once_measured(page, server_setup):
    _, real, _ = server_setup
    _to(page, "distance")
    if _live(page, "fooling_share").count() == 0:
        if real:
            pytest.skip(f"every photo's budgets with the real models take minutes: set {BUDGETS_ENV}")
        _press(page, "fooling_all_button")
    _live(page, "fooling_share").locator(".js-plotly-plot").wait_for(timeout=600_000)
    assert page.get_by_text(re.compile("Read sideways")).count() == 1
    _no_exception(page)
    _shot(page, server_setup, "seeing_all_photos", "distance")


def test_the_map_opens_the_photo_a_real_click_lands_on(page, server_setup):
    _to(page, "map")
    _press(page, "map_button")
    _live(page, "map_adversarial").locator(".js-plotly-plot").wait_for(timeout=300_000)
    _no_exception(page)
    _shot(page, server_setup, "seeing_map", "map")
    before = page.locator('[data-testid="stSidebar"]').inner_text()
    _to(page, "map")
    x, y, index = _point_on_screen(page, "map_adversarial", "healthy")
    page.mouse.click(x, y)
    page.get_by_text("The photo you clicked on the map.").wait_for(timeout=120_000)
    _idle(page)
    after = page.locator('[data-testid="stSidebar"]').inner_text()
    assert after != before and "healthy" in after.split("Right answer:")[1].split("·")[0]
    _no_exception(page)


def test_the_weakest_disease_and_the_black_box_attack_and_the_proof(page, server_setup):
    _to(page, "classes")
    if _live(page, "classes_button").count():
        _press(page, "classes_button")
    _live(page, "class_accuracy").locator(".js-plotly-plot").wait_for(timeout=300_000)
    assert page.get_by_text(re.compile("is weakest on")).count() == 1
    _shot(page, server_setup, "seeing_classes", "classes")
    _to(page, "blackbox")
    _press(page, "square_button")
    page.get_by_text(re.compile(r"NSL model: \*?\*?(Fooled after \d+|Held after all \d+|Wrong before)")).first.wait_for(timeout=300_000)
    _no_exception(page)
    _shot(page, server_setup, "seeing_black_box", "blackbox")
    _to(page, "proof")
    _press(page, "certify_button")
    page.get_by_text(re.compile("covers every L∞ change only up to")).wait_for(timeout=600_000)
    _no_exception(page)
    _shot(page, server_setup, "seeing_proof", "proof")
