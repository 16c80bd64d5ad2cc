"""The page's state in one place: the shareable URL, restoring a shared link, and "reset all".

A link holds ``image`` (a test photo's file name), ``attack`` (``fgsm``, ``pgd`` or a corruption),
``steps`` (PGD), ``norm`` (``linf``, ``l2``, ``l1``), ``budget`` (``8/255`` for L∞, a number for
L2/L1, the severity for a corruption), ``source`` (``baseline``, ``adversarial``, ``self``),
``layer`` (a conv layer) and ``present=1`` (presentation mode). A fresh session copies them into
the widgets' Session State once, before any widget is drawn; every rerun writes the current values
back (only those that changed). Values that make no sense are skipped, never an error.
"""

from __future__ import annotations

from typing import Any, Mapping, MutableMapping

import streamlit as st

from core.attacks import CORRUPTIONS, MAX_SEVERITY

from dashboard import attack_controls
from dashboard.analysis import SOURCES, AttackSettings, format_epsilon
from dashboard.image_picker import PENDING_IMAGE

RESTORED = "url_restored"  # set once per session: the URL was read
NORM_NAMES = {"infinity": "linf", "l2": "l2", "l1": "l1"}
URL_KEYS = ("image", "attack", "steps", "norm", "budget", "source", "layer", "present")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def parse_budget(norm: str, text: str) -> int | float | None:
    """"8/255" or "8" for L∞ (whole 1/255 steps), a number for L2/L1; None when out of range."""
    text = str(text).strip()
    if norm == "infinity":
        steps = _number(text[: -len("/255")] if text.endswith("/255") else text)
        value: int | float | None = None if steps is None else int(round(steps))
    else:
        number = _number(text)
        increment = attack_controls.BUDGET_INCREMENTS[norm]
        value = None if number is None else round(round(number / increment) * increment, 6)
    low, top = attack_controls.budget_range(norm)
    return value if value is not None and low <= value <= top else None


def widget_values(params: Mapping[str, str]) -> dict[str, Any]:
    """The Session State a shared link asks for (widget keys; the photo under :data:`PENDING_IMAGE`)."""
    values: dict[str, Any] = {}
    attack = str(params.get("attack", "")).lower()
    if attack in CORRUPTIONS:
        values.update(kind="corruption", corruption=attack)
        severity = _number(params.get("budget", ""))
        if severity is not None and 0 <= severity <= MAX_SEVERITY:
            values["severity"] = int(severity)
    elif attack in ("fgsm", "pgd"):
        values.update(kind="attack", method=attack.upper())
    norm = {url: name for name, url in NORM_NAMES.items()}.get(str(params.get("norm", "")).lower())
    if norm is not None:
        values["norm"] = norm
    if attack not in CORRUPTIONS and "budget" in params:
        budget = parse_budget(norm or "infinity", params["budget"])
        if budget is not None:
            values[attack_controls.budget_key(norm or "infinity")] = budget
    steps = _number(params.get("steps", ""))
    if steps is not None and int(steps) in attack_controls.PGD_STEP_CHOICES:
        values["iterations"] = int(steps)
    if params.get("source") in SOURCES:
        values["source"] = params["source"]
    if params.get("layer"):
        values["layer"] = str(params["layer"])  # checked against the model's layers where it is drawn
    if params.get("image"):
        values[PENDING_IMAGE] = str(params["image"])
    if str(params.get("present", "")) in ("1", "true", "yes"):
        values["present"] = True
    return values


def url_values(settings: AttackSettings, filename: str | None, layer: str | None, present: bool) -> dict[str, str]:
    """What the URL should hold for this view (the inverse of :func:`widget_values`)."""
    values: dict[str, str] = {}
    if filename:
        values["image"] = filename
    if settings.kind == "corruption":
        values.update(attack=settings.corruption, budget=str(settings.severity))
    else:
        values.update(
            attack="pgd" if settings.iterations > 1 else "fgsm",
            norm=NORM_NAMES[settings.norm],
            budget=format_epsilon(settings.norm, settings.epsilon),
            source=settings.source,
        )
        if settings.iterations > 1:
            values["steps"] = str(settings.iterations)
    if layer:
        values["layer"] = layer
    if present:
        values["present"] = "1"
    return values


def restore_once(state: MutableMapping[str, Any], params: Mapping[str, str]) -> None:
    """First run of a session: the URL's values become the widgets' values."""
    if state.get(RESTORED):
        return
    state[RESTORED] = True
    state.update(widget_values(params))


def publish(values: dict[str, str], keys: tuple[str, ...] = URL_KEYS) -> None:
    """Make ``st.query_params`` hold ``values`` for ``keys`` (others in ``keys`` are removed);
    touching only what changed keeps the browser's history quiet."""
    current = st.query_params
    for key in keys:
        wanted = values.get(key)
        if wanted is None:
            if key in current:
                del current[key]
        elif current.get(key) != wanted:
            current[key] = wanted


# Everything "reset all" clears: the picker's, the attack's and the panels' widgets, and the lesson.
RESET_KEYS = (*attack_controls.KEYS, "image_source", "test_class", "upload_label", "layer", "channel_view", "top_count", "explain_method", "gallery_filter", "gallery_class", "many_opened", PENDING_IMAGE)
RESET_PREFIXES = ("test_index_", "channel_", "lesson_", "picker_")


def reset(state: MutableMapping[str, Any]) -> None:
    """Every control back to its default (a callback: runs before the widgets are drawn). The
    picker then opens on the best example again; presentation mode stays as it is, and so does
    everything that is not a control of this page (retraining, the models' version)."""
    for key in list(state.keys()):
        if key in RESET_KEYS or key.startswith(RESET_PREFIXES):
            del state[key]
