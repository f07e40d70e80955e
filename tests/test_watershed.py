"""Marker-based watershed against skimage.segmentation.watershed (test-only oracle), hand examples,
and the one-stage recipe on a drawn pair of touching nuclei."""
import numpy as np
import pytest

from minimal_seg.classical import instances_from_classes, label_components, watershed

segmentation = pytest.importorskip("skimage.segmentation")


def test_two_basins_meet_at_the_ridge():
    elevation = np.array([[0, 1, 2, 3, 2, 1, 0]], dtype=float)
    markers = np.array([[1, 0, 0, 0, 0, 0, 2]])
    labels = watershed(elevation, markers)
    assert labels[0, :3].tolist() == [1, 1, 1] and labels[0, 4:].tolist() == [2, 2, 2]
    assert labels[0, 3] in (1, 2)  # the ridge goes to whichever flood arrives first


def test_mask_bounds_the_flood_and_unreachable_pixels_stay_zero():
    elevation = np.zeros((3, 5))
    markers = np.zeros((3, 5), int)
    markers[1, 0] = 4
    mask = np.ones((3, 5), bool)
    mask[:, 2] = False  # a wall
    labels = watershed(elevation, markers, mask)
    assert (labels[:, :2] == 4).all() and (labels[:, 2:] == 0).all()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("use_mask", [False, True])
def test_equals_skimage_on_random_landscapes(seed, use_mask):
    """Continuous random elevations (no ties), random markers: the same labels pixel for pixel."""
    rng = np.random.default_rng(seed)
    elevation = rng.random((24, 33))
    markers = np.zeros(elevation.shape, int)
    spots = rng.choice(elevation.size, 6, replace=False)
    markers.ravel()[spots] = np.arange(1, 7)
    mask = rng.random(elevation.shape) < 0.8 if use_mask else None
    expected = segmentation.watershed(elevation, markers, mask=mask)
    np.testing.assert_array_equal(watershed(elevation, markers, mask), expected)


@pytest.mark.parametrize("seed", range(3))
def test_equals_skimage_on_smooth_landscapes_with_seed_regions(seed):
    """Smooth elevation (sum of bumps) and markers that are whole regions, as in the nuclei recipe."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    elevation = sum(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0) for cy, cx in rng.uniform(0, 40, (5, 2)))
    elevation = elevation + 1e-9 * rng.random(elevation.shape)  # break exact ties
    markers = label_components(elevation < np.quantile(elevation, 0.1))
    np.testing.assert_array_equal(watershed(elevation, markers), segmentation.watershed(elevation, markers))


def _touching_pair(shape=(20, 30)):
    """Two discs that touch; the 3-class probabilities a perfect network would give."""
    from minimal_seg.classical import instance_boundaries

    yy, xx = np.mgrid[:shape[0], :shape[1]]
    truth = np.zeros(shape, int)
    truth[(yy - 10) ** 2 + (xx - 9) ** 2 <= 36] = 1
    truth[((yy - 10) ** 2 + (xx - 20) ** 2 <= 36) & (truth == 0)] = 2
    classes = np.where(truth > 0, 1, 0)
    classes[instance_boundaries(truth)] = 2
    return truth, np.eye(3)[classes].transpose(2, 0, 1)


def test_one_stage_recipe_splits_touching_discs_that_components_merge():
    truth, probabilities = _touching_pair()
    assert label_components(truth > 0).max() == 1  # connected components alone: one blob
    labels = instances_from_classes(probabilities)
    assert labels.max() == 2
    np.testing.assert_array_equal(labels > 0, truth > 0)  # boundary pixels went back to the nuclei
    for k in (1, 2):  # each instance is one of the discs, up to numbering
        overlap = np.bincount(truth[labels == k], minlength=3)
        assert overlap.max() >= 0.95 * (labels == k).sum()


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="one shape"):
        watershed(np.zeros((3, 3)), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="probabilities must be"):
        instances_from_classes(np.zeros((2, 3, 3)))
