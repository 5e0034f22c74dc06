"""Non-maximum suppression and box squaring used by the detectors."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

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
