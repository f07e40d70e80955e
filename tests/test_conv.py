"""conv2d, conv_transpose2d, im2col/col2im: hand examples, gradient checks, PyTorch, adjoints."""
import numpy as np
import pytest
from helpers import assert_close, dot, rand, to_torch, torch_or_skip

from minimal_seg.backend import to_numpy
from minimal_seg.functional.conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    im2col,
)
from minimal_seg.gradcheck import gradcheck

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
    for method in ("im2col", "matrix"):
        out, _ = conv_transpose2d_forward(x, w, method=method)
        np.testing.assert_array_equal(to_numpy(out)[0, 0], OUT_4x4)


def test_conv2d_hand_example(xp):
    # A 4x4 input convolved with the lecture's kernel: each output is one window dot product.
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = np.array([[(x[p:p + 3, q:q + 3] * KERNEL).sum() for q in range(2)] for p in range(2)])
    out, _ = conv2d_forward(xp.asarray(x[None, None]), xp.asarray(KERNEL[None, None]))
    np.testing.assert_array_equal(to_numpy(out)[0, 0], expected)


def test_im2col_columns_are_windows(xp):
    x = np.arange(2 * 5 * 5, dtype=np.float64).reshape(1, 2, 5, 5)
    cols = to_numpy(im2col(xp.asarray(x), 3, stride=2, padding=1))
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert cols.shape == (1, 2 * 9, 9)
    for p in range(3):
        for q in range(3):
            window = xpad[0, :, 2 * p:2 * p + 3, 2 * q:2 * q + 3].ravel()
            np.testing.assert_array_equal(cols[0, :, p * 3 + q], window)


@pytest.mark.parametrize("size,k,s,p,d", CONV_CASES)
def test_im2col_col2im_adjoint(xp, rng, size, k, s, p, d):
    x = xp.asarray(rand(rng, (2, 3) + size))
    cols = im2col(x, k, s, p, d)
    y = xp.asarray(rand(rng, cols.shape))
    assert dot(cols, y) == pytest.approx(dot(x, col2im(y, x.shape, k, s, p, d)), rel=1e-12)


@pytest.mark.parametrize("size,k,s,p,d", CONV_CASES)
def test_conv2d_gradcheck(xp, rng, size, k, s, p, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    inputs = {"x": xp.asarray(rand(rng, (2, 3) + size)), "w": xp.asarray(rand(rng, (2, 3, kh, kw))),
              "b": xp.asarray(rand(rng, (2,)))}
    report = gradcheck(conv2d_forward, conv2d_backward, inputs,
                       kwargs=dict(stride=s, padding=p, dilation=d))
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"x", "w", "b"}


@pytest.mark.parametrize("size,k,s,p,op,d", TRANSPOSE_CASES)
@pytest.mark.parametrize("method", ["im2col", "matrix"])
def test_conv_transpose2d_gradcheck(xp, rng, size, k, s, p, op, d, method):
    kh, kw = (k, k) if isinstance(k, int) else k
    inputs = {"x": xp.asarray(rand(rng, (2, 3) + size)), "w": xp.asarray(rand(rng, (3, 2, kh, kw))),
              "b": xp.asarray(rand(rng, (2,)))}
    report = gradcheck(conv_transpose2d_forward, conv_transpose2d_backward, inputs,
                       kwargs=dict(stride=s, padding=p, output_padding=op, dilation=d, method=method))
    assert report.passed, str(report)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size,k,s,p,d", CONV_CASES)
def test_conv2d_matches_torch(xp, rng, dtype, size, k, s, p, d):
    torch = torch_or_skip()
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w, b = rand(rng, (3, 4) + size, dtype), rand(rng, (5, 4, kh, kw), dtype), rand(rng, (5,), dtype)
    out, cache = conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), s, p, d)
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
@pytest.mark.parametrize("method", ["im2col", "matrix"])
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
