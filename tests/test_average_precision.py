"""Tests for metrics/average_precision.py: COCO mAP, checked against pycocotools.

pycocotools (in the ``test`` extra) is the oracle: every case is written
both as our per-image dicts and as a COCO ground-truth set + result list,
and map, map_50, map_75 and the per-class AP must agree within 1e-6.
Hand examples check the precision-recall curve and the interpolation.
"""
import contextlib
import io

import numpy as np
import pytest

from minimal_seg.metrics import (
    average_precision,
    interpolated_precision,
    match_image,
    mean_average_precision,
    precision_recall,
    precision_recall_curve,
)

H = W = 24


# ----------------------------------------------------------------------------------------------
# the oracle
# ----------------------------------------------------------------------------------------------

def coco_eval(preds, targets, iou_type):
    """pycocotools' numbers for the same case: (stats[0:3], per-class AP over classes)."""
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    classes = sorted({int(c) for d in preds + targets for c in d["labels"]})

    def anns(items, with_scores):
        out = []
        for img, d in enumerate(items):
            for j in range(len(d["labels"])):
                x1, y1, x2, y2 = (float(v) for v in d["boxes"][j])
                a = {"id": len(out) + 1, "image_id": img + 1, "category_id": int(d["labels"][j]),
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
                if iou_type == "segm":
                    a["segmentation"] = mask_utils.encode(np.asfortranarray(d["masks"][j].astype(np.uint8)))
                    a["area"] = float(d["masks"][j].sum())
                if with_scores:
                    a["score"] = float(d["scores"][j])
                out.append(a)
        return out

    def coco(annotations):
        c = COCO()
        c.dataset = {"images": [{"id": i + 1, "height": H, "width": W} for i in range(len(targets))],
                     "annotations": annotations, "categories": [{"id": k} for k in classes]}
        with contextlib.redirect_stdout(io.StringIO()):
            c.createIndex()
        return c

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco(anns(targets, False)), coco(anns(preds, True)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K) at area "all", 100 detections
    per_class = []
    for k in range(len(classes)):
        p = precision[:, :, k]
        per_class.append(p[p > -1].mean() if (p > -1).any() else -1.0)
    return ev.stats[:3], np.array(per_class)


def assert_equal_to_coco(preds, targets, iou_type="bbox"):
    ours = mean_average_precision(preds, targets, iou_type=iou_type)
    stats, per_class = coco_eval(preds, targets, iou_type)
    np.testing.assert_allclose([ours["map"], ours["map_50"], ours["map_75"]], stats, atol=1e-6)
    np.testing.assert_allclose(ours["map_per_class"], per_class, atol=1e-6)
    return ours


# ----------------------------------------------------------------------------------------------
# random cases
# ----------------------------------------------------------------------------------------------

def box_mask(box):
    x1, y1, x2, y2 = np.round(box).astype(int)
    m = np.zeros((H, W), dtype=bool)
    m[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)] = True
    return m


def random_case(rng, n_images, n_classes=3, iou_type="bbox"):
    """Ground truth boxes; predictions that jitter some of them, miss others, duplicate and invent."""
    preds, targets = [], []
    for _ in range(n_images):
        g = rng.integers(0, 6)
        p1 = rng.uniform(0, 16, (g, 2))
        gt_boxes = np.concatenate([p1, p1 + rng.uniform(3, 8, (g, 2))], axis=1)
        gt_labels = rng.integers(0, n_classes, g)
        found = rng.random(g) < 0.8
        dup = rng.random(g) < 0.2
        keep = np.concatenate([np.flatnonzero(found), np.flatnonzero(dup)])
        det = gt_boxes[keep] + rng.normal(0, 1.2, (len(keep), 4))
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 0.5)
        labels = np.where(rng.random(len(keep)) < 0.85, gt_labels[keep], rng.integers(0, n_classes, len(keep)))
        f = rng.integers(0, 3)  # invented boxes
        q1 = rng.uniform(0, 16, (f, 2))
        det = np.concatenate([det, np.concatenate([q1, q1 + rng.uniform(2, 8, (f, 2))], axis=1)])
        det = np.clip(det, 0, W - 1)
        labels = np.concatenate([labels, rng.integers(0, n_classes, f)])
        scores = rng.random(len(det))
        pred = {"boxes": det, "scores": scores, "labels": labels}
        target = {"boxes": gt_boxes, "labels": gt_labels}
        if iou_type == "segm":
            pred["masks"] = np.stack([box_mask(b) for b in det]) if len(det) else np.zeros((0, H, W), bool)
            target["masks"] = np.stack([box_mask(b) for b in gt_boxes]) if g else np.zeros((0, H, W), bool)
        preds.append(pred)
        targets.append(target)
    return preds, targets


@pytest.mark.parametrize("seed", range(16))
def test_bbox_equals_pycocotools(seed):
    preds, targets = random_case(np.random.default_rng(seed), n_images=1 + seed % 5)
    ours = assert_equal_to_coco(preds, targets)
    assert 0 < ours["map"] < 1


@pytest.mark.parametrize("seed", range(6))
def test_segm_equals_pycocotools(seed):
    preds, targets = random_case(np.random.default_rng(100 + seed), n_images=2 + seed % 3, iou_type="segm")
    assert_equal_to_coco(preds, targets, "segm")


def test_more_than_100_detections_per_image():
    """130 confident false boxes push image 0's true detections past the 100 that count."""
    rng = np.random.default_rng(7)
    preds, targets = random_case(rng, 2, n_classes=1)
    far = np.tile([40.0, 40.0, 44.0, 44.0], (130, 1))
    preds[0]["boxes"] = np.concatenate([far, preds[0]["boxes"]])
    preds[0]["scores"] = np.concatenate([1 + rng.random(130), preds[0]["scores"]])
    preds[0]["labels"] = np.concatenate([np.zeros(130, int), preds[0]["labels"]])
    assert len(targets[0]["labels"]) > 0
    ours = assert_equal_to_coco(preds, targets)
    alone = mean_average_precision(preds[1:], targets[1:])
    assert ours["map"] < alone["map"]


# ----------------------------------------------------------------------------------------------
# edge cases
# ----------------------------------------------------------------------------------------------

def empty_pred():
    return {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}


def one(boxes, labels, scores=None):
    d = {"boxes": np.array(boxes, float).reshape(-1, 4), "labels": np.array(labels, int)}
    if scores is not None:
        d["scores"] = np.array(scores, float)
    return d


def test_no_predictions():
    targets = [one([[1, 1, 5, 5], [6, 6, 9, 12]], [0, 1]), one([[2, 2, 8, 8]], [1])]
    ours = assert_equal_to_coco([empty_pred(), empty_pred()], targets)
    assert ours["map"] == 0.0 and list(ours["map_per_class"]) == [0.0, 0.0]


def test_no_ground_truth():
    preds = [one([[1, 1, 5, 5]], [0], [0.9])]
    ours = mean_average_precision(preds, [one([], [])])
    assert ours["map"] == -1.0 and list(ours["map_per_class"]) == [-1.0]
    assert_equal_to_coco(preds + [one([[1, 1, 4, 4]], [1], [0.5])], [one([], []), one([[1, 1, 4, 4]], [1])])


def test_duplicates_are_false_positives():
    target = one([[0, 0, 10, 10]], [2])
    pred = one([[0, 0, 10, 10], [0, 0, 10, 10], [0.5, 0, 10, 10]], [2, 2, 2], [0.9, 0.8, 0.7])
    ours = assert_equal_to_coco([pred], [target])
    assert ours["map"] == pytest.approx(1.0)  # the top one is right; duplicates come after full recall
    pred["scores"] = np.array([0.5, 0.8, 0.9])  # a slightly worse box wins first: still TP at 0.5
    assert_equal_to_coco([pred], [target])


def test_classes_on_one_side_only():
    preds = [one([[1, 1, 6, 6], [10, 10, 14, 15]], [0, 5], [0.8, 0.7])]
    targets = [one([[1, 1, 6, 6], [2, 12, 7, 18]], [0, 3])]
    ours = assert_equal_to_coco(preds, targets)
    assert list(ours["classes"]) == [0, 3, 5]
    assert list(ours["map_per_class"]) == [pytest.approx(1.0), 0.0, -1.0]  # 5: no ground truth -> -1
    assert ours["map"] == pytest.approx(0.5)


def test_ties_across_images():
    preds = [one([[0, 0, 4, 4]], [0], [0.5]), one([[9, 9, 12, 12]], [0], [0.5])]
    targets = [one([[0, 0, 4, 4]], [0]), one([[0, 0, 4, 4]], [0])]
    assert_equal_to_coco(preds, targets)


# ----------------------------------------------------------------------------------------------
# hand examples: the curve, the interpolation
# ----------------------------------------------------------------------------------------------

def test_precision_recall_by_hand():
    tp = np.array([True, False, True, True, False])
    precision, recall = precision_recall(tp, num_gt=4)
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(recall, [1 / 4, 1 / 4, 2 / 4, 3 / 4, 3 / 4])
    interp = interpolated_precision(precision, recall)
    assert interp[0] == pytest.approx(1) and interp[25] == pytest.approx(1)         # recall <= 0.25: precision 1
    assert interp[26] == pytest.approx(3 / 4)          # 0.26 .. 0.75: the envelope 3/4
    assert interp[75] == pytest.approx(3 / 4) and (interp[76:] == 0).all()  # never reached
    assert average_precision(precision, recall) == pytest.approx((26 * 1 + 50 * 0.75) / 101)


def test_matching_takes_the_best_unclaimed_ground_truth():
    ious = np.array([[0.6, 0.9], [0.8, 0.85], [0.55, 0.0]])
    tp = match_image(ious, [0.5, 0.7, 0.85])
    np.testing.assert_array_equal(tp, [[1, 1, 0], [1, 1, 0], [1, 0, 0]])


def test_curve_for_drawing():
    preds, targets = random_case(np.random.default_rng(3), 4)
    curve = precision_recall_curve(preds, targets, label=1, iou_threshold=0.5)
    assert np.all(np.diff(curve["scores"]) <= 0) and np.all(np.diff(curve["recall"]) >= 0)
    assert curve["recall_levels"].shape == curve["interpolated"].shape == (101,)
    res = mean_average_precision(preds, targets, iou_thresholds=[0.5])
    k = list(res["classes"]).index(1)
    assert curve["ap"] == pytest.approx(res["map_per_class"][k])


def test_bad_input():
    with pytest.raises(ValueError, match="iou_type"):
        mean_average_precision([], [], iou_type="mask")
    with pytest.raises(ValueError, match="missing"):
        mean_average_precision([{"boxes": np.zeros((0, 4))}], [one([], [])])
    with pytest.raises(ValueError, match="same images"):
        mean_average_precision([empty_pred()], [])
    with pytest.raises(ValueError, match="masks"):
        mean_average_precision([empty_pred()], [one([], [])], iou_type="segm")
