"""Convolution and transposed convolution, by im2col and one matrix product.

Notation (as in ``im2col.py``): x (N, C, H, W), w (OC, C, KH, KW), b (OC,),
out (N, OC, OH, OW); L = OH*OW windows per image, K = C*KH*KW values per
window. Output sizes come from ``shapes.py``.

**conv2d.** With cols = im2col(x) (K, N*L) and the weight flattened to
W (OC, K), the whole batch is one matrix product::

    out = W @ cols + b                      (OC, N*L), then -> (N, OC, OH, OW)

Its backward is the gradient of a matrix product, with dout laid out as
out, an (OC, N*L) matrix::

    dW = dout @ cols.T                      (conv_weight_grad)
    dx = col2im(W.T @ dout)                 (col2im is im2col's transpose)
    db = dout summed over N, OH, OW

**conv_transpose2d** multiplies by C^T, the transpose of the convolution
matrix C of w (``conv_matrix.py``). Its weight is (C_in, C_out, KH, KW), the
weight of the convolution that maps C_out channels back to C_in, flattened
to W (C_in, C_out*KH*KW). Its forward is that convolution's input gradient,
and its backward that convolution's forward::

    out   = col2im(W.T @ x)                 x as a (C_in, N*H*W) matrix
    dcols = im2col(dout):   dx = W @ dcols,   dW = x @ dcols.T

**Methods**, chosen by name, the same numbers by three routes:

- ``"reference"``: the formulas above for the whole batch at once (this file);
- ``"fast"`` (the default): chunks of the batch within a memory budget,
  shortcuts for stride 1 and 1x1 kernels, and the CUDA kernels on CuPy
  (``_conv_fast.py``), tested equal to the reference;
- ``"matrix"``: out = C x with the dense matrix (``conv_matrix.py``), for
  small inputs;
- ``"winograd"`` (conv2d, 3x3 kernels, stride 1, no dilation): Winograd's
  F(2x2, 3x3), 16 multiplications per 2x2 output tile instead of 36
  (``_winograd.py``).

The options (an int or an (h, w) pair each) are checked and made pairs once,
by ``conv2d_forward`` and ``conv_transpose2d_forward``. The cache keeps x, w,
the pairs, out_size, has_bias and the method (plus what the method keeps);
the backward runs that method's backward.
"""
from __future__ import annotations

from ..backend import array_module
from . import _conv_fast, _winograd, conv_matrix
from ._im2col_budget import get_im2col_budget, set_im2col_budget, use_im2col_budget  # noqa: F401 (re-exported)
from .common import Cache, check_array, check_dout, check_float, check_nchw, check_ndim, check_same_module
from .im2col import batch_first, channels_first, col2im, conv_options, conv_weight_grad, im2col
from .shapes import conv2d_output_shape, conv_transpose2d_output_shape, nonnegative_pair

# The page of this module: the four ops, then the memory knobs of method="fast" (im2col, col2im and
# conv_weight_grad, imported above, are documented with im2col.py).
__all__ = ["conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
           "set_im2col_budget", "use_im2col_budget", "get_im2col_budget"]


# ---- conv2d ---------------------------------------------------------------------------------


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, method="fast"):
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W) -> out (N, OC, OH, OW).

    w (OC, C, KH, KW), b (OC,) or None; stride, padding, dilation: an int or
    an (h, w) pair; method: ``"fast"`` (default), ``"reference"``, ``"matrix"`` or
    ``"winograd"`` (3x3, stride 1, dilation 1 only)::

        out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*SH + i*DH, q*SW + j*DW]
    """
    forward = _method(CONV2D_METHODS, method)[0]
    _check_weight(x, w, b, 1, "C_in")
    opts = conv_options(w.shape[2:], stride, padding, dilation)
    cache = _new_cache(x, w, b, opts, conv2d_output_shape(x.shape[2:], *opts), method)
    return forward(x, w, b, cache), cache


def conv2d_backward(dout, cache):
    """Gradients of conv2d: dout (N, OC, OH, OW) -> (dx, dw, db); db is None without bias."""
    return _backward(CONV2D_METHODS, dout, cache, out_channels=cache.w.shape[0])


def _conv2d_reference(x, w, b, cache):
    """out = W @ cols + b with cols = im2col(x); the cache keeps cols (K, N*L) for the backward."""
    n, oc = x.shape[0], w.shape[0]
    cache.cols = im2col(x, w.shape[2:], cache.stride, cache.padding, cache.dilation)
    out = array_module(x).empty((n, oc) + tuple(cache.out_size), dtype=x.dtype)
    batch_first(w.reshape(oc, -1) @ cache.cols, out, b)  # (OC, N*L) -> (N, OC, OH, OW)
    return out


def _conv2d_reference_backward(dout, cache):
    """dW = dout @ cols.T and dx = col2im(W.T @ dout), dout as an (OC, N*L) matrix."""
    x, w = cache.x, cache.w
    d = channels_first(dout)
    dw = conv_weight_grad(d, cache.cols).reshape(w.shape)
    dx = col2im(w.reshape(w.shape[0], -1).T @ d, x.shape, w.shape[2:], cache.stride, cache.padding, cache.dilation)
    return dx, dw


# ---- conv_transpose2d -----------------------------------------------------------------------


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, method="fast"):
    """Transposed convolution, out = C^T x: x (N, C_in, H, W) -> out (N, C_out, OH, OW).

    w (C_in, C_out, KH, KW), b (C_out,) or None; method: ``"fast"`` (default),
    ``"reference"`` or ``"matrix"``. Output size, with output_padding OP < max(S, D)::

        OH = (H-1)*SH - 2*PH + DH*(KH-1) + OPH + 1          (likewise OW)
    """
    forward = _method(CONV_TRANSPOSE2D_METHODS, method)[0]
    _check_weight(x, w, b, 0, "C_in")
    opts = conv_options(w.shape[2:], stride, padding, dilation)
    output_padding = nonnegative_pair(output_padding, "output_padding")
    out_size = conv_transpose2d_output_shape(x.shape[2:], opts.kernel_size, opts.stride, opts.padding,
                                             output_padding, opts.dilation)
    cache = _new_cache(x, w, b, opts, out_size, method, output_padding=output_padding)
    return forward(x, w, b, cache), cache


def conv_transpose2d_backward(dout, cache):
    """Gradients of conv_transpose2d: dout (N, C_out, OH, OW) -> (dx, dw, db); db is None without bias."""
    return _backward(CONV_TRANSPOSE2D_METHODS, dout, cache, out_channels=cache.w.shape[1])


def _conv_transpose2d_reference(x, w, b, cache):
    """out = col2im(W.T @ x) + b: the input gradient of the conv with weight w."""
    n, c_in, h, wd = x.shape
    dcols = w.reshape(c_in, -1).T @ channels_first(x)  # (C_out*KH*KW, N*H*W): the columns of that conv
    out = col2im(dcols, (n, w.shape[1]) + tuple(cache.out_size), w.shape[2:], cache.stride, cache.padding,
                 cache.dilation, out_size=(h, wd))
    if b is not None:
        out += b[:, None, None]
    return out


def _conv_transpose2d_reference_backward(dout, cache):
    """With dcols = im2col(dout) (C_out*KH*KW, N*H*W): dx = W @ dcols, dW = x @ dcols.T."""
    x, w = cache.x, cache.w
    dcols = im2col(dout, w.shape[2:], cache.stride, cache.padding, cache.dilation, out_size=x.shape[2:])
    dx = array_module(x).empty(x.shape, dtype=x.dtype)
    batch_first(w.reshape(w.shape[0], -1) @ dcols, dx)
    return dx, conv_weight_grad(channels_first(x), dcols).reshape(w.shape)


# ---- the methods, by name -----------------------------------------------------------------
#
# Each entry is (forward(x, w, b, cache) -> out, backward(dout, cache) -> (dx, dw)). A method
# gets the options as pairs and the cache started by _new_cache, and may add to the cache what
# its backward needs. A new method is one more entry.

CONV2D_METHODS = {
    "reference": (_conv2d_reference, _conv2d_reference_backward),
    "fast": (_conv_fast.conv2d_forward, _conv_fast.conv2d_backward),
    "matrix": (conv_matrix.conv2d_by_matrix, conv_matrix.conv2d_by_matrix_backward),
    "winograd": (_winograd.conv2d_forward, _winograd.conv2d_backward),
}
CONV_TRANSPOSE2D_METHODS = {
    "reference": (_conv_transpose2d_reference, _conv_transpose2d_reference_backward),
    "fast": (_conv_fast.conv_transpose2d_forward, _conv_fast.conv_transpose2d_backward),
    "matrix": (conv_matrix.conv_transpose2d_by_matrix, conv_matrix.conv_transpose2d_by_matrix_backward),
}


def _method(methods, name):
    """The (forward, backward) pair of method ``name``, or a ValueError listing the methods."""
    if name not in methods:
        raise ValueError(f"method must be one of {', '.join(map(repr, methods))}; got {name!r}")
    return methods[name]


def _new_cache(x, w, b, opts, out_size, method, **extra):
    """The cache every method starts from: x, w, the option pairs, out_size (OH, OW), has_bias, method."""
    return Cache(x=x, w=w, stride=opts.stride, padding=opts.padding, dilation=opts.dilation,
                 out_size=tuple(out_size), has_bias=b is not None, method=method, **extra)


def _backward(methods, dout, cache, out_channels):
    """(dx, dw, db): dout checked against the forward's output, (dx, dw) by the cache's method, db here."""
    check_dout(dout, (cache.x.shape[0], out_channels) + cache.out_size)
    dx, dw = methods[cache.method][1](dout, cache)
    return dx, dw, dout.sum(axis=(0, 2, 3)) if cache.has_bias else None


def _check_weight(x, w, b, x_channels_axis, name_in):
    """Validate w (4-D, float, same dtype/backend as x), its channel count and b."""
    check_nchw(x)
    check_ndim(w, 4, "w")
    check_float(w, "w")
    check_same_module("x", x, "w", w)
    if w.dtype != x.dtype:
        raise TypeError(f"w has dtype {w.dtype} but x has dtype {x.dtype}; use one dtype")
    if 0 in w.shape:
        raise ValueError(f"w must have at least one channel and kernel pixel on every axis, got shape {tuple(w.shape)}")
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
