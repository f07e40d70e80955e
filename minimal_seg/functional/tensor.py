"""Ops that only move numbers around: channel concatenation and pad/crop.

U-Net's skip connection concatenates encoder and decoder features along the
channel axis; its backward splits the gradient at the same place::

    out = concat([a, b], axis=1)   ->   da = dout[:, :Ca],  db = dout[:, Ca:]

``pad_to_multiple`` pads the bottom/right of an image with zeros so that a
network that halves the size ``depth`` times sees a size divisible by
2**depth; the model crops its output back. The backward of a zero pad is the
crop, and the backward of a crop is the zero pad.
"""
from __future__ import annotations

from ..backend import array_module
from .common import Cache, check_array, check_axis, check_dout, check_int_at_least, check_nchw, check_ndim
from .shapes import positive_pair


def concat_forward(xs, axis: int = 1):
    """Concatenate arrays (N, C_i, H, W) along ``axis`` -> (N, sum C_i, H, W). cache: the sizes."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"xs must be a non-empty list of arrays, got {type(xs).__name__}")
    for i, x in enumerate(xs):
        check_array(x, f"xs[{i}]")
    axis = check_axis(axis, xs[0].ndim)
    out = array_module(xs[0]).concatenate(xs, axis=axis)
    return out, Cache(sizes=[x.shape[axis] for x in xs], axis=axis, out_shape=out.shape)


def concat_backward(dout, cache):
    """Split dout back into the pieces: a list of gradients, one per concatenated input."""
    check_dout(dout, cache.out_shape)
    xp = array_module(dout)
    bounds = [sum(cache.sizes[:i + 1]) for i in range(len(cache.sizes) - 1)]
    return xp.split(dout, bounds, axis=cache.axis)


def pad_to_multiple_forward(x, multiple: int):
    """Zero-pad x (N, C, H, W) at the bottom/right to (N, C, H', W') with H', W' multiples of ``multiple``.

    cache: the original size (H, W).
    """
    check_nchw(x)
    multiple = check_int_at_least(multiple, "multiple", 1)
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    xp = array_module(x)
    out = xp.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw))) if ph or pw else x
    return out, Cache(size=(h, w), out_shape=out.shape)


def pad_to_multiple_backward(dout, cache):
    """The gradient of a zero pad is the crop back to the original size."""
    check_dout(dout, cache.out_shape)
    return crop(dout, cache.size)


def crop(x, size):
    """Top-left (H, W) corner of x (N, C, H', W'); a view when nothing is cut, else a contiguous copy."""
    check_ndim(x, 4, "x", "N, C, H, W")
    h, w = positive_pair(size, "size")
    if h > x.shape[2] or w > x.shape[3]:
        raise ValueError(f"size {(h, w)} is larger than x's (H, W) = {tuple(x.shape[2:])}; crop only cuts")
    if x.shape[2:] == (h, w):
        return x
    return array_module(x).ascontiguousarray(x[:, :, :h, :w])


def uncrop(dout, full_size):
    """Gradient of ``crop``: dout (N, C, H, W) placed in the top-left of zeros (N, C, H', W')."""
    check_ndim(dout, 4, "dout", "N, C, H, W")
    fh, fw = positive_pair(full_size, "full_size")
    n, c, h, w = dout.shape
    if h > fh or w > fw:
        raise ValueError(f"full_size {(fh, fw)} is smaller than dout's (H, W) = {(h, w)}")
    if (h, w) == (fh, fw):
        return dout
    xp = array_module(dout)
    out = xp.zeros((n, c, fh, fw), dtype=dout.dtype)
    out[:, :, :h, :w] = dout
    return out
