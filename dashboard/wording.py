"""Plain words for what the page shows: model names, what a change is, the verdicts, sentences
about an answer, times people read.

One name per idea, everywhere: "the baseline" and "the NSL model"; "budget ε" for how much the
attacker may change the picture, "step" for one PGD step; technical terms go in tooltips. The
model names live here and nowhere else.

Imports no other dashboard module (settings and outcomes are read through their attributes), so
every floor of the page can use it.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import platform
from typing import TYPE_CHECKING, Any, Sequence

from core.attacks import NORMS, budget_label, norm_symbol
from core.metadata import parent_name

if TYPE_CHECKING:  # types only: wording sits below every module that makes these values
    from dashboard.analysis import ModelOutcome
    from dashboard.settings import AttackSettings

MODEL_TITLES = {"baseline": "Baseline", "adversarial": "NSL model"}  # a title, a column, a legend
MODEL_SHORT = {"baseline": "baseline", "adversarial": "NSL model"}  # inside a sentence: "the NSL model"
MODEL_INITIALS = {"baseline": "B", "adversarial": "N"}  # where only a letter fits (the gallery's tiles)
MODEL_ASIDES = {"baseline": "trained the ordinary way", "adversarial": "trained against attacks"}
ATTACKER_WORDS = {
    "baseline": "computed on the baseline and shown to both models",
    "adversarial": "computed on the NSL model and shown to both models",
    "self": "each model attacked through its own gradients",
}
ROUND_KINDS = {"smallest": "Fool the NSL model with the smallest change", "targeted": "Make the model say a chosen class"}
CORRUPTION_TITLES = {"gaussian_noise": "Gaussian noise", "blur": "Blur", "jpeg": "JPEG compression", "misalignment": "Misalignment"}
SIZE_WORDS = {"infinity": "largest pixel change", "l2": "overall size (L2)", "l1": "sum of all changes (L1)"}
SIZE_SYMBOLS = {"infinity": "‖δ‖∞", "l2": "‖δ‖₂", "l1": "‖δ‖₁"}


def trained_budget(metadata: dict[str, Any]) -> str | None:
    """The budget ε the NSL model trained against, as the page writes it ("L∞ 8/255"); None if the metadata lacks it."""
    config = metadata.get("config") or {}
    if config.get("adv_norm") not in NORMS or config.get("adv_epsilon") is None:
        return None
    return f"{norm_symbol(config['adv_norm'])} {budget_label(config['adv_norm'], float(config['adv_epsilon']))}"


def run_title(kind: str, name: str, metadata: dict[str, Any]) -> str:
    """A run as a teacher names it: "Shipped models", "Example: NSL ×1 at L∞ 2/255",
    "Retrained 2 Dec 09:41: NSL ×0.2 at L∞ 8/255" (from its metadata; its folder name otherwise)."""
    if kind == "shipped":
        return "Shipped models"
    config = metadata.get("config") or {}
    budget = trained_budget(metadata)
    what = f"NSL ×{float(config.get('multiplier', 0)):g} at {budget}" if budget else name
    if kind == "example":
        return f"Example: {what}"
    try:
        when = dt.datetime.fromisoformat(str(metadata.get("trained_at"))).astimezone().strftime("%-d %b %H:%M")
    except ValueError:
        return f"Retrained: {what}"
    return f"Retrained {when}: {what}"


def run_titles(runs: Sequence[Any]) -> dict[str, str]:
    """{run key: title} for a list of ``core.runs.Run``; two runs that read alike (same settings,
    same minute) also get their folder's name, so a teacher can tell them apart."""
    titles = {run.key: run_title(run.kind, run.name, run.metadata()) for run in runs}
    counts: dict[str, int] = {}
    for title in titles.values():
        counts[title] = counts.get(title, 0) + 1
    return {key: title if counts[title] == 1 else f"{title} ({key.split('/')[-1]})" for key, title in titles.items()}


def evaluation_row_title(row: dict[str, Any]) -> str:
    """An evaluation row as a student reads it ("The strongest attack, L∞ 8/255"); the technical
    name stays in the row for a tooltip. Rows this page does not know keep their own name."""
    row_id = str(row.get("id", ""))
    if row_id == "clean":
        return "Unchanged photos"
    if row_id.startswith("autoattack_"):
        _, slug, budget = row_id.split("_", 2)
        norm = {"linf": "infinity"}.get(slug, slug)
        shown = f"{budget}/255" if norm == "infinity" else budget
        return f"The strongest attack, {norm_symbol(norm)} {shown}" if norm in NORMS else str(row.get("name", row_id))
    plain = {
        "seed_protocol_fgsm_linf_8": "One big step computed on the baseline, shown to both (L∞ 8/255)",
        "whitebox_fgsm_linf_8": "One big step, each model attacked itself (L∞ 8/255)",
        "whitebox_pgd10_linf_8": "Ten small steps, each model attacked itself (L∞ 8/255)",
    }
    return plain.get(row_id, str(row.get("name", row_id)))


def corruption_title(kind: str) -> str:
    return CORRUPTION_TITLES[kind]


def method_name(settings: "AttackSettings") -> str:
    """Short: "FGSM", "PGD-10" or the corruption's name."""
    if settings.kind == "corruption":
        return corruption_title(settings.corruption)
    return "FGSM" if settings.iterations == 1 else f"PGD-{settings.iterations}"


def short_label(settings: "AttackSettings", class_names: Sequence[str] = ()) -> str:
    """One line for a caption: "FGSM L∞, budget ε 8/255" or "Blur, severity 3 of 5"."""
    if settings.kind == "corruption":
        return f"{corruption_title(settings.corruption)}, severity {settings.severity} of 5"
    text = f"{method_name(settings)} {norm_symbol(settings.norm)}, budget ε {budget_label(settings.norm, settings.epsilon)}"
    if settings.target is not None:
        towards = class_title(class_names[settings.target]) if settings.target < len(class_names) else f"class {settings.target}"
        text += f", aimed at “{towards}”"
    return text


def describe(settings: "AttackSettings", class_names: Sequence[str] = ()) -> str:
    """One line a student can read aloud: what was done to the image, and by whom."""
    if settings.kind == "corruption":
        return f"{short_label(settings)} (no model involved)"
    return f"{short_label(settings, class_names)}, {ATTACKER_WORDS[settings.attacker]}"


def threat_model(settings: "AttackSettings", model_name: str) -> str:
    """White-box (the attacker is the model itself), transfer, or a natural corruption."""
    attacker = settings.attacker_for(model_name)
    if attacker is None:
        return "natural corruption"
    return "white-box" if attacker == model_name else f"transfer from the {MODEL_SHORT[attacker]}"


def measured_size(norms: dict[str, float], norm: str | None) -> tuple[str, str]:
    """(plain words, every norm for a tooltip): a change's size in the attack's own norm, or in all
    three for a corruption."""
    shown = [norm] if norm is not None else list(NORMS)
    plain = ", ".join(f"{SIZE_WORDS[n]} {budget_label(n, norms[n])}" for n in shown)
    technical = " · ".join(f"{SIZE_SYMBOLS[n]} = {budget_label(n, norms[n])}" for n in NORMS)
    return plain, f"The perturbation δ (changed photo − original), measured in each norm: {technical}."


def class_title(name: str) -> str:
    """``angular_leaf_spot`` -> ``angular leaf spot``."""
    return name.replace("_", " ")


def percent(probability: float) -> str:
    """Confidence as people say it: "97.3%", never "100.0%" for a model that is merely very sure."""
    value = float(probability) * 100.0
    return ">99.9%" if value > 99.95 and value < 100.0 else f"{value:.1f}%"


def answer_is(outcome: "ModelOutcome", true_label: int | None, which: str) -> bool | None:
    """True/False: right or wrong; None without a true label."""
    if true_label is None:
        return None
    prediction = outcome.clean_prediction if which == "clean" else outcome.perturbed_prediction
    return prediction == true_label


def _mark(right: bool | None) -> str:
    return "" if right is None else ("✓ right" if right else "✗ wrong")


def verdict_html(outcome: "ModelOutcome", class_names: Sequence[str], true_label: int | None, settings: "AttackSettings", view: str = "") -> str:
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
        f'<div class="bg-small bg-context">On the {what} photo ({html.escape(short_label(settings, class_names))}):</div>'
        f'<div class="bg-answer"><span class="bg-class">{class_title(class_names[answer])}</span> '
        f'<span class="bg-pct">{percent(outcome.perturbed_probabilities[answer])}</span></div>'
        f'<div class="bg-mark">{html.escape(mark)}</div>'
        f"{_aim_line(settings, answer, class_names)}"
        f'<div class="bg-small">Before the change: <b>{class_title(class_names[before])}</b> '
        f"{percent(outcome.clean_probabilities[before])} {before_mark}</div>"
        "</div>"
    )


def _aim_line(settings: "AttackSettings", answer: int, class_names: Sequence[str]) -> str:
    """For a targeted attack: did the model end up answering the aimed class?"""
    if settings.kind != "attack" or settings.target is None or settings.target >= len(class_names):
        return ""
    reached = "reached" if answer == settings.target else "not reached"
    return f'<div class="bg-small bg-aim">Aimed at “{class_title(class_names[settings.target])}”: {reached}</div>'


def answer_sentence(outcome: "ModelOutcome", class_names: Sequence[str], true_label: int | None, which: str) -> str:
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
    """" on this machine" when the run's machine summary (``core.distribute.machine_summary``) matches
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
    parent = metadata.get("parent") or {}
    if seconds:
        # A fine-tuned pair's own timing is its last stage only: say so rather than undercount training.
        doing = "fine-tuned for {} from an earlier pair" if parent else "{} of training"
        caption += f", {doing.format(duration_words(float(seconds)))}{where_trained(metadata.get('machine'))}"
    caption += f" · they see {image_size} px photos"
    config = metadata.get("config") or {}
    details = [f"Trained at: {stamp or 'unknown'}"]
    if parent:
        details.append(f"Fine-tuned from {parent_name(parent)}")
    if config:
        more = " more" if parent else ""
        details.append(f"Epochs: {config.get('epochs', '?')}{more} (baseline) + {config.get('adversarial_epochs', '?')}{more} (NSL model)")
        details.append(f"NSL multiplier (weight of the adversarial loss): {config.get('multiplier', '?')}")
        details.append(f"Training attack: {trained_budget(metadata) or config.get('adv_norm', '?')}, {config.get('pgd_iterations', '?')} PGD steps")
    if metadata.get("architecture") or config.get("arch"):
        details.append(f"Architecture: {metadata.get('architecture') or config.get('arch')}")
    return caption, "  \n".join(details)
