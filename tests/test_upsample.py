"""Tests for functional/upsample.py: nearest, bed-of-nails and bilinear upsampling.

Each op is checked against a hand example, a float64 gradient check (expect
~1e-10, bar 1e-7), the PyTorch oracle (forward and backward) and the adjoint
test <A x, y> = <x, A^T y> (all three ops are linear).
"""

import numpy as np
import pytest
from helpers import assert_close, dot, to_torch, torch_or_skip

from minimal_seg.backend import to_numpy
from minimal_seg.functional import conv_transpose2d_forward
from minimal_seg.functional.upsample import (
    bilinear_kernel,
    linear_interpolation_matrix,
    unpool_bed_of_nails_backward,
    unpool_bed_of_nails_forward,
    unpool_nearest_backward,
    unpool_nearest_forward,
    upsample_bilinear_backward,
    upsample_bilinear_forward,
)
from minimal_seg.gradcheck import gradcheck

X_2x2 = np.array([[1, 2], [3, 4]], dtype=np.float64)

OPS = {
    "nearest": (unpool_nearest_forward, unpool_nearest_backward),
    "bed_of_nails": (unpool_bed_of_nails_forward, unpool_bed_of_nails_backward),
    "bilinear": (upsample_bilinear_forward, upsample_bilinear_backward),
}


# ----------------------------------------------------------------------------------------------
# 1. hand examples (the lecture's unpooling pictures)
# ----------------------------------------------------------------------------------------------

def test_unpool_nearest_picture(xp):
    out, _ = unpool_nearest_forward(xp.asarray(X_2x2[None, None]), 2)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[1, 1, 2, 2],
                                                        [1, 1, 2, 2],
                                                        [3, 3, 4, 4],
                                                        [3, 3, 4, 4]])


def test_unpool_bed_of_nails_picture(xp):
    out, _ = unpool_bed_of_nails_forward(xp.asarray(X_2x2[None, None]), 2)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[1, 0, 2, 0],
                                                        [0, 0, 0, 0],
                                                        [3, 0, 4, 0],
                                                        [0, 0, 0, 0]])


def test_unpool_non_square_scale(xp):
    x = xp.asarray(X_2x2[None, None])
    near, _ = unpool_nearest_forward(x, (1, 3))
    nails, _ = unpool_bed_of_nails_forward(x, (1, 3))
    np.testing.assert_array_equal(to_numpy(near)[0, 0], [[1, 1, 1, 2, 2, 2], [3, 3, 3, 4, 4, 4]])
    np.testing.assert_array_equal(to_numpy(nails)[0, 0], [[1, 0, 0, 2, 0, 0], [3, 0, 0, 4, 0, 0]])


def test_bilinear_2x_picture(xp):
    """align_corners=False, scale 2: output pixel 2m reads 0.75 x[m] + 0.25 x[m-1] (clamped at the border)."""
    out, _ = upsample_bilinear_forward(xp.asarray(np.array([[[[0.0, 4.0]]]])), size=(1, 4))
    np.testing.assert_allclose(to_numpy(out)[0, 0], [[0, 1, 3, 4]])


def test_interpolation_matrix_rows_sum_to_one(xp):
    for n_in, n_out in [(3, 7), (7, 3), (5, 5), (1, 4)]:
        a = to_numpy(linear_interpolation_matrix(n_in, n_out, xp=xp))
        assert a.shape == (n_out, n_in)
        np.testing.assert_allclose(a.sum(axis=1), 1.0)
        assert (a >= 0).all() and ((a > 0).sum(axis=1) <= 2).all()


def test_same_size_is_identity(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 5, 6)))
    out, _ = upsample_bilinear_forward(x, size=(5, 6))
    np.testing.assert_array_equal(to_numpy(out), to_numpy(x))


@pytest.mark.parametrize("k, expected_1d", [
    (1, [1.0]),
    (2, [0.5, 0.5]),
    (3, [0.5, 1.0, 0.5]),
    (4, [0.25, 0.75, 0.75, 0.25]),
    (5, [1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3]),
])
def test_bilinear_kernel_fcn_formula(xp, k, expected_1d):
    w = bilinear_kernel(k)
    assert w.shape == (k, k) and w.dtype == np.float64
    e = np.array(expected_1d)
    np.testing.assert_allclose(to_numpy(w), np.outer(e, e), rtol=1e-15)


@pytest.mark.parametrize("s", [2, 4])
def test_bilinear_kernel_transposed_conv_is_bilinear_upsampling(xp, rng, s):
    """FCN's init: conv_transpose(kernel 2s, stride s, padding s//2, weight bilinear_kernel(2s))
    equals bilinear upsampling by s, away from a border of s pixels."""
    torch = torch_or_skip()
    x = rng.standard_normal((1, 1, 6, 7))
    w = torch.from_numpy(to_numpy(bilinear_kernel(2 * s)))[None, None]
    up = torch.nn.functional.conv_transpose2d(to_torch(x), w, stride=s, padding=s // 2).numpy()
    ours, _ = upsample_bilinear_forward(xp.asarray(x), scale=s)
    assert up.shape == ours.shape
    np.testing.assert_allclose(to_numpy(ours)[..., s:-s, s:-s], up[..., s:-s, s:-s], atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4, 5])
def test_bilinear_kernel_upsamples_by_any_integer_factor(xp, rng, s):
    """Kernel 2s - s % 2, stride s, padding s // 2 (bilinear_kernel's docstring): the output is s*H x s*W
    and equals bilinear interpolation (align_corners=False, ours and torch's) away from the border."""
    torch = torch_or_skip()
    x = rng.standard_normal((1, 2, 6, 7))
    k, p = 2 * s - s % 2, s // 2
    w = np.zeros((2, 2, k, k))
    w[0, 0] = w[1, 1] = to_numpy(bilinear_kernel(k))
    up, _ = conv_transpose2d_forward(xp.asarray(x), xp.asarray(w), stride=s, padding=p)
    assert up.shape == (1, 2, 6 * s, 7 * s)
    ours, _ = upsample_bilinear_forward(xp.asarray(x), scale=s)
    theirs = torch.nn.functional.interpolate(to_torch(x), scale_factor=s, mode="bilinear", align_corners=False)
    inner = (..., slice(p, -p or None), slice(p, -p or None))
    np.testing.assert_allclose(to_numpy(up)[inner], to_numpy(ours)[inner], atol=1e-12)
    np.testing.assert_allclose(to_numpy(up)[inner], theirs.numpy()[inner], atol=1e-12)
    border = np.abs(to_numpy(up) - to_numpy(ours)).max(axis=(0, 1))
    assert border[p:-p, p:-p].max() < 1e-12 and border.max() > 1e-3  # only the border differs (zero padding)


# ----------------------------------------------------------------------------------------------
# 2. float64 gradient checks
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["nearest", "bed_of_nails"])
@pytest.mark.parametrize("hw, scale", [((3, 3), 2), ((2, 3), 3), ((3, 2), (2, 3)), ((2, 2), (1, 2))])
def test_unpool_gradcheck(xp, rng, op, hw, scale):
    forward, backward = OPS[op]
    x = xp.asarray(rng.standard_normal((2, 3, *hw)))
    report = gradcheck(forward, backward, {"x": x}, kwargs={"scale": scale})
    assert report.passed, str(report)


BILINEAR_GRID = [
    # (H, W), size, scale
    ((3, 4), (6, 8), None),
    ((4, 3), (7, 5), None),
    ((6, 7), (3, 4), None),
    ((3, 3), None, 2),
    ((3, 4), None, 1.5),
    ((5, 4), None, (0.6, 2.5)),
    ((4, 5), None, 3),
]


@pytest.mark.parametrize("hw, size, scale", BILINEAR_GRID)
def test_bilinear_gradcheck(xp, rng, hw, size, scale):
    x = xp.asarray(rng.standard_normal((2, 3, *hw)))
    report = gradcheck(upsample_bilinear_forward, upsample_bilinear_backward, {"x": x},
                       kwargs={"size": size, "scale": scale})
    assert report.passed, str(report)


# ----------------------------------------------------------------------------------------------
# 3. the PyTorch oracle
# ----------------------------------------------------------------------------------------------

def _torch_check(xp, rng, dtype, ours_fwd, ours_bwd, torch_fn, shape, **kwargs):
    """Forward and backward (random upstream gradient) of our op against torch autograd."""
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = ours_fwd(xp.asarray(x), **kwargs)
    tx = to_torch(x, requires_grad=True)
    tout = torch_fn(tx)
    assert_close(out, tout, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    tout.backward(to_torch(dout))
    dx = ours_bwd(xp.asarray(dout), cache)
    assert_close(dx, tx.grad, dtype)
    assert dx.shape == x.shape


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, scale", [((2, 3, 4, 5), 2), ((1, 2, 3, 3), 3), ((2, 1, 5, 4), (2, 3))])
@pytest.mark.parametrize("by", ["size", "scale_factor"])
def test_unpool_nearest_matches_torch(xp, rng, dtype, shape, scale, by):
    torch = torch_or_skip()
    sh, sw = (scale, scale) if isinstance(scale, int) else scale
    how = {"size": (shape[2] * sh, shape[3] * sw)} if by == "size" else {"scale_factor": (float(sh), float(sw))}
    _torch_check(xp, rng, dtype, unpool_nearest_forward, unpool_nearest_backward,
                 lambda t: torch.nn.functional.interpolate(t, mode="nearest", **how), shape, scale=scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, scale", [((2, 3, 4, 5), 2), ((2, 1, 3, 4), (3, 2))])
def test_unpool_bed_of_nails_matches_torch_max_unpool(xp, rng, dtype, shape, scale):
    """Bed of nails = max_unpool2d with every index pointing at the top-left pixel of its block."""
    torch = torch_or_skip()
    n, c, h, w = shape
    sh, sw = (scale, scale) if isinstance(scale, int) else scale
    corner = (np.arange(h)[:, None] * sh) * (w * sw) + np.arange(w)[None, :] * sw
    indices = torch.from_numpy(np.broadcast_to(corner, shape).astype(np.int64).copy())
    _torch_check(xp, rng, dtype, unpool_bed_of_nails_forward, unpool_bed_of_nails_backward,
                 lambda t: torch.nn.functional.max_unpool2d(t, indices, (sh, sw)), shape, scale=scale)


BILINEAR_ORACLE = [
    # (N, C, H, W), size, scale
    ((2, 3, 4, 5), (8, 10), None),           # exactly x2 by size
    ((2, 3, 5, 4), (9, 13), None),           # uneven upsampling
    ((1, 2, 9, 8), (4, 5), None),            # downsampling by size
    ((2, 2, 4, 5), None, 2),                 # integer scale
    ((2, 2, 5, 7), None, 1.5),               # fractional scale: out = floor(7.5) = 7, r = 1/1.5 != 5/7
    ((1, 3, 6, 5), None, (2.3, 1.7)),        # non-square fractional scale
    ((2, 2, 9, 10), None, 0.45),             # downsampling by scale
    ((1, 1, 7, 7), None, (0.5, 3.0)),
    ((1, 1, 1, 3), (4, 5), None),            # a one-pixel axis
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, size, scale", BILINEAR_ORACLE)
def test_bilinear_matches_torch(xp, rng, dtype, shape, size, scale):
    torch = torch_or_skip()
    _torch_check(xp, rng, dtype, upsample_bilinear_forward, upsample_bilinear_backward,
                 lambda t: torch.nn.functional.interpolate(t, size=size, scale_factor=scale, mode="bilinear",
                                                           align_corners=False),
                 shape, size=size, scale=scale)


@pytest.mark.parametrize("hw, scale", [((5, 7), 1.5), ((6, 6), 2.3), ((10, 9), 0.7)])
def test_bilinear_scale_and_size_differ_as_in_torch(xp, rng, hw, scale):
    """scale=s is not size=floor(H*s): the source index uses 1/s, not H/OH (PyTorch's rule)."""
    torch = torch_or_skip()
    x = rng.standard_normal((1, 1, *hw))
    by_scale, _ = upsample_bilinear_forward(xp.asarray(x), scale=scale)
    by_size, _ = upsample_bilinear_forward(xp.asarray(x), size=tuple(by_scale.shape[2:]))
    assert not np.allclose(to_numpy(by_scale), to_numpy(by_size))
    interp = torch.nn.functional.interpolate
    assert_close(by_scale, interp(to_torch(x), scale_factor=scale, mode="bilinear", align_corners=False))
    assert_close(by_size, interp(to_torch(x), size=by_scale.shape[2:], mode="bilinear", align_corners=False))


# ----------------------------------------------------------------------------------------------
# 4. adjoint tests: backward is the transpose of forward
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, kwargs", [
    ("nearest", {"scale": 2}),
    ("nearest", {"scale": (3, 2)}),
    ("bed_of_nails", {"scale": 2}),
    ("bed_of_nails", {"scale": (1, 3)}),
    ("bilinear", {"size": (9, 11)}),
    ("bilinear", {"size": (3, 2)}),
    ("bilinear", {"scale": 1.7}),
    ("bilinear", {"scale": (0.6, 2.0)}),
])
def test_adjoint(xp, rng, op, kwargs):
    forward, backward = OPS[op]
    x = xp.asarray(rng.standard_normal((2, 3, 5, 4)))
    ax, cache = forward(x, **kwargs)
    y = xp.asarray(rng.standard_normal(ax.shape))
    lhs, rhs = dot(ax, y), dot(x, backward(y, cache))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


# ----------------------------------------------------------------------------------------------
# 5. float32 in -> float32 out
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, kwargs", [
    ("nearest", {"scale": 2}),
    ("bed_of_nails", {"scale": (2, 3)}),
    ("bilinear", {"size": (7, 9)}),
    ("bilinear", {"scale": 1.5}),
])
def test_float32_stays_float32(xp, rng, op, kwargs):
    forward, backward = OPS[op]
    x = xp.asarray(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    out, cache = forward(x, **kwargs)
    assert out.dtype == np.float32
    dx = backward(xp.asarray(rng.standard_normal(out.shape).astype(np.float32)), cache)
    assert dx.dtype == np.float32 and dx.shape == x.shape


def test_bilinear_kernel_dtype(xp):
    assert bilinear_kernel(4, dtype=np.float32).dtype == np.float32
    assert bilinear_kernel((2, 4)).shape == (2, 4)


# ----------------------------------------------------------------------------------------------
# 6. bad input
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["nearest", "bed_of_nails"])
@pytest.mark.parametrize("shape, scale, error, match", [
    ((1, 4, 4), 2, ValueError, "x must be 4-D"),
    ((1, 1, 4, 4), 0, ValueError, "scale"),
    ((1, 1, 4, 4), (2, -1), ValueError, "scale"),
    ((1, 1, 4, 4), 1.5, TypeError, "scale"),
])
def test_unpool_bad_arguments(xp, op, shape, scale, error, match):
    forward, _ = OPS[op]
    with pytest.raises(error, match=match):
        forward(xp.zeros(shape), scale)


@pytest.mark.parametrize("shape, kwargs, error, match", [
    ((2, 4, 4), {"size": 8}, ValueError, "x must be 4-D"),
    ((1, 1, 4, 4), {}, ValueError, "exactly one of size and scale"),
    ((1, 1, 4, 4), {"size": 8, "scale": 2}, ValueError, "exactly one of size and scale"),
    ((1, 1, 4, 4), {"size": 0}, ValueError, "size"),
    ((1, 1, 4, 4), {"size": (8, 8, 8)}, TypeError, "size"),
    ((1, 1, 4, 4), {"scale": 0}, ValueError, "scale"),
    ((1, 1, 4, 4), {"scale": -1.5}, ValueError, "scale"),
    ((1, 1, 4, 4), {"scale": "2"}, TypeError, "scale"),
    ((1, 1, 4, 4), {"scale": 0.1}, ValueError, "scale"),
])
def test_bilinear_bad_arguments(xp, shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        upsample_bilinear_forward(xp.zeros(shape), **kwargs)


def test_backward_rejects_wrong_dout_shape(xp):
    for op, kwargs in [("nearest", {"scale": 2}), ("bed_of_nails", {"scale": 2}), ("bilinear", {"size": 8})]:
        forward, backward = OPS[op]
        _, cache = forward(xp.zeros((1, 1, 4, 4)), **kwargs)
        with pytest.raises(ValueError, match="dout"):
            backward(xp.zeros((1, 1, 4, 4)), cache)


def test_bilinear_kernel_bad_size():
    with pytest.raises(ValueError, match="kernel_size"):
        bilinear_kernel(0)
