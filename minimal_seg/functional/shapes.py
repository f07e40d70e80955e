"""Output-size arithmetic: the one place where every size formula lives.

Notation (used in every module of ``functional``)::

    N        batch size              C, OC    input / output channels
    H, W     input height, width     OH, OW   output height, width
    KH, KW   kernel size             SH, SW   stride
    PH, PW   zero padding            DH, DW   dilation (1 = none)

A convolution with kernel K, stride S, padding P and dilation D sees an
effective kernel of D*(K-1)+1 pixels, so along one axis (PyTorch, floor)::

    O = floor((H + 2P - D*(K-1) - 1) / S) + 1

The transposed convolution inverts that size map (output_padding OP picks
one of the S sizes that all convolve down to the same H)::

    O = (H - 1)*S - 2P + D*(K-1) + OP + 1,      0 <= OP < max(S, D)

Max pooling is a convolution-shaped window with D = 1 (``ceil_mode=False``),
and its padding may be at most half the kernel, as in PyTorch.
"""
from __future__ import annotations

import math
import numbers

from .common import check_int_at_least


def pair(value, name: str) -> tuple[int, int]:
    """Turn an int or an (h, w) pair into a tuple of two ints, or raise TypeError."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")


def positive_pair(value, name: str) -> tuple[int, int]:
    """``pair`` that also requires both entries >= 1 (kernel size, stride, dilation)."""
    p = pair(value, name)
    if min(p) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return p


def nonnegative_pair(value, name: str) -> tuple[int, int]:
    """``pair`` that also requires both entries >= 0 (padding, output_padding)."""
    p = pair(value, name)
    if min(p) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return p


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """O = floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1 along one axis."""
    size, kernel, stride, dilation = _at_least_one(size=size, kernel=kernel, stride=stride, dilation=dilation)
    padding = check_int_at_least(padding, "padding", 0)
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        raise ValueError(f"kernel {kernel} with dilation {dilation} spans {span} pixels, more than the padded "
                         f"input {size + 2 * padding} (size {size}, padding {padding})")
    return (size + 2 * padding - span) // stride + 1


def conv_transpose_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """O = (size-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1 along one axis."""
    size, kernel, stride, dilation = _at_least_one(size=size, kernel=kernel, stride=stride, dilation=dilation)
    padding = check_int_at_least(padding, "padding", 0)
    output_padding = check_int_at_least(output_padding, "output_padding", 0)
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"padding {padding} is too large: the output size would be {out}")
    return out


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Max-pool output along one axis: the conv formula with dilation 1 (ceil_mode=False)."""
    return conv_output_size(size, kernel, stride, padding, 1)


def upsample_output_size(size: int, scale: float) -> int:
    """Upsampling by a scale factor along one axis: O = floor(size * scale), as PyTorch."""
    size = check_int_at_least(size, "size", 1)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    return int(math.floor(float(size) * float(scale)))


def receptive_field(kernels, strides=None, dilations=None) -> int:
    """Receptive field (pixels along one axis) of a stack of conv/pool layers.

    r = 1 + sum_l D_l*(K_l - 1) * prod_{m<l} S_m
    """
    kernels = _ints_at_least_one(kernels, "kernels")
    strides = [1] * len(kernels) if strides is None else _ints_at_least_one(strides, "strides", len(kernels))
    dilations = [1] * len(kernels) if dilations is None else _ints_at_least_one(dilations, "dilations",
                                                                                 len(kernels))
    field, jump = 1, 1
    for k, s, d in zip(kernels, strides, dilations):
        field += d * (k - 1) * jump
        jump *= s
    return field


def _at_least_one(**values):
    """Each keyword's value as an int >= 1, in order, or the error naming it."""
    return [check_int_at_least(v, name, 1) for name, v in values.items()]


def _ints_at_least_one(values, name, length=None):
    """A list or tuple of ints >= 1 (of ``length`` entries if given), or the error naming ``name``."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of ints, got {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have one entry per kernel ({length}), got {len(values)}")
    return [check_int_at_least(v, f"{name}[{i}]", 1) for i, v in enumerate(values)]


def conv2d_output_shape(input_size, kernel_size, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """(OH, OW) of a 2-D convolution; every argument an int or an (h, w) pair.

    Raises ValueError when the (dilated) kernel is larger than the padded input.
    """
    h, w = positive_pair(input_size, "input_size")
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(stride, "stride")
    ph, pw = nonnegative_pair(padding, "padding")
    dh, dw = positive_pair(dilation, "dilation")
    eff = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    if eff[0] > h + 2 * ph or eff[1] > w + 2 * pw:
        raise ValueError(
            f"kernel_size {(kh, kw)} with dilation {(dh, dw)} spans {eff} pixels, larger than "
            f"the padded input {(h + 2 * ph, w + 2 * pw)} (input {(h, w)}, padding {(ph, pw)})"
        )
    return conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)


def conv_transpose2d_output_shape(
    input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1
) -> tuple[int, int]:
    """(OH, OW) of a 2-D transposed convolution; checks output_padding < max(stride, dilation)."""
    h, w = positive_pair(input_size, "input_size")
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(stride, "stride")
    ph, pw = nonnegative_pair(padding, "padding")
    oph, opw = nonnegative_pair(output_padding, "output_padding")
    dh, dw = positive_pair(dilation, "dilation")
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(
            f"output_padding must be smaller than max(stride, dilation) = "
            f"{(max(sh, dh), max(sw, dw))} in each axis, got {(oph, opw)}"
        )
    out = (
        conv_transpose_output_size(h, kh, sh, ph, oph, dh),
        conv_transpose_output_size(w, kw, sw, pw, opw, dw),
    )
    if min(out) < 1:
        raise ValueError(f"padding {(ph, pw)} is too large: the output size would be {out}")
    return out


def pool2d_output_shape(input_size, kernel_size, stride=None, padding=0) -> tuple[int, int]:
    """(OH, OW) of 2-D max pooling; stride defaults to the kernel size, padding <= kernel/2."""
    h, w = positive_pair(input_size, "input_size")
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(kernel_size if stride is None else stride, "stride")
    ph, pw = nonnegative_pair(padding, "padding")
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"padding must be at most half the kernel_size {(kh, kw)}, got {(ph, pw)}")
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(
            f"kernel_size {(kh, kw)} is larger than the padded input {(h + 2 * ph, w + 2 * pw)}"
        )
    return pool_output_size(h, kh, sh, ph), pool_output_size(w, kw, sw, pw)


def max_unpool2d_output_shape(input_size, kernel_size, stride=None, padding=0, output_size=None) -> tuple[int, int]:
    """(OH, OW) of max unpooling, validated as in PyTorch.

    Default: OH = (H - 1)*SH - 2*PH + KH, the transposed-conv formula, which
    undoes the pooling formula. ``output_size`` may be (OH, OW) or a full
    (N, C, OH, OW); each entry must lie strictly between default - S and
    default + S, i.e. be one of the sizes that pool back down to H.
    """
    h, w = positive_pair(input_size, "input_size")
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(kernel_size if stride is None else stride, "stride")
    ph, pw = nonnegative_pair(padding, "padding")
    default = (conv_transpose_output_size(h, kh, sh, ph), conv_transpose_output_size(w, kw, sw, pw))
    if output_size is None:
        size = default
    else:
        given = tuple(output_size) if isinstance(output_size, (tuple, list)) else output_size
        size = pair(given[2:] if isinstance(given, tuple) and len(given) == 4 else given, "output_size")
        for axis, (got, dflt, s) in enumerate(zip(size, default, (sh, sw))):
            if not dflt - s < got < dflt + s:
                raise ValueError(
                    f"output_size {given!r}: axis {axis} must lie strictly between "
                    f"{dflt - s} and {dflt + s} (default {dflt}), got {got}"
                )
    if min(size) < 1:
        raise ValueError(f"padding {(ph, pw)} is too large: the max_unpool2d output size would be {size}")
    return size
