"""The controls show the values the page computes with, on every path through the lesson, "Reset
all", a shared link and switches of norm, method and kind — in a real browser, where a widget that
left the page used to come back showing a stale value (issue 16: 0/255 on the slider, 8/255 in the
caption and the link, and one → press gave 1/255).

After each step the visible budget slider (or severity slider), the stage's caption and the link
must name the same value; after an arrow key, the budget moves by exactly one slider step.
One ``streamlit run`` on the tiny models, headless Chromium at 1280×720.
"""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest

from tests.support.server import CHROMIUM_ARGS, open_when_ready, running_server, server_env

SETTLE_MS = 600


@pytest.fixture(scope="module")
def site(tmp_path_factory, chromium):
    from playwright.sync_api import sync_playwright

    with running_server(server_env(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp("controls") / "server.log", wait=False) as (port, server):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
            try:
                yield browser, f"http://127.0.0.1:{port}", server
            finally:
                browser.close()


def open_page(site, query: str = ""):
    browser, url, server = site
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    open_when_ready(page, f"{url}/{query}", server)
    page.locator(".bg-verdict").first.wait_for(timeout=90_000)
    return page


def settle(page) -> None:
    """Until the page stops running (Streamlit's status widget gone), then a moment for the DOM."""
    page.wait_for_timeout(SETTLE_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    page.wait_for_timeout(SETTLE_MS)


def click_option(page, key: str, position: int) -> None:
    page.locator(f".st-key-{key} [role=radiogroup] label").nth(position).click()
    settle(page)


def button(page, name: str) -> None:
    page.get_by_role("button", name=name).first.click()
    settle(page)


NORM_KEYS = {"linf": "epsilon_infinity", "l2": "epsilon_l2", "l1": "epsilon_l1"}


def visible_slider(page):
    """The slider that the link says is in use (the budget of its norm, or the severity), checked to
    be the one on screen: the other budget sliders are on the page but hidden."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    key = NORM_KEYS[query["norm"][0]] if query["attack"][0] in ("fgsm", "pgd") else "severity"
    container = page.locator(f".st-key-{key}")
    assert container.is_visible(), f"the {key} slider is in use but not on screen"
    return container.get_by_role("slider")


def shown(page) -> tuple[str, str, str]:
    """(what the slider in use says, what the stage's caption says, what the link says)."""
    slider = visible_slider(page)
    widget = slider.get_attribute("aria-valuetext") or slider.get_attribute("aria-valuenow")
    caption = page.locator("[data-testid=stCaptionContainer]", has_text=re.compile(r"budget ε [\d.]|severity \d of 5")).first.inner_text()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    if "severity" in caption:
        said = re.search(r"severity (\d+) of 5", caption).group(1)
        return widget, said, query["budget"][0]
    said = re.search(r"budget ε ([\d.]+(?:/255)?)", caption).group(1)
    return widget, said, query["budget"][0]


def value(text: str) -> tuple[float, bool] | None:
    """"8/255" -> (8.0, True); "1.00" and "1" -> (1.0, False): a slider writes its own number of decimals."""
    try:
        return float(text.removesuffix("/255")), text.endswith("/255")
    except (TypeError, ValueError):
        return None


def assert_in_step(page, expected: str | None = None, within_s: float = 20.0) -> str:
    """Until the slider in use, the caption and the link agree (and equal ``expected``); a page still
    drawing may disagree for a moment, a stale slider disagrees for good."""
    deadline = time.monotonic() + within_s
    while True:
        why = ""
        try:
            widget, caption, link = shown(page)
        except (AssertionError, AttributeError, KeyError) as error:  # mid-rerun: the link or the caption is not there yet
            widget = caption = link = "?"
            why = f"{type(error).__name__}: {error}"
        if value(widget) == value(caption) == value(link) and (expected is None or value(widget) == value(expected)):
            return widget
        if time.monotonic() > deadline:
            raise AssertionError(f"slider {widget!r}, caption {caption!r}, link {link!r}, expected {expected!r}\n{why}\n{page_state(page)}")
        page.wait_for_timeout(250)


def page_state(page) -> str:
    """What a failure message needs to tell a stale page from a slow one: the link, which budget
    sliders are on screen, whether Streamlit is still running, and any error the page shows."""
    on_screen = [key for key in (*NORM_KEYS.values(), "severity") if page.locator(f".st-key-{key}").is_visible()]
    running = page.locator("[data-testid=stStatusWidget]").count() > 0
    errors = page.locator("[data-testid=stException], [data-testid=stAlertContentError]").all_inner_texts()
    return f"link {page.url}; sliders on screen {on_screen}; running {running}; errors {errors}"


def test_the_reported_path_lesson_end_reset_then_three_norm_switches(site):
    page = open_page(site)
    button(page, "Start the lesson")
    assert_in_step(page, "0/255")
    button(page, "End the lesson")
    button(page, "Reset all")
    assert_in_step(page, "8/255")
    for position in (1, 2, 0):  # L2, L1, back to L∞
        click_option(page, "norm", position)
        assert_in_step(page)
    assert_in_step(page, "8/255")
    visible_slider(page).focus()
    page.keyboard.press("ArrowRight")
    settle(page)
    assert_in_step(page, "9/255")
    page.close()


def test_the_whole_lesson_with_norm_method_and_kind_switches_between_steps(site):
    page = open_page(site)
    button(page, "Start the lesson")
    for step in range(7):
        assert_in_step(page)
        if step != 6:  # step 7 is a camera problem: no norm to switch
            click_option(page, "norm", 1)  # away and back, as a curious student does mid-lesson
            click_option(page, "norm", 0)
            assert_in_step(page)
        button(page, "Next")
    assert_in_step(page, "8/255")  # step 8: FGSM at 8/255 again, after the corruption of step 7
    button(page, "Back")
    assert_in_step(page, "3")  # step 7: Gaussian noise, severity 3
    page.close()


def test_a_shared_link_then_switching_away_and_back_keeps_each_norms_budget(site):
    page = open_page(site, "?norm=l2&budget=1.5&attack=pgd&steps=5")
    assert_in_step(page, "1.5")
    click_option(page, "norm", 0)
    assert_in_step(page, "8/255")
    click_option(page, "norm", 1)
    assert_in_step(page, "1.5")
    click_option(page, "method", 0)  # FGSM: the PGD steps leave, the budget stays
    click_option(page, "method", 1)
    assert page.locator(".st-key-iterations [role=radiogroup] input:checked").count() == 1
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["steps"] == ["5"]
    page.close()


def test_a_corruption_then_reset_then_back_to_an_attack(site):
    page = open_page(site)
    click_option(page, "kind", 1)
    visible_slider(page).focus()
    page.keyboard.press("ArrowRight")
    settle(page)
    assert_in_step(page, "4")
    button(page, "Reset all")
    assert_in_step(page, "8/255")
    click_option(page, "kind", 1)
    assert_in_step(page, "3")
    click_option(page, "kind", 0)
    assert_in_step(page, "8/255")
    page.close()
