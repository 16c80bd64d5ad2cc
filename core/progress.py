"""Training progress as events: what one finished epoch reports, written as JSON lines, read back.

Why a file of JSON lines: the dashboard runs training as a subprocess (``python -m core.train
--progress-file F``) and every page polls how far it got; a line is appended per event and flushed,
so a reader never waits for the writer and a half-written last line is simply skipped. The same
reader serves the dashboard, the tests and ``bench/``.

Events: ``{"event": "start", "config": {...}}``, one ``{"event": "epoch", ...}`` per epoch of each
model (the fields of :class:`EpochReport`), then ``{"event": "done", "timing": {...}}`` or
``{"event": "error", "message": "..."}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch of one model: what a progress bar shows."""

    model: str  # "baseline" or "adversarial"
    epoch: int  # 1-based
    epochs: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "EpochReport":
        return cls(str(event["model"]), int(event["epoch"]), int(event["epochs"]), float(event.get("seconds", 0.0)), dict(event.get("metrics", {})))


EpochCallback = Callable[[EpochReport], None]


class ProgressLog:
    """Appends JSON lines another process can follow; a log without a path writes nothing."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **record}) + "\n")
            handle.flush()

    def epoch(self, report: EpochReport) -> None:
        self.write({"event": "epoch", **asdict(report)})


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a progress file ([] when it does not exist yet); a half-written
    last line is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def epoch_reports(events: Sequence[dict[str, Any]]) -> tuple[EpochReport, ...]:
    """The epochs among ``events``, in the order they finished."""
    return tuple(EpochReport.from_event(event) for event in events if event.get("event") == "epoch")
