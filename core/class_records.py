"""The values the class store hands out (small frozen dataclasses) and the errors it raises.

Every error is a :class:`ClassroomError` whose message is one plain sentence the page can show as
it is (it never contains a nickname, so it is safe to show as Markdown too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ClassroomError(Exception):
    """A classroom action was refused or failed; the message is one plain sentence for the page."""


class StoreUnavailable(ClassroomError):
    """The store cannot be opened or reached (missing, unreachable, newer schema); names the URL without password."""


class UnknownRound(ClassroomError):
    """No round has this code."""


class RoundClosed(ClassroomError):
    """The round was ended by the teacher or its time limit ran out."""


class RoundFull(ClassroomError):
    """The round already has ``max_players`` players."""


class BadNickname(ClassroomError):
    """A nickname that is empty, too long, or has control characters."""


class NicknameTaken(BadNickname):
    """Another player of the round has this nickname (ignoring case)."""


class UnknownPlayer(ClassroomError):
    """No player has this id."""


class BadAttempt(ClassroomError):
    """An attempt whose values the round cannot take (a norm it does not allow, a negative budget)."""


class TooManyAttempts(ClassroomError):
    """The rate limit would make this attempt wait longer than the store's ``max_wait_s``."""


class UnknownPoll(ClassroomError):
    """No poll has this id."""


class PollClosed(ClassroomError):
    """The poll was closed or its answer revealed: no more votes."""


@dataclass(frozen=True)
class Round:
    """A challenge round; ``state`` is "open", "ended" or "expired" when it was read."""

    code: str
    kind: str
    photos: str
    norms: tuple[str, ...]
    model: str
    time_limit_s: float | None
    max_players: int
    created_at: float
    started_at: float
    ended_at: float | None
    state: str

    @property
    def ends_at(self) -> float | None:
        """When the time limit runs out (None: no limit)."""
        return None if self.time_limit_s is None else self.started_at + self.time_limit_s


@dataclass(frozen=True)
class Player:
    id: int
    round_code: str
    nickname: str  # plain text: show it as text, never as markup
    joined_at: float
    hidden: bool


@dataclass(frozen=True)
class Attempt:
    """One attack a player ran, with the values the server computed."""

    id: int
    player_id: int
    round_code: str
    photo: str
    norm: str
    epsilon: float  # the budget ε
    method: str
    steps: int
    attacker: str  # whose gradients made the change ("baseline", "adversarial", "self")
    target: str | None
    fooled: bool
    answer: str
    model: str
    created_at: float


@dataclass(frozen=True)
class Entry:
    """One line of the board: a player's best fooling attempt for one norm."""

    rank: int
    player_id: int
    nickname: str
    photo: str
    norm: str
    budget: float
    kind: str
    target: str | None
    answer: str
    method: str
    time: float
    attempt_id: int


@dataclass(frozen=True)
class Poll:
    """A predict-then-reveal question about the teacher's current view."""

    id: int
    view: dict
    question: str
    opened_at: float
    truth: dict | None
    revealed_at: float | None
    closed_at: float | None

    @property
    def state(self) -> str:
        """"open" (taking votes), "revealed" (answer shown, no more votes) or "closed"."""
        return "closed" if self.closed_at is not None else "revealed" if self.revealed_at is not None else "open"


@dataclass(frozen=True)
class PollResults:
    """Votes per answer: ``counts[(baseline_fooled, nsl_fooled)]`` for all four answers, and the truth once revealed."""

    poll: Poll
    counts: dict[tuple[bool, bool], int]
    total: int
    truth: dict | None

    def said_fooled(self, model: str) -> int:
        """How many voters said ``model`` ("baseline" or "adversarial") would be fooled."""
        index = {"baseline": 0, "adversarial": 1}[model]
        return sum(n for answer, n in self.counts.items() if answer[index])


@dataclass(frozen=True)
class State:
    """One class-wide value (e.g. which run the class sees); ``version`` grows by one per write."""

    key: str
    value: Any
    version: int
    updated_at: float
