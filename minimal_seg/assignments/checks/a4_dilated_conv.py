"""Checks of assignment 4 (a4_dilated_conv.py): dilated conv by im2col, the receptive field."""
from __future__ import annotations

import numpy

from ... import functional as F
from ...backend import to_numpy
from ..grader import Checklist
from ..imports import ImportRules
from . import F32_TOL, KERNEL, randn

# measure_receptive_field builds nn.Conv2d layers (their backward is given); the conv itself is the task.
CHECKS = Checklist(ImportRules(task="the dilated convolution and the receptive field",
                               within={"measure_receptive_field": ("minimal_seg.nn.Conv2d",)}))

# The lecture's 3x3 kernel at dilation 2: the same nine weights, spread over 5x5.
KERNEL_D2 = numpy.array([
    [1, 0, 4, 0, 1],
    [0, 0, 0, 0, 0],
    [1, 0, 4, 0, 3],
    [0, 0, 0, 0, 0],
    [3, 0, 3, 0, 1],
], dtype=numpy.float64)

# (x shape, w shape, padding, dilation): dilation 1 first, so a missing dilation shows as "right at D = 1".
CASES = [
    ((2, 3, 6, 7), (2, 3, 3, 3), 1, 1),
    ((2, 3, 9, 8), (4, 3, 3, 2), 2, 2),
    ((1, 2, 10, 9), (2, 2, 2, 3), 1, 3),
]
# stacks of (kernel, stride, dilation) and an image size their centre pixel's field fits in
STACKS = [
    ([(3, 1, 2)], 16),
    ([(3, 1, 1), (3, 1, 2), (3, 1, 3)], 32),
    ([(3, 1, 1), (2, 2, 1), (3, 1, 2), (2, 2, 1), (3, 1, 1)], 48),
    ([(3, 2, 1), (3, 2, 2), (3, 1, 3)], 64),
]

FORMULA_HINTS = {
    "no jump": "your formula ignores the strides: after a stride-S layer, one pixel of its output is S "
               "input pixels apart, so later layers add D*(K-1) times the product of the earlier strides",
    "own stride": "the jump of layer l is the product of the strides BEFORE it; add D*(K-1)*jump first, "
                  "then multiply the jump by this layer's stride",
    "default": "r = 1 + sum_l D_l*(K_l - 1) * J_l with J_l the product of the strides of the layers before l",
}
OUT_HINTS = {
    "default": "out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p + i*D, q + j*D]; "
               "check the slices xpad[:, :, i*D : i*D + OH, j*D : j*D + OW] and the padding",
    "dilation": "the kernel offsets must be D = {d} pixels apart: xpad[:, :, i*D : i*D + OH, j*D : j*D + OW], "
                "with OH = H + 2P - D*(KH - 1)",
}


def _stack_name(stack) -> str:
    return "[" + ", ".join(f"(K={k}, S={s}, D={d})" for k, s, d in stack) + "]"


def _formula_hint(got, stack) -> str:
    """The FORMULA_HINTS entry that explains ``got``, from the two usual mistakes."""
    no_jump = 1 + sum(d * (k - 1) for k, _, d in stack)
    own_stride, jump = 1, 1
    for k, s, d in stack:
        jump *= s
        own_stride += d * (k - 1) * jump
    if got == no_jump:
        return FORMULA_HINTS["no jump"]
    if got == own_stride:
        return FORMULA_HINTS["own stride"]
    return FORMULA_HINTS["default"]


@CHECKS.add("shapes, dtypes and values in float32", expect="< 1e-5 (~1e-7)")
def shapes(s, ctx):
    x_shape, w_shape, padding, dilation = CASES[1]
    w = randn(0, *w_shape).astype(numpy.float32)
    big = s.dilate_kernel(w, dilation)
    ctx.expect_shape("dilate_kernel(w, 2)", big, (*w_shape[:2], 5, 3),
                     hint="the dilated kernel spans D*(K-1) + 1 pixels along each axis")
    sparse = numpy.zeros(big.shape, dtype=numpy.float32)
    sparse[:, :, ::dilation, ::dilation] = w
    ctx.expect_close("dilate_kernel(w, 2)", big, sparse, tol=0, against="w with D - 1 zeros between the taps",
                     hints={"default": "w_big[i*D, j*D] = w[i, j] and zeros between the taps"})
    x, b = randn(1, *x_shape).astype(numpy.float32), randn(3, w_shape[0]).astype(numpy.float32)
    out, _ = s.dilated_conv2d_forward(x, w, b, padding, dilation)
    oh, ow = F.conv2d_output_shape(x_shape[2:], w_shape[2:], 1, padding, dilation)
    ctx.expect_shape("out", out, (x_shape[0], w_shape[0], oh, ow), numpy.float32,
                     hint="OH = H + 2P - D*(KH - 1), OW = W + 2P - D*(KW - 1)")
    ref, _ = F.conv2d_forward(x, w, b, padding=padding, dilation=dilation)
    ctx.expect_close("out", out, ref, tol=F32_TOL, case="float32", hints=OUT_HINTS)


@CHECKS.add("hand example: 3x3 weights at d = 2 cover 5x5; fields of d = 2 and d = 1, 2, 3",
            expect="< 1e-12 (~1e-16)")
def hand_lecture(s, ctx):
    ctx.expect_close("dilate_kernel(KERNEL, 2)", s.dilate_kernel(KERNEL[None, None], 2), KERNEL_D2[None, None],
                     tol=0, against="the lecture's 5x5 picture",
                     hints={"default": "w_big[i*D, j*D] = w[i, j] and zeros between the taps"})
    x = randn(4, 1, 1, 7, 7)
    out, _ = s.dilated_conv2d_forward(x, KERNEL[None, None], None, 2, 2)
    same, _ = F.conv2d_forward(x, KERNEL_D2[None, None], None, padding=2)
    ctx.expect_close("out", out, same, tol=1e-12, against="an ordinary conv with the 5x5 sparse kernel",
                     hints={"default": OUT_HINTS["dilation"].format(d=2)})
    for stack, expected in (([(3, 1, 2)], 5), ([(3, 1, 1), (3, 1, 2), (3, 1, 3)], 13)):
        got = s.receptive_field(stack)
        ctx.expect_equal("receptive_field", got, expected, case=_stack_name(stack), hint=_formula_hint(got, stack))


@CHECKS.add("receptive field: your formula, and measured by a backward pass", expect="exact")
def measured(s, ctx):
    for stack, size in STACKS:
        expected = F.receptive_field([k for k, _, _ in stack], [st for _, st, _ in stack], [d for _, _, d in stack])
        got = s.receptive_field(stack)
        ctx.expect_equal("receptive_field", got, expected, case=_stack_name(stack), hint=_formula_hint(got, stack))
        r, footprint = s.measure_receptive_field(stack, size)
        ctx.maps[f"footprint of {_stack_name(stack)}"] = numpy.abs(to_numpy(footprint).astype(numpy.float64))
        ctx.expect_equal("measured receptive field", r, expected, case=_stack_name(stack),
                         hint="put a single 1 in dout at the centre output pixel, backward through every layer "
                              "in reverse order, and measure last - first + 1 over the rows where dx is nonzero")
    ctx.measured = f"{len(STACKS)} stacks"


@CHECKS.add("same numbers as minimal_seg.functional.conv2d(dilation=D)", expect="< 1e-10 (~1e-15)")
def reference(s, ctx):
    for k, (x_shape, w_shape, padding, dilation) in enumerate(CASES):
        x, w, b = randn(10 + k, *x_shape), randn(20 + k, *w_shape), randn(30 + k, w_shape[0])
        out, _ = s.dilated_conv2d_forward(x, w, b, padding, dilation)
        ref, _ = F.conv2d_forward(x, w, b, padding=padding, dilation=dilation)
        # the dilation-1 case ran first and passed, so a failure here points at the dilation
        hints = OUT_HINTS if dilation == 1 else {
            **OUT_HINTS, "default": "right at dilation 1 but not here: " + OUT_HINTS["dilation"].format(d=dilation)}
        ctx.expect_close("out", out, ref, case=f"x {x_shape}, w {w_shape}, padding {padding}, dilation {dilation}",
                         hints=hints)
