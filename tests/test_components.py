"""Connected components, small-piece removal and instance boundaries, against scipy.ndimage
(a test-only oracle) and hand examples."""
import numpy as np
import pytest

from minimal_seg.classical import instance_boundaries, label_components, relabel_sequential, remove_small
from minimal_seg.classical.components import instance_masks

ndimage = pytest.importorskip("scipy.ndimage")


def test_hand_example_from_the_docstring():
    mask = np.array([[0, 1, 1, 0, 0, 0],
                     [0, 1, 1, 0, 1, 0],
                     [0, 0, 0, 0, 1, 1],
                     [1, 0, 0, 0, 0, 0]])
    expected = np.array([[0, 1, 1, 0, 0, 0],
                         [0, 1, 1, 0, 2, 0],
                         [0, 0, 0, 0, 2, 2],
                         [3, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(label_components(mask), expected)


def test_a_diagonal_touch_does_not_connect():
    assert label_components(np.eye(4, dtype=bool)).max() == 4


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("density", [0.3, 0.55, 0.7])
def test_equals_scipy_ndimage_label(seed, density):
    """Same labels, same numbering (raster order of the first pixel), same count."""
    mask = np.random.default_rng(seed).random((31, 47)) < density
    expected, count = ndimage.label(mask)
    labels = label_components(mask)
    np.testing.assert_array_equal(labels, expected)
    assert labels.max() == count and labels.dtype == np.int64


@pytest.mark.parametrize("mask", [np.zeros((3, 4)), np.ones((3, 4))])
def test_empty_and_full_masks(mask):
    assert label_components(mask).max() == mask.max()
    assert label_components(mask).min() == mask.min()  # empty: all 0; full: one component, all 1


def test_remove_small_drops_and_renumbers():
    labels = np.array([[1, 1, 0, 5],
                       [1, 0, 0, 0],
                       [0, 0, 7, 7]])
    np.testing.assert_array_equal(remove_small(labels, 2), [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 2, 2]])
    np.testing.assert_array_equal(remove_small(labels, 0), relabel_sequential(labels))
    np.testing.assert_array_equal(relabel_sequential(labels), [[1, 1, 0, 2], [1, 0, 0, 0], [0, 0, 3, 3]])
    with pytest.raises(ValueError, match="min_size"):
        remove_small(labels, -1)


def test_instance_boundaries_separate_touching_instances():
    labels = np.zeros((5, 8), int)
    labels[1:4, 1:4] = 1
    labels[1:4, 4:7] = 2  # touches instance 1 along a column
    edge = instance_boundaries(labels)
    interior = (labels > 0) & ~edge
    assert interior.sum() == 2 and interior[2, 2] and interior[2, 5]  # one pixel each, apart
    assert label_components(interior).max() == 2  # so the interiors are two components
    assert label_components(labels > 0).max() == 1  # while the foreground is one
    assert not edge[labels == 0].any()


def test_instance_boundaries_equal_scipy_erosion_on_random_labels():
    """A pixel is interior iff its 4-neighbours all carry its label (erosion of each instance, border = same)."""
    labels = np.random.default_rng(0).integers(0, 4, (20, 30))
    cross = ndimage.generate_binary_structure(2, 1)
    interior = np.zeros(labels.shape, bool)
    for k in range(1, 4):
        interior |= ndimage.binary_erosion(labels == k, cross, border_value=1)
    np.testing.assert_array_equal(instance_boundaries(labels), (labels > 0) & ~interior)


def test_instance_masks_and_bad_input():
    masks, ids = instance_masks(np.array([[0, 3], [3, 9]]))
    assert ids.tolist() == [3, 9] and masks.shape == (2, 2, 2) and masks[0].sum() == 2
    with pytest.raises(ValueError, match="mask must be a 2-D"):
        label_components(np.zeros((2, 3, 4)))
