"""Tests for data/instance_shapes.py: clusters of shapes with per-object masks, boxes and labels."""
import numpy as np
import pytest

from minimal_seg.data import DATASETS, InstanceShapes, get_dataset
from minimal_seg.data.instance_shapes import MIN_VISIBLE, masks_to_boxes, visible_masks
from minimal_seg.metrics import box_iou, mean_average_precision


@pytest.fixture(scope="module")
def data():
    return InstanceShapes(24, image_size=48, seed=5)


def test_targets_agree_with_the_semantic_mask(data):
    assert data.images.shape == (24, 1, 48, 48) and data.images.dtype == np.float32
    for i in range(len(data)):
        t = data.target(i)
        m = len(t["labels"])
        assert 2 <= m <= 4
        assert t["masks"].shape == (m, 48, 48) and t["masks"].dtype == bool
        assert t["boxes"].shape == (m, 4) and t["boxes"].dtype == np.float32
        assert set(t["labels"]) <= {1, 2, 3}
        assert t["masks"].any(axis=(1, 2)).all()
        assert (t["masks"].sum(axis=0) <= 1).all()  # visible parts never overlap
        painted = np.zeros((48, 48), dtype=np.int64)
        for mask, label in zip(t["masks"], t["labels"]):
            painted[mask] = label
        np.testing.assert_array_equal(painted, data.masks[i])  # the objects tile the semantic mask
        np.testing.assert_array_equal(data.instance_ids[i], (t["masks"] * np.arange(1, m + 1)[:, None, None]).sum(0))


def test_boxes_are_tight_around_the_visible_pixels(data):
    for t in data.targets:
        for (x1, y1, x2, y2), mask in zip(t["boxes"], t["masks"]):
            rows, cols = np.nonzero(mask)
            assert (x1, y1, x2, y2) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def test_objects_touch_or_overlap(data):
    """Every object's footprint, grown by one pixel, meets another object's (a cluster, not scattered shapes)."""
    lonely = 0
    for t in data.targets:
        m = t["masks"]
        grown = m.copy()
        grown[:, 1:] |= m[:, :-1]
        grown[:, :-1] |= m[:, 1:]
        grown[:, :, 1:] |= m[:, :, :-1]
        grown[:, :, :-1] |= m[:, :, 1:]
        for j in range(len(m)):
            others = np.delete(m, j, axis=0).any(axis=0)
            lonely += not (grown[j] & others).any()
    assert lonely <= 0.1 * sum(len(t["labels"]) for t in data.targets)


def test_objects_stay_mostly_visible(data):
    boxes = np.concatenate([t["boxes"] for t in data.targets])
    assert (boxes[:, 2:] - boxes[:, :2]).min() >= 3
    # overlapping objects exist, and boxes of different objects overlap
    assert any((box_iou(t["boxes"], t["boxes"]) - np.eye(len(t["boxes"])) > 0.05).any() for t in data.targets)


def test_visible_masks_hide_earlier_shapes():
    f = np.zeros((3, 1, 5), dtype=bool)
    f[0, 0, :4] = f[1, 0, 2:] = f[2, 0, 3:4] = True
    v = visible_masks(f)
    np.testing.assert_array_equal(v[:, 0].astype(int), [[1, 1, 0, 0, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(masks_to_boxes(v), [[0, 0, 2, 1], [2, 0, 5, 1], [3, 0, 4, 1]])
    assert MIN_VISIBLE > 0


def test_deterministic_and_prefix():
    a, b = InstanceShapes(5, 32, seed=1), InstanceShapes(7, 32, seed=1)
    np.testing.assert_array_equal(a.images, b.images[:5])
    for ta, tb in zip(a.targets, b.targets):
        np.testing.assert_array_equal(ta["boxes"], tb["boxes"])
        np.testing.assert_array_equal(ta["masks"], tb["masks"])
    c = InstanceShapes(5, 32, seed=2)
    assert not np.array_equal(a.masks, c.masks)


def test_splits_and_registry():
    train, val = InstanceShapes.splits(3, 2, image_size=32)
    assert len(train) == 3 and len(val) == 2 and not np.array_equal(train.masks[:2], val.masks)
    d = get_dataset("instance_shapes", "val", num_images=2, image_size=32)
    np.testing.assert_array_equal(d.masks, val.masks)
    assert "instance_shapes" in DATASETS and d.class_names[1:] == ("circle", "square", "triangle")


def test_ground_truth_scores_perfect_map(data):
    """The targets, used as predictions, score mAP 1 (boxes and masks): the format mAP takes."""
    preds = [dict(t, scores=np.ones(len(t["labels"]))) for t in data.targets]
    assert mean_average_precision(preds, data.targets)["map"] == pytest.approx(1.0)
    assert mean_average_precision(preds, data.targets, iou_type="segm")["map"] == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        InstanceShapes(2, channels=2)
    with pytest.raises(ValueError, match="num_images"):
        InstanceShapes(0)
