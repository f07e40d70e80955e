"""Winograd F(2x2, 3x3) (functional/_winograd.py): equal to the im2col convolution, forward and backward.

Three checks, as for every fast path: equality with the reference in float64
(1e-10 of the largest entry; in practice ~1e-15), a float32 bound against the
float64 result, and a float64 gradient check of its own backward pass.
"""
import numpy as np
import pytest

from helpers import rand
from minimal_seg import functional as F
from minimal_seg.backend import to_numpy
from minimal_seg.functional import _winograd as W
from minimal_seg.gradcheck import gradcheck

# (N, C, H, W, K, padding): odd and even sizes (partial last tiles), 1x1 outputs, asymmetric padding.
CASES = [
    (2, 3, 7, 8, 4, (1, 1)),
    (1, 2, 5, 5, 3, (0, 0)),
    (3, 4, 6, 9, 2, (2, 2)),
    (2, 5, 3, 3, 3, (1, 1)),
    (1, 1, 4, 4, 1, (1, 0)),
    (1, 2, 3, 4, 2, (0, 1)),
    (2, 3, 1, 1, 2, (1, 1)),
]
FLOAT32_BOUND = 1e-5  # of the largest output entry; direct im2col gets ~1e-7 here, Winograd a few times that


def _rel(ours, ref):
    ours, ref = to_numpy(ours).astype(np.float64), to_numpy(ref).astype(np.float64)
    return float(np.abs(ours - ref).max()) / max(1.0, float(np.abs(ref).max()))


def _both(xp, rng, case, dtype):
    n, c, h, w, k, padding = case
    x, wt, b = (xp.asarray(rand(rng, s, dtype)) for s in ((n, c, h, w), (k, c, 3, 3), (k,)))
    ref, ref_cache = F.conv2d_forward(x, wt, b, padding=padding)
    out, cache = W.winograd_conv2d_forward(x, wt, b, padding)
    dout = xp.asarray(rand(rng, ref.shape, dtype))
    return (ref, F.conv2d_backward(dout, ref_cache)), (out, W.winograd_conv2d_backward(dout, cache))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_equal_to_im2col_in_float64(xp, rng, case):
    (ref, (dx, dw, _)), (out, (dx_w, dw_w)) = _both(xp, rng, case, np.float64)
    assert out.shape == ref.shape and dx_w.shape == dx.shape and dw_w.shape == dw.shape
    for ours, theirs in ((out, ref), (dx_w, dx), (dw_w, dw)):
        assert _rel(ours, theirs) <= 1e-10


def test_float32_stays_float32_and_within_its_bound(xp, rng):
    case = (2, 64, 10, 12, 32, (1, 1))
    n, c, h, w, k, padding = case
    x64, w64 = rand(rng, (n, c, h, w)), rand(rng, (k, c, 3, 3))
    exact, cache64 = F.conv2d_forward(xp.asarray(x64), xp.asarray(w64), None, padding=padding)
    out, cache = W.winograd_conv2d_forward(xp.asarray(x64, dtype=np.float32), xp.asarray(w64, dtype=np.float32),
                                           None, padding)
    dout64 = rand(rng, exact.shape)
    dx, dw = W.winograd_conv2d_backward(xp.asarray(dout64, dtype=np.float32), cache)
    dx64, dw64, _ = F.conv2d_backward(xp.asarray(dout64), cache64)
    assert out.dtype == dx.dtype == dw.dtype == np.float32
    for ours, theirs in ((out, exact), (dx, dx64), (dw, dw64)):
        assert _rel(ours, theirs) <= FLOAT32_BOUND


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_gradcheck(xp, rng, case):
    n, c, h, w, k, padding = case
    inputs = {"x": xp.asarray(rand(rng, (n, c, h, w))), "w": xp.asarray(rand(rng, (k, c, 3, 3)))}

    def forward(x, w):
        return W.winograd_conv2d_forward(x, w, None, padding)

    report = gradcheck(forward, W.winograd_conv2d_backward, inputs, label="winograd")
    assert report.passed, str(report)


def test_a_wrong_transform_is_caught(xp, rng, monkeypatch):
    """The equality test can fail: a sign error in Bᵀ changes the output."""
    monkeypatch.setattr(W, "B_T", ((1, 0, -1, 0), (0, 1, 1, 0), (0, 1, 1, 0), (0, 1, 0, -1)))
    (ref, _), (out, _) = _both(xp, rng, CASES[0], np.float64)
    assert _rel(out, ref) > 1e-3


def test_applies_only_to_3x3_stride_1_undilated():
    assert W.applies((4, 3, 3, 3), (1, 1), (1, 1))
    assert not W.applies((4, 3, 5, 5), (1, 1), (1, 1))
    assert not W.applies((4, 3, 3, 3), (2, 2), (1, 1))
    assert not W.applies((4, 3, 3, 3), (1, 1), (2, 2))
