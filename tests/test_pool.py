"""Tests for functional/pool.py: max_pool2d (with indices) and max_unpool2d.

Each op is checked against the lecture's hand example, a float64 gradient
check (expect ~1e-10, bar 1e-7), the PyTorch oracle (values, indices and
gradients) and, for the linear max_unpool2d, the adjoint test.
"""

import numpy as np
import pytest
from helpers import assert_close, dot, to_torch, torch_or_skip

from minimal_seg.backend import to_numpy
from minimal_seg.functional.pool import (
    max_pool2d_backward,
    max_pool2d_forward,
    max_unpool2d_backward,
    max_unpool2d_forward,
)
from minimal_seg.functional.shapes import max_unpool2d_output_shape
from minimal_seg.gradcheck import gradcheck

LECTURE_X = [[4, 3, 1, 5],
             [1, 3, 4, 8],
             [4, 5, 4, 3],
             [6, 5, 9, 4]]


def tie_free(rng, shape, dtype=np.float64):
    """Distinct values one apart (a shuffled arange): a small perturbation never changes the argmax."""
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2).reshape(shape).astype(dtype)


def unique_indices(rng, shape, plane_size):
    """Per (n, c) plane, H*W distinct flat indices into an output plane of ``plane_size`` pixels."""
    n, c, h, w = shape
    rows = [rng.choice(plane_size, size=h * w, replace=False) for _ in range(n * c)]
    return np.stack(rows).reshape(shape).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# 1. the lecture's hand examples
# ----------------------------------------------------------------------------------------------

def test_max_pool_lecture_example(xp):
    x = xp.asarray(np.array(LECTURE_X, dtype=np.float64)[None, None])
    out, cache = max_pool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[4, 8], [6, 9]])
    # 4 at (0, 0), 8 at (1, 3), 6 at (3, 0), 9 at (3, 2); flat h*W + w with W = 4
    np.testing.assert_array_equal(to_numpy(cache.indices)[0, 0], [[0, 7], [12, 14]])
    assert cache.indices.dtype == np.int64


def test_max_unpool_lecture_example(xp):
    x = xp.asarray(np.array(LECTURE_X, dtype=np.float64)[None, None])
    out, cache = max_pool2d_forward(x, 2)
    up, _ = max_unpool2d_forward(out, cache.indices, 2)
    np.testing.assert_array_equal(to_numpy(up)[0, 0], [[4, 0, 0, 0],
                                                       [0, 0, 0, 8],
                                                       [0, 0, 0, 0],
                                                       [6, 0, 9, 0]])


def test_max_pool_backward_is_unpool_of_dout_without_overlap(xp, rng):
    """Non-overlapping windows: the max-pool gradient *is* max unpooling of dout."""
    x = xp.asarray(tie_free(rng, (2, 3, 6, 8)))
    out, cache = max_pool2d_forward(x, 2)
    dout = xp.asarray(rng.standard_normal(out.shape))
    up, _ = max_unpool2d_forward(dout, cache.indices, 2, output_size=x.shape)
    np.testing.assert_array_equal(to_numpy(max_pool2d_backward(dout, cache)), to_numpy(up))


def test_max_pool_ties_go_to_first_index(xp):
    """An all-equal window picks its first pixel in row-major order, as PyTorch."""
    x = xp.asarray(np.ones((1, 1, 4, 4)))
    out, cache = max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(to_numpy(cache.indices)[0, 0], [[0, 2], [8, 10]])
    # the gradient goes to that one pixel only
    dx = to_numpy(max_pool2d_backward(xp.ones_like(out), cache))[0, 0]
    np.testing.assert_array_equal(dx, [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("kernel", [3, 16, 17])  # KH*KW = 9 and 256 (the uint8 and int32 scores) and 289
def test_window_argmax_is_the_first_max_of_each_window(xp, rng, kernel):
    """_first_max against argmax over each window, row-major (ties: first; NaN: first), for small and large windows."""
    x = rng.integers(0, 3, (2, 2, 2 * kernel, 2 * kernel)).astype(np.float64)  # many ties
    x[0, 0, 1, 1] = np.nan
    _, cache = max_pool2d_forward(xp.asarray(x), kernel)
    windows = x.reshape(2, 2, 2, kernel, 2, kernel).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 2, 2, -1)
    assert cache.window_argmax.dtype == (np.uint8 if kernel * kernel < 256 else np.int32)
    np.testing.assert_array_equal(to_numpy(cache.window_argmax), windows.argmax(axis=-1))


def test_max_pool_padding_is_minus_infinity(xp):
    """All-negative input: a zero-padded pool would return 0 at the border; -inf padding never wins."""
    x = xp.asarray(-1.0 - np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3))
    out, cache = max_pool2d_forward(x, 2, 2, 1)
    np.testing.assert_array_equal(to_numpy(out)[0, 0], [[-1, -2], [-4, -5]])
    np.testing.assert_array_equal(to_numpy(cache.indices)[0, 0], [[0, 1], [3, 4]])


# ----------------------------------------------------------------------------------------------
# 2. float64 gradient checks
# ----------------------------------------------------------------------------------------------

POOL_GRID = [
    # (H, W), kernel, stride, padding
    ((4, 4), 2, None, 0),
    ((5, 6), 2, 1, 0),
    ((5, 6), 2, 2, 1),
    ((7, 6), 3, 1, 1),
    ((7, 7), 3, 2, 0),
    ((7, 7), 3, 2, 1),
    ((8, 7), 3, 3, 1),
    ((6, 7), (2, 3), (1, 2), (1, 1)),
    ((7, 5), (3, 2), (2, 3), (1, 0)),
    ((5, 5), (3, 3), (3, 2), 0),
]


@pytest.mark.parametrize("hw, kernel, stride, padding", POOL_GRID)
def test_max_pool_gradcheck(xp, rng, hw, kernel, stride, padding):
    x = xp.asarray(tie_free(rng, (2, 3, *hw)))
    report = gradcheck(max_pool2d_forward, max_pool2d_backward, {"x": x},
                       kwargs={"kernel_size": kernel, "stride": stride, "padding": padding})
    assert report.passed, str(report)


# max unpooling needs at least as many output pixels as inputs to give each its own index
UNPOOL_GRID = [case for case in POOL_GRID
               if np.prod(max_unpool2d_output_shape(*case)) >= np.prod(case[0])]


@pytest.mark.parametrize("hw, kernel, stride, padding", UNPOOL_GRID)
def test_max_unpool_gradcheck(xp, rng, hw, kernel, stride, padding):
    oh, ow = max_unpool2d_output_shape(hw, kernel, stride, padding)
    x = xp.asarray(rng.standard_normal((2, 3, *hw)))
    indices = xp.asarray(unique_indices(rng, x.shape, oh * ow))
    report = gradcheck(max_unpool2d_forward, max_unpool2d_backward, {"x": x, "indices": indices},
                       kwargs={"kernel_size": kernel, "stride": stride, "padding": padding})
    assert report.passed, str(report)


# ----------------------------------------------------------------------------------------------
# 3. the PyTorch oracle
# ----------------------------------------------------------------------------------------------

ORACLE_CASES = [
    # (N, C, H, W), kernel, stride, padding
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 7), 3, 2, 1),
    ((1, 4, 10, 11), 3, 1, 1),
    ((3, 2, 7, 9), (2, 3), (2, 1), (1, 1)),
    ((2, 2, 11, 6), (3, 2), 3, (1, 0)),
    ((1, 1, 5, 5), 5, 1, 2),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, kernel, stride, padding", ORACLE_CASES)
def test_max_pool_matches_torch(xp, rng, dtype, shape, kernel, stride, padding):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(dtype)
    out, cache = max_pool2d_forward(xp.asarray(x), kernel, stride, padding)
    tx = to_torch(x, requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, return_indices=True)
    assert_close(out, tout, dtype)
    np.testing.assert_array_equal(to_numpy(cache.indices), tidx.numpy())
    dout = rng.standard_normal(out.shape).astype(dtype)
    tout.backward(to_torch(dout))
    assert_close(max_pool2d_backward(xp.asarray(dout), cache), tx.grad, dtype)


@pytest.mark.parametrize("shape, kernel, stride, padding", ORACLE_CASES)
def test_max_pool_ties_match_torch(xp, rng, shape, kernel, stride, padding):
    """Small integers: many ties in every window; indices and gradients must still agree."""
    torch = torch_or_skip()
    x = rng.integers(0, 3, size=shape).astype(np.float64)
    out, cache = max_pool2d_forward(xp.asarray(x), kernel, stride, padding)
    tx = to_torch(x, requires_grad=True)
    tout, tidx = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, return_indices=True)
    np.testing.assert_array_equal(to_numpy(cache.indices), tidx.numpy())
    dout = rng.standard_normal(out.shape)
    tout.backward(to_torch(dout))
    assert_close(max_pool2d_backward(xp.asarray(dout), cache), tx.grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, kernel, stride, padding, output_size", [
    ((2, 3, 4, 4), 2, None, 0, None),
    ((2, 3, 4, 5), 3, 2, 1, None),
    ((1, 2, 5, 4), 3, 2, 1, (10, 8)),
    ((2, 1, 3, 4), (2, 3), (2, 3), 0, (1, 1, 7, 13)),
])
def test_max_unpool_matches_torch(xp, rng, dtype, shape, kernel, stride, padding, output_size):
    torch = torch_or_skip()
    x = rng.standard_normal(shape).astype(dtype)
    oh, ow = max_unpool2d_output_shape(shape[2:], kernel, stride, padding, output_size)
    indices = unique_indices(rng, shape, oh * ow)
    out, cache = max_unpool2d_forward(xp.asarray(x), xp.asarray(indices), kernel, stride, padding, output_size)
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.functional.max_unpool2d(tx, torch.from_numpy(indices), kernel, stride, padding, output_size)
    assert_close(out, tout, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    tout.backward(to_torch(dout))
    assert_close(max_unpool2d_backward(xp.asarray(dout), cache), tx.grad, dtype)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (3, 1, 1)])
def test_pool_then_unpool_matches_torch(xp, rng, kernel, stride, padding):
    """SegNet's round trip with torch's own indices; output_size restores the odd input size.
    With overlapping windows one pixel can win twice: both writes carry the same value."""
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 7, 9))
    pooled, cache = max_pool2d_forward(xp.asarray(x), kernel, stride, padding)
    up, ucache = max_unpool2d_forward(pooled, cache.indices, kernel, stride, padding, output_size=x.shape)
    tp, tidx = torch.nn.functional.max_pool2d(to_torch(x), kernel, stride, padding, return_indices=True)
    tp.requires_grad_(True)
    tup = torch.nn.functional.max_unpool2d(tp, tidx, kernel, stride, padding, output_size=x.shape)
    assert_close(up, tup)
    dout = rng.standard_normal(up.shape)
    tup.backward(to_torch(dout))
    assert_close(max_unpool2d_backward(xp.asarray(dout), ucache), tp.grad)


# ----------------------------------------------------------------------------------------------
# 4. adjoint test for the linear op
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((2, 3, 4, 5), 2, None, 0),
    ((1, 2, 5, 5), 3, 2, 1),
    ((2, 2, 3, 4), (2, 3), (3, 2), (1, 1)),
])
def test_max_unpool_adjoint(xp, rng, shape, kernel, stride, padding):
    """<A x, y> = <x, A^T y> with A = max_unpool2d for fixed (distinct) indices."""
    oh, ow = max_unpool2d_output_shape(shape[2:], kernel, stride, padding)
    indices = xp.asarray(unique_indices(rng, shape, oh * ow))
    x = xp.asarray(rng.standard_normal(shape))
    y = xp.asarray(rng.standard_normal((*shape[:2], oh, ow)))
    ax, cache = max_unpool2d_forward(x, indices, kernel, stride, padding)
    lhs, rhs = dot(ax, y), dot(x, max_unpool2d_backward(y, cache))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


# ----------------------------------------------------------------------------------------------
# 5. float32 in -> float32 out
# ----------------------------------------------------------------------------------------------

def test_float32_stays_float32(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 6, 7)).astype(np.float32))
    out, cache = max_pool2d_forward(x, 3, 2, 1)
    assert out.dtype == np.float32 and cache.indices.dtype == np.int64
    dx = max_pool2d_backward(xp.asarray(rng.standard_normal(out.shape).astype(np.float32)), cache)
    assert dx.dtype == np.float32 and dx.shape == x.shape

    up, ucache = max_unpool2d_forward(out, cache.indices, 3, 2, 1, output_size=x.shape)
    assert up.dtype == np.float32 and up.shape == x.shape
    dpooled = max_unpool2d_backward(xp.asarray(rng.standard_normal(up.shape).astype(np.float32)), ucache)
    assert dpooled.dtype == np.float32 and dpooled.shape == out.shape


def test_backward_does_not_modify_dout(xp, rng):
    x = xp.asarray(tie_free(rng, (1, 2, 5, 5)))
    out, cache = max_pool2d_forward(x, 3, 1, 1)
    dout = xp.asarray(rng.standard_normal(out.shape))
    before = to_numpy(dout).copy()
    max_pool2d_backward(dout, cache)
    np.testing.assert_array_equal(to_numpy(dout), before)


# ----------------------------------------------------------------------------------------------
# 6. bad input
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, kwargs, error, match", [
    ((3, 4, 4), {"kernel_size": 2}, ValueError, "x must be 4-D"),
    ((1, 1, 4, 4), {"kernel_size": 0}, ValueError, "kernel_size"),
    ((1, 1, 4, 4), {"kernel_size": (2, -1)}, ValueError, "kernel_size"),
    ((1, 1, 4, 4), {"kernel_size": 2.5}, TypeError, "kernel_size"),
    ((1, 1, 4, 4), {"kernel_size": 2, "stride": 0}, ValueError, "stride"),
    ((1, 1, 4, 4), {"kernel_size": 2, "padding": -1}, ValueError, "padding"),
    ((1, 1, 4, 4), {"kernel_size": 3, "padding": 2}, ValueError, "padding"),
    ((1, 1, 4, 4), {"kernel_size": 7, "padding": 1}, ValueError, "kernel_size"),
])
def test_max_pool_bad_arguments(xp, shape, kwargs, error, match):
    with pytest.raises(error, match=match):
        max_pool2d_forward(xp.zeros(shape), **kwargs)


def test_max_pool_rejects_integer_input(xp):
    with pytest.raises(TypeError, match="x must be a floating-point"):
        max_pool2d_forward(xp.zeros((1, 1, 4, 4), dtype=np.int64), 2)


def test_max_pool_backward_rejects_wrong_dout_shape(xp):
    out, cache = max_pool2d_forward(xp.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ValueError, match="dout"):
        max_pool2d_backward(xp.zeros((1, 1, 3, 2)), cache)


@pytest.mark.parametrize("make_indices, kwargs, error, match", [
    (lambda xp: xp.zeros((1, 1, 2, 3), dtype=np.int64), {}, ValueError, "indices must have the shape"),
    (lambda xp: xp.zeros((1, 1, 2, 2)), {}, TypeError, "indices must be an integer"),
    (lambda xp: xp.full((1, 1, 2, 2), 16, dtype=np.int64), {}, ValueError, r"indices must lie in \[0, 16\)"),
    (lambda xp: xp.full((1, 1, 2, 2), -1, dtype=np.int64), {}, ValueError, "indices must lie"),
    (lambda xp: xp.zeros((1, 1, 2, 2), dtype=np.int64), {"kernel_size": 0}, ValueError, "kernel_size"),
    (lambda xp: xp.zeros((1, 1, 2, 2), dtype=np.int64), {"stride": -2}, ValueError, "stride"),
    (lambda xp: xp.zeros((1, 1, 2, 2), dtype=np.int64), {"output_size": (6, 4)}, ValueError, "output_size"),
    (lambda xp: xp.zeros((1, 1, 2, 2), dtype=np.int64), {"output_size": (4, 4, 4)}, TypeError, "output_size"),
])
def test_max_unpool_bad_arguments(xp, make_indices, kwargs, error, match):
    kwargs = {"kernel_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        max_unpool2d_forward(xp.zeros((1, 1, 2, 2)), make_indices(xp), **kwargs)


def test_max_unpool_rejects_3d_input(xp):
    with pytest.raises(ValueError, match="x must be 4-D"):
        max_unpool2d_forward(xp.zeros((1, 2, 2)), xp.zeros((1, 2, 2), dtype=np.int64), 2)
