"""Small drawing helpers more than one section uses: accuracy tables, a CSV download and pictures.

Why here: sections never import each other, so what two of them draw alike lives one floor down.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard.wording import MODEL_TITLES, evaluation_row_title

# Spreadsheet programs read a CSV file as UTF-8 only when it starts with a byte-order mark; without
# one, "ε" and "∞" come out as mojibake in Excel.
CSV_BOM = "\ufeff"


def accuracy_table(rows: list[dict[str, Any]]) -> None:
    """Rows of {"row", "baseline", "adversarial", "threat model"} as a table, accuracies in percent."""
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "row": st.column_config.TextColumn("change", width="large"),
            "baseline": st.column_config.NumberColumn(MODEL_TITLES["baseline"], format="percent"),
            "adversarial": st.column_config.NumberColumn(MODEL_TITLES["adversarial"], format="percent"),
            "threat model": st.column_config.TextColumn("threat model", width="medium"),
        },
    )


def evaluation_table(rows: list[dict[str, Any]]) -> None:
    """The evaluation saved with the models: plain row names, each with its technical name and
    threat model in a tooltip, both models' accuracy and, when saved, its 95% interval."""
    body = []
    for row in rows:
        tooltip = html.escape(f"{row.get('name', '')} — {row.get('threat_model', '')}", quote=True)
        cells = []
        for model in ("baseline", "adversarial"):
            value = row.get(model)
            low_high = (row.get("interval") or {}).get(model)
            text = "–" if value is None else f"{100 * value:.1f}%"
            if low_high:
                text += f' <span class="bg-interval">({100 * low_high[0]:.0f}–{100 * low_high[1]:.0f}%)</span>'
            cells.append(f"<td>{text}</td>")
        body.append(f'<tr><td><abbr title="{tooltip}">{html.escape(evaluation_row_title(row))}</abbr></td>{"".join(cells)}</tr>')
    head = f"<tr><th>test photos</th><th>{MODEL_TITLES['baseline']}</th><th>{MODEL_TITLES['adversarial']}</th></tr>"
    st.markdown(f'<table class="bg-evaluation">{head}{"".join(body)}</table>', unsafe_allow_html=True)
    st.caption("Hover over a row for the attack's technical name. In brackets: the range that 95% of repeats on 128 other photos would fall in.")


@contextmanager
def lazy_box(label: str, key: str) -> Iterator[bool]:
    """An expander that says whether it is open, so its contents are drawn only then.

    Why: every element of a rerun goes to the browser again, and the live fragment reruns on every
    budget move of every student; a closed box costs one message instead of its whole text
    (``bench.message_sizes``, docs/benchmarks.md). Opening or closing it reruns the fragment it is
    in (the whole page outside one)."""
    with st.expander(label, key=key, on_change="rerun") as box:
        yield bool(box.open)


def explainer(label: str, key: str, *texts: str) -> None:
    """A "What am I looking at?" box: its texts (``dashboard/explainers.py``) are sent only when it is open."""
    with lazy_box(label, key) as is_open:
        if is_open:
            for text in texts:
                st.markdown(text)


def csv_download(label: str, text: str, file_name: str, key: str, help: str | None = None) -> None:
    """A CSV download that spreadsheet programs open with every character intact."""
    st.download_button(label, (CSV_BOM + text).encode("utf-8"), file_name=file_name, mime="text/csv", key=key, help=help)


def show_picture(place: Any, image: Any, caption: str, width: int | str = "stretch") -> None:
    """``place.image`` (``st`` or a column), unless this run's browser has gone.

    Why: a run still computing when its student's laptop drops (an attack takes seconds) need not
    encode and register pictures nobody will see; what a run registers just before its browser goes
    is freed by :mod:`dashboard.gone_sessions` (tests/test_disconnect.py)."""
    context = get_script_run_ctx()
    if context is not None and runtime.exists() and not runtime.get_instance().is_active_session(context.session_id):
        return
    place.image(image, caption=caption, width=width)
