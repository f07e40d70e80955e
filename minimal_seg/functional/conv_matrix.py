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
"""
from __future__ import annotations

from ..backend import array_module
from .common import check_float, check_ndim
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
