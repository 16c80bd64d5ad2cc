"""Plain words for what the page shows: the verdicts, sentences about an answer, times people read.

One name per idea, everywhere: "the baseline" and "the NSL model"; "budget ε" for how much the
attacker may change the picture, "step" for one PGD step; technical terms go in tooltips.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import platform
from typing import Any, Sequence

from dashboard.analysis import MODEL_SHORT, AttackSettings, ModelOutcome

MODEL_TITLES = {"baseline": "Baseline", "adversarial": "NSL model"}
MODEL_ASIDES = {"baseline": "trained the ordinary way", "adversarial": "trained against attacks"}


def class_title(name: str) -> str:
    """``angular_leaf_spot`` -> ``angular leaf spot``."""
    return name.replace("_", " ")


def percent(probability: float) -> str:
    """Confidence as people say it: "97.3%", never "100.0%" for a model that is merely very sure."""
    value = float(probability) * 100.0
    return ">99.9%" if value > 99.95 and value < 100.0 else f"{value:.1f}%"


def answer_is(outcome: ModelOutcome, true_label: int | None, which: str) -> bool | None:
    """True/False: right or wrong; None without a true label."""
    if true_label is None:
        return None
    prediction = outcome.clean_prediction if which == "clean" else outcome.perturbed_prediction
    return prediction == true_label


def _mark(right: bool | None) -> str:
    return "" if right is None else ("✓ right" if right else "✗ wrong")


def verdict_html(outcome: ModelOutcome, class_names: Sequence[str], true_label: int | None, settings: AttackSettings, view: str = "") -> str:
    """One model's verdict card: its answer on the changed picture in large type (class, confidence,
    right or wrong), and its answer before the change in small type. ``view`` names the photo and
    settings in a data attribute, so a browser test can tell which rerun drew the card."""
    name = outcome.name
    answer = outcome.perturbed_prediction
    right = answer_is(outcome, true_label, "perturbed")
    if right is None:
        mark = "kept its answer" if answer == outcome.clean_prediction else "changed its mind"
        state = "unknown"
    else:
        mark = _mark(right) + ("" if right else f" — it is {class_title(class_names[true_label])}")
        state = "right" if right else "wrong"
    before = outcome.clean_prediction
    before_mark = _mark(answer_is(outcome, true_label, "clean"))
    what = "corrupted" if settings.kind == "corruption" else "changed"
    return (
        f'<div class="bg-verdict bg-{state}" data-model="{name}" data-view="{html.escape(view)}">'
        f'<div class="bg-model">{MODEL_TITLES[name]} <span class="bg-aside">· {MODEL_ASIDES[name]}</span></div>'
        f'<div class="bg-small bg-context">On the {what} photo ({html.escape(settings.short_label)}):</div>'
        f'<div class="bg-answer"><span class="bg-class">{class_title(class_names[answer])}</span> '
        f'<span class="bg-pct">{percent(outcome.perturbed_probabilities[answer])}</span></div>'
        f'<div class="bg-mark">{html.escape(mark)}</div>'
        f'<div class="bg-small">Before the change: <b>{class_title(class_names[before])}</b> '
        f"{percent(outcome.clean_probabilities[before])} {before_mark}</div>"
        "</div>"
    )


def answer_sentence(outcome: ModelOutcome, class_names: Sequence[str], true_label: int | None, which: str) -> str:
    """"The baseline says *bean rust* (97.3%) — wrong." for the clean or the perturbed picture."""
    prediction = outcome.clean_prediction if which == "clean" else outcome.perturbed_prediction
    probabilities = outcome.clean_probabilities if which == "clean" else outcome.perturbed_probabilities
    right = answer_is(outcome, true_label, which)
    verdict = "" if right is None else (" — right." if right else " — wrong.")
    subject = MODEL_SHORT[outcome.name]
    return f"The {subject} says **{class_title(class_names[prediction])}** ({percent(probabilities[prediction])}){verdict or '.'}"


def time_ago(then: dt.datetime, now: dt.datetime) -> str:
    """"just now", "12 minutes ago", "today at 09:40", "yesterday", "3 days ago", "on 25 Nov 2026"."""
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return f"on {then:%d %b %Y}"
    if seconds < 90:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} minutes ago"
    local_then, local_now = then.astimezone(), now.astimezone()
    days = (local_now.date() - local_then.date()).days
    if days == 0:
        return f"today at {local_then:%H:%M}"
    if days == 1:
        return "yesterday"
    if days < 7:
        return f"{days} days ago"
    return f"on {local_then:%d %b %Y}"


def duration_words(seconds: float) -> str:
    """"45 s", "6 min", "1 h 20 min"."""
    if seconds < 90:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def where_trained(machine: Any) -> str:
    """" on this machine" when the run's machine summary (``core.train.machine_summary``) matches
    this one, else " on a GPU" or " on 8 CPUs"; "" when unknown."""
    if not isinstance(machine, dict) or not machine:
        return ""
    here = {"host_cpus": os.cpu_count(), "platform": platform.platform()}
    if all(machine.get(key) == value for key, value in here.items()) and not machine.get("gpus"):
        return " on this machine"
    if machine.get("gpus"):
        return " on a GPU"
    return f" on {machine['host_cpus']} CPUs" if machine.get("host_cpus") else ""


def models_caption(metadata: dict[str, Any], image_size: int, now: dt.datetime | None = None) -> tuple[str, str]:
    """("Models trained yesterday, 3 min on this machine · 64 px photos", technical details for a
    tooltip). Any metadata field may be missing."""
    now = now or dt.datetime.now(dt.timezone.utc)
    when = "at an unknown time"
    stamp = metadata.get("trained_at")
    if stamp:
        try:
            parsed = dt.datetime.fromisoformat(str(stamp))
            when = time_ago(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc), now)
        except ValueError:
            when = str(stamp)
    caption = f"Models trained {when}"
    seconds = (metadata.get("timing") or {}).get("total_train_seconds")
    if seconds:
        caption += f", {duration_words(float(seconds))} of training{where_trained(metadata.get('machine'))}"
    caption += f" · they see {image_size} px photos"
    config = metadata.get("config") or {}
    details = [f"Trained at: {stamp or 'unknown'}"]
    if config:
        details.append(f"Epochs: {config.get('epochs', '?')} (baseline) + {config.get('adversarial_epochs', '?')} (NSL model)")
        details.append(f"NSL multiplier (weight of the adversarial loss): {config.get('multiplier', '?')}")
        details.append(f"Training attack: {config.get('adv_norm', '?')} norm, {config.get('pgd_iterations', '?')} PGD steps")
    if metadata.get("architecture") or config.get("arch"):
        details.append(f"Architecture: {metadata.get('architecture') or config.get('arch')}")
    return caption, "  \n".join(details)
