"""Box utilities of lecture 004: conversions, area, box IoU and greedy NMS.

Boxes (lecture 004) are rows ``(x1, y1, x2, y2)`` in continuous coordinates:
the box covers ``x1 <= x <= x2``, ``y1 <= y <= y2``, area ``(x2-x1)*(y2-y1)``
(no "+1" pixel convention). The lecture's box ``(x, y, w, h)`` with ``(x, y)``
the top-left corner converts with ``xywh_to_xyxy``.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from ..functional.common import check_array, check_same_module


def _check_boxes(boxes, name: str):
    check_array(boxes, name)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (M, 4), got {tuple(boxes.shape)}")


def _check_ordered_boxes(boxes, name: str):
    """(M, 4) boxes (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, else ValueError naming ``name``."""
    _check_boxes(boxes, name)
    if bool(array_module(boxes).any(boxes[:, 2:] < boxes[:, :2])):  # one scalar read back
        raise ValueError(f"{name} must satisfy x1 <= x2 and y1 <= y2 (boxes are (x1, y1, x2, y2))")


def xywh_to_xyxy(boxes):
    """(M, 4) boxes (x, y, w, h), (x, y) the top-left corner -> (x1, y1, x2, y2) = (x, y, x+w, y+h)."""
    _check_boxes(boxes, "boxes")
    xp = array_module(boxes)
    x, y, w, h = (boxes[:, i] for i in range(4))
    return xp.stack([x, y, x + w, y + h], axis=1)


def xyxy_to_xywh(boxes):
    """(M, 4) boxes (x1, y1, x2, y2) -> (x, y, w, h) = (x1, y1, x2-x1, y2-y1)."""
    _check_boxes(boxes, "boxes")
    xp = array_module(boxes)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    return xp.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def box_area(boxes):
    """(M,) areas (x2 - x1) * (y2 - y1) of (M, 4) boxes (x1, y1, x2, y2)."""
    _check_boxes(boxes, "boxes")
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes_a, boxes_b):
    """Pairwise IoU of (M, 4) and (K, 4) boxes (x1, y1, x2, y2) -> (M, K).

    The intersection of two boxes is again a box, from the larger top-left
    corner to the smaller bottom-right corner (empty if they do not meet)::

        iw = max(0, min(x2_a, x2_b) - max(x1_a, x1_b)),   ih likewise in y
        IoU = iw*ih / (area_a + area_b - iw*ih)

    All M*K pairs at once by broadcasting (M, 1) against (1, K). Boxes must
    have x1 <= x2 and y1 <= y2 (ValueError otherwise). Two boxes with zero
    union (both of zero area) have IoU 0.
    """
    _check_ordered_boxes(boxes_a, "boxes_a")
    _check_ordered_boxes(boxes_b, "boxes_b")
    check_same_module("boxes_a", boxes_a, "boxes_b", boxes_b)
    return _box_iou(boxes_a, boxes_b)


def _box_iou(a, b):
    """``box_iou`` without the checks (used inside the NMS loop)."""
    xp = array_module(a)
    top_left = xp.maximum(a[:, None, :2], b[None, :, :2])  # (M, K, 2)
    bottom_right = xp.minimum(a[:, None, 2:], b[None, :, 2:])  # (M, K, 2)
    wh = xp.maximum(bottom_right - top_left, 0)  # no overlap -> width or height 0
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0.0)


def _stable_argsort(x):
    """argsort that keeps equal keys in index order (CuPy's argsort is always stable)."""
    xp = array_module(x)
    return numpy.argsort(x, kind="stable") if xp is numpy else xp.argsort(x)


def nms(boxes, scores, iou_threshold: float = 0.5):
    """Greedy non-maximum suppression, as lecture 004 states it.

    Take the box with the highest score and keep it; drop every remaining
    box whose IoU with it is above ``iou_threshold``; repeat with the best of
    the boxes left, until none is left::

        order = boxes sorted by decreasing score (ties: lower index first)
        while order is not empty:
            i = order[0];  keep i
            order = [j in order[1:] if IoU(i, j) <= iou_threshold]

    Each step compares box i with all remaining boxes in one vectorised
    ``box_iou`` call; the loop runs once per kept box.

    boxes: (M, 4) (x1, y1, x2, y2); scores: (M,).
    Returns the (k,) int64 indices of the kept boxes, in decreasing score.
    """
    _check_ordered_boxes(boxes, "boxes")
    check_array(scores, "scores")
    check_same_module("boxes", boxes, "scores", scores)
    if scores.shape != (boxes.shape[0],):
        raise ValueError(
            f"scores must have shape ({boxes.shape[0]},) for boxes {tuple(boxes.shape)}, "
            f"got {tuple(scores.shape)}"
        )
    xp = array_module(boxes)
    order = _stable_argsort(-scores.astype(xp.float64))  # decreasing score, ties: lower index
    keep = []
    while order.size > 0:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        overlap = _box_iou(boxes[best : best + 1], boxes[rest])[0]  # (len(rest),)
        order = rest[overlap <= iou_threshold]
    return xp.asarray(keep, dtype=xp.int64)
