"""core.intervals: the 95% Wilson interval every reported accuracy carries."""

from __future__ import annotations

import pytest

from core import intervals


def test_wilson_interval_matches_the_closed_form_at_40_percent_of_128():
    low, high = intervals.wilson_interval(51, 128)  # 39.8%, the shipped NSL model's old 8/255 row
    assert low == pytest.approx(0.3180, abs=5e-4) and high == pytest.approx(0.4852, abs=5e-4)
    assert (high - low) / 2 == pytest.approx(0.084, abs=2e-3)  # the "about ±8.5 points"


def test_interval_stays_inside_zero_and_one_and_is_not_a_point_at_the_ends():
    low, high = intervals.wilson_interval(0, 128)
    assert low == 0.0 and 0.02 < high < 0.04
    low, high = intervals.wilson_interval(128, 128)
    assert high == 1.0 and 0.96 < low < 0.98


def test_interval_narrows_with_more_photos_and_widens_with_more_confidence():
    assert intervals.wilson_interval(64, 128)[1] - intervals.wilson_interval(64, 128)[0] > (
        intervals.wilson_interval(640, 1280)[1] - intervals.wilson_interval(640, 1280)[0]
    )
    narrow, wide = intervals.wilson_interval(64, 128, 0.90), intervals.wilson_interval(64, 128, 0.99)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_accuracy_interval_recovers_the_photo_count_behind_a_rounded_accuracy():
    assert intervals.photos_right(0.3984, 128) == 51
    assert intervals.accuracy_interval(0.3984, 128) == [round(x, 4) for x in intervals.wilson_interval(51, 128)]
    assert intervals.curve_intervals([0.9062, 0.0], 128) == [intervals.accuracy_interval(0.9062, 128), intervals.accuracy_interval(0.0, 128)]


@pytest.mark.parametrize("successes, trials", [(3, 0), (-1, 10), (11, 10)])
def test_impossible_counts_are_refused_with_one_sentence(successes, trials):
    with pytest.raises(ValueError, match=r"^[^\n]+\.$"):
        intervals.wilson_interval(successes, trials)
