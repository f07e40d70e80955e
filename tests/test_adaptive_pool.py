"""Tests for functional/adaptive_pool.py (adaptive average pooling) and its layer nn.AdaptiveAvgPool2d.

Checked against a hand example with overlapping bins, a float64 gradient
check (expect ~1e-10, bar 1e-7), the PyTorch oracle (forward and backward,
float64 to 1e-10 and float32 to 1e-4, including bin counts that do not
divide the input or exceed it) and the adjoint test <A x, y> = <x, A^T y>.
"""
import math

import numpy as np
import pytest
from helpers import assert_close, dot, to_torch, torch_or_skip

from minimal_seg import nn
from minimal_seg.backend import to_numpy
from minimal_seg.functional.adaptive_pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_pool_matrix,
)
from minimal_seg.gradcheck import gradcheck, gradcheck_layer

# (H, W) -> output_size: exact tilings, overlapping bins (7 -> 3), more bins than pixels (5 -> 6), non-square
CASES = [
    ((6, 6), 3),
    ((7, 7), 3),
    ((5, 5), 6),
    ((7, 5), (3, 6)),
    ((4, 9), (4, 2)),
    ((6, 8), 1),
    ((3, 3), 7),
    ((1, 4), (2, 3)),
]


# ----------------------------------------------------------------------------------------------
# 1. hand examples and the bin rule
# ----------------------------------------------------------------------------------------------

def test_hand_example_with_overlapping_bins(xp):
    """W = 5 into 3 bins: columns 0-1, 1-3, 3-4 (start = floor(i*5/3), end = ceil((i+1)*5/3))."""
    x = xp.asarray(np.arange(5, dtype=np.float64)[None, None, None])
    out, _ = adaptive_avg_pool2d_forward(x, (1, 3))
    np.testing.assert_allclose(to_numpy(out)[0, 0, 0], [0.5, 2.0, 3.5])


@pytest.mark.parametrize("n_in, n_out", [(5, 3), (7, 3), (5, 6), (6, 3), (1, 4), (9, 1), (13, 6)])
def test_matrix_follows_the_bin_rule(xp, n_in, n_out):
    p = to_numpy(adaptive_pool_matrix(n_in, n_out, xp=xp))
    assert p.shape == (n_out, n_in)
    for i in range(n_out):
        start, end = math.floor(i * n_in / n_out), math.ceil((i + 1) * n_in / n_out)
        expected = np.zeros(n_in)
        expected[start:end] = 1.0 / (end - start)
        np.testing.assert_allclose(p[i], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_one_bin_is_the_global_mean_and_same_size_is_identity(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 5, 7)))
    out, _ = adaptive_avg_pool2d_forward(x, 1)
    np.testing.assert_allclose(to_numpy(out), to_numpy(x).mean(axis=(2, 3), keepdims=True), atol=1e-15)
    same, _ = adaptive_avg_pool2d_forward(x, (5, 7))
    np.testing.assert_array_equal(to_numpy(same), to_numpy(x))


# ----------------------------------------------------------------------------------------------
# 2. float64 gradient checks (functional pair and layer)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, output_size", CASES)
def test_gradcheck(xp, rng, hw, output_size):
    x = xp.asarray(rng.standard_normal((2, 2, *hw)))
    report = gradcheck(adaptive_avg_pool2d_forward, adaptive_avg_pool2d_backward, {"x": x},
                       kwargs={"output_size": output_size})
    assert report.passed, str(report)


def test_layer_gradcheck(xp, rng):
    layer = nn.AdaptiveAvgPool2d((3, 2))
    report = gradcheck_layer(layer, xp.asarray(rng.standard_normal((2, 3, 7, 5))))
    assert report.passed, str(report)
    assert repr(layer) == "AdaptiveAvgPool2d(output_size=(3, 2))"


# ----------------------------------------------------------------------------------------------
# 3. the PyTorch oracle
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hw, output_size", CASES + [((11, 10), (6, 4)), ((8, 8), 6)])
def test_matches_torch(xp, rng, dtype, hw, output_size):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, *hw)).astype(dtype)
    out, cache = adaptive_avg_pool2d_forward(xp.asarray(x), output_size)
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.functional.adaptive_avg_pool2d(tx, output_size)
    assert_close(out, tout, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    tout.backward(to_torch(dout))
    dx = adaptive_avg_pool2d_backward(xp.asarray(dout), cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert_close(dx, tx.grad, dtype)


# ----------------------------------------------------------------------------------------------
# 4. the adjoint test (the op is linear) and dtypes
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, output_size", CASES[:4])
def test_adjoint(xp, rng, hw, output_size):
    x = xp.asarray(rng.standard_normal((2, 2, *hw)))
    ax, cache = adaptive_avg_pool2d_forward(x, output_size)
    y = xp.asarray(rng.standard_normal(ax.shape))
    lhs, rhs = dot(ax, y), dot(x, adaptive_avg_pool2d_backward(y, cache))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_float32_stays_float32_and_dout_is_untouched(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 3, 7, 5)).astype(np.float32))
    out, cache = adaptive_avg_pool2d_forward(x, (3, 6))
    assert out.dtype == np.float32 and out.shape == (2, 3, 3, 6)
    dout = xp.asarray(rng.standard_normal(out.shape).astype(np.float32))
    before = to_numpy(dout).copy()
    dx = adaptive_avg_pool2d_backward(dout, cache)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    np.testing.assert_array_equal(to_numpy(dout), before)


# ----------------------------------------------------------------------------------------------
# 5. bad input
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, output_size, error, match", [
    ((3, 4, 4), 2, ValueError, "x must be 4-D"),
    ((1, 1, 4, 4), 0, ValueError, "output_size must be >= 1"),
    ((1, 1, 4, 4), (2, -1), ValueError, "output_size"),
    ((1, 1, 4, 4), 2.5, TypeError, "output_size"),
    ((1, 1, 4, 4), (2, 2, 2), TypeError, "output_size"),
    ((1, 1, 4, 4), None, TypeError, "output_size"),
])
def test_bad_arguments(xp, shape, output_size, error, match):
    with pytest.raises(error, match=match):
        adaptive_avg_pool2d_forward(xp.zeros(shape), output_size)


def test_rejects_integer_input(xp):
    with pytest.raises(TypeError, match="x must be a floating-point"):
        adaptive_avg_pool2d_forward(xp.zeros((1, 1, 4, 4), dtype=np.int64), 2)


def test_backward_rejects_wrong_dout_shape(xp):
    _, cache = adaptive_avg_pool2d_forward(xp.zeros((1, 2, 5, 5)), 3)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 2, 3, 3\)"):
        adaptive_avg_pool2d_backward(xp.zeros((1, 2, 3, 2)), cache)


def test_layer_checks_output_size_when_built_and_order_of_calls():
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(0)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.AdaptiveAvgPool2d(2).backward(np.zeros((1, 1, 2, 2)))
