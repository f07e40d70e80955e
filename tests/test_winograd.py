"""conv2d_forward(..., method="winograd") (functional/_winograd.py): equal to the reference, forward and backward.

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


def _run(method, x, w, b, padding, dout):
    out, cache = F.conv2d_forward(x, w, b, padding=padding, method=method)
    return (out,) + F.conv2d_backward(dout, cache)


def _both(xp, rng, case, dtype):
    """(out, dx, dw, db) by the reference and by Winograd, for one random case."""
    n, c, h, w, k, padding = case
    x, wt, b = (xp.asarray(rand(rng, s, dtype)) for s in ((n, c, h, w), (k, c, 3, 3), (k,)))
    out_size = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2)
    dout = xp.asarray(rand(rng, (n, k) + out_size, dtype))
    return _run("reference", x, wt, b, padding, dout), _run("winograd", x, wt, b, padding, dout)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_equal_to_the_reference_in_float64(xp, rng, case):
    reference, winograd = _both(xp, rng, case, np.float64)
    for ours, theirs in zip(winograd, reference):
        assert ours.shape == theirs.shape
        assert _rel(ours, theirs) <= 1e-10


def test_float32_stays_float32_and_within_its_bound(xp, rng):
    case = (2, 64, 10, 12, 32, (1, 1))
    n, c, h, w, k, padding = case
    x, w, dout = rand(rng, (n, c, h, w)), rand(rng, (k, c, 3, 3)), rand(rng, (n, k, h, w))
    exact = _run("reference", xp.asarray(x), xp.asarray(w), None, padding, xp.asarray(dout))
    single = [xp.asarray(a, dtype=np.float32) for a in (x, w, dout)]
    winograd = _run("winograd", single[0], single[1], None, padding, single[2])
    for ours, theirs in zip(winograd[:3], exact[:3]):
        assert ours.dtype == np.float32
        assert _rel(ours, theirs) <= FLOAT32_BOUND


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_gradcheck(xp, rng, case):
    n, c, h, w, k, padding = case
    inputs = {"x": xp.asarray(rand(rng, (n, c, h, w))), "w": xp.asarray(rand(rng, (k, c, 3, 3)))}

    report = gradcheck(F.conv2d_forward, F.conv2d_backward, inputs, {"padding": padding, "method": "winograd"},
                       label="winograd")
    assert report.passed, str(report)


def test_a_wrong_transform_is_caught(xp, rng, monkeypatch):
    """The equality test can fail: a sign error in Bᵀ changes the output."""
    monkeypatch.setattr(W, "B_T", ((1, 0, -1, 0), (0, 1, 1, 0), (0, 1, 1, 0), (0, 1, 0, -1)))
    reference, winograd = _both(xp, rng, CASES[0], np.float64)
    assert _rel(winograd[0], reference[0]) > 1e-3


def test_empty_batch(xp):
    x, w = xp.zeros((0, 3, 6, 6)), xp.ones((4, 3, 3, 3))
    out, cache = F.conv2d_forward(x, w, padding=1, method="winograd")
    dx, dw, _ = F.conv2d_backward(xp.zeros(out.shape), cache)
    assert out.shape == (0, 4, 6, 6) and dx.shape == x.shape and dw.shape == w.shape and not dw.any()


@pytest.mark.parametrize("kernel, options", [(5, {}), (3, {"stride": 2}), (3, {"dilation": 2})])
def test_other_convolutions_get_one_clear_error(rng, kernel, options):
    x, w = rand(rng, (1, 2, 9, 9)), rand(rng, (3, 2, kernel, kernel))
    with pytest.raises(ValueError, match="method='winograd' computes 3x3 convolutions with stride 1"):
        F.conv2d_forward(x, w, method="winograd", **options)
