"""Box arithmetic on (N, 4) arrays of (x1, y1, x2, y2): overlap, suppression, squaring."""

from __future__ import annotations

from typing import Literal

import numpy as np

from emovlm.types import Box


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) boxes; degenerate boxes have area 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def intersection_area(box: Box | np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Area shared by one box and each of (N, 4) boxes."""
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


PAIRWISE_LIMIT = 512
"""`nms` compares every pair of boxes at once up to this many boxes (a 2 MB overlap matrix)."""


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    mode: Literal["union", "min"] = "union",
) -> np.ndarray:
    """Indices of boxes kept by greedy non-maximum suppression, highest score first.

    A box is dropped when its overlap with a kept, higher-scoring box exceeds `threshold`;
    overlap is intersection over union ("union") or over the smaller box's area ("min", which
    also removes a small box lying inside a larger one). Up to PAIRWISE_LIMIT boxes, all
    overlaps are computed in one go and the greedy pass only reads them (the same overlaps,
    to the bit, as box against box).
    """
    order = np.argsort(-scores, kind="stable")
    if len(order) < 2:
        return order.astype(np.int64)
    if len(order) > PAIRWISE_LIMIT:
        return _nms_box_by_box(boxes, order, threshold, mode)
    ranked = boxes[order]
    suppresses = _overlaps(ranked, mode) > threshold
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(i)
            alive &= ~suppresses[i]
    return order[keep].astype(np.int64)


def _overlaps(boxes: np.ndarray, mode: Literal["union", "min"]) -> np.ndarray:
    """(N, N) overlaps of every pair of boxes, as `nms` measures them."""
    width = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(
        boxes[:, None, 0], boxes[None, :, 0]
    )
    height = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(
        boxes[:, None, 1], boxes[None, :, 1]
    )
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    areas = box_area(boxes)
    if mode == "union":
        denominator = areas[:, None] + areas[None, :] - inter
    else:
        denominator = np.minimum(areas[:, None], areas[None, :])
    return inter / np.maximum(denominator, 1e-12)


def _nms_box_by_box(
    boxes: np.ndarray, order: np.ndarray, threshold: float, mode: Literal["union", "min"]
) -> np.ndarray:
    """`nms` for many boxes: each kept box against the boxes still in the running."""
    areas = box_area(boxes)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter = intersection_area(boxes[best], boxes[rest])
        if mode == "union":
            denominator = areas[best] + areas[rest] - inter
        else:
            denominator = np.minimum(areas[best], areas[rest])
        overlap = inter / np.maximum(denominator, 1e-12)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def grouped_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    threshold: float,
    mode: Literal["union", "min"] = "union",
) -> np.ndarray:
    """Like `nms`, but boxes only suppress boxes of the same group (e.g. the same image).

    Each group is suppressed on its own (rather than by shifting groups apart), so a box's fate
    never depends on which other images share the batch: with shifted coordinates, rounding
    decides overlaps that sit exactly at the threshold, as P-Net's grid windows often do.
    """
    if len(groups) and (groups == groups[0]).all():  # one group: no need to split
        return nms(boxes, scores, threshold, mode)
    keep = [np.flatnonzero(groups == group) for group in np.unique(groups)]
    keep = [members[nms(boxes[members], scores[members], threshold, mode)] for members in keep]
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """Squares with the same centres as (N, 4) boxes and sides equal to their longer side."""
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    return np.stack([centre_x - half, centre_y - half, centre_x + half, centre_y + half], axis=1)
