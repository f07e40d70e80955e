"""im2col and col2im: every window of an image as one column of a matrix, and back.

Notation: x (N, C, H, W); kernel (KH, KW), stride (SH, SW), padding
(PH, PW), dilation (DH, DW); out (N, OC, OH, OW); L = OH*OW window
positions; K = C*KH*KW values in one window. Output sizes come from
``shapes.py``.

**im2col** copies every KH x KW window of the zero-padded input xpad into
one column of a single matrix for the whole batch::

    cols[(c, i, j), (n, oh, ow)] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]

so cols is (K, N*L): row (c, i, j) is channel c at kernel offset (i, j),
column (n, oh, ow) is one window. A convolution is then one matrix product
with the weight flattened to W (OC, K): ``out = W @ cols`` (``conv.py``).

**col2im** is the transpose (adjoint) of im2col: it adds every column back
into the window it came from, so overlapping windows sum up::

    <im2col(x), cols> = <x, col2im(cols)>

Both loop over the KH*KW kernel offsets, never over pixels: for one offset
(i, j), the pixels that all the windows read form one strided slice of xpad.

The batch sits inside the columns, so a product is one GEMM over the whole
batch; the channel axis moves in front of the batch axis on the way in
(``channels_first``) and back on the way out (``batch_first``).
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from .common import check_nchw, window
from .shapes import conv2d_output_shape, nonnegative_pair, positive_pair

__all__ = ["im2col", "col2im", "conv_weight_grad", "conv_options", "ConvOptions", "channels_first", "batch_first"]


class ConvOptions(NamedTuple):
    """kernel_size, stride, padding, dilation of a convolution, each an (h, w) pair."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]


def conv_options(kernel_size, stride=1, padding=0, dilation=1) -> ConvOptions:
    """Check the options (ints or (h, w) pairs) and turn each into a pair, once per call."""
    return ConvOptions(positive_pair(kernel_size, "kernel_size"), positive_pair(stride, "stride"),
                       nonnegative_pair(padding, "padding"), positive_pair(dilation, "dilation"))


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Unfold the windows of x (N, C, H, W) into cols (C*KH*KW, N*OH*OW).

    Column (n, oh, ow) is the window of image n at output position (oh, ow);
    row (c, i, j) is channel c at kernel offset (i, j). ``out_size`` (OH, OW)
    may ask for fewer positions than the formula gives (the transposed
    convolution does).
    """
    check_nchw(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = opts = conv_options(kernel_size, stride, padding, dilation)
    n, c, h, w = x.shape
    oh, ow = out_size or conv2d_output_shape((h, w), *opts)
    xp = array_module(x)
    xpad = x.transpose(1, 0, 2, 3)  # (C, N, H, W): channels first, then the batch, like the rows of cols
    if ph or pw:
        xpad = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        xpad[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xpad[:, :, window(i * dh, sh, oh), window(j * dw, sw, ow)]
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Fold cols (C*KH*KW, N*OH*OW) back into an image of ``x_shape`` (N, C, H, W).

    The adjoint of ``im2col``: every entry is added (not written) into the
    pixel it was copied from, so overlapping windows sum up.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = opts = conv_options(kernel_size, stride, padding, dilation)
    n, c, h, w = x_shape
    oh, ow = out_size or conv2d_output_shape((h, w), *opts)
    expected = (c * kh * kw, n * oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"cols must have shape {expected} for x_shape {tuple(x_shape)}, got {tuple(cols.shape)}")
    xp = array_module(cols)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)  # already in the layout of the result
    overlap = sh <= dh * (kh - 1) or sw <= dw * (kw - 1)
    for i in range(kh):
        for j in range(kw):
            pixels = xpad[:, :, window(i * dh, sh, oh), window(j * dw, sw, ow)]
            if overlap:
                pixels += cols[:, i, j].transpose(1, 0, 2, 3)
            else:  # every pixel gets at most one value (e.g. kernel 2, stride 2): writing is adding to 0
                pixels[...] = cols[:, i, j].transpose(1, 0, 2, 3)
    if ph or pw:
        return xp.ascontiguousarray(xpad[:, :, ph:ph + h, pw:pw + w])
    return xpad


def conv_weight_grad(dout, cols):
    """dW = dout @ cols.T, shared by conv2d and conv_transpose2d.

    dout (OC, N*L) is the gradient of a convolution's output and cols
    (K, N*L) its unfolded input; returns (OC, K). Computed as the same
    product transposed, (cols @ dout.T).T, which BLAS runs faster with the
    long matrix on the left.
    """
    return (cols @ dout.T).T


def channels_first(a):
    """(N, C, H, W) -> the (C, N*H*W) matrix the GEMMs use (a copy)."""
    n, c, h, w = a.shape
    return a.transpose(1, 0, 2, 3).reshape(c, n * h * w)


def batch_first(m, out, b=None):
    """Write the (C, N*H*W) matrix m into out (N, C, H, W), plus b (C,) if given: ``channels_first`` undone."""
    xp = array_module(m)
    n, c, h, w = out.shape
    m = m.reshape(c, n, h, w).transpose(1, 0, 2, 3)
    if b is None:
        out[...] = m
    else:
        xp.add(m, b[:, None, None], out=out)


def pad_channels_first(x, rows, columns):
    """x (N, C, H, W) -> (C, N, top + H + bottom, left + W + right), zeros around; rows = (top, bottom), columns likewise.

    The padded, channels-first copy the stride-1 and Winograd fast paths start from; only the border is zeroed.
    """
    n, c, h, w = x.shape
    (top, bottom), (left, right) = rows, columns
    xpad = array_module(x).empty((c, n, top + h + bottom, left + w + right), dtype=x.dtype)
    for border in (xpad[:, :, :top], xpad[:, :, top + h:], xpad[:, :, top:top + h, :left],
                   xpad[:, :, top:top + h, left + w:]):
        border[...] = 0
    xpad[:, :, top:top + h, left:left + w] = x.transpose(1, 0, 2, 3)
    return xpad
