"""The convolutions' CUDA kernels (functional/kernels/im2col.py) equal the array code, and method="fast" runs them.

Every test runs per backend (``xp``). On NumPy and strict arrays the kernels
run in ``tests/cuda_emulator.py`` (fixture ``kernel_emulator``: the same CUDA
C, compiled with g++, every thread in turn); on CuPy, with a GPU, as
``cupy.RawKernel`` (skipped without one). The kernels copy what the array
code copies and add in the order it adds, so the emulated results are the
array code's, bit for bit, in float32 as in float64.
"""
import collections
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import dot, rand
from kernel_checks import assert_nvcc_compiles, count_launches, needs_nvcc
from test_conv import CONV_GRID, TRANSPOSE_GRID, _grid_case

from minimal_seg.backend import to_numpy
from minimal_seg.functional import kernels
from minimal_seg.functional.conv import (
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    use_im2col_budget,
)
from minimal_seg.functional.im2col import batch_first, channels_first, col2im, im2col
from minimal_seg.functional.kernels import im2col as cuda

DTYPES = [np.float64, np.float32]

# kernel, stride, padding, dilation: 1 to 3, square and not; 240 combinations, each on N = 1 and N = 3
GRID = list(itertools.product([1, 2, 3, (2, 3), (3, 1)], [1, 2, 3, (3, 1)], [0, 1, 2, (0, 2)], [1, 2, (1, 2)]))


# ---- each kernel equals the array code ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_kernels_equal_the_array_code_on_the_option_grid(kernel_emulator, xp, rng, dtype):
    for n in (1, 3):
        x = xp.asarray(rand(rng, (n, 2, 5, 7), dtype))  # odd sizes
        for k, s, p, d in GRID:
            case = f"N={n} kernel={k} stride={s} padding={p} dilation={d}"
            cols = cuda.im2col(x, k, s, p, d)
            assert cols.dtype == dtype
            np.testing.assert_array_equal(to_numpy(cols), to_numpy(im2col(x, k, s, p, d)), err_msg=case)
            y = xp.asarray(rand(rng, cols.shape, dtype))
            folded = cuda.col2im(y, x.shape, k, s, p, d)
            assert folded.dtype == dtype and folded.shape == x.shape
            np.testing.assert_array_equal(to_numpy(folded), to_numpy(col2im(y, x.shape, k, s, p, d)), err_msg=case)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,p,d,out_size", [
    (3, 2, 1, 1, (2, 3)),  # the formula gives (3, 4)
    ((2, 3), (2, 1), (0, 1), (1, 2), (1, 4)),
    (3, 3, 2, 1, (1, 1)),
])
def test_kernels_with_fewer_window_positions_than_the_formula(kernel_emulator, xp, rng, dtype, k, s, p, d, out_size):
    """out_size below the formula, as the transposed convolution asks: the windows past it are left out."""
    x = xp.asarray(rand(rng, (3, 2, 5, 7), dtype))
    cols = cuda.im2col(x, k, s, p, d, out_size=out_size)
    np.testing.assert_array_equal(to_numpy(cols), to_numpy(im2col(x, k, s, p, d, out_size=out_size)))
    y = xp.asarray(rand(rng, cols.shape, dtype))
    np.testing.assert_array_equal(to_numpy(cuda.col2im(y, x.shape, k, s, p, d, out_size=out_size)),
                                  to_numpy(col2im(y, x.shape, k, s, p, d, out_size=out_size)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,p,d", [(8, 4, 2, 1), ((6, 5), (4, 6), (1, 3), (2, 3)), (4, (6, 4), 1, (3, 2))])
def test_kernels_with_large_kernels(kernel_emulator, xp, rng, dtype, k, s, p, d):
    """Kernels larger than the stride (as FCN-32s' 64x64, stride 32): col2im visits every SH/gcd(SH, DH)-th offset."""
    x = xp.asarray(rand(rng, (3, 2, 9, 11), dtype))
    cols = cuda.im2col(x, k, s, p, d)
    np.testing.assert_array_equal(to_numpy(cols), to_numpy(im2col(x, k, s, p, d)))
    y = xp.asarray(rand(rng, cols.shape, dtype))
    np.testing.assert_array_equal(to_numpy(cuda.col2im(y, x.shape, k, s, p, d)),
                                  to_numpy(col2im(y, x.shape, k, s, p, d)))


@pytest.mark.parametrize("k,s,p,d", [(3, 1, 1, 1), (3, 2, 0, 2), ((2, 3), (3, 1), (2, 0), (1, 2)), (1, 2, 1, 1)])
def test_the_col2im_kernel_is_the_adjoint_of_the_im2col_kernel(kernel_emulator, xp, rng, k, s, p, d):
    x = xp.asarray(rand(rng, (3, 2, 6, 5)))
    cols = cuda.im2col(x, k, s, p, d)
    y = xp.asarray(rand(rng, cols.shape))
    assert dot(cols, y) == pytest.approx(dot(x, cuda.col2im(y, x.shape, k, s, p, d)), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (3, 4, 1, 6), (2, 1, 3, 3)])
def test_layout_kernels_equal_the_array_code(kernel_emulator, xp, rng, dtype, shape):
    """channels_first, and batch_first with and without the bias, into a whole array and into a view."""
    a = xp.asarray(rand(rng, shape, dtype))
    m = cuda.channels_first(a)
    np.testing.assert_array_equal(to_numpy(m), to_numpy(channels_first(a)))
    for b in (None, xp.asarray(rand(rng, shape[1:2], dtype))):
        want = xp.empty(shape, dtype=dtype)
        batch_first(m, want, b)
        got = xp.asarray(np.full(shape, np.nan, dtype))
        cuda.batch_first(m, got, b)
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
        wide = xp.asarray(np.full(shape[:3] + (2 * shape[3],), np.nan, dtype))  # out a strided view
        cuda.batch_first(m, wide[..., ::2], b)
        np.testing.assert_array_equal(to_numpy(wide[..., ::2]), to_numpy(want))
        assert np.isnan(to_numpy(wide[..., 1::2])).all()


def test_kernels_refuse_what_they_cannot_run(kernel_emulator, xp):
    with pytest.raises(ValueError, match=r"cols must have shape \(9, 4\)"):
        cuda.col2im(xp.zeros((9, 5)), (1, 1, 4, 4), 3)
    with pytest.raises(TypeError, match="float32 or float64"):
        cuda.channels_first(xp.zeros((1, 2, 3, 3), dtype=np.int32))
    with pytest.raises(TypeError, match="dtype float64"):
        cuda.batch_first(xp.zeros((2, 9)), xp.zeros((1, 2, 3, 3)), xp.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match=r"m must have shape \(2, 9\)"):
        cuda.batch_first(xp.zeros((2, 8)), xp.zeros((1, 2, 3, 3)))


def test_launch_refuses_an_array_past_the_kernels_int_index(kernel_emulator):
    """The kernels index elements with a C int: an array of 2**31 elements would wrap around on a GPU."""
    huge = SimpleNamespace(flags=SimpleNamespace(c_contiguous=True), ndim=2, size=2**31)  # no memory behind it
    like = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="does not fit the kernels' int index"):
        kernels.launch(cuda.SOURCE, "channels_first_float", 1, (huge, like, np.int32(1), np.int32(1), np.int32(1),
                                                                 np.int32(1)), like=like)


@needs_nvcc
def test_nvcc_compiles_every_kernel():
    import cuda_emulator

    names = set(cuda_emulator.kernel_signatures(cuda.SOURCE))
    assert names == {f"{k}_{t}" for k in ("im2col", "col2im", "channels_first", "batch_first")
                     for t in ("float", "double")}
    assert_nvcc_compiles(cuda.SOURCE)


# ---- method="fast" on the kernels equals the reference --------------------------------------


def _forward_backward(xp, transposed, x, w, b, opts, method, dout):
    """[out, dx, dw, db] on the host, and the cache."""
    fwd, bwd = ((conv_transpose2d_forward, conv_transpose2d_backward) if transposed
                else (conv2d_forward, conv2d_backward))
    out, cache = fwd(xp.asarray(x), xp.asarray(w), None if b is None else xp.asarray(b), **opts, method=method)
    grads = bwd(xp.asarray(dout), cache)
    return [None if a is None else to_numpy(a) for a in (out,) + tuple(grads)], cache


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias,n", [(True, 3), (False, 1)])
@pytest.mark.parametrize("transposed,case", [(False, c) for c in CONV_GRID] + [(True, c) for c in TRANSPOSE_GRID])
def test_fast_on_the_kernels_equals_the_reference(kernel_emulator, xp, rng, transposed, case, bias, n, dtype):
    """Forward and gradients of method="fast" with the kernels on are the reference's.

    Emulated they are exact: the same copies and sums, and the same GEMMs.
    The 1x1 shortcut (no kernel, batched GEMMs) and a GPU's GEMMs are within
    1e-12 (float64) or 1e-5 (float32) of the largest value.
    """
    x, w, b, opts = _grid_case(rng, case, transposed, dtype, n=n)
    b = b if bias else None
    out_shape = conv_transpose2d_forward(x, w, **opts)[0].shape if transposed else conv2d_forward(x, w, **opts)[
        0].shape
    dout = rand(rng, out_shape, dtype)
    want, _ = _forward_backward(xp, transposed, x, w, b, opts, "reference", dout)
    got, cache = _forward_backward(xp, transposed, x, w, b, opts, "fast", dout)
    pointwise = not transposed and case[3:6] == (1, 1, 0)  # kernel 1, stride 1, padding 0
    assert transposed or cache.path == ("pointwise" if pointwise else "im2col")
    exact = xp.__name__ != "cupy" and not pointwise
    tol = 0 if exact else (1e-12 if dtype == np.float64 else 1e-5)
    for name, g, e in zip(("out", "dx", "dw", "db"), got, want):
        if e is None:
            assert g is None and not bias
            continue
        assert g.dtype == dtype and g.shape == e.shape, name
        np.testing.assert_allclose(g, e, rtol=0, atol=tol * max(1.0, float(np.abs(e).max())), err_msg=name)


# ---- the dispatch is taken --------------------------------------------------------------


@pytest.fixture
def launches(kernel_emulator, xp):
    """Counter of the kernels launched on xp's arrays, by typed name (``kernel_checks.count_launches``)."""
    with count_launches(xp) as counts:
        yield counts


def untyped(counts):
    """{"im2col": 2} from {"im2col_float": 1, "im2col_double": 1}: launches by kernel, whatever the dtype."""
    result = collections.Counter()
    for name, n in counts.items():
        result[name.rsplit("_", 1)[0]] += n
    return result


def test_fast_conv2d_runs_one_launch_per_step_on_the_kernels(xp, rng, launches):
    """im2col + GEMM + batch_first forward; im2col, channels_first, col2im backward; none with kernels off."""
    x, w, b = (xp.asarray(rand(rng, shape)) for shape in ((2, 3, 6, 23), (4, 3, 3, 3), (4,)))
    out, cache = conv2d_forward(x, w, b, padding=1)  # on a CPU: wide columns, backward from dout's columns
    assert cache.path == "im2col" and cache.cols is None
    assert untyped(launches) == {"im2col": 1, "batch_first": 1}
    conv2d_backward(xp.ones(out.shape), cache)
    assert untyped(launches) == {"im2col": 2, "batch_first": 1, "channels_first": 1, "col2im": 1}
    launches.clear()
    with kernels.use_kernels(False):
        out, cache = conv2d_forward(x, w, b, padding=1)
        conv2d_backward(xp.ones(out.shape), cache)
    assert not launches
    conv2d_forward(x, w[:, :, :1, :1], b)  # 1x1, stride 1, no padding: one batched GEMM, no kernel
    assert not launches


def test_fast_conv_transpose2d_runs_the_kernels(xp, rng, launches):
    x, w = xp.asarray(rand(rng, (2, 3, 4, 30))), xp.asarray(rand(rng, (3, 2, 3, 3)))
    out, cache = conv_transpose2d_forward(x, w, padding=1)  # stride 1, long rows: wide columns on a CPU
    assert untyped(launches) == {"channels_first": 1, "col2im": 1}
    conv_transpose2d_backward(xp.ones(out.shape), cache)
    assert untyped(launches) == {"channels_first": 2, "col2im": 1, "im2col": 1, "batch_first": 1}


def test_the_kernels_keep_to_the_im2col_budget(xp, rng, launches):
    """A budget of one image's columns: one im2col and one batch_first per image, the same numbers."""
    x, w = rand(rng, (3, 2, 5, 5)), rand(rng, (4, 2, 3, 3))
    whole = to_numpy(conv2d_forward(xp.asarray(x), xp.asarray(w), stride=2)[0])
    launches.clear()
    with use_im2col_budget(2 * 9 * 4 * 8):  # C*KH*KW x OH*OW float64 values
        chunked = to_numpy(conv2d_forward(xp.asarray(x), xp.asarray(w), stride=2)[0])
    assert untyped(launches) == {"im2col": 3, "batch_first": 3}
    np.testing.assert_array_equal(chunked, whole)


@pytest.mark.parametrize("transposed", [False, True])
def test_an_empty_batch_launches_nothing(xp, launches, transposed):
    fwd, bwd = ((conv_transpose2d_forward, conv_transpose2d_backward) if transposed
                else (conv2d_forward, conv2d_backward))
    x, w = xp.zeros((0, 3, 5, 6)), xp.ones((3, 3, 3, 3))
    out, cache = fwd(x, w, stride=2, padding=1)
    dx, dw, _ = bwd(xp.zeros(out.shape), cache)
    assert out.shape[0] == 0 and dx.shape == x.shape and dw.shape == w.shape and not to_numpy(dw).any()
    assert not launches
