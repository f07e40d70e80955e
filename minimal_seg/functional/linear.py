"""Fully connected (linear) layer and Flatten: the classifier head of lecture 001.

Notation::

    N       batch size               D_in, D_out   input / output features
    x       (N, D_in)                w             (D_out, D_in), as PyTorch
    b       (D_out,) or None         out           (N, D_out)

The forward pass is one matrix product::

    out[n, o] = b[o] + sum_d x[n, d] * w[o, d]        i.e.   out = x @ w.T + b

and the backward pass is the pair of gradients of a matrix product::

    dx = dout @ w          (N, D_out) @ (D_out, D_in)  -> (N, D_in)
    dw = dout.T @ x        (D_out, N) @ (N, D_in)      -> (D_out, D_in)
    db = sum_n dout[n]                                  -> (D_out,)

A fully connected layer needs a fixed input size D_in. In front of it,
``flatten`` turns a feature map (N, C, H, W) into rows (N, C*H*W) in
row-major order, so feature (c, h, w) lands in column (c*H + h)*W + w. That
order is what lets ``w.reshape(D_out, C, H, W)`` become the weight of an
H x W convolution that computes exactly the same numbers (see
``minimal_seg.classical.sliding_window.linear_to_conv``).
"""
from __future__ import annotations

import math

from .common import Cache, check_array, check_dout, check_float, check_ndim, check_same_module


def _check_linear(x, w, b):
    """Validate x (N, D_in), w (D_out, D_in), b (D_out,) or None: one dtype, one backend."""
    check_ndim(x, 2, "x", "N, D_in")
    check_float(x, "x")
    check_ndim(w, 2, "w", "D_out, D_in")
    check_same_module("x", x, "w", w)
    if w.dtype != x.dtype:
        raise TypeError(f"w has dtype {w.dtype} but x has dtype {x.dtype}; use one dtype")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"feature mismatch: x has D_in={x.shape[1]} features but w of shape "
                         f"{tuple(w.shape)} expects D_in={w.shape[1]}")
    if b is not None:
        check_array(b, "b")
        if tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"b must have shape ({w.shape[0]},), got {tuple(b.shape)}")
        if b.dtype != x.dtype:
            raise TypeError(f"b has dtype {b.dtype} but x has dtype {x.dtype}")


def linear_forward(x, w, b=None):
    """Fully connected layer, PyTorch's ``F.linear``: out = x @ w.T + b.

    x (N, D_in), w (D_out, D_in), b (D_out,) or None -> out (N, D_out).
    cache: x, w, has_bias.
    """
    _check_linear(x, w, b)
    out = x @ w.T
    if b is not None:
        out = out + b
    return out, Cache(x=x, w=w, has_bias=b is not None)


def linear_backward(dout, cache):
    """Gradients of out = x @ w.T + b: dout (N, D_out) -> (dx, dw, db); db is None without bias."""
    x, w = cache.x, cache.w
    check_dout(dout, (x.shape[0], w.shape[0]))
    dx = dout @ w
    dw = dout.T @ x
    db = dout.sum(axis=0) if cache.has_bias else None
    return dx, dw, db


def flatten_forward(x):
    """Flatten every axis after the first: x (N, C, H, W) -> out (N, C*H*W), row-major.

    A reshape, returned as a copy so that the output never aliases the input
    (a view would change whenever x is changed, e.g. by a gradient check).
    cache: ``x_shape``.
    """
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one more, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1).copy(), Cache(x_shape=tuple(x.shape))


def flatten_backward(dout, cache):
    """The gradient flows back through the same reshape: dout (N, C*H*W) -> dx (N, C, H, W)."""
    n, rest = cache.x_shape[0], cache.x_shape[1:]
    check_dout(dout, (n, int(math.prod(rest))))
    return dout.reshape(cache.x_shape)
