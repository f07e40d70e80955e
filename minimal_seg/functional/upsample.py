"""Upsampling without weights: nearest, bed of nails, bilinear.

Notation: x (N, C, H, W), out (N, C, OH, OW); an integer scale (SH, SW).

**Nearest-neighbour unpooling** copies every value into an SH x SW block::

    out[n, c, p, q] = x[n, c, p // SH, q // SW]          (OH = H*SH, OW = W*SW)

**Bed of nails** puts every value in the top-left corner of its block and
zeros everywhere else::

    out[n, c, p*SH, q*SW] = x[n, c, p, q]

**Bilinear upsampling** (PyTorch's ``align_corners=False``) is separable:
linear interpolation along H, then along W. Output pixel o of an axis reads
the input at the real coordinate ::

    src = max((o + 0.5) * r - 0.5, 0),    i0 = floor(src),  i1 = min(i0 + 1, in - 1)
    out[o] = (1 - t) * x[i0] + t * x[i1],  t = src - i0

with r = in / out when a ``size`` is given, or r = 1 / scale when a
``scale`` is given (then out = floor(in * scale), and r is *not* in / out:
PyTorch uses the scale you gave). Writing the weights of one axis as a small
matrix A (out x in), the whole operation is two matrix products::

    out = A_h @ x @ A_w.T        and its gradient     dx = A_h.T @ dout @ A_w

All three are linear maps, and each backward is the transpose of its forward.
"""
from __future__ import annotations

import numbers

from ..backend import array_module, get_xp
from .common import Cache, check_dout, check_int_at_least, check_nchw, check_number
from .shapes import positive_pair, upsample_output_size


# ----------------------------------------------------------------------------------------------
# Nearest-neighbour and bed-of-nails unpooling
# ----------------------------------------------------------------------------------------------

def unpool_nearest_forward(x, scale):
    """Nearest-neighbour unpooling: x (N, C, H, W) -> out (N, C, H*SH, W*SW).

    scale: int or (SH, SW) pair of ints >= 1. Each value fills an SH x SW block,
    the same as ``F.interpolate(x, scale_factor=scale, mode="nearest")``.

    cache: x_shape, scale (SH, SW).
    """
    check_nchw(x)
    sh, sw = positive_pair(scale, "scale")
    n, c, h, w = x.shape
    xp = array_module(x)
    blocks = xp.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
    out = blocks.reshape(n, c, h * sh, w * sw)  # reshape of a broadcast view copies
    return out, Cache(x_shape=x.shape, scale=(sh, sw))


def unpool_nearest_backward(dout, cache):
    """Gradient of nearest unpooling: each dx pixel sums the dout of its SH x SW block."""
    n, c, h, w = cache.x_shape
    sh, sw = cache.scale
    check_dout(dout, (n, c, h * sh, w * sw))
    return dout.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5))


def unpool_bed_of_nails_forward(x, scale):
    """Bed-of-nails unpooling: x (N, C, H, W) -> out (N, C, H*SH, W*SW).

    scale: int or (SH, SW) pair of ints >= 1. out is zero except
    out[:, :, p*SH, q*SW] = x[:, :, p, q] (the top-left pixel of each block).

    cache: x_shape, scale (SH, SW).
    """
    check_nchw(x)
    sh, sw = positive_pair(scale, "scale")
    n, c, h, w = x.shape
    xp = array_module(x)
    out = xp.zeros((n, c, h * sh, w * sw), dtype=x.dtype)
    out[:, :, ::sh, ::sw] = x
    return out, Cache(x_shape=x.shape, scale=(sh, sw))


def unpool_bed_of_nails_backward(dout, cache):
    """Gradient of bed of nails: dx = the top-left pixel of every block of dout."""
    n, c, h, w = cache.x_shape
    sh, sw = cache.scale
    check_dout(dout, (n, c, h * sh, w * sw))
    xp = array_module(dout)
    return xp.ascontiguousarray(dout[:, :, ::sh, ::sw])


# ----------------------------------------------------------------------------------------------
# Bilinear upsampling (align_corners=False), as two small matrices
# ----------------------------------------------------------------------------------------------

def _scale_pair(scale):
    """A positive number or a pair of them -> (scale_h, scale_w) floats, else raise."""
    def is_number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    if is_number(scale):
        scale = (scale, scale)
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2 and all(is_number(v) for v in scale)):
        raise TypeError(f"scale must be a positive number or a pair of them (h, w), got {scale!r}")
    if not min(scale) > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    return float(scale[0]), float(scale[1])


def bilinear_plan(input_size, size=None, scale=None):
    """Output size and source-index ratio r of each axis: ((OH, OW), (RH, RW)).

    Exactly one of ``size`` (int or (OH, OW)) and ``scale`` (number or pair)
    must be given. With size, r = in / out; with scale, out = floor(in * scale)
    and r = 1 / scale (PyTorch's rule when ``scale_factor`` is given).
    """
    h, w = input_size
    if (size is None) == (scale is None):
        raise ValueError(f"give exactly one of size and scale, got size={size!r}, scale={scale!r}")
    if size is not None:
        oh, ow = positive_pair(size, "size")
        return (oh, ow), (h / oh, w / ow)
    sh, sw = _scale_pair(scale)
    oh, ow = upsample_output_size(h, sh), upsample_output_size(w, sw)
    if min(oh, ow) < 1:
        raise ValueError(f"scale {scale!r} turns the input {(h, w)} into an empty output {(oh, ow)}")
    return (oh, ow), (1.0 / sh, 1.0 / sw)


def linear_interpolation_matrix(in_size, out_size, ratio=None, xp=None, dtype="float64"):
    """The (out_size, in_size) matrix A of 1-D linear interpolation (align_corners=False).

    Row o holds the two weights of output pixel o: 1 - t at column i0 and t
    at column i1 (they add up when i0 = i1 at the border), with
    src = max((o + 0.5) * ratio - 0.5, 0), i0 = floor(src), i1 = min(i0 + 1, in - 1),
    t = src - i0. ``ratio`` defaults to in_size / out_size. Built with
    comparisons against a column index, so it needs no scatter. It is dense
    (out_size * in_size numbers, mostly zero): cheap at the image sizes of
    this course, and the clearest picture of interpolation as a linear map.
    """
    in_size = check_int_at_least(in_size, "in_size", 1)
    out_size = check_int_at_least(out_size, "out_size", 1)
    ratio = in_size / out_size if ratio is None else check_number(ratio, "ratio", 0, strict=True)
    xp = get_xp() if xp is None else xp
    dst = xp.arange(out_size, dtype=xp.float64)
    src = xp.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    i0 = xp.minimum(xp.floor(src).astype(xp.int64), in_size - 1)
    i1 = xp.minimum(i0 + 1, in_size - 1)
    t = src - i0
    col = xp.arange(in_size, dtype=xp.int64)[None, :]
    a = (1.0 - t)[:, None] * (col == i0[:, None]) + t[:, None] * (col == i1[:, None])
    return a.astype(dtype)


def upsample_bilinear_forward(x, size=None, scale=None):
    """Bilinear resize of x (N, C, H, W) -> out (N, C, OH, OW), as
    ``F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=False)``.

    size: int or (OH, OW); scale: positive number or (SH, SW) pair (may be
    fractional, and < 1 shrinks); give exactly one. ``out = A_h @ x @ A_w.T``
    with the interpolation matrices A_h (OH, H) and A_w (OW, W).

    cache: A_h, A_w (in x's dtype), x_shape.
    """
    check_nchw(x)
    n, c, h, w = x.shape
    (oh, ow), (rh, rw) = bilinear_plan((h, w), size, scale)
    xp = array_module(x)
    a_h = linear_interpolation_matrix(h, oh, rh, xp, x.dtype)
    a_w = linear_interpolation_matrix(w, ow, rw, xp, x.dtype)
    out = a_h @ x @ a_w.T  # (OH, H) @ (N, C, H, W) @ (W, OW), broadcast over N, C
    return out, Cache(A_h=a_h, A_w=a_w, x_shape=x.shape)


def upsample_bilinear_backward(dout, cache):
    """Gradient of bilinear upsampling: dx = A_h.T @ dout @ A_w, dout (N, C, OH, OW) -> dx (N, C, H, W)."""
    n, c = cache.x_shape[:2]
    check_dout(dout, (n, c, cache.A_h.shape[0], cache.A_w.shape[0]))
    dout = dout.astype(cache.A_h.dtype, copy=False)
    return cache.A_h.T @ dout @ cache.A_w


def bilinear_kernel(kernel_size, dtype="float64"):
    """The (KH, KW) bilinear-upsampling filter that initialises FCN's transposed convs.

    Per axis (FCN paper): factor = (k + 1) // 2, center = factor - 1 if k is odd
    else factor - 0.5, f[i] = 1 - |i - center| / factor; the 2-D kernel is
    w[i, j] = f_h[i] * f_w[j]. Created on the current backend.

    Upsampling by an integer s: a transposed conv with stride s and

        kernel  K = 2s - s % 2      (2s for even s, 2s - 1 for odd s)
        padding P = s // 2          (s/2 for even s, (s - 1)/2 for odd s)

    and this weight gives an s*H x s*W output, equal to bilinear interpolation
    (align_corners=False) away from a border of s // 2 pixels. Why: bilinear
    interpolation gives output o the weight 1 - |(o + 1/2)/s - 1/2 - i| / s of
    input i, a tent of half-width s centred at o - s*i = (s - 1)/2; the
    transposed conv gives it the weight f[o + P - s*i], a tent centred at
    o - s*i = center - P. So factor = s (K = 2s or 2s - 1) and P = center - (s - 1)/2:
    with K = 2s, P = s/2, an integer only for even s; with K = 2s - 1, P = (s - 1)/2,
    an integer only for odd s. The output size is (H - 1)*s - 2P + K = s*H either way.
    (Kernel 2s with padding s // 2 for odd s, e.g. s = 3, gives 3H + 1 and a shifted grid.)
    """
    kh, kw = positive_pair(kernel_size, "kernel_size")
    xp = get_xp()

    def tent(k):
        factor = (k + 1) // 2
        center = factor - 1 if k % 2 == 1 else factor - 0.5
        return 1.0 - xp.abs(xp.arange(k, dtype=xp.float64) - center) / factor

    return (tent(kh)[:, None] * tent(kw)[None, :]).astype(dtype)
