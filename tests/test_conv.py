"""conv2d and conv_transpose2d: hand examples, gradient checks, PyTorch, adjoints, and every method equal to the
reference over the option grid (im2col and col2im themselves: test_im2col.py)."""
import numpy as np
import pytest
from helpers import assert_close, dot, rand, to_torch, torch_or_skip

from minimal_seg.backend import to_numpy
from minimal_seg.functional import _conv_fast, _im2col_budget
from minimal_seg.functional._im2col_budget import batch_chunks
from minimal_seg.functional.conv import (
    CONV2D_METHODS,
    CONV_TRANSPOSE2D_METHODS,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    get_im2col_budget,
    im2col,
    set_im2col_budget,
    use_im2col_budget,
)
from minimal_seg.gradcheck import gradcheck

METHODS = ("reference", "fast", "matrix")

# The lecture's transposed-convolution example (seed 003).
KERNEL = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=np.float64)
X_2x2 = np.array([[2, 1], [4, 4]], dtype=np.float64)
OUT_4x4 = np.array([[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]], dtype=np.float64)

# (input size, kernel, stride, padding, dilation): odd/even sizes, non-square pairs.
CONV_CASES = [
    ((5, 5), 3, 1, 0, 1),
    ((6, 7), 3, 2, 1, 1),
    ((7, 6), 3, 3, 2, 1),
    ((7, 7), 3, 1, 2, 2),
    ((9, 8), 3, 2, 1, 3),
    ((6, 5), (2, 3), (1, 2), (1, 0), (2, 1)),
    ((4, 4), 1, 1, 0, 1),
    ((5, 6), (3, 1), 2, (0, 1), 1),
    ((4, 5), 1, 1, 1, 1),  # padding > dilation*(kernel-1): dx by col2im even at stride 1
]

# (input size, kernel, stride, padding, output_padding, dilation)
TRANSPOSE_CASES = [
    ((2, 2), 3, 1, 0, 0, 1),
    ((3, 4), 3, 2, 1, 1, 1),
    ((3, 3), 2, 2, 0, 0, 1),
    ((4, 3), 3, 3, 2, 2, 1),
    ((3, 3), 3, 1, 1, 1, 2),
    ((4, 3), (2, 3), (2, 1), (0, 1), (1, 0), (1, 2)),
    ((3, 5), 3, 2, 0, 1, 3),
]


def test_lecture_transposed_convolution_exact(xp):
    w = xp.asarray(KERNEL[None, None])
    x = xp.asarray(X_2x2[None, None])
    for method in METHODS:
        out, _ = conv_transpose2d_forward(x, w, method=method)
        np.testing.assert_array_equal(to_numpy(out)[0, 0], OUT_4x4)


def test_conv2d_hand_example(xp):
    # A 4x4 input convolved with the lecture's kernel: each output is one window dot product.
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = np.array([[(x[p:p + 3, q:q + 3] * KERNEL).sum() for q in range(2)] for p in range(2)])
    out, _ = conv2d_forward(xp.asarray(x[None, None]), xp.asarray(KERNEL[None, None]))
    np.testing.assert_array_equal(to_numpy(out)[0, 0], expected)


@pytest.mark.parametrize("size,k,s,p,d", CONV_CASES)
@pytest.mark.parametrize("method", METHODS)
def test_conv2d_gradcheck(xp, rng, size, k, s, p, d, method):
    kh, kw = (k, k) if isinstance(k, int) else k
    inputs = {"x": xp.asarray(rand(rng, (2, 3) + size)), "w": xp.asarray(rand(rng, (2, 3, kh, kw))),
              "b": xp.asarray(rand(rng, (2,)))}
    report = gradcheck(conv2d_forward, conv2d_backward, inputs,
                       kwargs=dict(stride=s, padding=p, dilation=d, method=method))
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"x", "w", "b"}


@pytest.mark.parametrize("size,k,s,p,op,d", TRANSPOSE_CASES)
@pytest.mark.parametrize("method", METHODS)
def test_conv_transpose2d_gradcheck(xp, rng, size, k, s, p, op, d, method):
    kh, kw = (k, k) if isinstance(k, int) else k
    inputs = {"x": xp.asarray(rand(rng, (2, 3) + size)), "w": xp.asarray(rand(rng, (3, 2, kh, kw))),
              "b": xp.asarray(rand(rng, (2,)))}
    report = gradcheck(conv_transpose2d_forward, conv_transpose2d_backward, inputs,
                       kwargs=dict(stride=s, padding=p, output_padding=op, dilation=d, method=method))
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size,k,s,p,d", CONV_CASES)
@pytest.mark.parametrize("method", ["reference", "fast"])
def test_conv2d_matches_torch(xp, rng, dtype, size, k, s, p, d, method):
    torch = torch_or_skip()
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w, b = rand(rng, (3, 4) + size, dtype), rand(rng, (5, 4, kh, kw), dtype), rand(rng, (5,), dtype)
    out, cache = conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), s, p, d, method=method)
    xt, wt, bt = to_torch(x, True), to_torch(w, True), to_torch(b, True)
    ref = torch.nn.functional.conv2d(xt, wt, bt, s, p, d)
    dout = rand(rng, ref.shape, dtype)
    ref.backward(torch.from_numpy(dout))
    dx, dw, db = conv2d_backward(xp.asarray(dout), cache)
    for ours, theirs in [(out, ref), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        assert to_numpy(ours).dtype == dtype
        assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size,k,s,p,op,d", TRANSPOSE_CASES)
@pytest.mark.parametrize("method", ["reference", "fast"])
def test_conv_transpose2d_matches_torch(xp, rng, dtype, size, k, s, p, op, d, method):
    torch = torch_or_skip()
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w, b = rand(rng, (2, 4) + size, dtype), rand(rng, (4, 3, kh, kw), dtype), rand(rng, (3,), dtype)
    out, cache = conv_transpose2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), s, p, op, d, method)
    xt, wt, bt = to_torch(x, True), to_torch(w, True), to_torch(b, True)
    ref = torch.nn.functional.conv_transpose2d(xt, wt, bt, s, p, op, 1, d)
    dout = rand(rng, ref.shape, dtype)
    ref.backward(torch.from_numpy(dout))
    dx, dw, db = conv_transpose2d_backward(xp.asarray(dout), cache)
    for ours, theirs in [(out, ref), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        assert to_numpy(ours).dtype == dtype
        assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("size,k,s,p,op,d", TRANSPOSE_CASES)
def test_transpose_is_adjoint_of_conv(xp, rng, size, k, s, p, op, d):
    """<conv(y), x> = <y, conv_transpose(x)> with the same weight: C and C^T."""
    kh, kw = (k, k) if isinstance(k, int) else k
    x = xp.asarray(rand(rng, (2, 3) + size))
    w = xp.asarray(rand(rng, (3, 2, kh, kw)))
    tx, _ = conv_transpose2d_forward(x, w, stride=s, padding=p, output_padding=op, dilation=d)
    y = xp.asarray(rand(rng, tx.shape))
    cy, cache = conv2d_forward(y, w, stride=s, padding=p, dilation=d)
    cy = cy[:, :, :size[0], :size[1]]  # output_padding >= stride adds positions C^T never reads
    assert dot(cy, x) == pytest.approx(dot(y, tx), rel=1e-12)


@pytest.mark.parametrize("size,k,s,p,d", CONV_CASES)
def test_conv2d_adjoint(xp, rng, size, k, s, p, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = xp.asarray(rand(rng, (2, 3) + size))
    w = xp.asarray(rand(rng, (4, 3, kh, kw)))
    out, cache = conv2d_forward(x, w, stride=s, padding=p, dilation=d)
    y = xp.asarray(rand(rng, out.shape))
    dx, _, _ = conv2d_backward(y, cache)
    assert dot(out, y) == pytest.approx(dot(x, dx), rel=1e-12)


def test_no_bias_gives_none(xp, rng):
    out, cache = conv2d_forward(xp.asarray(rand(rng, (1, 2, 4, 4))), xp.asarray(rand(rng, (3, 2, 3, 3))))
    assert conv2d_backward(xp.ones_like(out), cache)[2] is None


def test_backward_shapes_equal_inputs(xp, rng):
    x, w = xp.asarray(rand(rng, (2, 3, 7, 5))), xp.asarray(rand(rng, (4, 3, 3, 3)))
    out, cache = conv2d_forward(x, w, stride=2, padding=1)
    dx, dw, _ = conv2d_backward(xp.asarray(rand(rng, out.shape)), cache)
    assert dx.shape == x.shape and dw.shape == w.shape


def test_backward_does_not_modify_dout(xp, rng):
    x, w = xp.asarray(rand(rng, (2, 3, 5, 5))), xp.asarray(rand(rng, (4, 3, 3, 3)))
    out, cache = conv2d_forward(x, w, xp.zeros(4), padding=1)
    dout = xp.asarray(rand(rng, out.shape))
    before = dout.copy()
    conv2d_backward(dout, cache)
    np.testing.assert_array_equal(to_numpy(dout), to_numpy(before))


# ---- every method gives the reference's numbers, over the whole option grid -----------------

# (input size, C, OC, kernel, stride, padding, dilation). The sizes pick the fast path's routes
# (its cache.path): small maps -> "im2col", long rows at stride 1 -> "wide" columns, 1x1 without
# padding -> "pointwise"; OC > 2*C or padding > dilation*(kernel-1) -> the general backward.
CONV_GRID = [
    ((5, 5), 3, 4, 3, 1, 0, 1),
    ((6, 7), 3, 4, 3, 2, 1, 1),
    ((7, 6), 3, 4, 3, 3, 2, 1),
    ((7, 7), 3, 4, 3, 1, 2, 2),
    ((9, 8), 3, 4, 3, 2, 1, 3),
    ((6, 5), 3, 4, (2, 3), (1, 2), (1, 0), (2, 1)),
    ((5, 6), 3, 4, (3, 1), 2, (0, 1), 1),
    ((4, 5), 3, 4, 1, 1, 1, 1),  # padding > dilation*(kernel-1): no stride-1 shortcut
    ((6, 5), 1, 8, 3, 1, 1, 1),  # OC > 2*C, a first layer: the forward keeps its columns
    ((4, 4), 3, 4, 1, 1, 0, 1),  # 1x1: pointwise
    ((3, 5), 3, 4, 1, 1, 0, 2),
    ((1, 1), 3, 4, 1, 1, 0, 1),
    ((7, 23), 3, 4, 3, 1, 1, 1),  # wide columns, backward from the columns of dout
    ((6, 21), 1, 8, 3, 1, 1, 1),  # wide forward, general backward (OC > 2*C)
    ((9, 31), 2, 3, 3, 1, 2, 2),
    ((3, 40), 2, 3, (1, 3), 1, (0, 1), (1, 3)),
    ((4, 25), 3, 4, 1, 1, 1, 1),  # wide 1x1 with padding
    ((5, 6), 32, 8, 3, 1, 1, 1),  # C >= 32 on a small map: Winograd
    ((7, 5), 32, 3, 3, 1, 0, 1),
]
# (input size, C_in, C_out, kernel, stride, padding, output_padding, dilation)
TRANSPOSE_GRID = [(size, 3, 2, k, s, p, op, d) for size, k, s, p, op, d in TRANSPOSE_CASES] + [
    ((5, 24), 3, 2, 3, 1, 1, 0, 1),  # stride 1, long rows: the backward on wide columns of dout
    ((3, 30), 2, 3, 3, 1, 2, 0, 2),
    ((4, 9), 2, 3, 2, 2, 0, 1, 1),
]


def _grid_case(rng, case, transposed, dtype, n=3, values=rand):
    if transposed:
        size, c, oc, k, s, p, op, d = case
        opts = dict(stride=s, padding=p, output_padding=op, dilation=d)
    else:
        size, c, oc, k, s, p, d = case
        opts = dict(stride=s, padding=p, dilation=d)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = values(rng, (n, c) + size, dtype)
    w = values(rng, ((c, oc) if transposed else (oc, c)) + (kh, kw), dtype)
    return x, w, values(rng, (oc,), dtype), opts


def _run(xp, transposed, x, w, b, opts, method, dout=None, rng=None):
    """[out, dx, dw, db] on the host, and the cache; dout random (from rng) unless given."""
    fwd, bwd = (conv_transpose2d_forward, conv_transpose2d_backward) if transposed else (conv2d_forward,
                                                                                           conv2d_backward)
    out, cache = fwd(xp.asarray(x), xp.asarray(w), xp.asarray(b), **opts, method=method)
    if dout is None:
        dout = rand(rng, out.shape, x.dtype)
    return [to_numpy(a) for a in (out,) + tuple(bwd(xp.asarray(dout), cache))], cache, dout


def _assert_same(got, want, dtype, exact=False):
    tol = 0 if exact else (1e-12 if dtype == np.float64 else 1e-5)
    for g, e in zip(got, want):
        assert g.dtype == dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", ["fast", "matrix"])
@pytest.mark.parametrize("transposed,case", [(False, c) for c in CONV_GRID] + [(True, c) for c in TRANSPOSE_GRID])
def test_method_equals_reference(xp, rng, transposed, case, method, dtype):
    """Forward and all three gradients of ``method`` are the reference's (im2col, col2im), dtype kept."""
    x, w, b, opts = _grid_case(rng, case, transposed, dtype)
    expected, _, dout = _run(xp, transposed, x, w, b, opts, "reference", rng=rng)
    got, cache = _run(xp, transposed, x, w, b, opts, method, dout)[:2]
    assert cache.method == method
    _assert_same(got, expected, dtype)


def test_grid_takes_every_fast_route(xp, rng):
    """The grid above reaches every route of method="fast": forward paths, both conv2d backwards, Winograd."""
    routes = set()
    for case in CONV_GRID:
        x, w, b, opts = _grid_case(rng, case, False, np.float64)
        _, cache = conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), **opts)
        flip = cache.path in ("im2col", "wide") and _conv_fast._flip_padding(w.shape, cache) is not None
        routes.add((cache.path, "from dout" if flip else "general"))
        assert (cache.cols is not None) == (cache.path == "im2col" and not flip)  # kept only if needed
    expected = {("pointwise", "general"), ("im2col", "from dout"), ("im2col", "general"), ("wide", "from dout"),
                ("wide", "general")}
    assert routes == expected  # "fast" never picks Winograd (method="winograd" does)


def test_first_layer_forward_is_wide():
    """The forward's route depends on its own shapes, not on a backward rule: a first layer (OC > 2*C,
    no stride-1 shortcut in its backward) still runs on wide columns."""
    x, w = np.zeros((2, 1, 32, 32), np.float32), np.zeros((16, 1, 3, 3), np.float32)
    _, cache = conv2d_forward(x, w, padding=1)
    assert cache.path == "wide" and cache.cols is None


def test_cache_keeps_the_options_as_pairs(xp):
    _, cache = conv2d_forward(xp.zeros((1, 2, 9, 9)), xp.zeros((3, 2, 3, 3)), stride=2, padding=(1, 0), dilation=1)
    assert (cache.stride, cache.padding, cache.dilation, cache.out_size) == ((2, 2), (1, 0), (1, 1), (5, 4))
    _, cache = conv_transpose2d_forward(xp.zeros((1, 2, 3, 3)), xp.zeros((2, 3, 3, 3)), stride=2, output_padding=1)
    assert (cache.stride, cache.padding, cache.output_padding, cache.out_size) == ((2, 2), (0, 0), (1, 1), (8, 8))


def test_a_method_is_one_table_entry():
    """The dispatch is the table: every method has a forward and a backward, "fast" is the default."""
    assert set(CONV2D_METHODS) == {"reference", "fast", "matrix", "winograd"}
    assert set(CONV_TRANSPOSE2D_METHODS) == {"reference", "fast", "matrix"}
    for table in (CONV2D_METHODS, CONV_TRANSPOSE2D_METHODS):
        assert all(len(pair) == 2 and all(map(callable, pair)) for pair in table.values())
    assert conv2d_forward.__defaults__[-1] == conv_transpose2d_forward.__defaults__[-1] == "fast"


def test_im2col_wide_holds_the_windows(xp, rng):
    """Wide columns (stride 1) = im2col's columns at the first OW of every Wp positions of a row."""
    x = xp.asarray(rand(rng, (2, 3, 5, 6)))
    for rows in (slice(0, 5), slice(1, 3)):  # all output rows, or a block of them
        wide = _conv_fast.im2col_wide(_conv_fast._pad_flat(x, (1, 2)), 6 + 4, (3, 2), (1, 2), rows)
        cols = im2col(x, (3, 2), padding=(1, 2), dilation=(1, 2))  # (C*KH*KW, N*OH*OW), OH = 5, OW = 8
        r = rows.stop - rows.start
        expected = cols.reshape(3 * 6, 2, 5, 8)[:, :, rows]
        np.testing.assert_array_equal(to_numpy(wide.reshape(3 * 6, 2, r, 10)[..., :8]), to_numpy(expected))


@pytest.mark.parametrize("size", [(64, 64), (8, 8)])  # wide columns, im2col
@pytest.mark.parametrize("method", METHODS)
def test_empty_batch(xp, size, method):
    x, w = xp.zeros((0, 3) + size), xp.ones((4, 3, 3, 3))
    out, cache = conv2d_forward(x, w, padding=1, method=method)
    dx, dw, _ = conv2d_backward(xp.zeros(out.shape), cache)
    assert out.shape == (0, 4) + size and dx.shape == x.shape and dw.shape == w.shape
    assert not to_numpy(dw).any()


def test_backward_checks_dout_shape(xp):
    out, cache = conv2d_forward(xp.zeros((1, 2, 5, 5)), xp.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 3, 3, 3\)"):
        conv2d_backward(xp.zeros((1, 3, 5, 5)), cache)


# ---- the im2col memory budget ------------------------------------------------------

def _int_valued(rng, shape, dtype):
    """Small integers stored as floats: every sum is exact, in any order, so chunking can't change a bit."""
    return rng.integers(-3, 4, size=shape).astype(dtype)


# (transposed, C, OC, size, kernel, options): stride 1 (dx by the flipped kernel), stride 2 (by col2im),
# dilation, the U-Net's transposed conv, and wide columns (chunks of images, then blocks of rows)
BUDGET_CASES = [
    (False, 3, 4, (6, 7), 3, dict(stride=1, padding=1)),
    (False, 3, 4, (7, 6), 3, dict(stride=2, padding=1)),
    (False, 2, 5, (7, 7), 3, dict(stride=1, padding=2, dilation=2)),
    (True, 4, 3, (3, 4), 2, dict(stride=2)),
    (True, 3, 2, (4, 3), 3, dict(stride=1, padding=1, output_padding=0, dilation=1)),
    (False, 3, 4, (6, 23), 3, dict(stride=1, padding=1)),
    (False, 1, 8, (5, 21), 3, dict(stride=1, padding=1)),
    (True, 3, 2, (4, 24), 3, dict(stride=1, padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transposed,c,oc,size,k,opts", BUDGET_CASES)
def test_chunked_equals_unchunked(xp, rng, dtype, transposed, c, oc, size, k, opts):
    """With a budget of one image (or less: blocks of rows), the fast path gives the unchunked numbers
    exactly, and the reference's."""
    n = 5  # odd, so the last chunk is smaller
    x = _int_valued(rng, (n, c) + size, dtype)
    w = _int_valued(rng, (c, oc, k, k) if transposed else (oc, c, k, k), dtype)
    b = _int_valued(rng, (oc,), dtype)
    whole, cache, dout = _run(xp, transposed, x, w, b, opts, "fast", rng=rng)
    dout = np.rint(dout)
    whole = _run(xp, transposed, x, w, b, opts, "fast", dout)[0]
    # the largest column matrix of one image: of x or dout for conv2d, of dout (C_out rows per offset,
    # one column per input pixel) for conv_transpose2d
    in_pixels, out_pixels = int(np.prod(size)), int(np.prod(cache.out_size))
    per_image = (oc * in_pixels if transposed else max(c * out_pixels, oc * in_pixels)) * k * k
    budget = per_image * np.dtype(dtype).itemsize
    with use_im2col_budget(budget):
        chunked = _run(xp, transposed, x, w, b, opts, "fast", dout)[0]
    _assert_same(chunked, whole, dtype, exact=True)
    _assert_same(chunked, _run(xp, transposed, x, w, b, opts, "reference", dout)[0], dtype, exact=True)


@pytest.mark.parametrize("stride", [1, 2])
def test_chunked_float32_random(xp, rng, stride):
    """Random float32 data: chunks change the summation order of dW only, well within float32 tolerance."""
    x, w = rand(rng, (7, 4, 9, 9), np.float32), rand(rng, (6, 4, 3, 3), np.float32)
    out, cache = conv2d_forward(xp.asarray(x), xp.asarray(w), stride=stride, padding=1)
    dout = rand(rng, out.shape, np.float32)
    grads = conv2d_backward(xp.asarray(dout), cache)
    # 3 images per chunk of the largest column matrix: of dout (6 channels, 9x9) with stride 1, else of x
    per_image = (6 * 81 if stride == 1 else 4 * int(np.prod(out.shape[2:]))) * 9 * 4
    with use_im2col_budget(3 * per_image):
        out2, cache2 = conv2d_forward(xp.asarray(x), xp.asarray(w), stride=stride, padding=1)
        grads2 = conv2d_backward(xp.asarray(dout), cache2)
    assert cache2.cols is None  # several chunks: the backward recomputes (or never needs) the columns
    for a, b_ in zip((out,) + grads[:2], (out2,) + grads2[:2]):
        assert to_numpy(b_).dtype == np.float32
        np.testing.assert_allclose(to_numpy(b_), to_numpy(a), rtol=1e-5, atol=1e-4)


def test_batch_chunks(xp):
    five, none = xp.zeros((5, 1)), xp.zeros((0, 1))
    with use_im2col_budget(1000):
        assert batch_chunks(five, 400) == [slice(0, 2), slice(2, 4), slice(4, 5)]
        assert batch_chunks(five, 100) == [slice(0, 5)]
        assert batch_chunks(none, 100) == [slice(0, 0)]
        with pytest.raises(MemoryError, match="single image.*budget"):
            batch_chunks(five, 1001)
    # on a CPU, chunks of about CPU_CHUNK_BYTES (cache-sized) even when the budget allows more
    mib, eight = 2**20, xp.zeros((8, 1))
    if xp.__name__ == "numpy":
        assert _im2col_budget.CPU_CHUNK_BYTES == 4 * mib
        assert batch_chunks(eight, mib) == [slice(0, 4), slice(4, 8)]
        assert batch_chunks(eight, 20 * mib) == [slice(i, i + 1) for i in range(8)]
    else:
        assert batch_chunks(eight, 3 * mib) == [slice(0, 8)]


def test_one_image_over_budget_raises(xp):
    with use_im2col_budget(1024):
        with pytest.raises(MemoryError, match="set_im2col_budget"):
            conv2d_forward(xp.zeros((2, 8, 16, 16)), xp.zeros((4, 8, 3, 3)), padding=1)


def test_set_im2col_budget():
    before = get_im2col_budget()
    with use_im2col_budget("64M"):
        assert get_im2col_budget() == 64 * 2**20
        set_im2col_budget("1.5G")
        assert get_im2col_budget() == int(1.5 * 2**30)
        set_im2col_budget(4096)
        assert get_im2col_budget() == 4096
        with pytest.raises(ValueError):
            set_im2col_budget(0)
        for bad in ("lots", "inf", "M"):  # one error naming the budget, not float()'s
            with pytest.raises(ValueError, match=f"im2col budget must be at least 1 byte .* got '{bad}'"):
                set_im2col_budget(bad)
    assert get_im2col_budget() == before


def test_budget_from_environment():
    code = "from minimal_seg.functional.conv import get_im2col_budget; print(get_im2col_budget())"
    import os
    import subprocess
    import sys
    env = dict(os.environ, MINIMAL_SEG_IM2COL_BUDGET="32M")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == 32 * 2**20


# ---- bad input ------------------------------------------------------------------

def test_channel_mismatch(xp):
    with pytest.raises(ValueError, match="channel mismatch.*3 channels.*C_in=2"):
        conv2d_forward(xp.zeros((1, 3, 5, 5)), xp.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="channel mismatch"):
        conv_transpose2d_forward(xp.zeros((1, 3, 5, 5)), xp.zeros((2, 4, 3, 3)))


def test_kernel_larger_than_padded_input(xp):
    with pytest.raises(ValueError, match=r"kernel_size \(5, 5\).*larger than the padded input \(4, 4\)"):
        conv2d_forward(xp.zeros((1, 1, 4, 4)), xp.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="dilation"):
        conv2d_forward(xp.zeros((1, 1, 4, 4)), xp.zeros((1, 1, 3, 3)), dilation=2)


@pytest.mark.parametrize("name,kwargs", [("stride", {"stride": 0}), ("dilation", {"dilation": -1}),
                                         ("padding", {"padding": -1})])
def test_bad_hyperparameters(xp, name, kwargs):
    with pytest.raises(ValueError, match=name):
        conv2d_forward(xp.zeros((1, 1, 5, 5)), xp.zeros((1, 1, 3, 3)), **kwargs)


def test_hyperparameter_types(xp):
    with pytest.raises(TypeError, match="stride"):
        conv2d_forward(xp.zeros((1, 1, 5, 5)), xp.zeros((1, 1, 3, 3)), stride=1.5)
    with pytest.raises(TypeError, match="padding"):
        conv2d_forward(xp.zeros((1, 1, 5, 5)), xp.zeros((1, 1, 3, 3)), padding=(1, 2, 3))


def test_output_padding_range(xp):
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d_forward(xp.zeros((1, 1, 3, 3)), xp.zeros((1, 1, 3, 3)), stride=2, output_padding=2)
    # PyTorch allows output_padding < max(stride, dilation)
    out, _ = conv_transpose2d_forward(xp.zeros((1, 1, 3, 3)), xp.zeros((1, 1, 3, 3)), stride=1,
                                      dilation=2, output_padding=1)
    assert out.shape == (1, 1, 8, 8)


def test_3d_input_rejected(xp):
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)"):
        conv2d_forward(xp.zeros((3, 5, 5)), xp.zeros((1, 3, 3, 3)))


def test_integer_input_rejected(xp):
    with pytest.raises(TypeError, match="x must be a floating-point"):
        conv2d_forward(xp.zeros((1, 1, 5, 5), dtype=xp.int64), xp.zeros((1, 1, 3, 3)))


def test_mixed_dtypes_rejected(xp):
    with pytest.raises(TypeError, match="dtype"):
        conv2d_forward(xp.zeros((1, 1, 5, 5), dtype=xp.float32), xp.zeros((1, 1, 3, 3)))


def test_bias_shape(xp):
    with pytest.raises(ValueError, match=r"b must have shape \(4,\)"):
        conv2d_forward(xp.zeros((1, 1, 5, 5)), xp.zeros((4, 1, 3, 3)), xp.zeros(3))


def test_unknown_method(xp):
    with pytest.raises(ValueError, match="method"):
        conv_transpose2d_forward(xp.zeros((1, 1, 3, 3)), xp.zeros((1, 1, 3, 3)), method="fft")
