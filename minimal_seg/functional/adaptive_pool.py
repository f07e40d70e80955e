"""Adaptive average pooling: average over a grid of OH x OW bins, whatever the input size.

Notation: x (N, C, H, W), out (N, C, OH, OW), where (OH, OW) is the number of
bins asked for, not computed from a kernel and a stride. PSPNet's pyramid
pooling uses it to summarise a feature map at 1x1, 2x2, 3x3 and 6x6, and
DeepLab's image-level branch is its 1x1 case (global average pooling).

**Bins** (PyTorch's rule). Output row i of OH averages the input rows ::

    start_i = floor(i * H / OH),      end_i = ceil((i + 1) * H / OH)      (rows start_i .. end_i - 1)

(likewise along W). When OH divides H the bins tile the input exactly;
otherwise neighbouring bins overlap by a row (H = 5, OH = 3: rows 0-1, 1-3,
3-4), and when OH > H some input rows feed several bins (H = 5, OH = 6).

**The matrix view.** Averaging along one axis is a small matrix P (OH, H)
whose row i holds 1 / (end_i - start_i) on the columns of bin i and zeros
elsewhere. Pooling is separable, so the whole operation is two matrix
products, exactly like bilinear upsampling in ``upsample.py``::

    out = P_h @ x @ P_w.T                (OH, H) @ (N, C, H, W) @ (W, OW)

It is linear in x, so its gradient is the transpose::

    dx = P_h.T @ dout @ P_w              (H, OH) @ (N, C, OH, OW) @ (OW, W)

An input pixel that belongs to two overlapping bins collects the gradient
of both (the matrix product adds them up).
"""
from __future__ import annotations

from ..backend import array_module, get_xp
from .common import Cache, check_dout, check_int_at_least, check_nchw
from .shapes import positive_pair


def adaptive_pool_matrix(in_size: int, out_size: int, xp=None, dtype="float64"):
    """The (out_size, in_size) averaging matrix P of one axis.

    Row i is 1 / (end_i - start_i) on columns start_i .. end_i - 1 with
    start_i = floor(i * in_size / out_size), end_i = ceil((i + 1) * in_size / out_size),
    zero elsewhere; every row sums to one. Built by comparing a column index
    with the bin bounds, so it needs no loop and no scatter.
    """
    in_size = check_int_at_least(in_size, "in_size", 1)
    out_size = check_int_at_least(out_size, "out_size", 1)
    xp = get_xp() if xp is None else xp
    i = xp.arange(out_size, dtype=xp.int64)
    start = (i * in_size) // out_size
    end = -((-(i + 1) * in_size) // out_size)  # ceil by integer floor division: no float rounding
    col = xp.arange(in_size, dtype=xp.int64)[None, :]
    inside = (col >= start[:, None]) & (col < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling of x (N, C, H, W) -> out (N, C, OH, OW), as
    ``torch.nn.functional.adaptive_avg_pool2d(x, output_size)``.

    output_size: int or (OH, OW) pair of ints >= 1 (may be larger than the
    input, and need not divide it). ``out = P_h @ x @ P_w.T`` with the
    averaging matrices P_h (OH, H) and P_w (OW, W) of ``adaptive_pool_matrix``.

    cache: P_h, P_w (in x's dtype), x_shape.
    """
    check_nchw(x)
    oh, ow = positive_pair(output_size, "output_size")
    n, c, h, w = x.shape
    xp = array_module(x)
    p_h = adaptive_pool_matrix(h, oh, xp, x.dtype)
    p_w = adaptive_pool_matrix(w, ow, xp, x.dtype)
    out = p_h @ x @ p_w.T  # broadcast over N, C
    return out, Cache(P_h=p_h, P_w=p_w, x_shape=x.shape)


def adaptive_avg_pool2d_backward(dout, cache):
    """Gradient of adaptive average pooling: dx = P_h.T @ dout @ P_w, dout (N, C, OH, OW) -> dx (N, C, H, W)."""
    check_dout(dout, tuple(cache.x_shape[:2]) + (cache.P_h.shape[0], cache.P_w.shape[0]))
    dout = dout.astype(cache.P_h.dtype, copy=False)
    return cache.P_h.T @ dout @ cache.P_w
