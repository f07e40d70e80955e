"""Tests for minimal_seg/metrics.py: hand examples, streaming, the Dice/IoU relation,
box IoU and NMS against plain-Python reference implementations."""
import math

import numpy as np
import pytest

from minimal_seg import metrics
from minimal_seg.backend import array_module, to_numpy
from minimal_seg.metrics import ConfusionMatrix

# ---------------------------------------------------------------------------
# Confusion matrix: the hand example
# ---------------------------------------------------------------------------

# 3x3 truth and prediction, K = 4 classes; class 3 is absent from both, and the
# bottom-right pixel is ignored (its prediction 1 would otherwise count).
TRUTH = [[0, 0, 1],
         [0, 1, 1],
         [2, 2, 255]]
PRED = [[0, 1, 1],
        [0, 1, 2],
        [2, 0, 1]]
# Rows: truth, columns: prediction, counted by hand over the 8 counted pixels.
HAND_MATRIX = [[2, 1, 0, 0],
               [0, 2, 1, 0],
               [1, 0, 1, 0],
               [0, 0, 0, 0]]
# class 0: TP 2, FP 1, FN 1;  class 1: TP 2, FP 1, FN 1;  class 2: TP 1, FP 1, FN 1
HAND_IOU = [2 / 4, 2 / 4, 1 / 3, math.nan]
HAND_DICE = [4 / 6, 4 / 6, 2 / 4, math.nan]


def hand_cm(xp):
    cm = ConfusionMatrix(num_classes=4, ignore_index=255)
    cm.update(xp.asarray(PRED), xp.asarray(TRUTH))
    return cm


def test_hand_example_matrix_and_metrics(xp):
    cm = hand_cm(xp)
    np.testing.assert_array_equal(cm.to_numpy(), HAND_MATRIX)
    assert cm.pixel_accuracy() == pytest.approx(5 / 8)
    np.testing.assert_allclose(cm.iou(), HAND_IOU, rtol=1e-15)  # NaN == NaN here
    np.testing.assert_allclose(cm.dice(), HAND_DICE, rtol=1e-15)
    # the absent class 3 is NaN and left out of the means
    assert cm.miou() == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert cm.mean_dice() == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)


def test_summary_is_python_floats(xp):
    s = hand_cm(xp).summary()
    assert all(type(v) is float for v in s.values())
    assert s["pixel_accuracy"] == pytest.approx(5 / 8)
    assert s["miou"] == pytest.approx(4 / 9)
    assert s["mean_dice"] == pytest.approx(11 / 18)
    assert s["iou_2"] == pytest.approx(1 / 3) and s["dice_2"] == pytest.approx(0.5)
    assert math.isnan(s["iou_3"]) and math.isnan(s["dice_3"])
    assert set(s) == {"pixel_accuracy", "miou", "mean_dice"} | {f"{m}_{c}" for m in ("iou", "dice") for c in range(4)}


def test_matrix_stays_on_the_input_backend(xp):
    cm = hand_cm(xp)
    assert array_module(cm.matrix) is xp
    assert cm.matrix.dtype == np.int64 and cm.matrix.shape == (4, 4)


def test_predicted_but_absent_class_counts_as_zero(xp):
    # class 2 is predicted once but never true: IoU 0, and it does pull the mean down
    cm = ConfusionMatrix(3)
    cm.update(xp.asarray([0, 0, 1, 2]), xp.asarray([0, 0, 1, 1]))
    np.testing.assert_allclose(cm.iou(), [1.0, 0.5, 0.0])
    assert cm.miou() == pytest.approx(0.5)


def test_ignore_index_pixels_are_not_counted(xp, rng):
    target = rng.integers(0, 3, size=(2, 5, 6))
    pred = rng.integers(0, 3, size=(2, 5, 6))
    ignored = rng.random((2, 5, 6)) < 0.3
    target_ign = np.where(ignored, -1, target)
    pred_ign = np.where(ignored, 99, pred)  # out of range, but never looked at
    cm = ConfusionMatrix(3, ignore_index=-1)
    cm.update(xp.asarray(pred_ign), xp.asarray(target_ign))
    expected = ConfusionMatrix(3)
    expected.update(pred[~ignored], target[~ignored])
    np.testing.assert_array_equal(cm.to_numpy(), expected.to_numpy())
    assert cm.to_numpy().sum() == (~ignored).sum()


def test_logits_are_argmaxed_over_the_class_axis(xp, rng):
    logits = rng.standard_normal((2, 4, 5, 3))
    target = rng.integers(0, 4, size=(2, 5, 3))
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(xp.asarray(logits), xp.asarray(target))
    b.update(xp.asarray(logits.argmax(axis=1)), xp.asarray(target))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    with pytest.raises(ValueError, match="num_classes=3"):
        ConfusionMatrix(3).update(xp.asarray(logits), xp.asarray(target))


def reference_matrix(pred, target, k):
    """Plain-Python count, pixel by pixel."""
    m = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(target.ravel().tolist(), pred.ravel().tolist()):
        m[t, p] += 1
    return m


def test_streaming_equals_one_shot_and_reference(xp, rng):
    k = 5
    batches = [(rng.integers(0, k, size=(3, 4, 4)), rng.integers(0, k, size=(3, 4, 4))) for _ in range(4)]
    streaming = ConfusionMatrix(k)
    for pred, target in batches:
        streaming.update(xp.asarray(pred), xp.asarray(target))
    pred_all = np.concatenate([p for p, _ in batches])
    target_all = np.concatenate([t for _, t in batches])
    one_shot = ConfusionMatrix(k)
    one_shot.update(xp.asarray(pred_all), xp.asarray(target_all))
    np.testing.assert_array_equal(streaming.to_numpy(), one_shot.to_numpy())
    np.testing.assert_array_equal(streaming.to_numpy(), reference_matrix(pred_all, target_all, k))
    assert streaming.summary() == pytest.approx(one_shot.summary())


def test_reset_and_empty_matrix_give_nan(xp):
    cm = hand_cm(xp)
    cm.reset()
    assert cm.to_numpy().sum() == 0
    assert math.isnan(cm.pixel_accuracy()) and math.isnan(cm.miou()) and math.isnan(cm.mean_dice())
    assert np.isnan(cm.iou()).all()
    cm.update(xp.asarray([1]), xp.asarray([1]))
    assert cm.miou() == 1.0 and cm.pixel_accuracy() == 1.0


def test_dice_iou_relation_per_class(xp, rng):
    cm = ConfusionMatrix(6)
    cm.update(xp.asarray(rng.integers(0, 6, size=200)), xp.asarray(rng.integers(0, 5, size=200)))
    iou, dice = cm.iou(), cm.dice()
    np.testing.assert_allclose(dice, metrics.dice_from_iou(iou), rtol=1e-12)
    np.testing.assert_allclose(iou, metrics.iou_from_dice(dice), rtol=1e-12)


def test_binary_confusion_matrix_agrees_with_mask_functions(xp, rng):
    pred = rng.integers(0, 2, size=(4, 7))
    target = rng.integers(0, 2, size=(4, 7))
    cm = ConfusionMatrix(2)
    cm.update(xp.asarray(pred), xp.asarray(target))
    assert cm.iou()[1] == pytest.approx(metrics.iou(xp.asarray(pred), xp.asarray(target)))
    assert cm.dice()[1] == pytest.approx(metrics.dice(xp.asarray(pred), xp.asarray(target)))


@pytest.mark.parametrize(
    "pred, target, message",
    [
        ([[0, 1]], [[0, 1, 1]], r"\(1, 2\).*\(1, 3\)"),  # both shapes named
        ([0, 3], [0, 1], "outside"),  # prediction out of range
        ([0, 1], [0, 5], "outside"),  # truth out of range
        ([0, 1], [-1, 1], "outside"),  # negative label
        ([0, 255], [0, 1], "outside"),  # ignore_index in pred does not make it ignored
    ],
)
def test_invalid_labels_raise(xp, pred, target, message):
    cm = ConfusionMatrix(3, ignore_index=255)
    with pytest.raises(ValueError, match=message):
        cm.update(xp.asarray(pred), xp.asarray(target))
    assert cm.matrix is None  # nothing was counted


def test_float_labels_raise(xp):
    with pytest.raises(TypeError):
        ConfusionMatrix(2).update(xp.asarray([0.0, 1.0]), xp.asarray([0, 1]))


# ---------------------------------------------------------------------------
# Binary masks
# ---------------------------------------------------------------------------


def test_mask_iou_and_dice_hand_example(xp):
    a = xp.asarray([[1, 1, 0],
                    [1, 0, 0]])  # |A| = 3
    b = xp.asarray([[0, 1, 1],
                    [1, 0, 0]])  # |B| = 3, |A n B| = 2, |A u B| = 4
    assert metrics.iou(a, b) == pytest.approx(2 / 4)
    assert metrics.dice(a, b) == pytest.approx(4 / 6)
    assert metrics.dice(a, b) == pytest.approx(metrics.dice_from_iou(metrics.iou(a, b)))


def test_empty_masks_convention(xp):
    empty = xp.zeros((3, 3), dtype=bool)
    full = xp.ones((3, 3), dtype=bool)
    assert metrics.iou(empty, empty) == 1.0 and metrics.dice(empty, empty) == 1.0
    assert metrics.iou(empty, full) == 0.0 and metrics.dice(full, empty) == 0.0
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(2, 3\)"):
        metrics.iou(empty, full[:2])


def test_mask_iou_matches_pairwise_functional(xp, rng):
    a = rng.random((4, 5, 6)) < 0.4
    b = rng.random((3, 5, 6)) < 0.4
    a[0] = False  # an empty mask in each set: IoU(empty, empty) = 1
    b[2] = False
    out = metrics.mask_iou(xp.asarray(a), xp.asarray(b))
    assert out.shape == (4, 3) and array_module(out) is xp
    expected = [[metrics.iou(a[i], b[j]) for j in range(3)] for i in range(4)]
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-14)
    assert to_numpy(out)[0, 2] == 1.0


# ---------------------------------------------------------------------------
# Boxes and NMS
# ---------------------------------------------------------------------------


def py_box_iou(a, b):
    """IoU of two (x1, y1, x2, y2) boxes with plain Python numbers."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def random_boxes(rng, n, size=20.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def test_box_format_conversions(xp):
    xywh = xp.asarray([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]])
    xyxy = metrics.xywh_to_xyxy(xywh)
    np.testing.assert_array_equal(to_numpy(xyxy), [[1, 2, 4, 6], [0, 0, 1, 1]])
    np.testing.assert_array_equal(to_numpy(metrics.xyxy_to_xywh(xyxy)), to_numpy(xywh))
    np.testing.assert_array_equal(to_numpy(metrics.box_area(xyxy)), [12, 1])


def test_box_iou_hand_example(xp):
    # two 2x2 boxes that overlap in a 1x2 strip: 2 / (4 + 4 - 2) = 2/6
    a = xp.asarray([[0.0, 0.0, 2.0, 2.0]])
    b = xp.asarray([[1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    out = metrics.box_iou(a, b)
    assert out.shape == (1, 3)
    np.testing.assert_allclose(to_numpy(out), [[2 / 6, 0.0, 1.0]], rtol=1e-15)


def test_box_iou_matches_python_loops(xp, rng):
    a, b = random_boxes(rng, 7), random_boxes(rng, 5)
    out = to_numpy(metrics.box_iou(xp.asarray(a), xp.asarray(b)))
    expected = [[py_box_iou(a[i], b[j]) for j in range(5)] for i in range(7)]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    assert (out > 0).any() and (out == 0).any()  # the data has overlaps and misses


def test_box_iou_rejects_inverted_boxes(xp):
    with pytest.raises(ValueError, match="x1 <= x2"):
        metrics.box_iou(xp.asarray([[2.0, 0.0, 1.0, 1.0]]), xp.asarray([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        metrics.box_iou(xp.asarray([[0.0, 0.0, 1.0]]), xp.asarray([[0.0, 0.0, 1.0, 1.0]]))


def brute_force_nms(boxes, scores, threshold):
    """A box survives iff no higher-ranked survivor overlaps it by more than threshold.

    Rank = decreasing score, ties by lower index. Plain Python loops over pairs.
    """
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in ranked:
        if all(py_box_iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nms_matches_brute_force(xp, threshold, seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 40)
    scores = np.round(rng.random(40), 1)  # rounded: many ties in score
    kept = metrics.nms(xp.asarray(boxes), xp.asarray(scores), iou_threshold=threshold)
    assert kept.dtype == np.int64 and array_module(kept) is xp
    assert to_numpy(kept).tolist() == brute_force_nms(boxes, scores, threshold)


def test_nms_lecture_example(xp):
    # three detections of one object, and one of another object far away
    boxes = xp.asarray([
        [10.0, 10.0, 50.0, 50.0],   # 0.80
        [12.0, 11.0, 52.0, 49.0],   # 0.95 <- best box of the first object
        [8.0, 12.0, 48.0, 53.0],    # 0.60
        [100.0, 100.0, 130.0, 140.0],  # 0.70 <- the other object
    ])
    scores = xp.asarray([0.80, 0.95, 0.60, 0.70])
    assert to_numpy(metrics.nms(boxes, scores, 0.5)).tolist() == [1, 3]


def test_nms_ties_and_edge_cases(xp):
    same = xp.asarray([[0.0, 0.0, 1.0, 1.0]] * 3)
    assert to_numpy(metrics.nms(same, xp.asarray([0.5, 0.5, 0.5]))).tolist() == [0]
    # IoU exactly at the threshold is kept ("drop above the threshold")
    touching = xp.asarray([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]])  # IoU 1/3
    assert to_numpy(metrics.nms(touching, xp.asarray([0.9, 0.8]), 1 / 3)).tolist() == [0, 1]
    assert to_numpy(metrics.nms(touching, xp.asarray([0.9, 0.8]), 0.3)).tolist() == [0]
    empty = metrics.nms(xp.zeros((0, 4)), xp.zeros((0,)))
    assert empty.shape == (0,) and empty.dtype == np.int64
