"""Our white-box attacks against a peer implementation (IBM ART's APGD-CE and APGD-DLR) on real images.

On the shipped NSL model at L∞ 8/255, where photos survive and attacks differ (on the baseline at
4/255 nothing survives either attack, so agreement there would say nothing).
"""

from __future__ import annotations

import numpy as np
import pytest

from core import apgd

pytest.importorskip("art")


def test_ours_is_never_weaker_than_arts_apgd_on_the_shipped_nsl_model(shipped_adversarial):
    from bench.crosscheck_autoattack import art_autoattack

    model, images, labels = shipped_adversarial
    images, labels = images[:24], labels[:24]
    ours, _ = apgd.apgd_robust(model, images, labels, "infinity", 8 / 255)  # the evaluation's white-box stage
    theirs, _ = art_autoattack(model, images, labels, "infinity", 8 / 255, restarts=1, square_queries=0)
    right = model.predict(images, verbose=0).argmax(axis=1) == labels
    assert 0 < theirs.sum() < right.sum()  # photos survive ART and some fall: the comparison means something
    assert ours.sum() <= theirs.sum() + 1  # at most one photo more standing than under the peer
    assert np.sum(ours & ~theirs) <= 1  # and ART almost never fools what we could not
