"""Ops that only move numbers around: channel concatenation, zero padding and cropping.

U-Net's skip connection concatenates encoder and decoder features along the
channel axis; its backward splits the gradient at the same place::

    out = concat([a, b], axis=1)   ->   da = dout[:, :Ca],  db = dout[:, Ca:]

A network that halves the size ``depth`` times needs H and W divisible by
2**depth. ``pad_to_multiple`` zero-pads the bottom/right of the input up to
the next multiple, and ``crop`` cuts the logits back to the input's size
(``models.Model.forward`` does both, once, around every model's body)::

    x (H, W) ─ pad to (H', W') ─ body ─ crop to (H, W) ─ logits

Each is the other's backward: the gradient of a zero pad is the crop of
dout back to (H, W) (the padded zeros depend on nothing), and the gradient
of a crop is dout put back in the top-left of zeros (H', W') (the cut-off
pixels were not used).
"""
from __future__ import annotations

from ..backend import array_module
from .common import Cache, check_array, check_axis, check_dout, check_int_at_least, check_nchw
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


def _top_left(x, size):
    """x (N, C, H', W') cut to its top-left (N, C, H, W); x itself when nothing is cut, else a contiguous copy."""
    h, w = size
    if tuple(x.shape[2:]) == (h, w):
        return x
    return array_module(x).ascontiguousarray(x[:, :, :h, :w])


def _zeros_bottom_right(x, size):
    """x (N, C, H, W) zero-padded at the bottom/right to (N, C, H', W'); x itself when nothing is added."""
    ph, pw = size[0] - x.shape[2], size[1] - x.shape[3]
    if not (ph or pw):
        return x
    return array_module(x).pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)))


def pad_to_multiple_forward(x, multiple: int):
    """Zero-pad x (N, C, H, W) at the bottom/right to (N, C, H', W'), H' and W' the next multiples of ``multiple``.

    H' = H + (-H mod multiple), likewise W'. cache: the original size (H, W).
    """
    check_nchw(x)
    multiple = check_int_at_least(multiple, "multiple", 1)
    h, w = x.shape[2:]
    out = _zeros_bottom_right(x, (h + -h % multiple, w + -w % multiple))
    return out, Cache(size=(h, w), out_shape=tuple(out.shape))


def pad_to_multiple_backward(dout, cache):
    """dout (N, C, H', W') -> dx (N, C, H, W): the gradient of a zero pad is the crop back to the input's size."""
    check_dout(dout, cache.out_shape)
    return _top_left(dout, cache.size)


def crop_forward(x, size):
    """Top-left (H, W) corner of x (N, C, H', W') -> (N, C, H, W).

    The output is x itself when nothing is cut, else a contiguous copy.
    cache: the full size (H', W') and the output's shape.
    """
    check_nchw(x)
    h, w = positive_pair(size, "size")
    if not (0 < h <= x.shape[2] and 0 < w <= x.shape[3]):
        raise ValueError(f"size must be a crop (H, W) of x's {tuple(x.shape[2:])}, got {tuple(size)}")
    out = _top_left(x, (h, w))
    return out, Cache(size=tuple(x.shape[2:]), out_shape=tuple(out.shape))


def crop_backward(dout, cache):
    """dout (N, C, H, W) -> dx (N, C, H', W'): dout in the top-left, zeros where the crop cut pixels off."""
    check_dout(dout, cache.out_shape)
    return _zeros_bottom_right(dout, cache.size)
