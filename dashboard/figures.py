"""What every Plotly figure of the page shares: its wrapper, its type sizes.

Both figure modules (``views`` and ``views_seeing``) build plain specs and wrap them here, so the
fonts a class reads from the back of the room are set in one place.
"""

from __future__ import annotations

import plotly.graph_objects as go

BASE_FONT = 14  # px; readable from the back of a classroom (Plotly's default is 12)
TITLE_FONT = {"size": 17}


def figure(spec: dict) -> go.Figure:
    """A Figure from a spec we built ourselves, skipping Plotly's slow per-property validation."""
    spec["layout"].setdefault("font", {"size": BASE_FONT})
    try:
        return go.Figure(spec, _validate=False)
    except TypeError:  # a Plotly without the private switch: validate, slower but correct
        return go.Figure(spec)
