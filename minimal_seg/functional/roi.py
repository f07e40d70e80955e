"""RoI pooling (Fast R-CNN) and RoIAlign (Mask R-CNN): a fixed-size feature per box.

Notation: x (N, C, H, W) a feature map; rois (K, 5), row k =
``(b, x1, y1, x2, y2)``: the image index b in the batch and a box in *image*
coordinates; ``spatial_scale`` maps them onto the feature map (1/16 for a
stride-16 backbone). out (K, C, PH, PW), one PH x PW grid of bins per box.
The semantics are torchvision's (``torchvision.ops.roi_pool`` / ``roi_align``),
so every number can be compared with it.

**RoI pooling** rounds the box to whole feature cells and takes the max of
each bin (Fast R-CNN)::

    x1' = round(x1 * scale)  (half away from zero; likewise y1', x2', y2')
    roi_h = max(y2' - y1' + 1, 1)         (the box covers rows y1' .. y2')
    bin_h = roi_h / PH                    (a float)
    rows of bin ph:  y1' + floor(ph * bin_h)  ..  y1' + ceil((ph + 1) * bin_h) - 1,
                     clipped to [0, H]    (columns likewise)
    out[k, c, ph, pw] = max over the bin of x[b, c]   (0 for an empty bin)

The position of the max (``h*W + w`` in the plane, -1 for an empty bin) is
kept, like max pooling's indices: the gradient goes to that pixel only.
Rounding moves the box by up to half a cell: the misalignment RoIAlign removes.

**RoIAlign** keeps the box in continuous coordinates and *samples* the map by
bilinear interpolation, averaging a grid of GH x GW points in each bin::

    offset = 0.5 if aligned else 0        (aligned: pixel centres sit at +0.5)
    y1' = y1 * scale - offset;  roi_h = y2 * scale - offset - y1'
    roi_h = max(roi_h, 1)   unless aligned            (likewise x, roi_w)
    bin_h = roi_h / PH;  GH = sampling_ratio if > 0 else ceil(roi_h / PH)
    y(ph, iy) = y1' + ph * bin_h + (iy + 0.5) * bin_h / GH,   iy = 0 .. GH-1
    out[k, c, ph, pw] = 1/(GH*GW) * sum_{iy, ix} bilinear(x[b, c], y(ph, iy), x(pw, ix))

``bilinear`` is zero for a point outside [-1, H] x [-1, W]; otherwise it
clamps the point to [0, H-1] x [0, W-1] and mixes the four pixels around it.

**The matrix view.** Bilinear weights are separable, w(y, x) = a(y) * b(x),
so the bins of one box are a (PH, H) matrix A_k (row ph: the summed weights
of its sample rows, divided by GH) and a (PW, W) matrix B_k, and RoIAlign is
two matrix products per box, like ``adaptive_avg_pool2d``::

    out[k] = A_k @ x[b_k] @ B_k.T          (PH, H) @ (C, H, W) @ (W, PW)
    dx[b]  = sum_{k: b_k = b} A_k.T @ dout[k] @ B_k

All K boxes go through one batched matmul. The boxes themselves get no
gradient (as in torchvision).
"""
from __future__ import annotations

from ..backend import array_module
from .common import Cache, check_array, check_dout, check_nchw, check_same_module
from .shapes import positive_pair


def _check_rois(x, rois):
    """Check rois (K, 5) against x (N, C, H, W); return the batch indices (K,) int64."""
    check_array(rois, "rois")
    check_same_module("x", x, "rois", rois)
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must have shape (K, 5) = (batch index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    xp = array_module(rois)
    batch = rois[:, 0].astype(xp.int64)
    if rois.shape[0] and bool(xp.any((batch != rois[:, 0]) | (batch < 0) | (batch >= x.shape[0]))):
        raise ValueError(f"rois[:, 0] must hold whole image indices in [0, {x.shape[0]}) for x of shape {tuple(x.shape)}")
    return batch


def _check_scale(spatial_scale):
    if not spatial_scale > 0:
        raise ValueError(f"spatial_scale must be > 0, got {spatial_scale!r}")
    return float(spatial_scale)


def _round_half_away(v):
    """C's round(): 0.5 -> 1, -0.5 -> -1, 2.5 -> 3 (numpy's round would give 2)."""
    xp = array_module(v)
    return xp.sign(v) * xp.floor(xp.abs(v) + 0.5)


# ---------------------------------------------------------------------------
# RoI pooling
# ---------------------------------------------------------------------------


def roi_pool_bins(start, size, bins: int, limit: int):
    """Bin edges along one axis of rounded boxes: start, size (K,) -> lo, hi (K, bins) int64.

    Bin i covers cells lo .. hi - 1 with lo = start + floor(i * size / bins),
    hi = start + ceil((i + 1) * size / bins), both clipped to [0, limit].
    """
    xp = array_module(start)
    i = xp.arange(bins, dtype=start.dtype)
    bin_size = (size / bins)[:, None]
    lo = xp.floor(i * bin_size) + start[:, None]
    hi = xp.ceil((i + 1) * bin_size) + start[:, None]
    return (xp.clip(lo, 0, limit).astype(xp.int64), xp.clip(hi, 0, limit).astype(xp.int64))


def roi_pool2d_forward(x, rois, output_size, spatial_scale=1.0):
    """Fast R-CNN RoI max pooling: x (N, C, H, W), rois (K, 5) -> out (K, C, PH, PW).

    As ``torchvision.ops.roi_pool(x, rois, output_size, spatial_scale)``.
    The cache keeps ``argmax`` (K, C, PH, PW): the flat position ``h*W + w``
    of each bin's max in its image plane (the first one on ties, row-major),
    -1 for an empty bin (whose output is 0).

    Vectorised over boxes and bins: every bin is padded to the largest bin
    (BH x BW cells), the padding masked with -inf, and one argmax runs over
    the BH*BW candidates of all bins at once.
    """
    check_nchw(x)
    batch = _check_rois(x, rois)
    (ph, pw), scale = positive_pair(output_size, "output_size"), _check_scale(spatial_scale)
    xp = array_module(x)
    n, c, h, w = x.shape
    k = rois.shape[0]
    corners = _round_half_away(rois[:, 1:].astype(x.dtype) * x.dtype.type(scale))
    x1, y1, x2, y2 = (corners[:, i] for i in range(4))
    hlo, hhi = roi_pool_bins(y1, xp.maximum(y2 - y1 + 1, 1), ph, h)  # (K, PH)
    wlo, whi = roi_pool_bins(x1, xp.maximum(x2 - x1 + 1, 1), pw, w)  # (K, PW)
    bh = max(int((hhi - hlo).max()) if k else 0, 1)  # the tallest bin
    bw = max(int((whi - wlo).max()) if k else 0, 1)
    rows = hlo[:, :, None] + xp.arange(bh)  # (K, PH, BH) candidate rows of each bin
    cols = wlo[:, :, None] + xp.arange(bw)  # (K, PW, BW)
    inside = ((rows < hhi[:, :, None])[:, :, None, :, None]
              & (cols < whi[:, :, None])[:, None, :, None, :])  # (K, PH, PW, BH, BW)
    plane = xp.minimum(rows, h - 1)[:, :, None, :, None] * w + xp.minimum(cols, w - 1)[:, None, :, None, :]
    plane = xp.where(inside, plane, 0).reshape(k, ph, pw, bh * bw)
    pixels = x.reshape(n, c, h * w)[batch[:, None, None, None], :, plane]  # (K, PH, PW, BH*BW, C)
    pixels = xp.where(inside.reshape(k, ph, pw, bh * bw, 1), pixels, -xp.inf)
    best = pixels.argmax(axis=3)  # (K, PH, PW, C): first max in row-major order
    out = xp.take_along_axis(pixels, best[:, :, :, None], axis=3)[:, :, :, 0]
    argmax = xp.take_along_axis(plane, best, axis=3)  # (K, PH, PW, C) flat plane positions
    empty = ~inside.reshape(k, ph, pw, bh * bw).any(axis=3)[..., None]  # (K, PH, PW, 1)
    out = xp.where(empty, 0, out).transpose(0, 3, 1, 2).astype(x.dtype)
    argmax = xp.where(empty, -1, argmax).transpose(0, 3, 1, 2)
    return xp.ascontiguousarray(out), Cache(x_shape=x.shape, batch=batch, argmax=xp.ascontiguousarray(argmax))


def roi_pool2d_backward(dout, cache):
    """Gradient of RoI pooling: dout (K, C, PH, PW) -> dx (N, C, H, W).

    Each dout entry goes to the pixel that won its bin; a pixel that wins
    several bins (or boxes) collects the sum. One bincount does the scatter.
    """
    n, c, h, w = cache.x_shape
    k = cache.batch.shape[0]
    check_dout(dout, (k, c) + tuple(cache.argmax.shape[2:]))
    xp = array_module(dout)
    channel = (cache.batch[:, None] * c + xp.arange(c))[:, :, None, None]  # (K, C, 1, 1): plane number
    target = xp.where(cache.argmax >= 0, channel * (h * w) + cache.argmax, n * c * h * w)  # empty -> spare bin
    dx = xp.bincount(target.ravel(), weights=dout.ravel(), minlength=n * c * h * w + 1)
    return dx[: n * c * h * w].reshape(n, c, h, w).astype(dout.dtype)


# ---------------------------------------------------------------------------
# RoIAlign
# ---------------------------------------------------------------------------


def roi_align_matrix(start, size, bins: int, grid, limit: int):
    """The (K, bins, limit) sampling matrices of one axis for K boxes.

    start, size (K,): the box's first coordinate and its length on the
    feature map; grid (K,) int: samples per bin (GH). Row i of box k holds
    the bilinear weights of its GH sample points
    ``p = start + i*size/bins + (iy + 0.5) * size/bins / GH``, summed and
    divided by GH; a point outside [-1, limit] weighs nothing, the others are
    clamped to [0, limit - 1] and split between the two cells around them.
    """
    xp = array_module(start)
    g = max(int(grid.max()) if grid.size else 0, 1)  # the largest grid; smaller ones are masked
    bin_size = (size / bins)[:, None, None]
    steps = xp.maximum(grid, 1).astype(start.dtype)[:, None, None]
    i = xp.arange(bins, dtype=start.dtype)[None, :, None]
    iy = xp.arange(g, dtype=start.dtype)[None, None, :]
    p = start[:, None, None] + i * bin_size + (iy + 0.5) * bin_size / steps  # (K, bins, G)
    used = (iy < grid[:, None, None]) & (p >= -1) & (p <= limit)
    p = xp.maximum(p, 0)
    low = xp.minimum(xp.floor(p), limit - 1)
    frac = xp.where(low >= limit - 1, 0, p - low)  # at the last cell: all weight on it
    high = xp.minimum(low + 1, limit - 1)
    cells = xp.arange(limit, dtype=start.dtype)
    weights = ((1 - frac)[..., None] * (low[..., None] == cells) + frac[..., None] * (high[..., None] == cells))
    return (xp.where(used[..., None], weights, 0).sum(axis=2) / steps).astype(start.dtype)


def roi_align2d_forward(x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoIAlign: x (N, C, H, W), rois (K, 5) -> out (K, C, PH, PW).

    As ``torchvision.ops.roi_align(x, rois, output_size, spatial_scale,
    sampling_ratio, aligned)``. sampling_ratio > 0 fixes GH = GW to it;
    <= 0 takes the adaptive grid ceil(roi_h / PH) x ceil(roi_w / PW) of
    each box. The cache keeps the sampling matrices A (K, PH, H) and
    B (K, PW, W): ``out[k] = A[k] @ x[b_k] @ B[k].T``.
    """
    check_nchw(x)
    batch = _check_rois(x, rois)
    (ph, pw), scale = positive_pair(output_size, "output_size"), _check_scale(spatial_scale)
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int (<= 0 for adaptive), got {sampling_ratio!r}")
    xp = array_module(x)
    h, w = x.shape[2:]
    box = rois[:, 1:].astype(x.dtype) * x.dtype.type(scale) - x.dtype.type(0.5 if aligned else 0.0)
    x1, y1 = box[:, 0], box[:, 1]
    roi_w, roi_h = box[:, 2] - x1, box[:, 3] - y1
    if not aligned:  # the original RoIAlign makes every box at least one cell
        roi_w, roi_h = xp.maximum(roi_w, 1), xp.maximum(roi_h, 1)
    if sampling_ratio > 0:
        grid_h = grid_w = xp.full(rois.shape[0], sampling_ratio, dtype=xp.int64)
    else:
        grid_h, grid_w = xp.ceil(roi_h / ph).astype(xp.int64), xp.ceil(roi_w / pw).astype(xp.int64)
    a = roi_align_matrix(y1, roi_h, ph, grid_h, h)  # (K, PH, H)
    b = roi_align_matrix(x1, roi_w, pw, grid_w, w)  # (K, PW, W)
    out = a[:, None] @ x[batch] @ b[:, None].transpose(0, 1, 3, 2)
    return out, Cache(x_shape=x.shape, batch=batch, a=a, b=b)


def roi_align2d_backward(dout, cache):
    """Gradient of RoIAlign: dout (K, C, PH, PW) -> dx (N, C, H, W).

    The transpose of each box's two products, ``A[k].T @ dout[k] @ B[k]``,
    added into its image b_k; the per-image sum is one matmul with the
    (N, K) one-hot matrix of the batch indices.
    """
    n, c, h, w = cache.x_shape
    k = cache.batch.shape[0]
    check_dout(dout, (k, c, cache.a.shape[1], cache.b.shape[1]))
    xp = array_module(dout)
    per_box = cache.a[:, None].transpose(0, 1, 3, 2) @ dout @ cache.b[:, None]  # (K, C, H, W)
    owner = (xp.arange(n)[:, None] == cache.batch[None, :]).astype(dout.dtype)  # (N, K)
    return (owner @ per_box.reshape(k, c * h * w)).reshape(n, c, h, w)
