"""Checks of assignment 1 (a1_conv_im2col.py): im2col, col2im, conv2d forward and backward."""
from __future__ import annotations

import numpy

from ... import functional as F
from ..grader import Checklist
from ..imports import ImportRules
from . import CONV_MATRIX, F32_TOL, KERNEL, conv_case, conv_inputs, randn

CHECKS = Checklist(ImportRules(task="im2col, col2im and the convolution's forward and backward pass"))

# (x shape, w shape, stride, padding): rectangular images and kernels catch swapped h and w,
# stride 2 catches a missing stride, padding 2 > kernel/2 catches a crop that assumes P <= 1.
CASES = [
    ((2, 3, 5, 6), (4, 3, 3, 2), 1, 1),
    ((2, 2, 7, 6), (3, 2, 3, 3), 2, 0),
    ((1, 2, 5, 4), (2, 2, 2, 3), 2, 2),
]

SIZE_HINT = "OH = (H + 2P - KH) // S + 1 and OW = (W + 2P - KW) // S + 1; cols is (N, C*KH*KW, OH*OW)"
PADDING_HINT = ("{name} is wrong only near the border: check the padding: P zeros on every side "
                "in im2col, and the crop dxpad[:, :, P:P+H, P:P+W] in col2im")
DX_HINTS = {
    "shape": "dx has the shape of x: col2im crops dxpad[:, :, P:P+H, P:P+W] (P:-P is empty when P = 0)",
    "border": PADDING_HINT,
    "default": "check col2im: every entry of cols is ADDED (+=) into the pixel it was copied from "
               "(windows overlap), with the same slices as im2col, then the padding is cut away",
}
DW_HINTS = {"default": "dw = sum_n dout[n] @ cols[n].T, reshaped to (OC, C, KH, KW): check the sum over "
                       "the batch and that the cols are the ones of the forward pass"}
DB_HINTS = {"default": "db[o] is the sum of dout[:, o] over the batch and every position"}
OUT_HINTS = {
    "border": PADDING_HINT,
    "transposed": "{name} is transposed: rows of cols are (c, i, j) with j fastest, columns (p, q) with q fastest",
    "default": "check im2col's slices xpad[:, :, i : i + S*OH : S, j : j + S*OW : S] and that the "
               "product is w.reshape(OC, -1) @ cols (plus b[o] on channel o)",
}
HINTS = {"out": OUT_HINTS, "dx": DX_HINTS, "dw": DW_HINTS, "db": DB_HINTS}


@CHECKS.add("shapes, dtypes and values in float32", expect="< 1e-5 (~1e-7)")
def shapes(s, ctx):
    x_shape, w_shape, stride, padding = CASES[0]
    x, w, b = (a.astype(numpy.float32) for a in conv_inputs(CASES[0], 0))
    oh, ow = F.conv2d_output_shape(x_shape[2:], w_shape[2:], stride, padding)
    cols = s.im2col(x, w_shape[2:], stride, padding)
    ctx.expect_shape("im2col(x)", cols, (x_shape[0], x_shape[1] * w_shape[2] * w_shape[3], oh * ow), hint=SIZE_HINT)
    out, cache = s.conv2d_forward(x, w, b, stride, padding)
    ctx.expect_shape("out", out, (x_shape[0], w_shape[0], oh, ow), numpy.float32, hint=SIZE_HINT)
    ref, ref_cache = F.conv2d_forward(x, w, b, stride, padding)
    ctx.expect_close("out", out, ref, tol=F32_TOL, border=max(padding, 1), hints=OUT_HINTS, case="float32")
    dout = randn(9, *out.shape).astype(numpy.float32)
    dx, dw, db = s.conv2d_backward(dout, cache)
    ctx.expect_shape("dx", dx, x.shape, hint="dx has the shape of x: col2im gets x_shape from the cache")
    ctx.expect_shape("dw", dw, w.shape, hint="dw has the shape of w: reshape the (OC, C*KH*KW) product")
    ctx.expect_shape("db", db, b.shape, hint="db has the shape of b (OC,): sum over the batch and positions")
    for name, grad, right in zip(("dx", "dw", "db"), (dx, dw, db), F.conv2d_backward(dout, ref_cache)):
        ctx.expect_close(name, grad, right, tol=F32_TOL, border=max(padding, 1), hints=HINTS[name], case="float32")


@CHECKS.add("hand example: im2col of a 3x3 image, 2x2 windows", expect="exact")
def hand_im2col(s, ctx):
    x = numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected = numpy.array([[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]], dtype=numpy.float64)
    ctx.expect_close("cols", s.im2col(x, (2, 2), 1, 0), expected[None], tol=1e-12, against="the hand example",
                     hints={"transposed": "{name} is transposed: row k = i*KW + j is the kernel offset, "
                                          "column p*OW + q is the window",
                            "default": "windows in row-major order: [1 2 4 5] is the top-left window"})


@CHECKS.add("hand example: the lecture's kernel on a 4x4 image = its 4x16 matrix", expect="exact")
def hand_lecture(s, ctx):
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    out, _ = s.conv2d_forward(x, KERNEL[None, None], numpy.zeros(1), 1, 0)
    expected = (CONV_MATRIX @ x.reshape(16)).reshape(1, 1, 2, 2)
    ctx.expect_close("out", out, expected, tol=1e-12, against="the lecture's C @ x",
                     hints={"default": "out[p, q] = sum_ij w[i, j] x[p + i, q + j]: a cross-correlation, "
                                       "the kernel is not flipped"})


@CHECKS.add("im2col right, and col2im its adjoint: <im2col(x), y> = <x, col2im(y)>", expect="< 1e-10 (~1e-15)")
def adjoint(s, ctx):
    for k, case in enumerate(CASES):
        x_shape, w_shape, stride, padding = case
        x = randn(10 + k, *x_shape)
        cols = s.im2col(x, w_shape[2:], stride, padding)
        # the adjoint of a wrong (or all-zero) im2col proves nothing: im2col first, against the library's
        ref = F.im2col(x, w_shape[2:], stride, padding)  # (C*KH*KW, N*OH*OW)
        ref = ref.reshape(ref.shape[0], x_shape[0], -1).transpose(1, 0, 2)
        ctx.expect_close("im2col(x)", cols, ref, case=conv_case(case), border=max(padding, 1), hints=OUT_HINTS)
        y = randn(20 + k, *cols.shape)
        back = s.col2im(y, x_shape, w_shape[2:], stride, padding)
        ctx.expect_shape("col2im(y)", back, x_shape,
                         hint="col2im returns an image of x_shape (N, C, H, W): the crop is dxpad[:, :, P:P+H, P:P+W] "
                              "(note that P:-P is empty when P = 0)")
        ctx.expect_close("<x, col2im(y)>", numpy.sum(x * back), numpy.sum(cols * y), case=conv_case(case),
                         against="<im2col(x), y>",
                         hints={"default": "col2im must be the exact transpose of im2col: the same slices, "
                                           "+= where windows overlap, P zeros of padding on every side in "
                                           "im2col and the P:P+H crop in col2im"})


@CHECKS.add("gradient check: conv2d_forward / conv2d_backward", expect="< 1e-7 (~1e-9)")
def gradients(s, ctx):
    for k, case in enumerate(CASES[:2]):
        x, w, b = conv_inputs(case, 30 + 3 * k)
        ctx.expect_gradients(s.conv2d_forward, s.conv2d_backward, {"x": x, "w": w, "b": b},
                             {"stride": case[2], "padding": case[3]}, label=conv_case(case),
                             reference=F.conv2d_forward, border=max(case[3], 1), hints=HINTS)


@CHECKS.add("same numbers as minimal_seg.functional.conv2d", expect="< 1e-10 (~1e-15)")
def reference(s, ctx):
    for k, case in enumerate(CASES):
        x, w, b = conv_inputs(case, 40 + 3 * k)
        ctx.expect_same_pair((s.conv2d_forward, s.conv2d_backward), (F.conv2d_forward, F.conv2d_backward),
                             (x, w, b, case[2], case[3]), names=("out", "dx", "dw", "db"), case=conv_case(case),
                             border=max(case[3], 1), hints=HINTS, seed=50 + k)
