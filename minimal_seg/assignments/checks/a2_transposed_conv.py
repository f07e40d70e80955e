"""Checks of assignment 2 (a2_transposed_conv.py): conv_matrix and the transposed conv as C^T."""
from __future__ import annotations

import numpy

from ... import functional as F
from ...backend import to_numpy
from ..grader import Checklist
from ..imports import ImportRules
from . import CONV_MATRIX, F32_TOL, KERNEL, TCONV_OUT, TCONV_X, conv_inputs, randn

CHECKS = Checklist(ImportRules(task="the convolution matrix and the transposed convolution"))

# conv_matrix cases: (w shape, input size, stride, padding)
MATRIX_CASES = [
    ((1, 1, 3, 3), (4, 4), 1, 0),
    ((2, 3, 3, 2), (5, 4), 2, 1),
    ((3, 2, 2, 3), (4, 6), 1, 2),
]
# transposed-conv cases: (x shape, w shape (C_in, C_out, KH, KW), stride, padding, output_padding)
CASES = [
    ((2, 3, 3, 2), (3, 2, 3, 3), 2, 1, 0),
    ((1, 2, 2, 3), (2, 2, 2, 3), 1, 0, 0),
    ((2, 2, 3, 3), (2, 3, 3, 2), 3, 1, 2),
    ((2, 2, 2, 2), (2, 3, 3, 3), 2, 1, 1),  # the lecture's 2x2 -> 4x4 upconv
]

TRANSPOSED_HINT = ("your matrix holds the kernel transposed: the row offset i moves h (h = p*S - P + i) and "
                   "the column offset j moves v (v = q*S - P + j); h and w, or i and j, are swapped")
FLIPPED_HINT = ("your matrix holds the kernel flipped (rotated by 180 degrees): that is the convolution of "
                "mathematics, but a conv layer computes a cross-correlation, w[o, c, i, j] multiplies "
                "x[c, p*S - P + i, q*S - P + j] with i and j counting up, no flip (and C^T does not flip it either)")
OUTPUT_PADDING_HINT = ("OH = (H - 1)*S - 2P + KH + OP and OW = (W - 1)*S - 2P + KW + OP: output_padding adds OP "
                       "rows at the bottom and OP columns at the right")
MATRIX_HINTS = {"default": "C[(o, p, q), (c, h, v)] = w[o, c, i, j] with h = p*S - P + i, v = q*S - P + j; "
                           "taps whose (h, v) falls outside the image are left out"}
DX_HINTS = {"default": "dx = C @ dout for every image: dout.reshape(N, -1) @ C.T, reshaped to x's shape"}
DW_HINTS = {"default": "dw[ci, co, i, j] = sum over n, p, q of x[n, ci, p, q] * doutpad[n, co, p*S + i, q*S + j] "
                      "with dout padded by P on every side (and if C itself is wrong, the forward pass and this "
                      "formula disagree: check conv_matrix's h = p*S - P + i first)",
            "border": "{name} is wrong only at some kernel offsets: check the padding of dout (P on every side)"}
DB_HINTS = {"default": "db[co] is the sum of dout[:, co] over the batch and every pixel"}
HINTS = {"out": {"default": "out.reshape(N, -1) = x.reshape(N, -1) @ C, plus b[co] on channel co",
                 "shape": OUTPUT_PADDING_HINT},
         "dx": DX_HINTS, "dw": DW_HINTS, "db": DB_HINTS}


def _case_name(case) -> str:
    x_shape, w_shape, stride, padding, output_padding = case
    return f"x {x_shape}, w {w_shape}, stride {stride}, padding {padding}, output_padding {output_padding}"


def _variants(w):
    """The two usual wrong kernels: (hint, kernel) for the transposed one (square kernels only) and the flipped one."""
    flipped = [(FLIPPED_HINT, numpy.ascontiguousarray(w[..., ::-1, ::-1]))]
    if w.shape[-1] != w.shape[-2]:
        return flipped
    return [(TRANSPOSED_HINT, numpy.ascontiguousarray(numpy.swapaxes(w, -1, -2)))] + flipped


def _kernel_hints(actual, of_kernel, w, hints):
    """``hints``, with the hint of a wrong kernel as default when ``actual`` is what ``of_kernel(that kernel)`` gives.

    Only for a wrong answer: a kernel symmetric under the change gives the same result either way.
    """
    a = to_numpy(actual)
    right = numpy.asarray(of_kernel(w))
    for hint, wrong in _variants(w):
        expected = numpy.asarray(of_kernel(wrong))
        if a.shape == expected.shape and numpy.allclose(a, expected) and not numpy.allclose(a, right):
            return {**hints, "default": hint}
    return hints


@CHECKS.add("shapes, dtypes and values in float32", expect="< 1e-5 (~1e-7)")
def shapes(s, ctx):
    w_shape, size, stride, padding = MATRIX_CASES[1]
    oh, ow = F.conv2d_output_shape(size, w_shape[2:], stride, padding)
    w = randn(0, *w_shape).astype(numpy.float32)
    C = s.conv_matrix(w, size, stride, padding)
    ctx.expect_shape("C", C, (w_shape[0] * oh * ow, w_shape[1] * size[0] * size[1]),
                     hint="C is (OC*OH*OW, C*H*W): one row per output pixel, one column per input pixel")
    ctx.expect_close("C", C, F.conv_matrix(w, size, stride, padding), tol=F32_TOL, case="float32",
                     hints=_kernel_hints(C, lambda k: F.conv_matrix(k, size, stride, padding), w, MATRIX_HINTS))
    case = CASES[3]
    x, w, b = (a.astype(numpy.float32) for a in conv_inputs(case, 1, bias_axis=1))
    args = (x, w, b, *case[2:])
    out_size = F.conv_transpose2d_output_shape(x.shape[2:], w.shape[2:], case[2], case[3], case[4])
    out, cache = s.conv_transpose2d_forward(*args)
    ctx.expect_shape("out", out, (x.shape[0], w.shape[1], *out_size), numpy.float32,
                     hint=OUTPUT_PADDING_HINT + "; C_out is w.shape[1]")
    ref, ref_cache = F.conv_transpose2d_forward(*args)
    ctx.expect_close("out", out, ref, tol=F32_TOL, case="float32", hints=HINTS["out"])
    dout = randn(2, *ref.shape).astype(numpy.float32)
    grads = s.conv_transpose2d_backward(dout, cache)
    for name, grad, right in zip(("dx", "dw", "db"), grads, F.conv_transpose2d_backward(dout, ref_cache)):
        ctx.expect_shape(name, grad, right.shape)
        ctx.expect_close(name, grad, right, tol=F32_TOL, case="float32", hints=HINTS[name])
    _, cache = s.conv_transpose2d_forward(x, w, None, *case[2:])
    if s.conv_transpose2d_backward(dout, cache)[2] is not None:
        ctx.fail("db should be None when the forward had no bias (b=None)",
                 hint="keep has_bias in the cache and return db = None without a bias")


@CHECKS.add("hand example: the lecture's 3x3 kernel on a 4x4 image -> its 4x16 matrix", expect="exact")
def hand_matrix(s, ctx):
    C = s.conv_matrix(KERNEL[None, None], (4, 4), 1, 0)
    ctx.expect_close("C", C, CONV_MATRIX, tol=1e-12, against="the lecture's 4x16 matrix",
                     hints=_kernel_hints(C, lambda k: F.conv_matrix(k, (4, 4)), KERNEL[None, None], MATRIX_HINTS))


@CHECKS.add("hand example: C^T maps the lecture's 2x2 input to its 4x4 output; the 2x2 -> 4x4 upconv",
            expect="exact")
def hand_transposed(s, ctx):
    x, w = TCONV_X[None, None], KERNEL[None, None]
    out, _ = s.conv_transpose2d_forward(x, w, None, 1, 0)
    hints = {"default": "out.reshape(N, -1) = x.reshape(N, -1) @ C with C = conv_matrix(w, (OH, OW)): "
                        "the 2x2 input spreads every value over a 3x3 window of the 4x4 output"}
    ctx.expect_close("out", out, TCONV_OUT[None, None], tol=1e-12, against="the lecture's 4x4 output",
                     hints=_kernel_hints(out, lambda k: F.conv_transpose2d_forward(x, k)[0], w, hints))
    up, _ = s.conv_transpose2d_forward(x, w, None, 2, 1, 1)  # stride 2, padding 1, output_padding 1
    ctx.expect_close("upconv", up, F.conv_transpose2d_forward(x, w, None, 2, 1, 1)[0], tol=1e-12,
                     against="the 4x4 upconv (stride 2, padding 1, output_padding 1)",
                     hints={"shape": OUTPUT_PADDING_HINT, "default": "C = conv_matrix(w, (OH, OW), S, P) with the "
                                                                     "output size OH, OW that includes OP"})


@CHECKS.add("gradient check: conv_transpose2d_forward / conv_transpose2d_backward", expect="< 1e-7 (~1e-9)")
def gradients(s, ctx):
    for k, case in enumerate(CASES[1:]):
        x, w, b = conv_inputs(case, 10 + 3 * k, bias_axis=1)
        ctx.expect_gradients(s.conv_transpose2d_forward, s.conv_transpose2d_backward, {"x": x, "w": w, "b": b},
                             {"stride": case[2], "padding": case[3], "output_padding": case[4]},
                             label=_case_name(case), reference=F.conv_transpose2d_forward, hints=HINTS)


@CHECKS.add("same numbers as minimal_seg.functional (conv_matrix, conv_transpose2d)", expect="< 1e-10 (~1e-15)")
def reference(s, ctx):
    for k, (w_shape, size, stride, padding) in enumerate(MATRIX_CASES):
        w = randn(20 + k, *w_shape)
        C = s.conv_matrix(w, size, stride, padding)
        ctx.expect_close("C", C, F.conv_matrix(w, size, stride, padding),
                         case=f"w {w_shape}, input {size}, stride {stride}, padding {padding}",
                         hints=_kernel_hints(C, lambda v: F.conv_matrix(v, size, stride, padding), w, MATRIX_HINTS))
    for k, case in enumerate(CASES):
        x, w, b = conv_inputs(case, 30 + 3 * k, bias_axis=1)
        ctx.expect_same_pair((s.conv_transpose2d_forward, s.conv_transpose2d_backward),
                             (F.conv_transpose2d_forward, F.conv_transpose2d_backward), (x, w, b, *case[2:]),
                             names=("out", "dx", "dw", "db"), case=_case_name(case), hints=HINTS, seed=40 + k)
