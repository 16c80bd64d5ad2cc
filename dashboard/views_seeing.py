"""Plotly figures of the "seeing why" sections: how far the test photos are from being fooled, where
they lie in each model's own view of them, and the accuracy on each disease.

The conventions of ``dashboard/views.py`` (plain figure specs wrapped by ``dashboard.figures.figure`` without
Plotly's slow per-property validation; baseline orange, NSL teal, clean grey; the budget in the norm's own units)
in a module of its own, so that views.py stays short. Numpy for display only, no model calls.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from core.attacks import budget_label, norm_symbol, to_display

from dashboard.figures import TITLE_FONT, figure
from dashboard.settings import MODEL_NAMES
from dashboard.split_analysis import PhotoMap
from dashboard.style import CLASS_COLOURS, MODEL_COLOURS, WRONG_COLOUR
from dashboard.wording import MODEL_SHORT, MODEL_TITLES, class_title

ARROW_COLOUR = "rgba(70, 70, 70, 0.45)"


def _budget_axis(norm: str) -> str:
    return f"budget ε ({norm_symbol(norm)}{', in 1/255 steps' if norm == 'infinity' else ''})"


def budget_share_figure(budgets: dict[str, np.ndarray], norm: str, top: float, current: float | None = None) -> go.Figure:
    """For each model, the share of test photos a change of at most budget ε fools, as ε grows to
    ``top`` (the empirical distribution of the smallest fooling budgets; 0 = wrong already, inf =
    not fooled up to ``top``). Read as 100% minus it, it is the accuracy curve."""
    data = []
    for name in MODEL_NAMES:
        values = np.sort(np.asarray(budgets[name], float))
        count = max(len(values), 1)
        found = values[np.isfinite(values)]
        x = [0.0, *(to_display(norm, value) for value in found), to_display(norm, top)]
        y = [0.0, *(100.0 * (index + 1) / count for index in range(len(found))), 100.0 * len(found) / count]
        held = 100.0 * (count - len(found)) / count
        data.append({
            "type": "scatter", "x": x, "y": y, "mode": "lines", "line": {"shape": "hv", "color": MODEL_COLOURS[name], "width": 3},
            "name": f"{MODEL_TITLES[name]} ({held:.0f}% not fooled even at {budget_label(norm, top)})",
            "hovertemplate": "up to ε %{x:.3g}: %{y:.0f}% of the photos fooled<extra>" + MODEL_TITLES[name] + "</extra>",
        })  # fmt: skip
    shapes, annotations = [], []
    if current is not None:
        x = to_display(norm, current)
        shapes.append({"type": "line", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1, "line": {"dash": "dash", "color": "#555"}})
        annotations.append({"text": " your slider", "yref": "paper", "x": x, "y": 0.02, "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"color": "#444"}})
    layout = {
        "height": 340, "margin": {"l": 8, "r": 8, "t": 56, "b": 8},
        "xaxis": {"title": {"text": _budget_axis(norm)}, "range": [0, to_display(norm, top) * 1.02]},
        "yaxis": {"title": {"text": "test photos fooled"}, "range": [0, 102], "ticksuffix": "%"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}, "shapes": shapes, "annotations": annotations,
    }  # fmt: skip
    return figure({"data": data, "layout": layout})


def photo_map_figure(
    name: str,
    points: PhotoMap,
    labels: np.ndarray,
    right: tuple[np.ndarray, np.ndarray],
    class_names: Sequence[str],
    filenames: Sequence[str],
    current: int | None = None,
) -> go.Figure:
    """One model's map: each clean test photo a dot in its class's colour, an arrow to where the change
    moves it, a cross on every answer that is wrong (clean or changed), the photo on screen ringed.
    Every point carries its photo's index (``customdata``), so a click can open it. ``right``: (clean,
    changed) bool per photo."""
    clean, changed = points.clean, points.changed
    gaps = np.full(len(clean), np.nan)
    arrows = {
        "type": "scatter", "mode": "lines+markers", "name": "the change moves it", "hoverinfo": "skip",
        "x": np.column_stack([clean[:, 0], changed[:, 0], gaps]).ravel(), "y": np.column_stack([clean[:, 1], changed[:, 1], gaps]).ravel(),
        "line": {"color": ARROW_COLOUR, "width": 1}, "connectgaps": False,
        "marker": {"symbol": "arrow", "angleref": "previous", "size": np.tile([0, 9, 0], len(clean)), "color": ARROW_COLOUR},
    }  # fmt: skip
    data = [arrows]
    for label, title in enumerate(class_names):
        members = np.flatnonzero(labels == label)
        data.append({
            "type": "scatter", "mode": "markers", "name": class_title(title), "x": clean[members, 0], "y": clean[members, 1],
            "customdata": members, "text": [filenames[i] for i in members],
            "marker": {"size": 9, "color": CLASS_COLOURS[label % len(CLASS_COLOURS)], "line": {"color": "white", "width": 1}},
            "hovertemplate": "%{text}<br>" + class_title(title) + ", unchanged<extra></extra>",
        })  # fmt: skip
    everyone = np.arange(len(clean))
    data.append({
        "type": "scatter", "mode": "markers", "name": "changed photo", "x": changed[:, 0], "y": changed[:, 1], "customdata": everyone,
        "text": list(filenames), "hovertemplate": "%{text}<br>after the change<extra></extra>",
        "marker": {"size": 7, "symbol": "circle-open", "color": [CLASS_COLOURS[int(label) % len(CLASS_COLOURS)] for label in labels], "line": {"width": 2}},
    })  # fmt: skip
    wrong = np.concatenate([clean[~right[0]], changed[~right[1]]])
    which = np.concatenate([everyone[~right[0]], everyone[~right[1]]])
    data.append({
        "type": "scatter", "mode": "markers", "name": "✗ wrong answer", "x": wrong[:, 0], "y": wrong[:, 1], "customdata": which,
        "marker": {"size": 7, "symbol": "x-thin-open", "color": WRONG_COLOUR, "line": {"width": 2, "color": WRONG_COLOUR}}, "hoverinfo": "skip",
    })  # fmt: skip
    if current is not None:
        ring = np.array([clean[current], changed[current]])
        data.append({
            "type": "scatter", "mode": "markers", "name": "the photo above", "x": ring[:, 0], "y": ring[:, 1], "customdata": [current, current],
            "marker": {"size": 20, "symbol": "circle-open", "color": "#222", "line": {"width": 3}}, "hoverinfo": "skip",
        })  # fmt: skip
    shares = points.explained
    layout = {
        "height": 480, "margin": {"l": 8, "r": 8, "t": 48, "b": 8}, "clickmode": "event+select", "dragmode": "pan",
        "title": {"text": f"{MODEL_TITLES[name]}: how the {MODEL_SHORT[name]} sees the test photos", "font": TITLE_FONT},
        "xaxis": {"title": {"text": f"its main direction ({shares[0]:.0%} of the spread)"}, "showticklabels": False, "zeroline": False},
        "yaxis": {"title": {"text": f"second direction ({shares[1]:.0%})"}, "showticklabels": False, "zeroline": False},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.1, "x": 0},
    }  # fmt: skip
    return figure({"data": data, "layout": layout})


def class_accuracy_figure(changed: dict[str, np.ndarray], clean: dict[str, np.ndarray], photos: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Accuracy under the change on each true class, both models side by side (grouped bars); the
    accuracy before the change in each bar's label and tooltip."""
    titles = [f"{class_title(title)} ({int(count)} photos)" for title, count in zip(class_names, photos)]
    data = [
        {
            "type": "bar", "name": MODEL_TITLES[name], "x": titles, "y": np.nan_to_num(changed[name]) * 100.0, "marker": {"color": MODEL_COLOURS[name]},
            "text": [f"{a:.0%} (before {b:.0%})" for a, b in zip(np.nan_to_num(changed[name]), np.nan_to_num(clean[name]))], "textposition": "outside",
            "hovertemplate": "%{x}: %{y:.0f}% right after the change<extra>" + MODEL_TITLES[name] + "</extra>",
        }
        for name in MODEL_NAMES
    ]  # fmt: skip
    layout = {
        "barmode": "group", "height": 330, "margin": {"l": 8, "r": 8, "t": 40, "b": 8},
        "yaxis": {"title": {"text": "right after the change"}, "range": [0, 118], "ticksuffix": "%"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    }  # fmt: skip
    return figure({"data": data, "layout": layout})
