"""Average precision (AP) and mean AP for detection and instance segmentation, as COCO computes them.

Lecture 004 names mAP as *the* metric of detection and instance
segmentation: how well a model both localises objects and names their class.
The numbers here equal pycocotools' ``COCOeval`` (area range "all", at most
100 detections per image and class, no crowd regions), so they can be
compared with any paper.

For one class c and one IoU threshold t:

1. **Match.** In each image, take the detections of class c by decreasing
   score; each one claims the not-yet-claimed ground-truth object of class c
   with the highest IoU, if that IoU is >= t (a true positive, TP); otherwise
   it is a false positive (FP). A ground truth is claimed at most once, so a
   duplicate detection of a found object is an FP.
2. **Rank.** Pool the detections of all images and sort them by score. After
   the first i of them::

       precision_i = TP_i / (TP_i + FP_i),     recall_i = TP_i / G

   with G the number of ground-truth objects of class c. These points are the
   *precision-recall curve*.
3. **Interpolate.** Replace each precision by the best precision at any
   larger recall (the curve becomes non-increasing), and read it at the 101
   recall levels r = 0, 0.01, ..., 1 (0 where the recall is never reached)::

       AP_c(t) = 1/101 * sum_r max_{i: recall_i >= r} precision_i

``map`` averages AP over the classes and the ten thresholds
t = 0.50, 0.55, ..., 0.95 (COCO's AP@[.5:.95]); ``map_50`` and ``map_75`` use
one threshold each (``map_50`` is PASCAL VOC's measure, up to the 101-point
interpolation).

**Conventions (COCO's, also torchmetrics'):** a class with no ground truth
in any image has no AP; it is reported as -1 in ``map_per_class`` and left
out of the means (its detections are not counted as errors anywhere). A
class with ground truth but no detection has AP 0. With no ground truth at
all, ``map`` is -1. Scores tied across images keep the image order; IoU ties
go to the later ground truth (as in pycocotools).
"""
from __future__ import annotations

import numpy

from ..backend import to_numpy
from .boxes import _box_iou
from .segmentation import mask_iou

MAX_DETECTIONS = 100
COCO_IOU_THRESHOLDS = numpy.linspace(0.5, 0.95, int(numpy.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_LEVELS = numpy.linspace(0.0, 1.0, int(numpy.round(1.0 / 0.01)) + 1)
IOU_TYPES = ("bbox", "segm")


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _read(items, name: str, iou_type: str, with_scores: bool):
    """Check a list of per-image dicts and bring every field to the host as NumPy."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"{name} must be a list of per-image dicts, got {type(items).__name__}")
    keys = ["boxes", "labels"] + (["scores"] if with_scores else []) + (["masks"] if iou_type == "segm" else [])
    out = []
    for i, item in enumerate(items):
        missing = [k for k in keys if not isinstance(item, dict) or k not in item]
        if missing:
            raise ValueError(f"{name}[{i}] must be a dict with keys {keys}; missing {missing}")
        d = {k: to_numpy(item[k]) for k in keys}
        n = len(d["labels"])
        d["boxes"] = d["boxes"].reshape(-1, 4).astype(numpy.float64)
        d["labels"] = d["labels"].astype(numpy.int64).reshape(-1)
        shapes_ok = d["boxes"].shape[0] == n and (not with_scores or d["scores"].shape == (n,))
        if iou_type == "segm":
            shapes_ok = shapes_ok and d["masks"].ndim == 3 and d["masks"].shape[0] == n
        if not shapes_ok:
            raise ValueError(f"{name}[{i}]: boxes (N, 4), labels (N,)" + (", scores (N,)" if with_scores else "")
                             + (", masks (N, H, W)" if iou_type == "segm" else "")
                             + f" must agree on N; got { {k: v.shape for k, v in d.items()} }")
        out.append(d)
    return out


def _pairwise_iou(det, gt, iou_type: str):
    """IoU of detections (D,) against ground truths (G,): (D, G); an empty union gives 0 (as COCO)."""
    if iou_type == "bbox":
        return _box_iou(det["boxes"], gt["boxes"])
    ious = mask_iou(det["masks"], gt["masks"])
    empty_det, empty_gt = (~m.any(axis=(1, 2)) for m in (det["masks"], gt["masks"]))
    return numpy.where(empty_det[:, None] & empty_gt[None, :], 0.0, ious)


def _select(item, keep):
    return {k: v[keep] for k, v in item.items()}


# ---------------------------------------------------------------------------
# 1. matching, 2. ranking, 3. interpolation
# ---------------------------------------------------------------------------


def match_image(ious, thresholds):
    """Greedy matching in one image: ious (D, G), detections sorted by score -> (T, D) bool TP flags.

    For each threshold t, detection d (in order) claims the unclaimed ground
    truth with the highest IoU >= t (ties: the later one, as pycocotools).
    """
    d_count, g_count = ious.shape
    tp = numpy.zeros((len(thresholds), d_count), dtype=bool)
    for ti, t in enumerate(thresholds):
        claimed = numpy.zeros(g_count, dtype=bool)
        for d in range(d_count):
            best, match = min(t, 1 - 1e-10), -1
            for g in range(g_count):
                if not claimed[g] and ious[d, g] >= best:
                    best, match = ious[d, g], g
            if match >= 0:
                claimed[match] = tp[ti, d] = True
    return tp


def match_class(preds, targets, label: int, iou_type: str, thresholds, max_detections=MAX_DETECTIONS):
    """Steps 1 and 2 for one class: (scores (D,), tp (T, D), G) over all images, sorted by score.

    Per image the top ``max_detections`` detections of the class are
    matched; then all images' detections are pooled and stably sorted.
    """
    scores, flags, num_gt = [], [], 0
    for det, gt in zip(preds, targets):
        gt = _select(gt, gt["labels"] == label)
        det = _select(det, det["labels"] == label)
        det = _select(det, numpy.argsort(-det["scores"], kind="stable")[:max_detections])
        num_gt += len(gt["labels"])
        scores.append(det["scores"])
        flags.append(match_image(_pairwise_iou(det, gt, iou_type), thresholds))
    scores = numpy.concatenate(scores) if scores else numpy.zeros(0)
    order = numpy.argsort(-scores, kind="stable")
    tp = numpy.concatenate(flags, axis=1) if flags else numpy.zeros((len(thresholds), 0), bool)
    return scores[order], tp[:, order], num_gt


def precision_recall(tp, num_gt: int):
    """Cumulative precision and recall after each ranked detection: tp (..., D) -> two (..., D) arrays."""
    tp_sum = numpy.cumsum(tp, axis=-1, dtype=numpy.float64)
    fp_sum = numpy.cumsum(~tp, axis=-1, dtype=numpy.float64)
    return tp_sum / (tp_sum + fp_sum + numpy.spacing(1)), tp_sum / num_gt


def interpolated_precision(precision, recall, levels=RECALL_LEVELS):
    """COCO's interpolation of one curve: the best precision at recall >= r, for each level r (0 if never)."""
    if len(precision) == 0:
        return numpy.zeros(len(levels))
    envelope = numpy.maximum.accumulate(precision[::-1])[::-1]  # non-increasing in rank
    at = numpy.searchsorted(recall, levels, side="left")  # first rank reaching recall r
    return numpy.append(envelope, 0.0)[numpy.minimum(at, len(envelope))]


def average_precision(precision, recall, levels=RECALL_LEVELS) -> float:
    """AP of one precision-recall curve: the mean of its interpolated precision at the recall levels."""
    return float(interpolated_precision(precision, recall, levels).mean())


def precision_recall_curve(preds, targets, label: int, iou_threshold: float = 0.5, iou_type: str = "bbox"):
    """The precision-recall curve of one class at one IoU threshold, ready to draw.

    Returns a dict: ``scores``, ``precision``, ``recall`` (D,) after each
    ranked detection, ``tp`` (D,) bool, ``num_gt``, the 101 ``recall_levels``
    with their ``interpolated`` precision, and ``ap`` (NaN without ground truth)::

        curve = precision_recall_curve(preds, targets, label=1)
        plt.plot(curve["recall"], curve["precision"])
        plt.step(curve["recall_levels"], curve["interpolated"], where="post")
    """
    iou_type = _check_iou_type(iou_type)
    preds, targets = _read_pair(preds, targets, iou_type)
    scores, tp, num_gt = match_class(preds, targets, label, iou_type, [iou_threshold])
    precision, recall = precision_recall(tp[0], max(num_gt, 1))
    interp = interpolated_precision(precision, recall)
    return {"scores": scores, "tp": tp[0], "precision": precision, "recall": recall, "num_gt": num_gt,
            "recall_levels": RECALL_LEVELS, "interpolated": interp,
            "ap": float(interp.mean()) if num_gt else float("nan")}


# ---------------------------------------------------------------------------
# mAP
# ---------------------------------------------------------------------------


def _check_iou_type(iou_type):
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    return iou_type


def _read_pair(preds, targets, iou_type):
    preds = _read(preds, "preds", iou_type, with_scores=True)
    targets = _read(targets, "targets", iou_type, with_scores=False)
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must list the same images, got {len(preds)} and {len(targets)} dicts")
    return preds, targets


def _mean_present(values) -> float:
    present = values[values > -1]
    return float(present.mean()) if present.size else -1.0


def mean_average_precision(preds, targets, iou_type: str = "bbox", iou_thresholds=None) -> dict:
    """COCO mAP of per-image predictions against per-image ground truth.

    preds: list (one per image) of dicts with ``boxes`` (N, 4) xyxy,
    ``scores`` (N,), ``labels`` (N,) int, and ``masks`` (N, H, W) for
    ``iou_type="segm"``; targets: dicts with ``boxes``, ``labels`` (and
    ``masks``), as torchmetrics' ``MeanAveragePrecision`` takes them. Arrays
    may live on either backend; they are read to the host once.

    iou_thresholds: default COCO's 0.50:0.05:0.95.

    Returns a dict: ``map`` (mean AP over classes and thresholds), ``map_50``
    and ``map_75`` (NaN if 0.5 / 0.75 is not among the thresholds),
    ``map_per_class`` (K,) over the thresholds, with -1 for a class without
    ground truth, ``classes`` (K,) the labels it refers to (every label seen
    in preds or targets, sorted), and ``ap`` (T, K) per threshold and class.
    """
    iou_type = _check_iou_type(iou_type)
    thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else numpy.asarray(iou_thresholds, numpy.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or ((thresholds < 0) | (thresholds > 1)).any():
        raise ValueError(f"iou_thresholds must be a non-empty 1-D list of values in [0, 1], got {iou_thresholds!r}")
    preds, targets = _read_pair(preds, targets, iou_type)
    classes = numpy.unique(numpy.concatenate([d["labels"] for d in preds + targets] + [numpy.zeros(0, int)]))
    ap = numpy.full((len(thresholds), len(classes)), -1.0)
    for k, label in enumerate(classes):
        _, tp, num_gt = match_class(preds, targets, int(label), iou_type, thresholds)
        if num_gt:
            precision, recall = precision_recall(tp, num_gt)
            ap[:, k] = [average_precision(p, r) for p, r in zip(precision, recall)]

    def at(t):
        hit = numpy.flatnonzero(numpy.isclose(thresholds, t))
        return _mean_present(ap[hit[0]]) if hit.size else float("nan")

    per_class = numpy.array([_mean_present(ap[:, k]) for k in range(len(classes))])
    return {"map": _mean_present(ap), "map_50": at(0.5), "map_75": at(0.75),
            "map_per_class": per_class, "classes": classes, "ap": ap}
