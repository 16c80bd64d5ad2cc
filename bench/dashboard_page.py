"""Driving the dashboard in Chromium for the browser benchmark: how long a change takes until both
verdicts are drawn, the budget slider, a first use of a control, and the next photo.

A verdict counts as drawn when both verdict cards name the new settings (pages with cards) or when
both probability charts have changed (pages from before the cards).
"""

from __future__ import annotations

# Pages from before the control was renamed call it "source".
OLD_KEYS = {"attacker": "source"}


INSTALL = """() => {
  if (window.__bench) return;
  window.__bench = true;
  for (const kind of ['keydown', 'pointerdown']) document.addEventListener(kind, () => { window.__inputAt = performance.now(); }, true);
}"""
VERDICTS = {
    True: "() => [...document.querySelectorAll('.bg-verdict')].map(card => card.getAttribute('data-view'))",
    False: """() => ['baseline', 'adversarial'].map(name => {
        const plots = [...document.querySelectorAll('.st-key-prediction_' + name + ' .js-plotly-plot')];
        const drawn = plots.map(p => p._fullData && p._fullData[1] ? JSON.stringify(Array.from(p._fullData[1].x)) : null).filter(Boolean);
        return drawn.length ? drawn[drawn.length - 1] : null; })""",
}
WAIT = """([read, before, isNew]) => new Promise(resolve => {
  const snapshot = eval(read);
  const idle = () => !document.querySelector('[data-testid=stStatusWidget]');
  const done = () => {
    const now = snapshot();
    if (isNew) return now.length === 2 && now[0] === now[1] && !before.includes(now[0]);
    const changed = now.map((value, i) => value !== null && value !== before[i]);
    // A new attacker can leave one model's input, hence its chart, as it was: then that chart and the end of the rerun.
    return changed.every(Boolean) || (changed.some(Boolean) && idle());
  };
  const finish = () => requestAnimationFrame(() => resolve(performance.now() - window.__inputAt));
  if (done()) return finish();
  const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); finish(); } });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
})"""


class Page:
    """One version of the page, and what "both verdicts drawn" means on it: on this one, both
    verdict cards name the new settings; on the older one, both probability charts changed."""

    def __init__(self, page, new: bool):
        self.page, self.new = page, new

    def verdicts_shown(self) -> bool:
        if self.new:
            return self.page.locator(".bg-verdict").count() >= 2
        return self.page.locator("[class*='st-key-prediction_'] [data-testid='stMarkdownContainer']").filter(has_text="Clean:").count() >= 2

    def snapshot(self) -> list:
        return self.page.evaluate(VERDICTS[self.new])

    def timed(self, action, timeout_ms: float = 120_000) -> float:
        """Milliseconds from the input event ``action`` sends to the frame that shows both new verdicts."""
        self.page.evaluate(INSTALL)
        before = self.snapshot()
        self.page.evaluate("args => { window.__verdicts = (" + WAIT + ")(args); }", [VERDICTS[self.new], before, self.new])
        action()
        elapsed = float(self.page.evaluate("() => Promise.race([window.__verdicts, new Promise((_, fail) => setTimeout(() => fail(new Error('no new verdicts')), %d))])" % timeout_ms))
        self.settle()
        return elapsed

    def settle(self) -> None:
        """Until Streamlit's running indicator is gone and everything below is drawn, then a pause."""
        self.page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=120_000)
        self.page.wait_for_timeout(250)


class Slider:
    """The L∞ budget slider of one page, walked from 0 to the top and back, one step per move."""

    def __init__(self, view: Page):
        self.view = view
        self.input = view.page.locator(".st-key-epsilon_infinity input[type=range]")
        self.top = int(float(self.input.get_attribute("max")))
        self.input.focus()
        view.page.keyboard.press("Home")
        view.settle()
        self.value, self.direction = 0, 1

    def move(self) -> float:
        """(c): one arrow key, until both verdicts are redrawn."""
        if not 0 <= self.value + self.direction <= self.top:
            self.direction = -self.direction
        self.value += self.direction
        key = "ArrowRight" if self.direction > 0 else "ArrowLeft"
        self.input.focus()
        return self.view.timed(lambda: self.view.page.keyboard.press(key))


def click_option(view: Page, key: str, position: int) -> None:
    if key in OLD_KEYS and view.page.locator(f".st-key-{key}").count() == 0:
        key = OLD_KEYS[key]
    view.page.locator(f".st-key-{key} [role=radiogroup] label").nth(position).click()


def next_photo(view: Page) -> None:
    """Another photo of the same class (not measured): later uses must compute, like the first."""
    slider = view.page.locator("[class*='st-key-test_index_'] input[type=range]").first
    maximum, current = float(slider.get_attribute("max")), float(slider.input_value())
    slider.focus()
    view.page.keyboard.press("ArrowRight" if current < maximum else "Home")
    view.settle()


def use_control(view: Page, key: str, position: int) -> float:
    """(d): one use of a control on a photo not seen before; then back to the default."""
    next_photo(view)
    elapsed = view.timed(lambda: click_option(view, key, position))
    click_option(view, key, 0)  # back to the default (not measured)
    view.settle()
    return elapsed
