"""The real thing: `streamlit run` in a subprocess, opened in headless Debian Chromium via Playwright.

Streamlit draws over a websocket after the page loads, so every wait is for content, not for
the load event. Chromium comes from Debian (/usr/bin/chromium): ``playwright install`` needs the
internet. The fixture installs it with apt-get when it is missing and we are root; if that is
impossible the test skips locally and fails on CI.

The README's screenshots come from ``tests/test_dashboard_lesson_browser.py`` (``BEANGUARD_UPDATE_SCREENSHOT=1``);
this test keeps a full-page picture of the page in its temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.beans import REPO_ROOT
from tests.support.server import CHROMIUM_ARGS, all_bar_values, open_when_ready, running_server, server_env, wait_for_bars

VERDICT = ".st-key-verdict_{name} .bg-verdict"


def _server_environment(base: Path) -> dict[str, str]:
    """The shipped models, the ones a class sees (a tiny pair trained for one epoch answers about a
    third for every class, where a budget move changes little)."""
    env = server_env(base, BEANGUARD_TEACHER_PASSCODE="browser-test", BEANGUARD_CHECKPOINT_DIR=str(REPO_ROOT / "checkpoints"))
    real_beans = Path(os.environ.get("BEANS_DATA_DIR", "/nonexistent"))
    if (real_beans / "test").is_dir():
        env["BEANS_DATA_DIR"] = str(real_beans)  # real leaves look better
    return env


def _full_page_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its own containers: grow the viewport to the content, then shoot."""
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebarContent]')]"
        ".map(element => element.scrollHeight))"
    )
    page.set_viewport_size({"width": 1440, "height": int(height) + 40})
    page.wait_for_timeout(1500)  # let Plotly re-layout to the new size
    page.screenshot(path=str(path), full_page=True)


def _unchanged_bars(page, name: str, log: Path) -> str:
    """What a failure needs to be understood: every chart in the model's box (its changed-photo bars), the card, the server's last words."""
    charts = all_bar_values(page, name)
    card = page.locator(VERDICT.format(name=name)).inner_text()
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no server log)"
    return f"the {name} model's perturbed probabilities did not change: charts {charts}; card {card!r}; server log: {tail}"


def test_moving_the_budget_slider_updates_both_predictions_in_a_real_browser(chromium, tmp_path_factory, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with running_server(_server_environment(tmp_path_factory.getbasetemp()), tmp_path / "server.log", wait=False) as (port, server):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                open_when_ready(page, f"http://127.0.0.1:{port}", server)
                for name in ("baseline", "adversarial"):
                    expect(page.locator(VERDICT.format(name=name))).to_be_visible(timeout=90_000)
                before = wait_for_bars(page)
                assert all(values is not None for values in before.values()), "the probability charts were never drawn"

                slider = page.locator(".st-key-epsilon_infinity").get_by_role("slider")
                slider.focus()
                for _ in range(4):
                    page.keyboard.press("ArrowRight")  # 8/255 -> 12/255
                expect(page.get_by_text("FGSM L∞, budget ε 12/255", exact=False).first).to_be_visible(timeout=30_000)
                after = wait_for_bars(page, differing_from=before)  # the bars redraw once the fragment's rerun lands
                for name in ("baseline", "adversarial"):
                    expect(page.locator(VERDICT.format(name=name))).to_contain_text("budget ε 12/255")
                    assert after[name] != before[name], _unchanged_bars(page, name, tmp_path / "server.log")
                assert page.locator('[data-testid="stException"]').count() == 0

                _full_page_screenshot(page, tmp_path / "screenshot.png")

                # A student's page holds no password field at all; ?teacher=1 reveals the passcode field.
                assert page.locator("input[type=password]").count() == 0
                page.goto(f"http://127.0.0.1:{port}/?teacher=1")
                expect(page.locator("input[type=password]")).to_have_count(1, timeout=60_000)
            finally:
                browser.close()
