"""Checks of assignment 2 (a2_transposed_conv.py): conv_matrix and the transposed conv as C^T."""
from __future__ import annotations

import numpy

from ... import functional as F
from ..grader import Checklist
from . import CONV_MATRIX, KERNEL, TCONV_OUT, TCONV_X, conv_case, conv_inputs, randn

CHECKS = Checklist()

# conv_matrix cases: (w shape, input size, stride, padding)
MATRIX_CASES = [
    ((1, 1, 3, 3), (4, 4), 1, 0),
    ((2, 3, 3, 2), (5, 4), 2, 1),
    ((3, 2, 2, 3), (4, 6), 1, 2),
]
# transposed-conv cases: (x shape, w shape (C_in, C_out, KH, KW), stride, padding)
CASES = [
    ((2, 3, 3, 2), (3, 2, 3, 3), 2, 1),
    ((1, 2, 2, 3), (2, 2, 2, 3), 1, 0),
    ((2, 2, 3, 3), (2, 3, 3, 2), 3, 1),
]

TRANSPOSED_HINT = ("your matrix holds the kernel transposed: the row offset i moves h (h = p*S - P + i) and "
                   "the column offset j moves v (v = q*S - P + j); h and w, or i and j, are swapped")
MATRIX_HINTS = {"default": "C[(o, p, q), (c, h, v)] = w[o, c, i, j] with h = p*S - P + i, v = q*S - P + j; "
                           "taps whose (h, v) falls outside the image are left out"}
DX_HINTS = {"default": "dx = C @ dout for every image: dout.reshape(N, -1) @ C.T, reshaped to x's shape"}
DW_HINTS = {"default": "dw[ci, co, i, j] = sum over n, p, q of x[n, ci, p, q] * doutpad[n, co, p*S + i, q*S + j] "
                      "with dout padded by P on every side (and if C itself is wrong, the forward pass and this "
                      "formula disagree: check conv_matrix's h = p*S - P + i first)",
            "border": "{name} is wrong only at some kernel offsets: check the padding of dout (P on every side)"}
DB_HINTS = {"default": "db[co] is the sum of dout[:, co] over the batch and every pixel"}
HINTS = {"out": {"default": "out.reshape(N, -1) = x.reshape(N, -1) @ C, plus b[co] on channel co"},
         "dx": DX_HINTS, "dw": DW_HINTS, "db": DB_HINTS}


def _kernel_transposed_hints(actual, expected_of_transposed_kernel, hints):
    """``hints``, with TRANSPOSED_HINT as default when ``actual`` is what the transposed kernel gives."""
    a = numpy.asarray(actual, dtype=numpy.float64)
    if a.shape == expected_of_transposed_kernel.shape and numpy.allclose(a, expected_of_transposed_kernel):
        return {**hints, "default": TRANSPOSED_HINT}
    return hints


@CHECKS.add("shapes and dtypes", expect="exact")
def shapes(s, ctx):
    w_shape, size, stride, padding = MATRIX_CASES[1]
    oh, ow = F.conv2d_output_shape(size, w_shape[2:], stride, padding)
    C = s.conv_matrix(randn(0, *w_shape), size, stride, padding)
    ctx.expect_shape("C", C, (w_shape[0] * oh * ow, w_shape[1] * size[0] * size[1]),
                     hint="C is (OC*OH*OW, C*H*W): one row per output pixel, one column per input pixel")
    case = CASES[0]
    x, w, b = conv_inputs(case, 1, bias_axis=1)
    out_size = F.conv_transpose2d_output_shape(x.shape[2:], w.shape[2:], case[2], case[3])
    out, _ = s.conv_transpose2d_forward(x.astype(numpy.float32), w.astype(numpy.float32), b.astype(numpy.float32),
                                        case[2], case[3])
    ctx.expect_shape("out", out, (x.shape[0], w.shape[1], *out_size), numpy.float32,
                     hint="OH = (H - 1)*S - 2P + KH, OW = (W - 1)*S - 2P + KW; C_out is w.shape[1]")
    _, cache = s.conv_transpose2d_forward(x, w, b, case[2], case[3])
    dx, dw, db = s.conv_transpose2d_backward(randn(2, x.shape[0], w.shape[1], *out_size), cache)
    ctx.expect_shape("dx", dx, x.shape)
    ctx.expect_shape("dw", dw, w.shape)
    ctx.expect_shape("db", db, b.shape)
    _, cache = s.conv_transpose2d_forward(x, w, None, case[2], case[3])
    if s.conv_transpose2d_backward(randn(2, x.shape[0], w.shape[1], *out_size), cache)[2] is not None:
        ctx.fail("db should be None when the forward had no bias (b=None)",
                 hint="keep has_bias in the cache and return db = None without a bias")


@CHECKS.add("hand example: the lecture's 3x3 kernel on a 4x4 image -> its 4x16 matrix", expect="exact")
def hand_matrix(s, ctx):
    C = s.conv_matrix(KERNEL[None, None], (4, 4), 1, 0)
    of_transposed = F.conv_matrix(numpy.ascontiguousarray(KERNEL.T)[None, None], (4, 4))
    ctx.expect_close("C", C, CONV_MATRIX, tol=1e-12, against="the lecture's 4x16 matrix",
                     hints=_kernel_transposed_hints(C, of_transposed, MATRIX_HINTS))


@CHECKS.add("hand example: C^T maps the lecture's 2x2 input to its 4x4 output", expect="exact")
def hand_transposed(s, ctx):
    x, w = TCONV_X[None, None], KERNEL[None, None]
    out, _ = s.conv_transpose2d_forward(x, w, None, 1, 0)
    of_transposed, _ = F.conv_transpose2d_forward(x, numpy.ascontiguousarray(KERNEL.T)[None, None])
    hints = {"default": "out.reshape(N, -1) = x.reshape(N, -1) @ C with C = conv_matrix(w, (OH, OW)): "
                        "the 2x2 input spreads every value over a 3x3 window of the 4x4 output"}
    ctx.expect_close("out", out, TCONV_OUT[None, None], tol=1e-12, against="the lecture's 4x4 output",
                     hints=_kernel_transposed_hints(out, numpy.asarray(of_transposed), hints))


@CHECKS.add("gradient check: conv_transpose2d_forward / conv_transpose2d_backward", expect="< 1e-7 (~1e-9)")
def gradients(s, ctx):
    for k, case in enumerate(CASES[:2]):
        x, w, b = conv_inputs(case, 10 + 3 * k, bias_axis=1)
        ctx.expect_gradients(s.conv_transpose2d_forward, s.conv_transpose2d_backward, {"x": x, "w": w, "b": b},
                             {"stride": case[2], "padding": case[3]}, label=conv_case(case),
                             hints=HINTS)


@CHECKS.add("same numbers as minimal_seg.functional (conv_matrix, conv_transpose2d)", expect="< 1e-10 (~1e-15)")
def reference(s, ctx):
    for k, (w_shape, size, stride, padding) in enumerate(MATRIX_CASES):
        w = randn(20 + k, *w_shape)
        C = s.conv_matrix(w, size, stride, padding)
        ref = F.conv_matrix(w, size, stride, padding)
        wt = numpy.ascontiguousarray(numpy.swapaxes(w, -1, -2))
        of_transposed = (F.conv_matrix(wt, size, stride, padding) if w_shape[2] == w_shape[3]
                         else numpy.zeros(0))
        ctx.expect_close("C", C, ref, case=f"w {w_shape}, input {size}, stride {stride}, padding {padding}",
                         hints=_kernel_transposed_hints(C, of_transposed, MATRIX_HINTS))
    for k, case in enumerate(CASES):
        x, w, b = conv_inputs(case, 30 + 3 * k, bias_axis=1)
        ctx.expect_same_pair((s.conv_transpose2d_forward, s.conv_transpose2d_backward),
                             (F.conv_transpose2d_forward, F.conv_transpose2d_backward), (x, w, b, case[2], case[3]),
                             names=("out", "dx", "dw", "db"), case=conv_case(case), hints=HINTS, seed=40 + k)
