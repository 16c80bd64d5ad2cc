"""The lesson view in a real browser: one screen at 1280×720, the whole guided lesson, shared links,
and no teacher controls in a student's page.

One ``streamlit run`` server for the module (the shipped checkpoints on the real Beans test split
when it is here, else the tiny ones), with a teacher passcode configured; headless Debian Chromium
through Playwright, each test in a fresh page (a fresh Streamlit session).

``BEANGUARD_UPDATE_SCREENSHOT=1`` (with the real models) saves the README's pictures: the first
screen at 1280×720 to ``dashboard/screenshot.png``, the lesson's third step to
``dashboard/screenshot_lesson.png``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

import pytest

from tests.support.beans import REPO_ROOT
from tests.support.server import open_when_ready, running_server, server_env

PASSCODE = "lesson-teacher-7"
SCREENSHOTS = {"one_screen": REPO_ROOT / "dashboard" / "screenshot.png", "lesson": REPO_ROOT / "dashboard" / "screenshot_lesson.png"}
VERDICT = ".st-key-verdict_{name} .bg-verdict"
SHIPPED = REPO_ROOT / "checkpoints"


@pytest.fixture(scope="module")
def server_setup(tmp_path_factory):
    """(url, real): the server's address, and whether it serves the shipped models on real Beans."""
    real_beans = Path(os.environ.get("BEANS_DATA_DIR", "/nonexistent"))
    real = (real_beans / "test").is_dir() and (SHIPPED / "metadata.json").is_file()
    env = server_env(tmp_path_factory.getbasetemp(), BEANGUARD_TEACHER_PASSCODE=PASSCODE)
    if real:
        env.update(BEANS_DATA_DIR=str(real_beans), BEANGUARD_CHECKPOINT_DIR=str(SHIPPED))
    with running_server(env, tmp_path_factory.mktemp("lesson_server") / "server.log", wait=False) as (port, server):
        yield f"http://127.0.0.1:{port}", real, server


def _open(browser, server_setup, query: str = "", width: int = 1280, height: int = 720):
    url, _, server = server_setup
    page = browser.new_page(viewport={"width": width, "height": height})
    open_when_ready(page, f"{url}/{query}", server, timeout=120)
    for name in ("baseline", "adversarial"):
        page.locator(VERDICT.format(name=name)).wait_for(timeout=120_000)
    return page


def _views(page) -> list[str]:
    return page.locator(".bg-verdict").evaluate_all("cards => cards.map(card => card.getAttribute('data-view'))")


def _cards(page) -> list[str]:
    """Every verdict card in the page, for a failure's message: its model, whether it sits in a stale
    (faded) block, its view."""
    return page.locator(".bg-verdict").evaluate_all(
        "cards => cards.map(card => `${card.getAttribute('data-model')}${card.closest('[data-stale=\"true\"]') ? ' (stale)' : ''}: ${card.getAttribute('data-view')}`)"
    )


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()


@pytest.mark.parametrize("width, height", [(1280, 720), (1024, 768)])
def test_both_verdicts_with_a_percentage_are_on_the_first_screen(browser, server_setup, width, height):
    page = _open(browser, server_setup, width=width, height=height)
    try:
        _wait_until_idle(page)
        page.locator(".st-key-stage_pictures img").nth(2).wait_for(timeout=60_000)  # pictures arrive as separate files
        for name in ("baseline", "adversarial"):
            card = page.locator(VERDICT.format(name=name))
            box = card.bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, f"{name} verdict at {box}, viewport {width}×{height}"
            assert re.search(r"\d+(\.\d)?%", card.inner_text()), card.inner_text()
        pictures = page.locator(".st-key-stage_pictures img")
        assert pictures.count() == 3
        for index in range(3):
            box = pictures.nth(index).bounding_box()
            assert box["y"] + box["height"] <= height  # photo, change and changed photo: no scrolling either
        assert page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollTop") == 0
        _no_exception(page)
        if width == 1280:
            _keep_screenshot(page, server_setup, "one_screen")
    finally:
        page.close()


def test_default_photo_is_right_clean_and_fooled_for_the_baseline_and_held_by_nsl(browser, server_setup):
    _, real, _ = server_setup
    if not real:
        from conftest import missing_real_beans, shipped_checkpoints_present

        if os.environ.get("CI") or shipped_checkpoints_present():
            pytest.fail(missing_real_beans(), pytrace=False)
        pytest.skip("needs the shipped models on the real Beans test split")
    page = _open(browser, server_setup)
    try:
        baseline, adversarial = (page.locator(VERDICT.format(name=name)) for name in ("baseline", "adversarial"))
        assert "bg-wrong" in baseline.get_attribute("class")  # fooled by the default attack ...
        assert re.search(r"Before the change: .*✓ right", baseline.inner_text())  # ... after being right on the clean photo
        assert "bg-right" in adversarial.get_attribute("class")
        assert "fgsm linf 8/255 baseline" in _views(page)[0]  # the default attack
    finally:
        page.close()


def _settings_shown(page, settings, timeout_ms: int = 60_000, what: str = "") -> None:
    """Until both verdict cards were drawn for ``settings`` (their data-view ends with its link values)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from dashboard.settings import url_values

    expected = " " + " ".join(url_values(settings, None, None, False).values())
    try:
        page.wait_for_function(
            # Streamlit keeps the previous run's elements, faded (data-stale), until the new run ends: count the current ones
            "expected => { const views = [...document.querySelectorAll('.bg-verdict')].filter(c => !c.closest('[data-stale=\"true\"]')).map(c => c.getAttribute('data-view'));"
            " return views.length === 2 && views.every(v => v.endsWith(expected)); }",
            arg=expected,
            timeout=timeout_ms,
        )
    except PlaywrightTimeout:
        raise AssertionError(f"{what}: the verdict cards show {_cards(page)}, not views ending with {expected!r}") from None


def test_the_whole_lesson_forwards_and_back_without_an_exception(browser, server_setup):
    from dashboard.lesson import CORE_STEPS, STEPS, step_heading

    page = _open(browser, server_setup)
    try:
        page.get_by_role("button", name=re.compile("lesson", re.I)).click()
        panel = page.locator(".st-key-lesson_panel")
        steps = len(STEPS)
        assert 6 <= CORE_STEPS <= 8 and steps - CORE_STEPS <= 2  # the lesson proper fits 10 minutes; optional steps after it
        for step in range(1, steps + 1):
            page.get_by_text(re.compile(re.escape(step_heading(step - 1)))).wait_for(timeout=60_000)
            _settings_shown(page, STEPS[step - 1].settings, what=f"forward, step {step}")  # the step set the controls, and both models answered
            _wait_until_idle(page)
            _no_exception(page)
            if step == 3:
                _keep_screenshot(page, server_setup, "lesson")
            anchor = STEPS[step - 1].scroll_to
            if anchor:  # the step talks about a section below: the page brought it into view
                page.wait_for_function(
                    "id => { const e = document.getElementById(id); if (!e) return false; const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight; }",
                    arg=anchor, timeout=15_000,
                )
            if step < steps:
                panel.get_by_role("button", name="Next", exact=True).click()
        assert panel.get_by_role("button", name="Next", exact=True).is_disabled()
        assert any(s.settings.kind == "attack" and s.settings.iterations > 1 and s.settings.attacker == "self" for s in STEPS), "a white-box PGD step"
        assert any(s.settings.kind == "corruption" for s in STEPS), "a natural-corruption step"
        for step in range(steps - 1, 0, -1):
            panel.get_by_role("button", name="Back", exact=True).click()
            page.get_by_text(re.compile(re.escape(step_heading(step - 1)))).wait_for(timeout=60_000)
            _settings_shown(page, STEPS[step - 1].settings, what=f"back, step {step}")
            _wait_until_idle(page)
            _no_exception(page)
    finally:
        page.close()


def _wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    """Until Streamlit's "running" indicator is gone (the rerun has drawn everything)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms)


def test_a_shared_link_opens_every_control_at_its_values(browser, server_setup):
    first = _open(browser, server_setup)
    try:
        filenames = first.locator(".bg-verdict").first.get_attribute("data-view")
        image = filenames.split()[0].split("/")[1]
    finally:
        first.close()
    query = {"image": image, "attack": "pgd", "steps": "5", "norm": "l2", "budget": "1.5", "attacker": "self", "layer": "conv2", "present": "1"}
    page = _open(browser, server_setup, "?" + urllib.parse.urlencode(query))
    try:
        _wait_until_idle(page)
        sidebar = page.locator('[data-testid="stSidebar"]')
        assert _checked_label(page, "norm") == "Overall distance (L2)"
        assert _checked_label(page, "method") == "Many small steps (PGD)"
        assert _checked_label(page, "attacker") == "The attacker knows each model (strongest)"
        assert page.locator(".st-key-epsilon_l2 input[type=range]").input_value() == "1.5"
        assert _checked_label(page, "iterations") == "5"
        assert page.locator(".st-key-layer input[role=combobox]").input_value() == "conv2"
        assert page.locator(".st-key-present input[type=checkbox]").is_checked()
        assert image in sidebar.inner_text()
        view = _views(page)[0]
        assert view.split()[1:] == ["pgd", "l2", "1.5", "self", "5"], view
        for key, value in query.items():
            assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query).get(key) == [value], f"the URL keeps {key}"
        _no_exception(page)
    finally:
        page.close()


def _keep_screenshot(page, server_setup, name: str) -> None:
    """For the README (real models only): the viewport as a small palette PNG."""
    if os.environ.get("BEANGUARD_UPDATE_SCREENSHOT") != "1" or not server_setup[1]:
        return
    from PIL import Image

    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1000)
    raw = SCREENSHOTS[name].with_suffix(".raw.png")
    page.screenshot(path=str(raw))
    Image.open(raw).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(SCREENSHOTS[name], optimize=True)
    raw.unlink()


def _checked_label(page, key: str) -> str:
    return page.locator(f".st-key-{key} label:has(input:checked)").inner_text().strip()


def test_moving_a_control_updates_the_link(browser, server_setup):
    page = _open(browser, server_setup)
    try:
        slider = page.locator(".st-key-epsilon_infinity").get_by_role("slider")
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => new URLSearchParams(location.search).get('budget') === '9/255'", timeout=60_000)
    finally:
        page.close()


def test_a_students_page_holds_no_password_input_even_with_a_passcode_configured(browser, server_setup):
    page = _open(browser, server_setup)
    try:
        _wait_until_idle(page)
        assert page.locator("input[type=password]").count() == 0
        assert page.get_by_text("Start retraining").count() == 0
    finally:
        page.close()


ANSWER_SIZE = "() => parseFloat(getComputedStyle(document.querySelector('.bg-verdict .bg-answer')).fontSize)"


def test_presentation_mode_has_larger_verdicts_on_one_screen_and_no_teacher_controls(browser, server_setup):
    normal = _open(browser, server_setup)
    try:
        normal_size = normal.evaluate(ANSWER_SIZE)
    finally:
        normal.close()
    page = _open(browser, server_setup, "?present=1")
    try:
        _wait_until_idle(page)
        assert page.locator("input[type=password]").count() == 0
        assert page.get_by_text("Retrain the models").count() == 0
        assert page.evaluate(ANSWER_SIZE) > normal_size * 1.2  # larger type for the projector
        for name in ("baseline", "adversarial"):
            box = page.locator(VERDICT.format(name=name)).bounding_box()
            assert box["y"] + box["height"] <= 720, f"{name} verdict at {box}"
    finally:
        page.close()


def test_during_the_lesson_both_verdicts_stay_on_the_first_screen(browser, server_setup):
    page = _open(browser, server_setup)
    try:
        page.get_by_role("button", name=re.compile("lesson", re.I)).click()
        page.get_by_text(re.compile("step 1 of")).wait_for(timeout=60_000)
        for step in range(3):
            _wait_until_idle(page)
            for name in ("baseline", "adversarial"):
                box = page.locator(VERDICT.format(name=name)).bounding_box()
                assert box["y"] + box["height"] <= 720, f"step {step + 1}: {name} verdict at {box}"
            page.locator(".st-key-lesson_panel").get_by_role("button", name="Next", exact=True).click()
            page.get_by_text(re.compile(f"step {step + 2} of")).wait_for(timeout=60_000)
    finally:
        page.close()
