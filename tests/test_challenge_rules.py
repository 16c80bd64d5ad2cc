"""core.challenge: which photos a round is about, when an attempt counts, how the class compares
with the strongest attack; and the background job that finds the strongest attack's budget for
each photo of a round and keeps it in the class store."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

from core import challenge
from core.classroom import open_store

CLASSES = ("angular_leaf_spot", "bean_rust", "healthy")
FILES = ("a.jpg", "b.jpg", "c.jpg", "d.jpg")
LABELS = np.array([0, 1, 1, 2])


@pytest.mark.parametrize(
    "spec, expected",
    [("all", [0, 1, 2, 3]), ("class:bean_rust", [1, 2]), ("photo:c.jpg", [2]), ("photo:zzz.jpg", []), ("class:mildew", [])],
)
def test_a_round_is_about_all_photos_one_class_or_one_photo(spec, expected):
    assert challenge.photos_in(spec, FILES, LABELS, CLASSES).tolist() == expected


def test_an_attempt_counts_when_it_fools_or_for_a_targeted_round_when_it_hits_a_wrong_target():
    assert challenge.counts("smallest", 0, 1, None) and not challenge.counts("smallest", 0, 0, None)
    assert challenge.counts("targeted", 0, 2, 2)
    assert not challenge.counts("targeted", 0, 1, 2)  # fooled, but not into the aimed class
    assert not challenge.counts("targeted", 0, 0, 0)  # "aimed" at the right answer: nothing to fool


def test_the_round_clock_reads_as_people_say_it():
    assert challenge.time_left("open", 1000.0, 300.0, now=1050.0) == "4 min 10 s left"
    assert challenge.time_left("open", 1000.0, None) == "no time limit"
    assert challenge.time_left("open", 1000.0, 60.0, now=2000.0) == "0 min 00 s left"
    assert challenge.time_left("ended", 1000.0, 300.0) == "ended"


def attempt(photo: str, epsilon: float, fooled: bool = True, norm: str = "infinity", answer: str = "bean_rust", target: str | None = None):
    return SimpleNamespace(photo=photo, epsilon=epsilon, fooled=fooled, norm=norm, answer=answer, target=target)


def test_the_class_best_per_photo_counts_only_attempts_that_count_in_the_round():
    attempts = [attempt("a.jpg", 0.05), attempt("a.jpg", 0.02), attempt("b.jpg", 0.01, fooled=False), attempt("c.jpg", 0.5, norm="l2")]
    assert challenge.best_per_photo(attempts, "infinity", "smallest") == {"a.jpg": 0.02}
    aimed = [attempt("a.jpg", 0.03, answer="healthy", target="healthy"), attempt("a.jpg", 0.01, answer="bean_rust", target="healthy")]
    assert challenge.best_per_photo(aimed, "infinity", "targeted") == {"a.jpg": 0.03}


def test_the_class_is_compared_with_the_photos_the_strongest_attack_breaks_within_the_budget():
    strongest = {"a.jpg": 4 / 255, "b.jpg": 6 / 255, "c.jpg": 12 / 255, "d.jpg": math.inf}
    result = challenge.against_strongest(strongest, {"a.jpg": 5 / 255, "c.jpg": 7 / 255}, FILES, 8 / 255)
    assert (result.strongest_broke, result.class_broke, result.class_only, result.computed, result.photos) == (2, 1, 1, 4, 4)


def test_the_strongest_attack_runs_once_in_the_background_and_lands_in_the_store(monkeypatch, tmp_path, checkpoints_dir, tiny_splits):
    from core import checkpoints
    from dashboard import jobs

    monkeypatch.setenv(jobs.JOBS_ENV, "1")
    monkeypatch.setenv("BEANGUARD_STORE_URL", f"sqlite:///{tmp_path / 'class.db'}")
    pair, split = checkpoints.load_pair(checkpoints_dir), tiny_splits["test"]
    photos = list(split.filenames[:3])
    job = jobs.strongest_budgets(pair, split, "adversarial", ["infinity"], photos)
    deadline = time.monotonic() + 300
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.finished and job.error is None, job.error
    budgets = open_store(f"sqlite:///{tmp_path / 'class.db'}").get_budgets(pair.version, "adversarial", "infinity")
    assert set(budgets) == set(photos) and all(value >= 0 for value in budgets.values())
    assert jobs.strongest_budgets(pair, split, "adversarial", ["infinity"], photos) is job  # once per server
