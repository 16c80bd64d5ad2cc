"""core.evaluate and core.activations on a real (tiny) model."""

from __future__ import annotations

import numpy as np
import pytest

from core import activations, apgd, autoattack, evaluate, intervals
from core.models import DEFAULT_ARCH, conv_block_names


QUICK = autoattack.Ensemble(apgd.Ensemble(iterations=10, restarts=1, l2_restarts=1), square_queries=20)  # the table's shape, not the attacks' strength


@pytest.fixture(scope="module")
def tiny_table(tiny_model, tiny_splits):
    return evaluate.evaluate_pair(tiny_model, tiny_model, tiny_splits["test"], ensemble=QUICK)


def test_evaluation_table_labels_every_number_with_its_threat_model(tiny_table):
    table = tiny_table
    ids = [row["id"] for row in table["rows"]]
    assert ids == [
        "clean",
        "autoattack_linf_2",
        "autoattack_linf_4",
        "autoattack_linf_8",
        "autoattack_l2_0.5",
        "autoattack_l2_1",
        "seed_protocol_fgsm_linf_8",
        "whitebox_fgsm_linf_8",
        "whitebox_pgd10_linf_8",
    ]
    assert all(row["threat_model"] and 0 <= row["baseline"] <= 1 for row in table["rows"])
    assert "transfer" in evaluate.row(table, "seed_protocol_fgsm_linf_8")["threat_model"]
    assert [row["role"] for row in table["rows"]] == ["clean"] + ["headline"] * 5 + ["teaching"] * 3
    assert all("Teaching row" in row["name"] for row in table["rows"] if row["role"] == "teaching")
    assert set(table["curves"]) == {"infinity", "l2", "l1"}
    assert set(table["corruptions"]) == {"gaussian_noise", "blur", "jpeg", "misalignment"}
    assert "Clean accuracy" in evaluate.format_table(table)


def test_autoattack_rows_are_printed_and_never_above_clean_accuracy(tiny_table):
    clean = evaluate.row(tiny_table, "clean")
    printed = evaluate.format_table(tiny_table)
    for norm, epsilon in evaluate.AUTOATTACK_BUDGETS:
        item = evaluate.row(tiny_table, evaluate.autoattack_row_id(norm, epsilon))
        assert item["name"] in printed and "APGD-CE + APGD-T + Square" in item["name"]
        assert item["baseline"] <= clean["baseline"]


def test_every_row_and_curve_point_carries_its_95_percent_interval(tiny_table):
    photos = tiny_table["examples"]
    for item in tiny_table["rows"]:
        for kind in ("baseline", "adversarial"):
            assert item["right"][kind] == intervals.photos_right(item[kind], photos)
            low, high = item["interval"][kind]
            assert [low, high] == intervals.accuracy_interval(item[kind], photos)
            assert low <= item[kind] <= high and high - low > 0.1  # 12 photos: a wide interval
            assert f"{100 * low:.1f}–{100 * high:.1f}" in evaluate.format_table(tiny_table)
    for curve in tiny_table["curves"].values():
        assert curve["photos"] == photos
        for kind in ("baseline", "adversarial"):
            assert curve["interval"][kind] == intervals.curve_intervals(curve[kind], photos)


def test_headline_rows_say_what_fooled_each_photo(tiny_table):
    for norm, epsilon in evaluate.AUTOATTACK_BUDGETS:
        item = evaluate.row(tiny_table, evaluate.autoattack_row_id(norm, epsilon))
        for kind in ("baseline", "adversarial"):
            assert sum(item["fooled_by"][kind].values()) == tiny_table["examples"]
            assert item["fooled_by"][kind].get("robust", 0) == item["right"][kind]
            assert len(item["square_fooled"][kind]) == item["fooled_by"][kind].get("Square", 0)


def test_autoattack_rows_never_grow_with_the_budget(tiny_table):
    for norm in ("infinity", "l2"):
        budgets = [epsilon for row_norm, epsilon in evaluate.AUTOATTACK_BUDGETS if row_norm == norm]
        assert budgets == sorted(budgets)
        values = [evaluate.row(tiny_table, evaluate.autoattack_row_id(norm, epsilon))["baseline"] for epsilon in budgets]
        assert values == sorted(values, reverse=True)


def test_curve_starts_at_clean_accuracy_and_never_beats_it(tiny_model, tiny_splits):
    test = tiny_splits["test"]
    clean = evaluate.accuracy(tiny_model, test.images, test.labels)
    curve = evaluate.robustness_curve(tiny_model, test.images, test.labels, "infinity", (0.0, 4 / 255, 16 / 255))
    assert curve[0] == clean
    assert max(curve[1:]) <= clean


def test_same_model_on_both_sides_scores_the_same(tiny_table):
    for row in tiny_table["rows"]:
        assert row["baseline"] == row["adversarial"], row["id"]
    for norm, curve in tiny_table["curves"].items():  # PGD's random starts are drawn alike for both columns
        assert curve["baseline"] == curve["adversarial"], norm


def test_activations_are_returned_for_every_conv_layer_by_name(tiny_model, tiny_splits):
    images = tiny_splits["test"].images[:2]
    maps = activations.conv_activations(tiny_model, images)
    assert list(maps) == list(conv_block_names(DEFAULT_ARCH))
    assert maps["conv1"].shape == (2, 32, 32, 32)
    assert maps["conv2"].shape == (2, 16, 16, 64)
    assert maps["conv3"].shape == (2, 8, 8, 128)
    assert maps["conv4"].shape == (2, 4, 4, 128)
    assert all(m.min() >= 0 for m in maps.values())  # post-ReLU


def test_predictions_with_activations_match_the_model(tiny_model, tiny_splits):
    images = tiny_splits["test"].images[:3]
    probabilities, _ = activations.predict_with_activations(tiny_model, images)
    np.testing.assert_allclose(probabilities, tiny_model(images, training=False).numpy(), atol=1e-6)


def test_top_channels_are_ordered_by_mean_activation():
    activation = np.zeros((4, 4, 5), np.float32)
    activation[..., 3] = 2.0
    activation[..., 1] = 1.0
    assert activations.top_channels(activation, 2) == [3, 1]
