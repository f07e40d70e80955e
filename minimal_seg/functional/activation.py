"""Activations: ReLU, sigmoid, softmax (and log-softmax for the losses).

Each is a forward/backward pair on an array of any shape::

    out, cache = relu_forward(x)        dx = relu_backward(dout, cache)

The output has the shape and dtype of ``x``; ``dx`` has the shape of ``x``.

Numerics. ``exp`` overflows for large arguments (``exp(89)`` is already
``inf`` in float32), so

* sigmoid only ever evaluates ``exp(-|x|)``, which lies in (0, 1]::

      sigmoid(x) = 1 / (1 + e^-x)    = 1 / (1 + exp(-|x|))          for x >= 0
                 = e^x / (1 + e^x)   = exp(-|x|) / (1 + exp(-|x|))  for x <  0

* softmax subtracts the maximum along the class axis first (the result is
  unchanged, since the factor e^-max cancels), so every ``exp`` is <= 1 and
  the largest one equals 1: the denominator is never 0 and never ``inf``.

On a GPU, ReLU's forward (out and mask) and backward each run as one CUDA
kernel (``kernels/elementwise.py``), tested equal to the code here.
"""
from __future__ import annotations

from ..backend import array_module
from . import kernels
from .common import Cache, check_axis, check_dout, check_float
from .kernels import elementwise


def relu_forward(x):
    """ReLU: out = max(x, 0), elementwise.

    x      any shape, float
    out    same shape and dtype
    cache  ``mask``: the boolean array x > 0
    """
    check_float(x, "x")
    if kernels.kernels_enabled(x):  # the CUDA kernel: out and mask in one launch (kernels/elementwise.py)
        out, mask = elementwise.relu_forward(x)
        return out, Cache(mask=mask)
    xp = array_module(x)
    return xp.maximum(x, 0), Cache(mask=x > 0)


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (at x == 0 we take the subgradient 0, as PyTorch)."""
    check_dout(dout, cache.mask.shape)
    if kernels.kernels_enabled(dout):  # the CUDA kernel (kernels/elementwise.py)
        return elementwise.relu_backward(dout, cache.mask)
    return dout * cache.mask


def sigmoid_forward(x):
    """Logistic sigmoid: out = 1 / (1 + exp(-x)), in the overflow-free form above.

    x      any shape, float
    out    same shape and dtype, values in [0, 1]
    cache  ``out``: the derivative is out * (1 - out), so the output is all we keep
    """
    check_float(x, "x")
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: no overflow for any x
    out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return out, Cache(out=out)


def sigmoid_backward(dout, cache):
    """dx = dout * sigmoid(x) * (1 - sigmoid(x))."""
    s = cache.out
    check_dout(dout, s.shape)
    return dout * s * (1 - s)


def softmax_forward(x, axis: int = 1):
    """Softmax along ``axis`` (the class axis K of NCHW logits by default).

        out_k = exp(x_k - m) / sum_j exp(x_j - m),     m = max_j x_j

    x      any shape, float; ``axis`` indexes the classes
    out    same shape and dtype; entries along ``axis`` are >= 0 and sum to 1
    cache  ``out`` (the probabilities p) and ``axis``
    """
    check_float(x, "x")
    axis = check_axis(axis, x.ndim)
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)
    return out, Cache(out=out, axis=axis)


def softmax_backward(dout, cache):
    """Gradient through the softmax, without building the K x K Jacobian.

    The Jacobian is dp_k/dx_j = p_k (delta_kj - p_j), so for an upstream
    gradient ``dout`` (= dL/dp)::

        dx_j = sum_k dout_k p_k (delta_kj - p_j) = p_j (dout_j - sum_k dout_k p_k)

    The losses (Dice, Jaccard) call this too: they compute dL/dp and pass it here.
    """
    p, axis = cache.out, cache.axis
    check_dout(dout, p.shape)
    return p * (dout - (dout * p).sum(axis=axis, keepdims=True))


def log_softmax(x, axis: int = 1):
    """log softmax(x) along ``axis`` with the log-sum-exp trick (forward only).

        log p_k = (x_k - m) - log sum_j exp(x_j - m),     m = max_j x_j

    Finite for any finite ``x``, even where p_k itself underflows to 0; the
    cross-entropy uses it so that -log p never becomes -log 0 = inf.
    """
    check_float(x, "x")
    axis = check_axis(axis, x.ndim)
    xp = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
