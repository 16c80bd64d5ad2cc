"""A class round in a real browser: the teacher starts it, three students join (one with a nickname
that is HTML) and submit, the class board shows all three within 3 s with no dialog ever firing;
the server is killed with SIGKILL and started again, and the board shows them all again.

One ``streamlit run`` on the tiny models with a SQLite class store in a temporary folder; headless
Debian Chromium at 1280×720 through Playwright.
"""

from __future__ import annotations

import re
import signal
import time

from tests.support.server import CHROMIUM_ARGS, free_port, open_when_ready, server_env, start_server, stop_server, wait_until_healthy

PASSCODE = "board-teacher-9"
NICKNAMES = ("Ada", "<svg onload=alert(1)>", "Grace")
BOARD_WITHIN_S = 3.0


def _page(browser, dialogs: list[str]):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return page


def _start_round(page, url: str, server) -> str:
    open_when_ready(page, f"{url}/?teacher=1", server)
    page.get_by_role("textbox", name="Teacher passcode").fill(PASSCODE, timeout=90_000)
    page.get_by_role("button", name="Unlock").click()
    page.get_by_role("button", name="Start the round").click(timeout=90_000)
    text = page.get_by_text("Round code", exact=False).first.inner_text(timeout=90_000)
    return re.search(r"Round code (\w{4,5})", text).group(1)


def _join_and_submit(page, url: str, server, code: str, nickname: str) -> None:
    open_when_ready(page, url, server)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("textbox", name="Round code").fill(code, timeout=90_000)
    sidebar.get_by_role("textbox", name="Nickname").fill(nickname)
    sidebar.get_by_role("button", name="Join").click()
    sidebar.get_by_role("button", name="Submit this change").click(timeout=60_000)
    sidebar.get_by_text(re.compile(r"^(Counted|Recorded)")).first.wait_for(timeout=60_000)


def _board_shows(board, names, timeout_s: float) -> float:
    """Seconds until every nickname is on the board as text with its one attempt (raises after ``timeout_s``)."""
    started = time.monotonic()
    for name in names:
        board.locator(".bg-players .bg-player", has_text=f"{name} · 1").first.wait_for(timeout=timeout_s * 1000)
    return time.monotonic() - started


def test_a_round_on_the_board_survives_a_killed_server(chromium, tmp_path_factory, tmp_path):
    from playwright.sync_api import sync_playwright

    env = server_env(tmp_path_factory.getbasetemp(), BEANGUARD_TEACHER_PASSCODE=PASSCODE, BEANGUARD_STORE_URL=f"sqlite:///{tmp_path / 'class.db'}")
    port, dialogs = free_port(), []
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, env, tmp_path / "server.log")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
            try:
                code = _start_round(_page(browser, dialogs), url, server)
                board = _page(browser, dialogs)
                open_when_ready(board, f"{url}/?board=1", server)
                board.get_by_text(code).first.wait_for(timeout=90_000)
                for nickname in NICKNAMES:
                    _join_and_submit(_page(browser, dialogs), url, server, code, nickname)
                assert _board_shows(board, NICKNAMES, BOARD_WITHIN_S) <= BOARD_WITHIN_S
                board.screenshot(path=str(tmp_path / "board.png"))

                server.send_signal(signal.SIGKILL)
                server.wait(timeout=10)
                server = start_server(port, env, tmp_path / "server_again.log")
                wait_until_healthy(port, server)
                board.reload()
                _board_shows(board, NICKNAMES, 90)
                assert board.locator('[data-testid="stException"]').count() == 0
            finally:
                browser.close()
    finally:
        stop_server(server)
    assert dialogs == []
