"""Tests for functional/roi.py: RoI pooling and RoIAlign.

torchvision (the natural oracle) needs CUDA torch to install, so the oracle
here is a per-bin loop written from torchvision's CPU kernels
(roi_pool_kernel.cpp, roi_align_kernel.cpp), one output entry at a time, in
plain Python floats. Forward and backward are compared with it, and the
backward is also gradient-checked in float64 (expect ~1e-10, bar 1e-7).
"""
import math

import numpy as np
import pytest

from minimal_seg.backend import to_numpy
from minimal_seg.functional import (
    roi_align2d_backward,
    roi_align2d_forward,
    roi_pool2d_backward,
    roi_pool2d_forward,
)
from minimal_seg.gradcheck import gradcheck


def c_round(v):
    """C's std::round: halves go away from zero."""
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def loop_roi_pool(x, rois, size, scale):
    """torchvision's roi_pool, one bin at a time: (out, argmax)."""
    n, c, h, w = x.shape
    ph, pw = size
    out = np.zeros((len(rois), c, ph, pw))
    arg = np.full((len(rois), c, ph, pw), -1)
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sw, sh, ew, eh = (c_round(v * scale) for v in (x1, y1, x2, y2))
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(i * rh / ph) + sh, 0), h)
                he = min(max(math.ceil((i + 1) * rh / ph) + sh, 0), h)
                ws = min(max(math.floor(j * rw / pw) + sw, 0), w)
                we = min(max(math.ceil((j + 1) * rw / pw) + sw, 0), w)
                for ch in range(c):
                    best, idx = (0.0 if he <= hs or we <= ws else -np.inf), -1
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if x[int(b), ch, yy, xx] > best:
                                best, idx = x[int(b), ch, yy, xx], yy * w + xx
                    out[k, ch, i, j], arg[k, ch, i, j] = best, idx
    return out, arg


def bilinear(plane, y, x):
    """torchvision's bilinear_interpolate on one (H, W) plane."""
    h, w = plane.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yh = yl = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xh = xl = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    return ((1 - ly) * (1 - lx) * plane[yl, xl] + (1 - ly) * lx * plane[yl, xh]
            + ly * (1 - lx) * plane[yh, xl] + ly * lx * plane[yh, xh])


def align_samples(roi, size, scale, ratio, aligned):
    """The sample points of every bin: {(i, j): [(y, x), ...]} and the divisor."""
    b, x1, y1, x2, y2 = roi
    off = 0.5 if aligned else 0.0
    sw, sh = x1 * scale - off, y1 * scale - off
    rw, rh = x2 * scale - off - sw, y2 * scale - off - sh
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    ph, pw = size
    bh, bw = rh / ph, rw / pw
    gh = ratio if ratio > 0 else math.ceil(rh / ph)
    gw = ratio if ratio > 0 else math.ceil(rw / pw)
    points = {(i, j): [(sh + i * bh + (iy + 0.5) * bh / gh, sw + j * bw + (ix + 0.5) * bw / gw)
                       for iy in range(gh) for ix in range(gw)]
              for i in range(ph) for j in range(pw)}
    return points, max(gh * gw, 1)


def loop_roi_align(x, rois, size, scale, ratio, aligned):
    out = np.zeros((len(rois), x.shape[1]) + tuple(size))
    for k, roi in enumerate(rois):
        points, count = align_samples(roi, size, scale, ratio, aligned)
        for (i, j), pts in points.items():
            for ch in range(x.shape[1]):
                out[k, ch, i, j] = sum(bilinear(x[int(roi[0]), ch], y, xx) for y, xx in pts) / count
    return out


def random_rois(rng, k, n, h, w, scale=1.0, spread=0.3):
    """Boxes in image coordinates, some partly or wholly off the map, some tiny."""
    lo = np.array([w, h]) / scale
    p1 = rng.uniform(-spread, 1 + spread, (k, 2)) * lo
    wh = rng.uniform(0.05, 0.9, (k, 2)) * lo
    b = rng.integers(0, n, (k, 1))
    return np.concatenate([b, p1, p1 + wh], axis=1)


EDGE_ROIS = np.array([
    [0, 1.0, 1.0, 5.0, 6.0],      # inside
    [1, -3.0, -2.0, 2.5, 3.5],    # partly outside, top-left; halves to round
    [0, 6.0, 7.0, 12.0, 11.0],    # partly outside, bottom-right
    [1, 20.0, 20.0, 25.0, 30.0],  # wholly outside
    [0, 3.2, 3.3, 3.4, 3.35],     # tiny (smaller than a cell)
    [1, -0.5, 2.5, 7.5, 2.5],     # zero height
    [0, 0.0, 0.0, 8.0, 9.0],      # the whole map
])


# ----------------------------------------------------------------------------------------------
# RoI pooling
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,scale", [((2, 2), 1.0), ((3, 2), 1.0), ((2, 3), 0.5), ((1, 1), 1.0), ((4, 4), 1.0)])
def test_roi_pool_equals_loop(xp, rng, size, scale):
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float64)  # tie-free
    rois = np.concatenate([EDGE_ROIS, random_rois(rng, 6, 2, 9, 8, scale)])
    out, cache = roi_pool2d_forward(xp.asarray(x), xp.asarray(rois), size, spatial_scale=scale)
    want, want_arg = loop_roi_pool(x, rois, size, scale)
    np.testing.assert_array_equal(to_numpy(out), want)
    np.testing.assert_array_equal(to_numpy(cache.argmax), want_arg)
    assert (want_arg == -1).any() and (want_arg >= 0).any()  # the edge cases really have empty bins


def test_roi_pool_ties_go_to_the_first(xp):
    x = xp.zeros((1, 1, 4, 4))
    out, cache = roi_pool2d_forward(x, xp.asarray([[0, 0.0, 0.0, 3.0, 3.0]]), 2)
    np.testing.assert_array_equal(to_numpy(cache.argmax)[0, 0], [[0, 2], [8, 10]])
    np.testing.assert_array_equal(to_numpy(out), 0)


def test_roi_pool_backward_routes_to_argmax(xp, rng):
    x = rng.permutation(2 * 2 * 9 * 8).reshape(2, 2, 9, 8).astype(np.float64)
    rois = np.concatenate([EDGE_ROIS, random_rois(rng, 5, 2, 9, 8)])
    out, cache = roi_pool2d_forward(xp.asarray(x), xp.asarray(rois), (3, 2))
    dout = rng.standard_normal(out.shape)
    dx = to_numpy(roi_pool2d_backward(xp.asarray(dout), cache))
    _, arg = loop_roi_pool(x, rois, (3, 2), 1.0)
    want = np.zeros_like(x)
    for (k, ch, i, j), a in np.ndenumerate(arg):
        if a >= 0:
            want[int(rois[k, 0]), ch].flat[a] += dout[k, ch, i, j]
    np.testing.assert_allclose(dx, want, atol=1e-12)
    assert dx.shape == x.shape


def test_roi_pool_gradcheck(rng):
    x = (rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7) * 0.1).astype(np.float64)  # gaps of 0.1 >> eps
    rois = np.concatenate([EDGE_ROIS[:3], random_rois(rng, 4, 2, 7, 7)])
    report = gradcheck(roi_pool2d_forward, roi_pool2d_backward, {"x": x, "rois": rois},
                       kwargs={"output_size": (2, 3)}, wrt=("x",))
    assert report.passed, report


# ----------------------------------------------------------------------------------------------
# RoIAlign
# ----------------------------------------------------------------------------------------------

ALIGN_CASES = [  # size, scale, sampling_ratio, aligned
    ((2, 2), 1.0, -1, False),
    ((2, 2), 1.0, -1, True),
    ((3, 2), 1.0, 2, False),
    ((2, 3), 0.5, 0, True),
    ((3, 3), 0.5, 1, False),
    ((1, 1), 2.0, -1, True),
    ((4, 3), 1.0, 3, True),
]


@pytest.mark.parametrize("size,scale,ratio,aligned", ALIGN_CASES)
def test_roi_align_equals_loop(xp, rng, size, scale, ratio, aligned):
    x = rng.standard_normal((2, 3, 9, 8))
    rois = np.concatenate([EDGE_ROIS, random_rois(rng, 6, 2, 9, 8, scale)])
    out, _ = roi_align2d_forward(xp.asarray(x), xp.asarray(rois), size, scale, ratio, aligned)
    np.testing.assert_allclose(to_numpy(out), loop_roi_align(x, rois, size, scale, ratio, aligned), atol=1e-12)


def test_roi_align_float32(xp, rng):
    x = rng.standard_normal((2, 3, 9, 8))
    rois = random_rois(rng, 5, 2, 9, 8)
    out, _ = roi_align2d_forward(xp.asarray(x.astype(np.float32)), xp.asarray(rois.astype(np.float32)), 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(to_numpy(out), loop_roi_align(x, rois, (3, 3), 1.0, -1, False), atol=1e-4)


def test_roi_align_constant_map_and_outside(xp):
    """A box inside a constant map averages to the constant; a box far outside gives 0."""
    x = xp.full((1, 2, 6, 6), 3.0)
    rois = xp.asarray([[0, 1.0, 1.5, 4.0, 4.5], [0, 30.0, 30.0, 40.0, 40.0]])
    out, _ = roi_align2d_forward(x, rois, 2, sampling_ratio=2, aligned=True)
    np.testing.assert_allclose(to_numpy(out)[0], 3.0)
    np.testing.assert_array_equal(to_numpy(out)[1], 0.0)


def test_roi_align_not_aligned_forces_one_cell(xp):
    """aligned=False: a zero-size box becomes 1x1 and is sampled; aligned=True: its grid is empty."""
    x = xp.asarray(np.arange(16.0).reshape(1, 1, 4, 4))
    rois = xp.asarray([[0, 1.0, 1.0, 1.0, 1.0]])
    out, _ = roi_align2d_forward(x, rois, 1, aligned=False)
    np.testing.assert_allclose(to_numpy(out), [[[[bilinear(np.arange(16.0).reshape(4, 4), 1.5, 1.5)]]]])
    out, _ = roi_align2d_forward(x, rois, 1, aligned=True)
    np.testing.assert_array_equal(to_numpy(out), 0.0)


@pytest.mark.parametrize("size,scale,ratio,aligned", ALIGN_CASES[:4])
def test_roi_align_gradcheck(rng, size, scale, ratio, aligned):
    x = rng.standard_normal((2, 2, 7, 6))
    rois = np.concatenate([EDGE_ROIS[:3], random_rois(rng, 4, 2, 7, 6, scale)])
    report = gradcheck(roi_align2d_forward, roi_align2d_backward, {"x": x, "rois": rois},
                       kwargs={"output_size": size, "spatial_scale": scale, "sampling_ratio": ratio,
                               "aligned": aligned}, wrt=("x",))
    assert report.passed, report


def test_roi_align_adjoint(xp, rng):
    """Linear in x: <align(x), y> = <x, align^T(y)> with the backward as the transpose."""
    x = rng.standard_normal((2, 3, 9, 8))
    rois = random_rois(rng, 6, 2, 9, 8)
    out, cache = roi_align2d_forward(xp.asarray(x), xp.asarray(rois), (3, 2))
    y = rng.standard_normal(out.shape)
    dx = roi_align2d_backward(xp.asarray(y), cache)
    assert abs(float((to_numpy(out) * y).sum()) - float((x * to_numpy(dx)).sum())) < 1e-10


# ----------------------------------------------------------------------------------------------
# both: empty K, several images, bad input
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["pool", "align"])
def test_no_boxes(xp, rng, op):
    forward, backward = ((roi_pool2d_forward, roi_pool2d_backward) if op == "pool"
                         else (roi_align2d_forward, roi_align2d_backward))
    x = xp.asarray(rng.standard_normal((2, 3, 5, 5)))
    out, cache = forward(x, xp.zeros((0, 5)), (2, 2))
    assert out.shape == (0, 3, 2, 2)
    dx = backward(xp.zeros((0, 3, 2, 2)), cache)
    assert dx.shape == x.shape and not to_numpy(dx).any()


@pytest.mark.parametrize("op", ["pool", "align"])
def test_boxes_read_their_own_image(xp, rng, op):
    forward = roi_pool2d_forward if op == "pool" else roi_align2d_forward
    x = rng.standard_normal((3, 2, 6, 6))
    box = [1.0, 1.0, 4.0, 5.0]
    out, _ = forward(xp.asarray(x), xp.asarray([[2] + box, [0] + box]), 2)
    alone, _ = forward(xp.asarray(x[2:]), xp.asarray([[0] + box]), 2)
    np.testing.assert_array_equal(to_numpy(out)[0], to_numpy(alone)[0])
    assert not np.allclose(to_numpy(out)[0], to_numpy(out)[1])


@pytest.mark.parametrize("forward", [roi_pool2d_forward, roi_align2d_forward])
def test_bad_input(forward):
    x = np.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match="rois must have shape"):
        forward(x, np.zeros((3, 4)), 2)
    with pytest.raises(ValueError, match=r"rois\[:, 0\]"):
        forward(x, np.array([[2, 0, 0, 1, 1.0]]), 2)
    with pytest.raises(ValueError, match=r"rois\[:, 0\]"):
        forward(x, np.array([[0.5, 0, 0, 1, 1.0]]), 2)
    with pytest.raises(ValueError, match="spatial_scale"):
        forward(x, np.array([[0, 0, 0, 1, 1.0]]), 2, spatial_scale=0)
    with pytest.raises(ValueError, match="output_size"):
        forward(x, np.array([[0, 0, 0, 1, 1.0]]), 0)
