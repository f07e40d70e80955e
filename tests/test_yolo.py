"""Tests for the tiny YOLO: the loss (functional/yolo_loss.py), the model, target encoding and decoding.

The loss is checked by hand on one cell, by a float64 gradient check at
points away from ties of the responsible-box choice (the gap is asserted),
and against a plain per-cell loop of the paper's formula. The model is
gradient-checked whole; encode -> decode recovers the boxes.
"""
import numpy as np
import pytest

from minimal_seg.backend import to_numpy
from minimal_seg.data import InstanceShapes
from minimal_seg.functional import yolo_loss_backward, yolo_loss_forward
from minimal_seg.functional.yolo_loss import cell_box_iou
from minimal_seg.gradcheck import gradcheck, gradcheck_layer
from minimal_seg.metrics import box_iou, mean_average_precision
from minimal_seg.models.yolo import YOLO, decode, encode_targets

B, C, S = 2, 3, 4


def logit(p):
    return np.log(p / (1 - p))


def random_case(rng, n=3, objects=5):
    """Raw predictions and a target with objects in random cells."""
    pred = rng.standard_normal((n, 5 * B + C, S, S))
    target = np.zeros((n, 5 + C, S, S))
    for _ in range(objects):
        i, r, c = rng.integers(n), rng.integers(S), rng.integers(S)
        target[i, :, r, c] = 0
        target[i, :5, r, c] = (1, *rng.uniform(0.05, 0.95, 2), *rng.uniform(0.1, 0.6, 2))
        target[i, 5 + rng.integers(C), r, c] = 1
    return pred, target


def loop_loss(pred, target, lc=5.0, ln=0.5):
    """The paper's sum, one cell and one box at a time, in Python floats."""
    sig = lambda v: 1 / (1 + np.exp(-v))
    n = pred.shape[0]
    total = 0.0
    for i in range(n):
        for r in range(S):
            for c in range(S):
                p, t = pred[i, :, r, c], target[i, :, r, c]
                boxes = [sig(p[5 * b: 5 * b + 5]) for b in range(B)]
                scores = np.exp(p[5 * B:] - p[5 * B:].max())
                probs = scores / scores.sum()
                resp = -1
                if t[0] == 1:
                    def corners(x, y, w, h):
                        return [(c + x) / S - w / 2, (r + y) / S - h / 2, (c + x) / S + w / 2, (r + y) / S + h / 2]
                    ious = [box_iou(np.array([corners(*bx[:4])]), np.array([corners(*t[1:5])]))[0, 0] for bx in boxes]
                    resp = int(np.argmax(ious))
                    total += ((probs - t[5:]) ** 2).sum()
                for b, (x, y, w, h, conf) in enumerate(boxes):
                    if b == resp:
                        total += lc * ((x - t[1]) ** 2 + (y - t[2]) ** 2)
                        total += lc * ((np.sqrt(w) - np.sqrt(t[3])) ** 2 + (np.sqrt(h) - np.sqrt(t[4])) ** 2)
                        total += (conf - 1) ** 2
                    else:
                        total += ln * conf ** 2
    return total / n


def iou_gap(pred, target):
    """The smallest |IoU_0 - IoU_1| over cells with an object: how far the point is from a tie."""
    sig = lambda v: 1 / (1 + np.exp(-v))
    last = pred.transpose(0, 2, 3, 1)
    boxes = sig(last[..., :5 * B].reshape(*last.shape[:3], B, 5))[..., :4]
    ious = cell_box_iou(boxes, target.transpose(0, 2, 3, 1)[..., 1:5], (S, S))
    obj = target[:, 0] == 1
    return np.abs(ious[..., 0] - ious[..., 1])[obj].min()


def test_loss_equals_the_per_cell_loop(xp, rng):
    pred, target = random_case(rng)
    loss, cache = yolo_loss_forward(xp.asarray(pred), xp.asarray(target), num_boxes=B)
    assert float(loss) == pytest.approx(loop_loss(pred, target), rel=1e-12)
    assert float(loss) == pytest.approx(sum(float(v) for v in cache.terms.values()), rel=1e-12)
    loss, _ = yolo_loss_forward(xp.asarray(pred), xp.asarray(target), num_boxes=B, lambda_coord=1.0,
                                lambda_noobj=2.0)
    assert float(loss) == pytest.approx(loop_loss(pred, target, 1.0, 2.0), rel=1e-12)


def test_loss_by_hand_one_cell():
    """A perfect box, a perfect class, a sure confidence: only the other box's confidence costs."""
    pred = np.full((1, 5 * B + C, 1, 1), -30.0)
    pred[0, :5, 0, 0] = logit(np.array([0.5, 0.5, 0.25, 0.36, 1 - 1e-12]))
    pred[0, 5:10, 0, 0] = logit(np.array([0.5, 0.5, 0.04, 0.04, 0.5]))  # tiny box: IoU 0.04*0.04/(0.25*0.36)
    pred[0, 10:, 0, 0] = [30.0, 0.0, 0.0]
    target = np.zeros((1, 5 + C, 1, 1))
    target[0, :, 0, 0] = [1, 0.5, 0.5, 0.25, 0.36, 1, 0, 0]
    loss, cache = yolo_loss_forward(pred, target, num_boxes=B)
    np.testing.assert_array_equal(cache.resp[0, 0, 0], [1, 0])
    assert float(loss) == pytest.approx(0.5 * 0.5 ** 2, abs=1e-9)  # lambda_noobj * c^2 of box 1


def test_responsible_box_is_the_best_iou():
    rng = np.random.default_rng(3)
    pred, target = random_case(rng, n=1, objects=1)
    r, c = np.argwhere(target[0, 0] == 1)[0]
    t = target[0, 1:5, r, c]
    pred[0, 5:9, r, c] = logit(np.clip(t, 0.01, 0.99))  # box 1 sits on the truth
    pred[0, 0:4, r, c] = logit(np.array([0.9, 0.1, 0.05, 0.05]))  # box 0 is far and small
    _, cache = yolo_loss_forward(pred, target, num_boxes=B)
    np.testing.assert_array_equal(cache.resp[0, r, c], [0, 1])
    dpred = yolo_loss_backward(1.0, cache)
    assert np.all(dpred[0, 0:4, r, c] == 0)  # box 0's coordinates are not trained here ...
    assert dpred[0, 4, r, c] != 0  # ... only its confidence, towards 0


@pytest.mark.parametrize("seed", range(4))
def test_loss_gradcheck(rng, seed):
    pred, target = random_case(np.random.default_rng(seed), objects=6)
    assert iou_gap(pred, target) > 1e-3  # away from a tie: eps = 1e-5 cannot flip the responsible box
    report = gradcheck(yolo_loss_forward, yolo_loss_backward, {"pred": pred, "target": target},
                       kwargs={"num_boxes": B}, wrt=("pred",))
    assert report.passed, report


def test_loss_float32_and_errors(xp, rng):
    pred, target = random_case(rng)
    loss, cache = yolo_loss_forward(xp.asarray(pred.astype(np.float32)), xp.asarray(target.astype(np.float32)))
    assert loss.dtype == np.float32 and yolo_loss_backward(1.0, cache).dtype == np.float32
    with pytest.raises(ValueError, match="target must be"):
        yolo_loss_forward(pred, target[:, :6])
    with pytest.raises(ValueError, match="num_boxes"):
        yolo_loss_forward(pred, target, num_boxes=3)


def test_whole_model_gradcheck(xp):
    model = YOLO(in_channels=2, num_classes=3, boxes_per_cell=2, depth=2, base_channels=2, seed=1).astype(np.float64)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 2, 16, 16)))
    assert model(x).shape == (2, 13, 4, 4)
    report = gradcheck_layer(model, x, eps=1e-6, tol=1e-5, directions=2)
    assert report.passed, str(report)


def test_model_rejects_sizes_the_grid_does_not_divide():
    with pytest.raises(ValueError, match="divisible by 8"):
        YOLO()(np.zeros((1, 1, 60, 64), dtype=np.float32))


# ----------------------------------------------------------------------------------------------
# targets, decoding, NMS
# ----------------------------------------------------------------------------------------------

def test_encode_targets_by_hand():
    t = {"boxes": np.array([[8.0, 16.0, 24.0, 48.0]]), "labels": np.array([2])}
    out = encode_targets([t], num_classes=3, grid=4, image_size=64)
    assert out.shape == (1, 8, 4, 4) and out.dtype == np.float32
    # centre (16, 32) px = cell (row 2, col 1), at (0, 0) inside it; size 16 x 32 px of 64
    np.testing.assert_allclose(out[0, :, 2, 1], [1, 0, 0, 0.25, 0.5, 0, 1, 0])
    assert out[0, 0].sum() == 1
    with pytest.raises(ValueError, match="1..3"):
        encode_targets([{"boxes": t["boxes"], "labels": np.array([0])}], 3, 4, 64)


def perfect_prediction(target, eps=1e-6):
    """Raw outputs that reproduce an encoded target exactly (box 0 on the object, box 1 silent)."""
    n, _, s, _ = target.shape
    pred = np.full((n, 5 * B + C, s, s), logit(eps))
    obj = target[:, 0] == 1
    for k in range(4):
        pred[:, k][obj] = logit(np.clip(target[:, 1 + k][obj], eps, 1 - eps))
    pred[:, 4][obj] = logit(1 - eps)
    pred[:, 5 * B:] = np.where(target[:, 5:] == 1, 20.0, 0.0)
    return pred


def test_decode_inverts_encode():
    data = InstanceShapes(6, image_size=64, seed=2)
    grid = 8
    pred = perfect_prediction(encode_targets(data.targets, 3, grid, 64))
    found = decode(pred, B, 64, score_threshold=0.5)
    for d, t in zip(found, data.targets):
        cells = {(int((y1 + y2) / 16), int((x1 + x2) / 16)) for x1, y1, x2, y2 in t["boxes"]}
        assert len(d["boxes"]) == len(cells)  # one box per occupied cell
        iou = box_iou(d["boxes"], t["boxes"].astype(np.float64))
        assert (iou.max(axis=0) > 0.999).sum() == len(cells)
        assert set(d["labels"]) <= set(t["labels"])
    assert mean_average_precision(found, data.targets)["map_50"] > 0.9


def test_decode_nms_removes_duplicates_per_class():
    pred = np.full((1, 5 * B + C, 2, 2), -20.0)
    for b in range(B):  # both boxes of cell (0, 0) say the same thing
        pred[0, 5 * b:5 * b + 5, 0, 0] = logit(np.array([0.5, 0.5, 0.4, 0.4, 0.9 - 0.1 * b]))
    pred[0, 5 * B, 0, 0] = 20.0  # class 1
    pred[0, 0:5, 0, 1] = logit(np.array([0.1, 0.5, 0.4, 0.4, 0.8]))  # overlaps, but class 2
    pred[0, 5 * B + 1, 0, 1] = 20.0
    d = decode(pred, B, 32, score_threshold=0.5, iou_threshold=0.5)[0]
    np.testing.assert_array_equal(d["labels"], [1, 2])
    np.testing.assert_allclose(d["scores"], [0.9, 0.8], atol=1e-6)
    np.testing.assert_allclose(d["boxes"][0], [1.6, 1.6, 14.4, 14.4], atol=1e-6)  # centre (8, 8), side 0.4 * 32
    d = decode(pred, B, 32, score_threshold=0.5, iou_threshold=1.0)[0]
    assert len(d["labels"]) == 3  # without suppression the duplicate stays
    d = decode(pred, B, 32, score_threshold=0.85)[0]
    assert len(d["labels"]) == 1
    assert to_numpy(d["boxes"]).shape == (1, 4)
