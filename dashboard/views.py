"""Plotly figures: numpy for display only, no model calls.

Colour conventions kept across every panel so a projected screen reads at a glance:
baseline = orange, adversarial (NSL) = teal, clean = grey; perturbations and activation changes
use a diverging red/blue scale centred on zero (red = more, blue = less).

Why plain figure specs instead of ``make_subplots``: every slider move redraws these figures, and
``make_subplots`` plus Plotly's property validation cost 15–110 ms per figure on a laptop CPU —
more than the attack itself. Specs built here take about 1 ms; :func:`dashboard.figures.figure` wraps them
without re-validating (the tests check the specs render in Streamlit and in Chromium).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import plotly.graph_objects as go

from core.activations import top_channels
from core.attacks import norm_symbol

from dashboard.figures import BASE_FONT, TITLE_FONT, figure
from dashboard.settings import MODEL_NAMES
from dashboard.style import CLEAN_COLOUR, MODEL_COLOURS
from dashboard.wording import MODEL_TITLES, class_title

if TYPE_CHECKING:  # a type only: the outcomes are made a floor above
    from dashboard.analysis import ModelOutcome
# ColorBrewer RdBu, spelled out: Plotly.js and plotly.py disagree on named-scale directions.
DIVERGING = [[0.0, "#2166AC"], [0.25, "#92C5DE"], [0.5, "#F7F7F7"], [0.75, "#F4A582"], [1.0, "#B2182B"]]  # blue = less, red = more
ACTIVATION_SCALE = "Viridis"
_MARGIN = {"l": 8, "r": 8, "t": 72, "b": 8}  # room for a figure title above the subplot titles
PRESENTATION_SCALE = 1.3  # presentation mode: type and figures this much larger
# The toolbar stays on (hover): the camera button downloads the figure as a PNG, twice the size.
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def _grid(rows: int, columns: int, horizontal_gap: float, vertical_gap: float, right: float = 1.0) -> list[tuple[list[float], list[float]]]:
    """Paper-coordinate domains (x, y) of a rows × columns grid, row-major from the top left."""
    width = (right - horizontal_gap * (columns - 1)) / columns
    height = (1.0 - vertical_gap * (rows - 1)) / rows
    cells = []
    for row in range(rows):
        top = 1.0 - row * (height + vertical_gap)
        for column in range(columns):
            left = column * (width + horizontal_gap)
            cells.append(([round(left, 6), round(left + width, 6)], [round(max(0.0, top - height), 6), round(top, 6)]))
    return cells


def _square_cell(layout: dict, index: int, domain: tuple[list[float], list[float]], size: tuple[int, int], title: str = "") -> tuple[str, str]:
    """Axes ``x{index}``/``y{index}`` showing a size[0] × size[1] picture with square pixels, top row first."""
    suffix = "" if index == 1 else str(index)
    height, width = size
    layout[f"xaxis{suffix}"] = {"domain": domain[0], "anchor": f"y{suffix}", "visible": False, "range": [-0.5, width - 0.5], "constrain": "domain"}
    layout[f"yaxis{suffix}"] = {
        "domain": domain[1], "anchor": f"x{suffix}", "visible": False, "range": [height - 0.5, -0.5],
        "scaleanchor": f"x{suffix}", "constrain": "domain",
    }  # fmt: skip
    if title:
        layout.setdefault("annotations", []).append(
            {"text": title, "x": sum(domain[0]) / 2, "y": domain[1][1], "xref": "paper", "yref": "paper",
             "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": BASE_FONT}}
        )  # fmt: skip
    return f"x{suffix}", f"y{suffix}"


def probability_figure(outcome: "ModelOutcome", class_names: Sequence[str], true_label: int | None) -> go.Figure:
    """Clean vs perturbed class probabilities of one model, true class marked."""
    labels = [class_title(name) + (" ✓ true" if index == true_label else "") for index, name in enumerate(class_names)]
    data = [
        {
            "type": "bar", "name": name, "y": labels, "x": np.asarray(values, float) * 100.0, "orientation": "h",
            "marker": {"color": colour}, "text": [f"{v * 100:.0f}%" for v in values], "textposition": "outside",
            "hovertemplate": "%{y}: %{x:.1f}%<extra>" + name + "</extra>",
        }
        for name, values, colour in (
            ("before", outcome.clean_probabilities, CLEAN_COLOUR),
            ("after", outcome.perturbed_probabilities, MODEL_COLOURS[outcome.name]),
        )
    ]  # fmt: skip
    layout = {
        "barmode": "group",
        "height": 230,
        "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
        "xaxis": {"range": [0, 115], "ticksuffix": "%"},
        "yaxis": {"autorange": "reversed", "automargin": True},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    }
    return figure({"data": data, "layout": layout})


def _colour_axes(activation_peak: float, change_peak: float) -> dict:
    change_peak, activation_peak = max(change_peak, 1e-6), max(activation_peak, 1e-6)
    return {
        "coloraxis": {"colorscale": ACTIVATION_SCALE, "cmin": 0.0, "cmax": activation_peak, "colorbar": {"title": {"text": "activation"}, "x": 1.0, "len": 0.45, "y": 0.78}},
        "coloraxis2": {"colorscale": DIVERGING, "cmid": 0.0, "cmin": -change_peak, "cmax": change_peak, "colorbar": {"title": {"text": "change"}, "x": 1.0, "len": 0.45, "y": 0.22}},
    }


def _heatmap(values: np.ndarray, axes: tuple[str, str], coloraxis: str, label: str) -> dict:
    return {"type": "heatmap", "z": values, "xaxis": axes[0], "yaxis": axes[1], "coloraxis": coloraxis, "hovertemplate": f"{label}<br>x %{{x}}, y %{{y}}: %{{z:.3f}}<extra></extra>"}


def activation_figure(outcomes: dict[str, "ModelOutcome"], layer: str, channel: int) -> go.Figure:
    """Both models × (clean, perturbed, change) for one channel, on shared colour scales."""
    maps = {name: (outcomes[name].clean_maps[layer][..., channel], outcomes[name].perturbed_maps[layer][..., channel]) for name in MODEL_NAMES}
    activation_peak = max(float(np.max(pair)) for pair in maps.values())
    change_peak = max(float(np.abs(pair[1] - pair[0]).max()) for pair in maps.values())
    layout: dict = {"height": 580, "margin": _MARGIN, "title": {"text": f"Layer {layer}, channel {channel}", "font": TITLE_FONT}, **_colour_axes(activation_peak, change_peak)}
    cells = iter(_grid(2, 3, 0.03, 0.1, right=0.92))
    data, index = [], 0
    for name in MODEL_NAMES:
        clean, perturbed = maps[name]
        for column, values, axis in (("before", clean, "coloraxis"), ("after", perturbed, "coloraxis"), ("after − before", perturbed - clean, "coloraxis2")):
            index += 1
            axes = _square_cell(layout, index, next(cells), values.shape, f"{MODEL_TITLES[name]}: {column}")
            data.append(_heatmap(values, axes, axis, f"{name} {column}"))
    return figure({"data": data, "layout": layout})


def top_channels_figure(outcomes: dict[str, "ModelOutcome"], layer: str, count: int) -> go.Figure:
    """Each model's ``count`` most active channels (on the clean image): before, after, change.

    Why this layout: a title per picture ("Baseline ch 117: change") did not fit six pictures across
    at 1280 px and the titles ran into each other. Now each model's three columns are headed once,
    and each row says its channel number once, on its left (channel numbers differ between models).
    """
    chosen = {name: top_channels(outcomes[name].clean_maps[layer], count) for name in MODEL_NAMES}
    kinds = ("before", "after", "change")
    label_room, group_gap, column_gap, right = 0.035, 0.05, 0.012, 0.92
    width = (right - 2 * label_room - group_gap - 2 * (len(kinds) - 1) * column_gap) / (2 * len(kinds))
    vertical_gap = 0.03
    height = (1.0 - vertical_gap * (count - 1)) / count
    layout: dict = {
        "height": 150 + 150 * count, "margin": {**_MARGIN, "t": 104},
        "title": {"text": f"Layer {layer}: the {count} busiest channels of each model", "font": TITLE_FONT},
    }  # fmt: skip
    annotations: list[dict] = []
    data, activation_peak, change_peak, index = [], 0.0, 0.0, 0
    for group, name in enumerate(MODEL_NAMES):
        start = group * (label_room + len(kinds) * width + (len(kinds) - 1) * column_gap + group_gap) + label_room
        group_end = start + len(kinds) * width + (len(kinds) - 1) * column_gap
        annotations.append(_label(MODEL_TITLES[name], (start + group_end) / 2, 1.0, yshift=26, size=BASE_FONT, bold=True))
        for row in range(count):
            channel = chosen[name][row]
            top = 1.0 - row * (height + vertical_gap)
            annotations.append(_label(f"ch {channel}", start - 0.006, top - height / 2, anchor=("right", "middle"), size=BASE_FONT - 2, angle=-90))
            clean = outcomes[name].clean_maps[layer][..., channel]
            perturbed = outcomes[name].perturbed_maps[layer][..., channel]
            for column, kind in enumerate(kinds):
                left = start + column * (width + column_gap)
                index += 1
                axes = _square_cell(layout, index, ([round(left, 6), round(left + width, 6)], [round(max(0.0, top - height), 6), round(top, 6)]), clean.shape)
                if row == 0:
                    annotations.append(_label(kind, left + width / 2, 1.0, size=BASE_FONT - 2))
                if kind == "change":
                    values, axis = perturbed - clean, "coloraxis2"
                    change_peak = max(change_peak, float(np.abs(values).max()))
                else:
                    values, axis = (clean if kind == "before" else perturbed), "coloraxis"
                    activation_peak = max(activation_peak, float(values.max()))
                data.append(_heatmap(values, axes, axis, f"{MODEL_TITLES[name]} channel {channel}, {kind}"))
    layout["annotations"] = annotations
    layout.update(_colour_axes(activation_peak, change_peak))
    return figure({"data": data, "layout": layout})


def _label(text: str, x: float, y: float, anchor: tuple[str, str] = ("center", "bottom"), size: int = BASE_FONT, yshift: int = 0, angle: int = 0, bold: bool = False) -> dict:
    """A text placed in paper coordinates (column headings, row labels)."""
    return {
        "text": f"<b>{text}</b>" if bold else text, "x": x, "y": y, "xref": "paper", "yref": "paper", "xanchor": anchor[0], "yanchor": anchor[1],
        "showarrow": False, "font": {"size": size}, "yshift": yshift, "textangle": angle,
    }  # fmt: skip


def curve_figure(curve: dict, norm: str, current_epsilon: float | None = None, classes: int = 3) -> go.Figure:
    """Accuracy vs attack budget for both models; the slider's current budget as a dashed line."""
    scale = 255.0 if norm == "infinity" else 1.0
    epsilons = np.asarray(curve["epsilons"], dtype=float) * scale
    data = [
        {
            "type": "scatter", "x": epsilons, "y": np.asarray(curve[name], float) * 100.0, "mode": "lines+markers",
            "name": MODEL_TITLES[name], "line": {"color": MODEL_COLOURS[name], "width": 3},
            "hovertemplate": "ε %{x:g}: %{y:.1f}%<extra>" + MODEL_TITLES[name] + "</extra>",
        }
        for name in MODEL_NAMES
    ]  # fmt: skip
    chance = 100.0 / classes
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": chance, "y1": chance, "line": {"dash": "dot", "color": "#888"}}]
    annotations = [{"text": "guessing", "xref": "paper", "x": 1, "y": chance, "xanchor": "right", "yanchor": "top", "showarrow": False, "font": {"color": "#666"}}]
    if current_epsilon is not None:
        x = current_epsilon * scale
        shapes.append({"type": "line", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1, "line": {"dash": "dash", "color": "#555"}})
        annotations.append({"text": "your slider", "yref": "paper", "x": x, "y": 1, "yanchor": "bottom", "showarrow": False, "font": {"color": "#444"}})
    layout = {
        "height": 340,
        "margin": _MARGIN,
        "title": {"text": str(curve.get("attack", "")), "font": TITLE_FONT},
        "xaxis": {"title": {"text": f"budget ε ({norm_symbol(norm)}{', in 1/255 steps' if norm == 'infinity' else ''})"}},
        "yaxis": {"title": {"text": "test accuracy"}, "range": [0, 105], "ticksuffix": "%"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "shapes": shapes,
        "annotations": annotations,
    }
    return figure({"data": data, "layout": layout})


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str, colour: str) -> go.Figure:
    """Counts of (true class, answer) as a heatmap with the numbers written in: the diagonal is right."""
    labels = [class_title(name) for name in class_names]
    total = max(int(matrix.sum()), 1)
    data = [{
        "type": "heatmap", "z": matrix, "x": labels, "y": labels, "colorscale": [[0.0, "#FFFFFF"], [1.0, colour]], "showscale": False,
        "zmin": 0, "zmax": max(int(matrix.max()), 1), "text": matrix, "texttemplate": "%{text}", "textfont": {"size": BASE_FONT + 2},
        "hoverinfo": "skip",
    }]  # fmt: skip
    # Streamlit reports no click on a heatmap: a clear marker over each cell takes the hover and the click.
    cells = [(true, answer) for true in range(len(labels)) for answer in range(len(labels))]
    data.append({
        "type": "scatter", "mode": "markers", "x": [labels[a] for _, a in cells], "y": [labels[t] for t, _ in cells], "customdata": cells,
        "text": [int(matrix[t, a]) for t, a in cells], "marker": {"symbol": "square", "size": 56, "color": "rgba(0, 0, 0, 0)"}, "showlegend": False,
        "hovertemplate": "true %{y}, answered %{x}: %{text} photos (click to see them)<extra></extra>",
    })  # fmt: skip
    layout = {
        "height": 330,
        "margin": {"l": 8, "r": 8, "t": 48, "b": 8},
        "title": {"text": f"{title} — {np.trace(matrix) / total:.0%} right", "font": TITLE_FONT},
        "xaxis": {"title": {"text": "answer"}, "side": "bottom", "automargin": True},
        "yaxis": {"title": {"text": "true class"}, "autorange": "reversed", "automargin": True},
    }
    return figure({"data": data, "layout": layout})


def for_screen(chart: go.Figure, presentation: bool) -> go.Figure:
    """Presentation mode: every font and the figure's height scaled up for a projector."""
    if not presentation:
        return chart
    layout = chart.layout
    layout.font = {"size": round(BASE_FONT * PRESENTATION_SCALE)}
    if layout.height:
        layout.height = round(layout.height * PRESENTATION_SCALE)
    if layout.title and layout.title.font and layout.title.font.size:
        layout.title.font.size = round(layout.title.font.size * PRESENTATION_SCALE)
    for annotation in layout.annotations or ():
        if annotation.font and annotation.font.size:
            annotation.font.size = round(annotation.font.size * PRESENTATION_SCALE)
    return chart


def runs_figure(points: Sequence[tuple[str, dict[str, float], dict[str, float]]], attack: str) -> go.Figure:
    """Clean (x) against robust (y) accuracy: each run one line from its baseline to its NSL model
    (what the NSL training bought and cost), named in the legend; the numbers on hover.

    Why no text labels on the points: runs that land close together piled their labels on top of
    each other; a legend entry per run cannot."""
    symbols = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "triangle-down", "pentagon")
    data = [
        {
            "type": "scatter", "mode": "lines+markers", "name": title, "x": [100 * clean[m] for m in MODEL_NAMES], "y": [100 * robust[m] for m in MODEL_NAMES],
            "line": {"color": CLEAN_COLOUR, "width": 1.5}, "customdata": [MODEL_TITLES[m] for m in MODEL_NAMES],
            "marker": {"size": 12, "symbol": symbols[number % len(symbols)], "color": [MODEL_COLOURS[m] for m in MODEL_NAMES]},
            "hovertemplate": f"{title}<br>%{{customdata}}: clean %{{x:.1f}}%, robust %{{y:.1f}}%<extra></extra>",
        }
        for number, (title, clean, robust) in enumerate(points)
    ]  # fmt: skip
    layout = {
        "height": 440, "margin": {"l": 8, "r": 8, "t": 56, "b": 8},
        "title": {"text": f"Clean vs robust test accuracy ({attack}, white-box)", "font": TITLE_FONT},
        "xaxis": {"title": {"text": "clean accuracy (%)"}, "range": [0, 102]},
        "yaxis": {"title": {"text": "robust accuracy (%)"}, "range": [0, 102]},
        "legend": {"orientation": "v", "x": 0.01, "y": 0.99, "bgcolor": "rgba(255,255,255,0.8)"},
    }  # fmt: skip
    return figure({"data": data, "layout": layout})
