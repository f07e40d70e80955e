"""minimal_seg.functional.kernels.pool: the max pooling and unpooling kernels equal pool.py's reference, exactly.

Every test runs the ops with the kernels on (the CPU emulator for numpy and
strict arrays, cupy.RawKernel on a GPU) and off (the array-module code), on
inputs full of ties, signed zeros, -inf and NaN, and compares values,
indices, dtypes and signs of zero. Launches are counted, so a test cannot
pass with the kernel bypassed.
"""
import numpy as np
import pytest
from kernel_checks import assert_nvcc_compiles, assert_same, count_launches, needs_nvcc, reference

from minimal_seg.functional import kernels
from minimal_seg.functional.kernels import pool as pool_kernels
from minimal_seg.functional.pool import (
    max_pool2d_backward,
    max_pool2d_forward,
    max_unpool2d_backward,
    max_unpool2d_forward,
)

DTYPES = [np.float32, np.float64]

POOL_GRID = [
    # (N, C, H, W), kernel, stride, padding
    ((2, 3, 8, 8), 2, None, 0),              # the U-Net's pooling: no overlap
    ((2, 3, 7, 9), 3, 1, 1),                 # overlap and padding
    ((1, 2, 9, 8), 3, 2, 1),
    ((2, 2, 7, 6), (2, 3), (1, 2), (1, 1)),  # non-square everything
    ((1, 2, 7, 5), (3, 2), (2, 3), (1, 0)),  # stride > kernel along W: pixels in no window
    ((1, 2, 5, 5), (3, 3), (3, 2), 0),
    ((1, 2, 9, 9), 2, 3, 0),                 # gaps both ways
    ((1, 1, 17, 18), 16, 1, 8),              # KH*KW = 256: int32 window_argmax
    ((1, 2, 19, 18), 17, 2, 3),              # 289 offsets
]


def tricky_input(rng, shape, dtype):
    """Small integers (many ties), signed zeros, a -inf corner (where padding ties with x) and one NaN."""
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[(x == 0) & (rng.random(shape) < 0.5)] = -0.0
    x[0, 0, :2, :2] = -np.inf
    x[-1, -1, shape[2] // 2, shape[3] // 2] = np.nan
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding", POOL_GRID)
def test_max_pool_kernels_equal_the_reference(kernel_emulator, xp, rng, dtype, shape, kernel, stride, padding):
    x = xp.asarray(tricky_input(rng, shape, dtype))
    want, want_cache = reference(max_pool2d_forward, x, kernel, stride, padding)
    with count_launches(xp) as launches:
        out, cache = max_pool2d_forward(x, kernel, stride, padding)
    assert sum(launches.values()) == 1 and next(iter(launches)).startswith("max_pool2d_forward_")
    assert_same(out, want, zero_signs=False)  # where +0 and -0 tie, the reference's max may keep either
    assert_same(cache.indices, want_cache.indices)
    assert_same(cache.window_argmax, want_cache.window_argmax)

    dout = rng.standard_normal(want.shape).astype(dtype)
    dout[..., 0] = -0.0
    dout[0, 0, 0, -1] = np.inf  # the reference's dout * (window chose k) turns it into NaN where not chosen
    dout = xp.asarray(dout)
    with np.errstate(invalid="ignore"):  # inf * 0
        want_dx = reference(max_pool2d_backward, dout, want_cache)
    with count_launches(xp) as launches:
        dx = max_pool2d_backward(dout, cache)
        dx_from_reference_cache = max_pool2d_backward(dout, want_cache)
    assert sum(launches.values()) == 2 and set(launches) == {next(iter(launches))}
    assert next(iter(launches)).startswith("max_pool2d_backward_")
    assert_same(dx, want_dx)
    assert_same(dx_from_reference_cache, want_dx)


def test_max_pool_backward_kernel_sums_overlapping_windows_like_the_reference(kernel_emulator, xp):
    """One pixel that wins 9 overlapping windows collects all 9 douts (the gather adds, it does not overwrite)."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1
    out, cache = max_pool2d_forward(xp.asarray(x), 3, 1, 1)
    dout = xp.asarray(np.arange(1, 26, dtype=np.float64).reshape(1, 1, 5, 5))
    dx = max_pool2d_backward(dout, cache)
    assert_same(dx, reference(max_pool2d_backward, dout, cache))
    assert float(dx[0, 0, 2, 2]) == sum(range(7, 10)) + sum(range(12, 15)) + sum(range(17, 20))


def test_max_pool_kernel_takes_non_contiguous_input_and_a_float64_dout(kernel_emulator, xp, rng):
    x = xp.asarray(rng.standard_normal((6, 7, 2, 3)).astype(np.float32)).transpose(2, 3, 0, 1)
    out, cache = max_pool2d_forward(x, 3, 2, 1)
    want, want_cache = reference(max_pool2d_forward, x, 3, 2, 1)
    assert_same(out, want)
    dout = xp.asarray(rng.standard_normal(out.shape))  # float64: cast to x's float32, as the reference does
    assert_same(max_pool2d_backward(dout, cache), reference(max_pool2d_backward, dout, want_cache))


UNPOOL_GRID = [
    # (N, C, H, W) of the pooled input, kernel, stride, padding, output_size, indices dtype
    ((2, 3, 8, 8), 2, None, 0, None, np.int64),
    ((2, 3, 9, 7), 2, None, 0, (9, 7), np.int64),     # odd sizes: the unpooled output keeps them
    ((1, 2, 7, 9), 3, 2, 1, (7, 9), np.int64),
    ((2, 2, 7, 6), 3, 1, 1, (7, 6), np.int32),        # overlap: one pixel saved by several windows
    ((1, 2, 7, 6), (2, 3), (1, 2), (1, 1), (7, 6), np.uint8),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, stride, padding, output_size, index_dtype", UNPOOL_GRID)
def test_max_unpool_kernels_equal_the_reference(kernel_emulator, xp, rng, dtype, shape, kernel, stride, padding,
                                                output_size, index_dtype):
    x = rng.integers(-2, 3, shape).astype(dtype)
    pooled, pool_cache = reference(max_pool2d_forward, xp.asarray(x), kernel, stride, padding)
    indices = pool_cache.indices.astype(index_dtype)
    want, want_cache = reference(max_unpool2d_forward, pooled, indices, kernel, stride, padding, output_size)
    with count_launches(xp) as launches:
        out, cache = max_unpool2d_forward(pooled, indices, kernel, stride, padding, output_size)
    assert dict(launches) == {kernels.typed_name("max_unpool2d_forward", np.dtype(dtype)): 1}
    assert_same(out, want)
    assert_same(cache.positions, want_cache.positions)
    assert indices.dtype == index_dtype  # the caller's indices are left alone

    dout = rng.standard_normal(want.shape).astype(dtype)
    dout[..., 0] = -0.0
    dout = xp.asarray(dout)
    with count_launches(xp) as launches:
        dx = max_unpool2d_backward(dout, cache)
    assert dict(launches) == {kernels.typed_name("max_unpool2d_backward", np.dtype(dtype)): 1}
    assert_same(dx, reference(max_unpool2d_backward, dout, want_cache))


def test_max_unpool_kernel_still_refuses_indices_out_of_range(kernel_emulator, xp):
    x = xp.asarray(np.ones((1, 1, 2, 2)))
    with count_launches(xp) as launches, pytest.raises(ValueError, match="indices must lie in"):
        max_unpool2d_forward(x, xp.asarray(np.array([[[[0, 1], [2, 16]]]])), 2)
    assert not launches


def test_the_switch_turns_the_pooling_kernels_off(kernel_emulator, xp, rng):
    x = xp.asarray(rng.standard_normal((1, 2, 4, 4)))
    with count_launches(xp) as launches, kernels.use_kernels(False):
        out, cache = max_pool2d_forward(x, 2)
        max_pool2d_backward(out, cache)
        up, up_cache = max_unpool2d_forward(out, cache.indices, 2)
        max_unpool2d_backward(up, up_cache)
    assert not launches


@needs_nvcc
def test_nvcc_compiles_the_pooling_kernels():
    assert_nvcc_compiles(pool_kernels.SOURCE)
