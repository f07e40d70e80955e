"""Convolution and transposed convolution, by im2col and one matrix product.

Notation: x (N, C, H, W), w (OC, C, KH, KW), out (N, OC, OH, OW); stride
(SH, SW), padding (PH, PW), dilation (DH, DW); L = OH*OW window positions.
Output sizes come from ``shapes.py`` (the PyTorch formulas).

**im2col** copies every KH x KW window of the padded input into a column::

    cols[n, (c, i, j), (oh, ow)] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]

so the convolution is one matrix product per image::

    out[n] = w.reshape(OC, C*KH*KW) @ cols[n]                (+ b)

**col2im** is the transpose (adjoint) of im2col: it adds every column back
into the window it came from. Both loop over the KH*KW kernel offsets, never
over pixels: for one offset (i, j), the pixels a window reads form a strided
slice of the padded input.

Backward of ``out = W @ cols`` (gradients of a matrix product)::

    dW    = sum_n dout[n] @ cols[n].T          (conv_weight_grad)
    dcols = W.T @ dout[n]   ->  dx = col2im(dcols)

The **transposed convolution** is the transpose of the convolution matrix
(see ``conv_matrix.py``): its forward is exactly the conv's input gradient
(col2im of W.T @ x), and its backward is the conv's forward. Its weight is
laid out (C_in, C_out, KH, KW), as in PyTorch, because it is the weight of
the convolution that maps C_out channels back to C_in.
"""
from __future__ import annotations

from ..backend import array_module
from .common import Cache, check_array, check_float, check_nchw, check_ndim, check_same_module
from .shapes import conv2d_output_shape, conv_transpose2d_output_shape, nonnegative_pair, positive_pair


def _window(start: int, step: int, count: int) -> slice:
    """Slice that picks ``count`` pixels start, start+step, ... (one kernel offset, all windows)."""
    return slice(start, start + step * (count - 1) + 1, step)


def _conv_params(kernel_size, stride, padding, dilation):
    return (
        positive_pair(kernel_size, "kernel_size"),
        positive_pair(stride, "stride"),
        nonnegative_pair(padding, "padding"),
        positive_pair(dilation, "dilation"),
    )


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Unfold the windows of x (N, C, H, W) into cols (N, C*KH*KW, OH*OW).

    Row (c, i, j) of ``cols[n]`` holds channel c at kernel offset (i, j) for
    every window position; ``out_size`` (OH, OW) may ask for fewer positions
    than the formula gives (used by the transposed convolution).
    """
    check_nchw(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _conv_params(kernel_size, stride, padding, dilation)
    n, c, h, w = x.shape
    oh, ow = out_size or conv2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    xp = array_module(x)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xpad[:, :, _window(i * dh, sh, oh), _window(j * dw, sw, ow)]
    return cols.reshape(n, c * kh * kw, oh * ow)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Fold cols (N, C*KH*KW, OH*OW) back into an image of ``x_shape`` (N, C, H, W).

    The adjoint of ``im2col``: every entry is added (not written) into the
    pixel it was copied from, so overlapping windows sum up.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _conv_params(kernel_size, stride, padding, dilation)
    n, c, h, w = x_shape
    oh, ow = out_size or conv2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    expected = (n, c * kh * kw, oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"cols must have shape {expected} for x_shape {tuple(x_shape)}, got {tuple(cols.shape)}")
    xp = array_module(cols)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, _window(i * dh, sh, oh), _window(j * dw, sw, ow)] += cols[:, :, i, j]
    if ph or pw:
        return xp.ascontiguousarray(xpad[:, :, ph:ph + h, pw:pw + w])
    return xpad


def conv_weight_grad(dout, cols):
    """dW = sum_n dout[n] @ cols[n].T, shared by conv2d and conv_transpose2d.

    dout (N, OC, L) is the gradient of the conv's output, cols (N, C*KH*KW, L)
    its unfolded input; returns (OC, C*KH*KW). One GEMM over the whole batch.
    """
    xp = array_module(dout)
    return xp.tensordot(dout, cols, axes=([0, 2], [0, 2]))


def _check_weight(x, w, b, x_channels_axis, name_in):
    """Validate w (4-D, float, same dtype/backend as x), its channel count and b."""
    check_nchw(x)
    check_ndim(w, 4, "w")
    check_float(w, "w")
    check_same_module("x", x, "w", w)
    if w.dtype != x.dtype:
        raise TypeError(f"w has dtype {w.dtype} but x has dtype {x.dtype}; use one dtype")
    if w.shape[x_channels_axis] != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has {x.shape[1]} channels but w of shape {tuple(w.shape)} "
            f"expects {name_in}={w.shape[x_channels_axis]}"
        )
    if b is not None:
        check_array(b, "b")
        out_channels = w.shape[1 - x_channels_axis]
        if tuple(b.shape) != (out_channels,):
            raise ValueError(f"b must have shape ({out_channels},), got {tuple(b.shape)}")
        if b.dtype != x.dtype:
            raise TypeError(f"b has dtype {b.dtype} but x has dtype {x.dtype}")


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution (cross-correlation, as PyTorch) by im2col.

    x (N, C, H, W), w (OC, C, KH, KW), b (OC,) or None -> out (N, OC, OH, OW)::

        out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*SH + i*DH, q*SW + j*DW]

    cache: x_shape, w, cols (N, C*KH*KW, OH*OW), stride, padding, dilation, has_bias.
    """
    _check_weight(x, w, b, 1, "C_in")
    oc, _, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding, dilation)
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    out = w.reshape(oc, -1) @ cols  # (N, OC, OH*OW)
    if b is not None:
        out += b[:, None]
    cache = Cache(x_shape=x.shape, w=w, cols=cols, stride=stride, padding=padding,
                  dilation=dilation, has_bias=b is not None)
    return out.reshape(n, oc, oh, ow), cache


def conv2d_backward(dout, cache):
    """Gradients of conv2d: dout (N, OC, OH, OW) -> (dx, dw, db); db is None without bias."""
    w = cache.w
    oc, c, kh, kw = w.shape
    n = dout.shape[0]
    d = dout.reshape(n, oc, -1)
    db = d.sum(axis=(0, 2)) if cache.has_bias else None
    dw = conv_weight_grad(d, cache.cols).reshape(w.shape)
    dcols = w.reshape(oc, -1).T @ d
    dx = col2im(dcols, cache.x_shape, (kh, kw), cache.stride, cache.padding, cache.dilation)
    return dx, dw, db


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1,
                             method="im2col"):
    """Transposed convolution: out = C^T x, where C is the matrix of conv2d with weight w.

    x (N, C_in, H, W), w (C_in, C_out, KH, KW), b (C_out,) or None -> out (N, C_out, OH, OW) with
    OH = (H-1)*SH - 2*PH + DH*(KH-1) + output_padding + 1 (likewise OW).

    ``method="im2col"`` (fast): out = col2im(W^T @ x), the conv's input gradient.
    ``method="matrix"`` (the lecture's view): build C with ``conv_matrix`` and multiply by C^T.
    cache: x, w, stride, padding, dilation, out_size, has_bias, method (and C for "matrix").
    """
    if method not in ("im2col", "matrix"):
        raise ValueError(f"method must be 'im2col' or 'matrix', got {method!r}")
    _check_weight(x, w, b, 0, "C_in")
    c_in, c_out, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = conv_transpose2d_output_shape((h, wd), (kh, kw), stride, padding, output_padding, dilation)
    cache = Cache(x=x, w=w, stride=stride, padding=padding, dilation=dilation,
                  out_size=(oh, ow), has_bias=b is not None, method=method)
    if method == "matrix":
        cache.C = _transposed_conv_matrix(w, (h, wd), (oh, ow), stride, padding, dilation)
        out = (x.reshape(n, -1) @ cache.C).reshape(n, c_out, oh, ow)
    else:
        dcols = w.reshape(c_in, -1).T @ x.reshape(n, c_in, h * wd)
        out = col2im(dcols, (n, c_out, oh, ow), (kh, kw), stride, padding, dilation, out_size=(h, wd))
    if b is not None:
        out += b[:, None, None]
    return out, cache


def conv_transpose2d_backward(dout, cache):
    """Gradients of conv_transpose2d: dout (N, C_out, OH, OW) -> (dx, dw, db).

    dx is conv2d's forward applied to dout (C x = (C^T)^T x); dw uses the shared
    ``conv_weight_grad`` with the roles of input and output swapped.
    """
    x, w = cache.x, cache.w
    c_in, _, kh, kw = w.shape
    n, _, h, wd = x.shape
    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    cols = im2col(dout, (kh, kw), cache.stride, cache.padding, cache.dilation, out_size=(h, wd))
    dw = conv_weight_grad(x.reshape(n, c_in, -1), cols).reshape(w.shape)
    if cache.method == "matrix":
        dx = (dout.reshape(n, -1) @ cache.C.T).reshape(x.shape)
    else:
        dx = (w.reshape(c_in, -1) @ cols).reshape(x.shape)
    return dx, dw, db


def _transposed_conv_matrix(w, in_size, out_size, stride, padding, dilation):
    """C of the conv that maps an ``out_size`` image back to ``in_size``: (C_in*H*W, C_out*OH*OW).

    With output_padding >= stride the conv would see a few more positions than
    the transposed conv's input has; only the first H x W rows are kept.
    """
    from .conv_matrix import conv_matrix

    c_in, c_out = w.shape[:2]
    full = conv_matrix(w, out_size, stride, padding, dilation)
    fh, fw = conv2d_output_shape(out_size, w.shape[2:], stride, padding, dilation)
    h, wd = in_size
    full = full.reshape(c_in, fh, fw, c_out * out_size[0] * out_size[1])[:, :h, :wd]
    return full.reshape(c_in * h * wd, -1)
