"""The convolution as a matrix: the lecture's view, and a slow exact reference.

A convolution is linear in its input, so for one image it is a matrix
product ``out.ravel() = C @ x.ravel()``. C has one row per output pixel
(o, p, q) and one column per input pixel (c, h, w); the row holds the kernel
w[o, c, i, j] at the input pixels the window at (p, q) reads::

    C[(o, p, q), (c, h, w)] = w[o, c, i, j]   where h = p*SH - PH + i*DH,
                                                    w = q*SW - PW + j*DW

and zeros elsewhere (pixels that fall into the padding are dropped).
The lecture's example: a 3x3 kernel on a 4x4 input gives a 4x16 matrix.

The transposed convolution multiplies by C^T: it maps an output-sized image
back to an input-sized one. C^T is not the inverse of C (C^T C != I); it
only has the right shape, and it spreads every value over the window that
produced it.

``method="matrix"`` of ``conv2d_forward`` and ``conv_transpose2d_forward``
runs on this view: out = C x (or C^T x) image by image, the input
gradient by the other matrix (C^T dout, or C dout); the weight gradient is
im2col's, dW = dout @ cols.T. A slow exact path, to see and to test with.
"""
from __future__ import annotations

from ..backend import array_module
from .common import check_float, check_ndim
from .im2col import channels_first, conv_weight_grad, im2col
from .shapes import conv2d_output_shape, nonnegative_pair, positive_pair


def conv_matrix(w, input_size, stride=1, padding=0, dilation=1):
    """Dense matrix C (OC*OH*OW, C*H*W) with conv2d(x)[n].ravel() == C @ x[n].ravel().

    w (OC, C, KH, KW); input_size (H, W) or an int. Built one kernel offset at
    a time: for offset (i, j) every output position reads one input pixel.
    """
    check_ndim(w, 4, "w", "OC, C, KH, KW")
    check_float(w, "w")
    oc, c, kh, kw = w.shape
    h, wd = positive_pair(input_size, "input_size")
    sh, sw = positive_pair(stride, "stride")
    ph, pw = nonnegative_pair(padding, "padding")
    dh, dw = positive_pair(dilation, "dilation")
    oh, ow = conv2d_output_shape((h, wd), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    xp = array_module(w)
    C = xp.zeros((oc, oh, ow, c, h, wd), dtype=w.dtype)
    p, q = xp.arange(oh), xp.arange(ow)
    for i in range(kh):
        for j in range(kw):
            rows, cols = p * sh - ph + i * dh, q * sw - pw + j * dw
            keep_p, keep_q = (rows >= 0) & (rows < h), (cols >= 0) & (cols < wd)
            # For a fixed offset, distinct (p, q) read distinct (h, w): plain assignment is exact.
            pp, qq = p[keep_p][:, None], q[keep_q][None, :]
            C[:, pp, qq, :, rows[keep_p][:, None], cols[keep_q][None, :]] = w[:, :, i, j]
    return C.reshape(oc * oh * ow, c * h * wd)


# ---- method="matrix": conv2d_forward(..., method="matrix") in conv.py calls these -----


def conv2d_by_matrix(x, w, b, cache):
    """out[n].ravel() = C @ x[n].ravel() (+ b); the cache keeps C (OC*OH*OW, C*H*W)."""
    n = x.shape[0]
    cache.C = conv_matrix(w, x.shape[2:], cache.stride, cache.padding, cache.dilation)
    out = (x.reshape(n, cache.C.shape[1]) @ cache.C.T).reshape((n, w.shape[0]) + tuple(cache.out_size))
    if b is not None:
        out += b[:, None, None]
    return out


def conv2d_by_matrix_backward(dout, cache):
    """dx[n] = C^T @ dout[n]; dW = dout @ cols.T with cols = im2col(x)."""
    x, w = cache.x, cache.w
    dx = (dout.reshape(dout.shape[0], cache.C.shape[0]) @ cache.C).reshape(x.shape)
    cols = im2col(x, w.shape[2:], cache.stride, cache.padding, cache.dilation)
    return dx, conv_weight_grad(channels_first(dout), cols).reshape(w.shape)


def conv_transpose2d_by_matrix(x, w, b, cache):
    """out[n].ravel() = C^T @ x[n].ravel() (+ b), C the conv that maps out back to x's size."""
    n = x.shape[0]
    cache.C = _transposed_conv_matrix(w, x.shape[2:], cache.out_size, cache.stride, cache.padding, cache.dilation)
    out = (x.reshape(n, cache.C.shape[0]) @ cache.C).reshape((n, w.shape[1]) + tuple(cache.out_size))
    if b is not None:
        out += b[:, None, None]
    return out


def conv_transpose2d_by_matrix_backward(dout, cache):
    """dx[n] = C @ dout[n]; dW = x @ dcols.T with dcols = im2col(dout), the columns of C."""
    x, w = cache.x, cache.w
    dx = (dout.reshape(dout.shape[0], cache.C.shape[1]) @ cache.C.T).reshape(x.shape)
    dcols = im2col(dout, w.shape[2:], cache.stride, cache.padding, cache.dilation, out_size=x.shape[2:])
    return dx, conv_weight_grad(channels_first(x), dcols).reshape(w.shape)


def _transposed_conv_matrix(w, in_size, out_size, stride, padding, dilation):
    """C of the conv that maps an ``out_size`` image back to ``in_size``: (C_in*H*W, C_out*OH*OW).

    With output_padding >= stride the conv would see a few more positions than
    the transposed conv's input has; only the first H x W rows are kept.
    """
    c_in, c_out = w.shape[:2]
    full = conv_matrix(w, out_size, stride, padding, dilation)
    fh, fw = conv2d_output_shape(out_size, w.shape[2:], stride, padding, dilation)
    h, wd = in_size
    full = full.reshape(c_in, fh, fw, c_out * out_size[0] * out_size[1])[:, :h, :wd]
    return full.reshape(c_in * h * wd, -1)
