"""Non-maximum suppression and box squaring used by the detectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emovlm.faces import boxes as box_module
from emovlm.faces.boxes import grouped_nms, nms, square

BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], float)
SCORES = np.array([0.9, 0.8, 0.7, 0.95])


def test_nms_drops_boxes_that_overlap_a_better_one():
    # IoU(box0, box1) = 81/119 ≈ 0.68; box3 lies inside box0 but covers only 16% of it.
    assert nms(BOXES, SCORES, 0.5).tolist() == [3, 0, 2]


def test_min_mode_also_drops_a_small_box_inside_a_larger_one():
    assert nms(BOXES, SCORES, 0.5, mode="min").tolist() == [3, 2]


def test_grouped_nms_never_suppresses_across_groups():
    groups = np.array([0, 1, 0, 0])
    assert sorted(grouped_nms(BOXES, SCORES, groups, 0.5).tolist()) == [0, 1, 2, 3]
    assert grouped_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).tolist() == []


@pytest.mark.parametrize("mode", ["union", "min"])
def test_all_pairs_at_once_keep_exactly_the_boxes_of_box_by_box(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to PAIRWISE_LIMIT boxes, NMS reads one overlap matrix; it keeps the same boxes in the
    same order as comparing box by box, on P-Net-like grids with exact ties and random sets."""
    rng = np.random.default_rng(7)
    cases = []
    for n in (1, 2, 7, 60, 300):
        corner = rng.integers(0, 40, (n, 2)).astype(float) * 2  # a stride-2 grid: many ties
        side = rng.choice([12.0, 17.0, 24.0], (n, 1))
        cases.append((np.hstack([corner, corner + side]), rng.choice([0.6, 0.7, 0.9], n)))
        xy = rng.uniform(0, 200, (n, 2))
        cases.append((np.hstack([xy, xy + rng.uniform(1, 80, (n, 2))]), rng.uniform(0, 1, n)))
    for boxes, scores in cases:
        for threshold in (0.3, 0.5, 0.7):
            at_once = nms(boxes, scores, threshold, mode)
            with monkeypatch.context() as patch:
                patch.setattr(box_module, "PAIRWISE_LIMIT", 0)
                one_by_one = nms(boxes, scores, threshold, mode)
            assert at_once.tolist() == one_by_one.tolist()


@given(st.lists(st.tuples(*[st.floats(0, 100)] * 4), min_size=1, max_size=20))
def test_square_keeps_centres_and_the_longer_side(raw):
    boxes = np.array([(min(a, c), min(b, d), max(a, c), max(b, d)) for a, b, c, d in raw])
    squared = square(boxes)
    np.testing.assert_allclose(
        squared[:, 2] - squared[:, 0], squared[:, 3] - squared[:, 1], atol=1e-9
    )
    np.testing.assert_allclose(
        squared[:, :2] + squared[:, 2:], boxes[:, :2] + boxes[:, 2:], atol=1e-9
    )
    longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(squared[:, 2] - squared[:, 0], longer, atol=1e-9)
