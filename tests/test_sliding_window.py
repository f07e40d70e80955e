"""Tests for minimal_seg/functional/linear.py, nn/linear.py and classical/sliding_window.py.

The fully connected layer three ways (hand example, float64 gradient check,
PyTorch oracle, plus the adjoint test), then the lecture's claim: a classifier
slid over every window and its fully convolutional version give the same numbers.
"""

import numpy as np
import pytest
from helpers import TOL, assert_close, dot, rand, to_torch, torch_or_skip

from minimal_seg import nn
from minimal_seg.backend import asarray, to_numpy
from minimal_seg.classical.sliding_window import FCClassifier, accuracy, fc_to_conv, heatmap_to_mask, linear_to_conv
from minimal_seg.classical.sliding_window import sliding_window_heatmap, train_classifier, window_crops
from minimal_seg.functional.linear import flatten_backward, flatten_forward, linear_backward, linear_forward
from minimal_seg.gradcheck import gradcheck, gradcheck_layer


# ------------------------------------------------------------------ the linear op

def test_linear_hand(xp):
    x = xp.asarray([[1.0, 2.0]])
    w = xp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out, cache = linear_forward(x, w, xp.asarray([0.0, 1.0, 2.0]))
    assert out.tolist() == [[1.0, 3.0, 5.0]]
    dx, dw, db = linear_backward(xp.asarray([[1.0, 0.0, 2.0]]), cache)
    assert dx.tolist() == [[3.0, 2.0]]
    assert dw.tolist() == [[1.0, 2.0], [0.0, 0.0], [2.0, 4.0]]
    assert db.tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(xp, rng, bias):
    inputs = {"x": xp.asarray(rand(rng, (4, 5))), "w": xp.asarray(rand(rng, (3, 5)))}
    if bias:
        inputs["b"] = xp.asarray(rand(rng, (3,)))
    report = gradcheck(linear_forward, linear_backward, inputs)
    assert report.passed, str(report)  # expect ~1e-11
    assert {c.name for c in report.checks} == set(inputs)


def test_flatten_gradcheck(xp, rng):
    report = gradcheck(flatten_forward, flatten_backward, {"x": xp.asarray(rand(rng, (2, 3, 2, 2)))})
    assert report.passed, str(report)


def test_flatten_is_row_major_and_does_not_alias(xp):
    x = xp.arange(2 * 2 * 2 * 3, dtype=xp.float64).reshape(2, 2, 2, 3)
    out, cache = flatten_forward(x)
    assert out.shape == (2, 12) and out[1].tolist() == list(range(12, 24))
    out[0, 0] = -1.0
    assert float(x[0, 0, 0, 0]) == 0.0
    assert flatten_backward(out, cache).shape == x.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_matches_torch(xp, rng, dtype):
    torch = torch_or_skip()
    x, w, b = rand(rng, (6, 7), dtype), rand(rng, (4, 7), dtype), rand(rng, (4,), dtype)
    dout = rand(rng, (6, 4), dtype)
    out, cache = linear_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b))
    dx, dw, db = linear_backward(xp.asarray(dout), cache)
    tx, tw, tb = to_torch(x, True), to_torch(w, True), to_torch(b, True)
    tout = torch.nn.functional.linear(tx, tw, tb)
    tout.backward(torch.from_numpy(dout))
    assert out.dtype == dtype
    for ours, theirs in ((out, tout), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        assert_close(ours, theirs, dtype)


def test_linear_adjoint(xp, rng):
    """<W x, y> = <x, W^T y>: the input gradient of a linear map is its transpose."""
    x, y = xp.asarray(rand(rng, (3, 5))), xp.asarray(rand(rng, (3, 4)))
    out, cache = linear_forward(x, xp.asarray(rand(rng, (4, 5))))
    dx, _, db = linear_backward(y, cache)
    assert db is None
    assert dot(out, y) == pytest.approx(dot(x, dx), rel=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, b_shape", [((2, 5), (3, 4), None), ((2, 5, 1), (3, 5), None),
                                                       ((2, 5), (3, 5), (4,))])
def test_linear_rejects_bad_shapes(x_shape, w_shape, b_shape):
    b = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError):
        linear_forward(np.zeros(x_shape), np.zeros(w_shape), b)


def test_linear_layer_gradcheck(xp, rng):
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5, rng=0), nn.ReLU(), nn.Linear(5, 3, rng=1))
    net.astype(np.float64)
    x = xp.asarray(rand(rng, (4, 3, 2, 2)))
    report = gradcheck_layer(net, x)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"x", "1.w", "1.b", "3.w", "3.b"}


# ------------------------------------------------------------------ FC -> conv

def test_linear_to_conv_equals_linear(xp, rng):
    layer = nn.Linear(3 * 2 * 4, 5, rng=0).astype(np.float64)
    fmap = xp.asarray(rand(rng, (6, 3, 2, 4)))
    conv = linear_to_conv(layer, (3, 2, 4))
    assert conv.params["w"].shape == (5, 3, 2, 4)
    out = conv.forward(fmap)
    assert out.shape == (6, 5, 1, 1)
    assert_close(out[:, :, 0, 0], layer.forward(fmap.reshape(6, -1)), np.float64)


def test_fc_to_conv_structure():
    net = fc_to_conv(FCClassifier(1, 3, window=16))
    kinds = [type(layer).__name__ for layer in net.layers]
    assert "Flatten" not in kinds and "Linear" not in kinds
    convs = [layer for layer in net.layers if isinstance(layer, nn.Conv2d)]
    assert [c.params["w"].shape[2:] for c in convs] == [(5, 5), (3, 3), (2, 2), (1, 1)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size, window", [((16, 16), 16), ((37, 42), 16), ((29, 20), 12), ((40, 40), 24)])
def test_every_heatmap_cell_equals_the_classifier_on_its_crop(xp, rng, dtype, size, window):
    """The lecture's claim, cell by cell: one pass of the conv net == the classifier on every window."""
    classifier = FCClassifier(2, 3, window=window, seed=1).astype(dtype)
    image = xp.asarray(rand(rng, (2, *size), dtype))
    heatmap = fc_to_conv(classifier).forward(image[None])[0]  # one pass
    oh, ow = (size[0] - window) // 4 + 1, (size[1] - window) // 4 + 1
    assert heatmap.shape == (3, oh, ow)
    for i in range(oh):
        for j in range(ow):
            crop = image[None, :, 4 * i:4 * i + window, 4 * j:4 * j + window]
            assert_close(heatmap[:, i, j], classifier.forward(crop)[0], dtype)
    assert_close(sliding_window_heatmap(classifier, image, stride=4, batch_size=5), heatmap, dtype)


def test_window_must_tile_into_pools():
    with pytest.raises(ValueError, match="multiple of 4"):
        FCClassifier(window=18)


def test_fc_to_conv_needs_flatten():
    with pytest.raises(ValueError, match="Flatten"):
        fc_to_conv(nn.Sequential(nn.Linear(4, 2, rng=0)), window=2)


# ------------------------------------------------------------------ crops, masks, training

def test_window_crops_label_is_centre_pixel(rng):
    images = rand(rng, (3, 2, 20, 24))
    masks = rng.integers(0, 4, (3, 20, 24))
    crops, labels = window_crops(images, masks, 8, 50, seed=3)
    assert crops.shape == (50, 2, 8, 8) and labels.shape == (50,)
    for crop, label in zip(crops, labels):
        n, top, left = _find_crop(images, crop)
        assert masks[n, top + 4, left + 4] == label


def _find_crop(images, crop):
    """Where the crop came from, by brute force (test oracle)."""
    _, _, h, w = images.shape
    k = crop.shape[-1]
    for n in range(len(images)):
        for top in range(h - k + 1):
            for left in range(w - k + 1):
                if np.array_equal(images[n, :, top:top + k, left:left + k], crop):
                    return n, top, left
    raise AssertionError("crop not found")


def test_heatmap_to_mask_hand(xp):
    """Three windows of 4 pixels at stride 2 over 8 pixels: centres at 2, 4, 6; ties go to the later one."""
    scores = xp.asarray(np.eye(3)[[0, 1, 2]].T[:, None, :])  # (K=3, 1, 3): window j votes class j
    mask = heatmap_to_mask(scores, (1, 8), window=4, stride=2)
    assert to_numpy(mask).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]


def _discs(n, size, seed):
    """Bright discs (class 1) on a noisy dark background (class 0)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        for _ in range(2):
            cy, cx = r.uniform(5, size - 5, 2)
            masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 < r.uniform(4, 7) ** 2] = 1
    images = masks[:, None] + 0.3 * r.standard_normal((n, 1, size, size))
    return images.astype(np.float32), masks


def test_trained_classifier_and_its_one_pass_heatmap():
    """Train on crops, then the converted net reproduces every window's scores on a new image."""
    crops, labels = window_crops(*_discs(20, 32, seed=0), window=12, count=768, seed=1)
    classifier = FCClassifier(1, 2, window=12, widths=(4, 8), hidden=16, seed=0)
    losses = train_classifier(classifier, crops, labels, epochs=3, batch_size=64, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    test_crops, test_labels = window_crops(*_discs(10, 32, seed=5), window=12, count=400, seed=2)
    acc = accuracy(classifier, test_crops, test_labels)
    assert acc > 0.85, acc
    image = asarray(_discs(1, 36, seed=9)[0][0])  # the classifier's parameters live on the current backend
    slow = sliding_window_heatmap(classifier, image, stride=4)
    fast = fc_to_conv(classifier).forward(image[None])[0]
    assert_close(fast, slow, np.float32, tol=TOL[np.float32])
