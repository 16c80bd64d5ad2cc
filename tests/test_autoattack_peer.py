"""Our APGD ensemble against a peer implementation (IBM ART's APGD-CE and APGD-DLR) on real images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from core import apgd

pytest.importorskip("art")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_our_apgd_and_arts_agree_on_the_shipped_baseline(shipped_baseline):
    from crosscheck_autoattack import art_autoattack

    model, images, labels = shipped_baseline
    images, labels = images[:16], labels[:16]
    ours, _ = apgd.apgd_robust(model, images, labels, "infinity", 4 / 255)
    theirs, _ = art_autoattack(model, images, labels, "infinity", 4 / 255, restarts=1, square_queries=0)
    assert ours.mean() < (model.predict(images, verbose=0).argmax(axis=1) == labels).mean()  # the attack bites
    assert abs(ours.mean() - theirs.mean()) <= 2 / 16  # at most two of 16 examples differ
    assert np.sum(ours & ~theirs) <= 1  # and ART almost never fools what we could not
