"""Checks of assignment 7 (a7_roi_align.py): bilinear weights, RoIAlign forward and backward."""
from __future__ import annotations

import numpy

from ... import functional as F
from ..grader import Checklist
from ..imports import ImportRules
from . import F32_TOL, randn, rng

CHECKS = Checklist(ImportRules(task="RoIAlign and its backward"))

# Boxes that reach every rule: inside, partly outside (top-left, bottom-right), wholly outside,
# smaller than a cell, of zero height, the whole map; on a map of 9 x 8 cells, two images.
EDGE_ROIS = numpy.array([
    [0, 1.0, 1.0, 5.0, 6.0], [1, -3.0, -2.0, 2.5, 3.5], [0, 6.0, 7.0, 12.0, 11.0], [1, 20.0, 20.0, 25.0, 30.0],
    [0, 3.2, 3.3, 3.4, 3.35], [1, -0.5, 2.5, 7.5, 2.5], [0, 0.0, 0.0, 8.0, 9.0],
])
X_SHAPE = (2, 3, 9, 8)
# output_size, spatial_scale, sampling_ratio, aligned
CASES = [((2, 2), 1.0, -1, False), ((2, 2), 1.0, -1, True), ((3, 2), 1.0, 2, False), ((2, 3), 0.5, 0, True),
         ((1, 1), 2.0, -1, True)]

HINTS = {
    "scaled": "{name} is off by a constant factor: each bin is the MEAN of its GH x GW samples "
              "(divide by max(GH * GW, 1)), and the backward sends weight / count, not weight",
    "border": "{name} is wrong at the edge of the map: a point outside [-1, H] x [-1, W] reads nothing; "
              "below 0 it is moved to 0; on the last row or column both cells are that row / column",
    "default": "out[k, :, i, j] = the MEAN of the bin's GH x GW samples (divide by max(GH * GW, 1)) of "
               "bilinear(x[b], y, x), with y = y1' + i * bin_h + (iy + 0.5) * bin_h / GH; aligned subtracts "
               "0.5 from every coordinate, not aligned makes the box at least 1 x 1",
}
DX_HINTS = {
    "scaled": HINTS["scaled"],
    "default": "every read out[k, :, i, j] += w * x[b, :, row, col] (w = the bilinear weight / the bin's sample "
               "count) sends w * dout[k, :, i, j] to dx[b, :, row, col]; ADD (+=): a cell is read by several "
               "samples, bins and boxes",
}


def _rois(seed: int, count: int, n: int, h: int, w: int, scale: float = 1.0):
    """Random boxes in image coordinates, some partly off the map."""
    r = rng(seed)
    size = numpy.array([w, h]) / scale
    p1 = r.uniform(-0.3, 1.1, (count, 2)) * size
    return numpy.concatenate([r.integers(0, n, (count, 1)), p1, p1 + r.uniform(0.05, 0.9, (count, 2)) * size], 1)


def _weight_map(reads, height, width):
    """The (row, col, weight) list of bilinear_weights as an (H, W) map of summed weights."""
    m = numpy.zeros((height, width))
    for row, col, weight in reads:
        m[row, col] += weight
    return m


@CHECKS.add("shapes, dtypes and values in float32", expect="< 1e-5 (~1e-7)")
def shapes(s, ctx):
    x = randn(0, *X_SHAPE).astype(numpy.float32)
    rois = _rois(1, 5, 2, 9, 8).astype(numpy.float32)
    out, cache = s.roi_align2d_forward(x, rois, 3)
    ref, ref_cache = F.roi_align2d_forward(x, rois, 3)
    ctx.expect_shape("out", out, (5, 3, 3, 3), numpy.float32, hint="out is (K, C, PH, PW), with x's dtype")
    ctx.expect_close("out", out, ref, tol=F32_TOL, case="float32", hints=HINTS)
    dout = randn(2, 5, 3, 3, 3).astype(numpy.float32)
    dx = s.roi_align2d_backward(dout, cache)
    ctx.expect_shape("dx", dx, X_SHAPE, numpy.float32, hint="dx has the shape (and dtype) of x")
    ctx.expect_close("dx", dx, F.roi_align2d_backward(dout, ref_cache), tol=F32_TOL, case="float32",
                     hints=DX_HINTS)


@CHECKS.add("hand examples: bilinear weights; a constant map; a zero-size box", expect="< 1e-12 (~1e-16)")
def hand_examples(s, ctx):
    weight_hints = {"default": HINTS["border"]}
    # (1.25, 2.5) on 4 x 4: rows 1, 2 with 0.75, 0.25; columns 2, 3 with 0.5, 0.5
    want = numpy.zeros((4, 4))
    want[1:3, 2:4] = numpy.outer([0.75, 0.25], [0.5, 0.5])
    ctx.expect_close("bilinear_weights(1.25, 2.5) on 4 x 4", _weight_map(s.bilinear_weights(1.25, 2.5, 4, 4), 4, 4),
                     want, tol=1e-12, against="rows 1, 2 x columns 2, 3 with weights 0.75, 0.25 x 0.5, 0.5",
                     hints=weight_hints)
    want = numpy.zeros((4, 4))
    want[3, 0] = 1.0  # below the last row and left of column 0: clamped onto the corner cell
    ctx.expect_close("bilinear_weights(3.7, -0.6) on 4 x 4", _weight_map(s.bilinear_weights(3.7, -0.6, 4, 4), 4, 4),
                     want, tol=1e-12, against="all the weight on cell (3, 0)", hints=weight_hints)
    ctx.expect_close("bilinear_weights(-1.2, 2.0) on 4 x 4",
                     _weight_map(s.bilinear_weights(-1.2, 2.0, 4, 4), 4, 4), numpy.zeros((4, 4)), tol=1e-12,
                     against="nothing: the point is outside [-1, H]", hints=weight_hints)
    x = numpy.full((1, 2, 6, 6), 3.0)
    out, _ = s.roi_align2d_forward(x, numpy.array([[0, 1.0, 1.5, 4.0, 4.5], [0, 30.0, 30.0, 40.0, 40.0]]), 2,
                                   1.0, 2, True)
    ctx.expect_close("out of a constant map", out, numpy.stack([numpy.full((2, 2, 2), 3.0), numpy.zeros((2, 2, 2))]),
                     tol=1e-12, against="3 inside the map (a mean of 3s), 0 for the box far outside", hints=HINTS)
    plane = numpy.arange(16.0).reshape(1, 1, 4, 4)
    out, _ = s.roi_align2d_forward(plane, numpy.array([[0, 1.0, 1.0, 1.0, 1.0]]), 1, 1.0, -1, False)
    ctx.expect_close("out of the zero-size box (1, 1, 1, 1), aligned=False", out, numpy.full((1, 1, 1, 1), 7.5),
                     tol=1e-12, against="7.5: the box grows to 1 x 1 and its one sample sits at (1.5, 1.5)",
                     hints={"default": "not aligned: roi_h = max(roi_h, 1), roi_w = max(roi_w, 1)"})


@CHECKS.add("gradient check: dx, away from the map's edges and at them", expect="< 1e-7 (~1e-10)")
def gradients(s, ctx):
    for k, (size, scale, ratio, aligned) in enumerate(CASES[:3]):
        x = randn(20 + k, 2, 2, 6, 5)
        rois = numpy.concatenate([EDGE_ROIS[:3], _rois(30 + k, 2, 2, 6, 5, scale)])
        ctx.expect_gradients(s.roi_align2d_forward, s.roi_align2d_backward, {"x": x, "rois": rois},
                             {"output_size": size, "spatial_scale": scale, "sampling_ratio": ratio,
                              "aligned": aligned},
                             label=f"output {size}, scale {scale}, sampling_ratio {ratio}, aligned {aligned}",
                             reference=F.roi_align2d_forward, wrt=("x",), hints={"out": HINTS, "dx": DX_HINTS})


@CHECKS.add("same numbers as minimal_seg.functional: edge boxes, scales, sampling, aligned", expect="< 1e-10 (~1e-15)")
def reference(s, ctx):
    x = randn(40, *X_SHAPE)
    for k, (size, scale, ratio, aligned) in enumerate(CASES):
        rois = numpy.concatenate([EDGE_ROIS, _rois(50 + k, 4, 2, 9, 8, scale)])
        args = (x, rois, size, scale, ratio, aligned)
        ctx.expect_same_pair((s.roi_align2d_forward, s.roi_align2d_backward),
                             (F.roi_align2d_forward, F.roi_align2d_backward), args, names=("out", "dx"),
                             case=f"output {size}, scale {scale}, sampling_ratio {ratio}, aligned {aligned}",
                             hints={"out": HINTS, "dx": DX_HINTS}, seed=k)
