"""Assignment 7: RoIAlign, forward and backward (the region features of Mask R-CNN).

A two-stage detector cuts every proposed box out of the feature map as a
fixed P x P grid of features. Fast R-CNN's RoI pooling rounds the box to
whole cells; RoIAlign does not: it reads the map at real-valued *sample
points* by bilinear interpolation and averages them per bin. Lecture 004:
"each RoI is pooled into a fixed-size feature map".

Implement, top to bottom:

    bilinear_weights       the cells around one point and their weights
    roi_align2d_forward    per box, per bin, per sample point: the mean of the bilinear reads
    roi_align2d_backward   the same walk backwards: each read sends dout * weight / count to its cell

Notation: x (N, C, H, W); rois (K, 5), row k = (b, x1, y1, x2, y2): the
image index b and a box in image coordinates; ``spatial_scale`` maps them
onto the map. out (K, C, PH, PW). The rules are torchvision's
(``torchvision.ops.roi_align``), so every number can be checked::

    offset = 0.5 if aligned else 0
    y1' = y1 * scale - offset,  roi_h = y2 * scale - offset - y1'      (x likewise)
    if not aligned: roi_h = max(roi_h, 1), roi_w = max(roi_w, 1)
    bin_h = roi_h / PH;   GH = sampling_ratio if sampling_ratio > 0 else ceil(roi_h / PH)
    sample (iy, ix) of bin (i, j):  y = y1' + i * bin_h + (iy + 0.5) * bin_h / GH   (x likewise)
    out[k, c, i, j] = (1 / max(GH * GW, 1)) * sum over the samples of bilinear(x[b, c], y, x)

Gradients of the boxes are not asked for (torchvision has none either).

Use NumPy through ``xp = array_module(x)`` and ``math``, and nothing from
``minimal_seg.functional`` (the autograder refuses a file that imports it,
or torch). Loops over boxes, bins and sample points are fine: the channels
can go together, ``x[b, :, row, col]``. Check your work with
``python -m minimal_seg check a7 --impl a7_roi_align.py``.
"""
from __future__ import annotations

import math

from minimal_seg.backend import array_module


def bilinear_weights(y, x, height, width):
    """The cells that bilinear interpolation reads at the point (y, x), with their weights.

    Returns a list of (row, col, weight), four entries (some may share a cell),
    or an empty list when the point lies outside [-1, height] x [-1, width]
    (it reads nothing: a sample that far out counts as 0). Otherwise:

    * a coordinate below 0 is moved to 0;
    * row_low = int(y); if row_low >= height - 1 the point is on the last
      row: row_low = row_high = height - 1 and y = row_low; else row_high = row_low + 1
      (columns likewise);
    * with ly = y - row_low, lx = x - col_low, the weights are
      (1-ly)(1-lx), (1-ly) lx, ly (1-lx), ly lx for the cells
      (row_low, col_low), (row_low, col_high), (row_high, col_low), (row_high, col_high).
    """
    # ===== START SOLUTION: the four cells around (y, x) and their weights, torchvision's rules =====
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    row_low, col_low = int(y), int(x)
    if row_low >= height - 1:
        row_low = row_high = height - 1
        y = float(row_low)
    else:
        row_high = row_low + 1
    if col_low >= width - 1:
        col_low = col_high = width - 1
        x = float(col_low)
    else:
        col_high = col_low + 1
    ly, lx = y - row_low, x - col_low
    return [(row_low, col_low, (1 - ly) * (1 - lx)), (row_low, col_high, (1 - ly) * lx),
            (row_high, col_low, ly * (1 - lx)), (row_high, col_high, ly * lx)]
    # ===== END SOLUTION =====


def roi_align2d_forward(x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoIAlign of x (N, C, H, W) for rois (K, 5) -> (out (K, C, PH, PW), cache).

    output_size: int P (P x P bins) or a pair (PH, PW). The formulas are in
    the module docstring. out has x's dtype.

    cache = {"x_shape": x.shape, "reads": reads} where reads lists, for
    every output bin, what it read: tuples (k, i, j, b, row, col, weight)
    with ``weight`` already divided by the bin's sample count, so that
    ``out[k, :, i, j] = sum of weight * x[b, :, row, col]`` over its reads.
    """
    # ===== START SOLUTION: loop over boxes, bins and sample points; keep every read for the backward =====
    xp = array_module(x)
    ph, pw = (output_size, output_size) if isinstance(output_size, int) else output_size
    n, c, height, width = x.shape
    offset = 0.5 if aligned else 0.0
    out = xp.zeros((rois.shape[0], c, ph, pw), dtype=x.dtype)
    reads = []
    for k in range(rois.shape[0]):
        b, x1, y1, x2, y2 = (float(v) for v in rois[k])
        start_y, start_x = y1 * spatial_scale - offset, x1 * spatial_scale - offset
        roi_h, roi_w = y2 * spatial_scale - offset - start_y, x2 * spatial_scale - offset - start_x
        if not aligned:
            roi_h, roi_w = max(roi_h, 1.0), max(roi_w, 1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw)
        count = max(grid_h * grid_w, 1)
        for i in range(ph):
            for j in range(pw):
                for iy in range(grid_h):
                    y = start_y + i * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        xx = start_x + j * bin_w + (ix + 0.5) * bin_w / grid_w
                        for row, col, weight in bilinear_weights(y, xx, height, width):
                            out[k, :, i, j] += weight / count * x[int(b), :, row, col]
                            reads.append((k, i, j, int(b), row, col, weight / count))
    return out, {"x_shape": x.shape, "reads": reads}
    # ===== END SOLUTION =====


def roi_align2d_backward(dout, cache):
    """Gradient of RoIAlign: dout (K, C, PH, PW) -> dx (N, C, H, W).

    Every read ``out[k, :, i, j] += weight * x[b, :, row, col]`` sends
    ``weight * dout[k, :, i, j]`` back to ``dx[b, :, row, col]``. A cell read
    by several samples, bins or boxes collects the SUM of what they send.
    """
    # ===== START SOLUTION: every read sends weight * dout back to its cell, added up =====
    xp = array_module(dout)
    dx = xp.zeros(cache["x_shape"], dtype=dout.dtype)
    for k, i, j, b, row, col, weight in cache["reads"]:
        dx[b, :, row, col] += weight * dout[k, :, i, j]
    return dx
    # ===== END SOLUTION =====
