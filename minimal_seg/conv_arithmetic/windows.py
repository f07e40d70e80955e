"""The formulas of the pictures: which cells one window of a (transposed) convolution covers.

Coordinates are (row, column) in the zero-padded input for a convolution,
in the uncropped canvas for a transposed convolution; the drawings
(``drawing.py``) highlight exactly these cells, and the tests compare them
with the columns of ``im2col``.
"""
from __future__ import annotations

from ..functional.shapes import conv_transpose2d_output_shape, nonnegative_pair, positive_pair


def conv_window(position, kernel_size, stride=1, dilation=1) -> list[tuple[int, int]]:
    """Cells of the padded input that output ``position`` (p, q) reads, in im2col's row order (i, j).

    (p*SH + i*DH, q*SW + j*DW) for i < KH, j < KW: the formula of ``im2col``.
    """
    p, q = position
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(stride, "stride")
    dh, dw = positive_pair(dilation, "dilation")
    return [(p * sh + i * dh, q * sw + j * dw) for i in range(kh) for j in range(kw)]


def transposed_conv_window(pixel, kernel_size, stride=1, dilation=1) -> list[tuple[int, int]]:
    """Canvas cells that input ``pixel`` (h, w) writes to in a transposed conv (before cropping PH, PW).

    The same cells as ``conv_window``: the transposed conv scatters along the
    windows the convolution gathers from. Subtract the padding to get output
    coordinates; cells outside the output are cropped away.
    """
    return conv_window(pixel, kernel_size, stride, dilation)


def transposed_options(input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """A transposed conv's options as checked (h, w) pairs, and its output size (OH, OW).

    Returns ((H, W), k, s, p, output_padding, d, (OH, OW)); raises ValueError naming a bad option.
    """
    size = positive_pair(input_size, "input_size")
    k = positive_pair(kernel_size, "kernel_size")
    s = positive_pair(stride, "stride")
    p = nonnegative_pair(padding, "padding")
    op = nonnegative_pair(output_padding, "output_padding")
    d = positive_pair(dilation, "dilation")
    return size, k, s, p, op, d, conv_transpose2d_output_shape(size, k, s, p, op, d)


def transposed_as_direct_conv(input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
    """The stride-1 convolution that computes a transposed convolution ("direct" view), per axis.

    Returns a dict of (h, w) pairs: ``inserted`` (size after putting S-1 zeros
    between pixels: (H-1)*S + 1), ``pad_before`` (D*(K-1) - P), ``pad_after``
    (D*(K-1) - P + output_padding) and ``output`` (the transposed conv's
    output size). The kernel is flipped in both axes. Raises ValueError when
    P > D*(K-1) (the picture would need negative padding).
    """
    (h, w), k, s, p, op, d, out = transposed_options(input_size, kernel_size, stride, padding, output_padding,
                                                     dilation)
    before = tuple(d[a] * (k[a] - 1) - p[a] for a in range(2))
    if min(before) < 0:
        raise ValueError(
            f"padding {p} is larger than dilation*(kernel_size-1) = {tuple(d[a] * (k[a] - 1) for a in range(2))}: "
            "the direct view would need negative padding; use view='scatter'"
        )
    return {
        "inserted": ((h - 1) * s[0] + 1, (w - 1) * s[1] + 1),
        "pad_before": before,
        "pad_after": (before[0] + op[0], before[1] + op[1]),
        "output": out,
    }

