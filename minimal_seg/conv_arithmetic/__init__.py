"""Pictures of convolution arithmetic, drawn from the library's own formulas.

The classic pictures of padding, stride, dilation and the transposed
convolution (after Dumoulin & Visin, "A guide to convolution arithmetic"),
generated so that they can never disagree with the code: every grid size
comes from ``functional.shapes`` and every highlighted window from the
formula ``im2col`` reads with::

    window of output (p, q) = { (p*SH + i*DH, q*SW + j*DW) : 0 <= i < KH, 0 <= j < KW }

in the coordinates of the zero-padded input (row, column). The tests
compare each drawn window with a column of ``im2col`` and each drawn output
grid with ``conv2d_output_shape``.

Two views of the transposed convolution:

* ``view="scatter"``, the library's view (``out = col2im(W.T @ x)``): input
  pixel (h, w) adds the kernel, scaled by x[h, w], into the window
  { (h*SH + i*DH, w*SW + j*DW) } of an uncropped canvas, and overlapping
  windows sum up; then PH rows/columns are cropped from each border (and
  output_padding rows/columns added at the bottom/right). The window of
  input pixel (h, w) is exactly the conv window of output (h, w) of the
  convolution that goes back: C^T scatters where C gathers.
* ``view="direct"``, the famous picture: the same numbers as a stride-1
  convolution with the flipped kernel over the input with SH-1 zeros
  inserted between pixels and DH*(KH-1)-PH zeros of padding (plus
  output_padding at the bottom/right). Needs PH <= DH*(KH-1).

Three modules, read in this order:

* ``windows``: the formulas, which cells a window covers (no drawing);
* ``drawing``: ``draw_conv`` and ``draw_transposed_conv`` draw on a
  matplotlib Axes (``ax``; a new figure when None) and return a ``Drawing``
  that says what was drawn;
* ``figures``: ``animate_conv`` and ``animate_transposed_conv`` write GIFs
  (one frame per window), ``render_all`` the figure set of the documentation.

Everything is importable from ``minimal_seg.conv_arithmetic`` itself.
"""
from __future__ import annotations

from .drawing import Drawing, draw_conv, draw_transposed_conv
from .figures import DOC_FIGURES, animate_conv, animate_transposed_conv, render_all
from .windows import conv_window, transposed_as_direct_conv, transposed_conv_window


__all__ = [
    "DOC_FIGURES", "Drawing", "animate_conv", "animate_transposed_conv", "conv_window", "draw_conv",
    "draw_transposed_conv", "render_all", "transposed_as_direct_conv", "transposed_conv_window",
]
