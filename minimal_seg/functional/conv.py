"""Convolution and transposed convolution, by im2col and one matrix product.

Notation: x (N, C, H, W), w (OC, C, KH, KW), out (N, OC, OH, OW); stride
(SH, SW), padding (PH, PW), dilation (DH, DW); L = OH*OW window positions;
K = C*KH*KW values in one window. Output sizes come from ``shapes.py``.

**im2col** copies every KH x KW window of the padded input into one column
of a single matrix for the whole batch::

    cols[(c, i, j), (n, oh, ow)] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]

so cols is (K, N*L): row (c, i, j) is channel c at kernel offset (i, j),
column (n, oh, ow) is one window. The convolution of the whole batch is then
one matrix product (a GEMM), with the weight flattened to W (OC, K)::

    out = W @ cols                  (OC, N*L), then  + b
    out -> (OC, N, OH, OW) -> (N, OC, OH, OW)     (move the batch axis back)

**col2im** is the transpose (adjoint) of im2col: it adds every column back
into the window it came from, so overlapping windows sum up. Both loop over
the KH*KW kernel offsets, never over pixels: for one offset (i, j), the
pixels the windows read form a strided slice of the padded input.

Backward of ``out = W @ cols`` (gradients of a matrix product), with dout
laid out like out, as an (OC, N*L) matrix::

    dW    = dout @ cols.T           (conv_weight_grad)
    dcols = W.T @ dout   ->  dx = col2im(dcols)

Why this layout: with the batch inside the columns, each product is one
GEMM over the whole batch on 2-D arrays BLAS (and cuBLAS) take as they are;
the price is two cheap copies that move the channel axis in front of the
batch axis and back (``_channels_first``, ``_batch_first``).

**Stride 1 shortcut.** A stride-1 convolution is also a transposed
convolution (of x, with the flipped kernel), so ``conv2d_backward`` can get
both gradients from one im2col of dout, like ``conv_transpose2d_backward``,
without col2im and without keeping cols from the forward pass. Same
numbers, less time and memory.

**Stride 1: wide columns, by blocks of rows.** With stride 1 the windows
of consecutive output pixels of a row are shifted by one pixel. So let the
output run over all Wp = W + 2*PW positions of a padded row, not only the
first OW: with the padded image flattened (xflat, one row after the
other), the window of output position p = oh*Wp + ow starts at xflat[p],
and one kernel offset (i, j) reads the contiguous slice
xflat[p + i*DH*Wp + j*DW] for all p at once (``im2col_wide``)::

    cols[(c, i, j), (n, p)] = xflat[c, n, p + i*DH*Wp + j*DW]      (C*KH*KW, N*OH*Wp)

A copy of long contiguous slices instead of OH short rows per offset;
the DW*(KW-1) positions per row that straddle the right border are
computed and thrown away (``_wide_to_nchw``), so it is used where they
are few (OW >= 0.85 Wp: not at 8x8). The stride-1 shortcut of the
backward (above) builds the wide columns of dout the same way
(``_grads_wide``), and so does the backward of a stride-1 transposed
convolution. On a CPU the columns are built in blocks of rows of about
2 MiB (``_wide_blocks``), which the GEMM reads while they are still in the
cache: the columns of a whole 64x64 image (up to 5 MiB in the U-Net)
would go out to memory and back. (Measured on the U-Net step, 2 cores:
2 MiB blocks are 9 % faster than 1 MiB with two BLAS threads, whose GEMMs
need some size to share, and 3 % slower with one thread.)

**1x1 shortcut.** A 1x1 convolution with stride 1 and no padding has
nothing to unfold: image n is already the (C, H*W) matrix its columns
would be, so out[n] = W @ x[n] is one batched GEMM (``matmul`` over the
batch) that writes the output in its final layout, and so are both
gradients (``_pointwise_forward``, ``_pointwise_backward``).

The **transposed convolution** is the transpose of the convolution matrix
(see ``conv_matrix.py``): its forward is exactly the conv's input gradient
(col2im of W.T @ x), and its backward is the conv's forward. Its weight is
laid out (C_in, C_out, KH, KW), as in PyTorch, because it is the weight of
the convolution that maps C_out channels back to C_in.

**Memory.** cols is KH*KW times larger than x, so every op works through the
batch in chunks of images (``batch_chunks``): never more than the im2col
budget (default 256 MiB; ``set_im2col_budget``, ``use_im2col_budget`` or the
environment variable ``MINIMAL_SEG_IM2COL_BUDGET``, e.g. ``512M``), and on a
CPU about 4 MiB, which still sits in the cache when the GEMM reads it. The
chunks give the same results as one big matrix.
"""
from __future__ import annotations

import contextlib
import os

from ..backend import array_module, is_device_array
from .common import Cache, check_array, check_float, check_nchw, check_ndim, check_same_module, window
from .shapes import conv2d_output_shape, conv_transpose2d_output_shape, nonnegative_pair, positive_pair


# ---- im2col and col2im -------------------------------------------------------------


def _conv_params(kernel_size, stride, padding, dilation):
    return (
        positive_pair(kernel_size, "kernel_size"),
        positive_pair(stride, "stride"),
        nonnegative_pair(padding, "padding"),
        positive_pair(dilation, "dilation"),
    )


def _channels_first(a):
    """(N, C, H, W) -> the (C, N*H*W) matrix the GEMMs use (a copy)."""
    n, c, h, w = a.shape
    return a.transpose(1, 0, 2, 3).reshape(c, n * h * w)


def _batch_first(m, out, b=None):
    """Write the (C, N*H*W) matrix m into out (N, C, H, W), plus b (C,) if given: ``_channels_first`` undone."""
    xp = array_module(m)
    n, c, h, w = out.shape
    m = m.reshape(c, n, h, w).transpose(1, 0, 2, 3)
    if b is None:
        out[...] = m
    else:
        xp.add(m, b[:, None, None], out=out)


def _join(parts):
    """Concatenate per-chunk results along the batch axis (no copy for a single chunk)."""
    return parts[0] if len(parts) == 1 else array_module(parts[0]).concatenate(parts)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Unfold the windows of x (N, C, H, W) into cols (C*KH*KW, N*OH*OW).

    Column (n, oh, ow) is the window of image n at output position (oh, ow);
    row (c, i, j) is channel c at kernel offset (i, j). ``out_size`` (OH, OW)
    may ask for fewer positions than the formula gives (used by the
    transposed convolution).
    """
    check_nchw(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _conv_params(kernel_size, stride, padding, dilation)
    n, c, h, w = x.shape
    oh, ow = out_size or conv2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    xp = array_module(x)
    xpad = x.transpose(1, 0, 2, 3)  # (C, N, H, W): channels first, then the batch, like the rows of cols
    if ph or pw:
        xpad = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        xpad[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xpad[:, :, window(i * dh, sh, oh), window(j * dw, sw, ow)]
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Fold cols (C*KH*KW, N*OH*OW) back into an image of ``x_shape`` (N, C, H, W).

    The adjoint of ``im2col``: every entry is added (not written) into the
    pixel it was copied from, so overlapping windows sum up.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _conv_params(kernel_size, stride, padding, dilation)
    n, c, h, w = x_shape
    oh, ow = out_size or conv2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    expected = (c * kh * kw, n * oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"cols must have shape {expected} for x_shape {tuple(x_shape)}, got {tuple(cols.shape)}")
    xp = array_module(cols)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)  # already in the layout of the result
    overlap = sh <= dh * (kh - 1) or sw <= dw * (kw - 1)
    for i in range(kh):
        for j in range(kw):
            pixels = xpad[:, :, window(i * dh, sh, oh), window(j * dw, sw, ow)]
            if overlap:
                pixels += cols[:, i, j].transpose(1, 0, 2, 3)
            else:  # every pixel gets at most one value (e.g. kernel 2, stride 2): writing is adding to 0
                pixels[...] = cols[:, i, j].transpose(1, 0, 2, 3)
    if ph or pw:
        return xp.ascontiguousarray(xpad[:, :, ph:ph + h, pw:pw + w])
    return xpad


# ---- stride 1: wide columns, by blocks of rows ---------------------------------------


WIDE_BLOCK_BYTES = 2 * 2**20  # CPU: wide columns by blocks of about 2 MiB, which stay in the cache for the GEMM
MIN_WIDE_FILL = 0.85  # wide columns only where OW >= 0.85 Wp (64x64: 0.97, 16x16: 0.89, 8x8: 0.8 -> im2col)


def _pad_flat(x, padding):
    """x (N, C, H, W) -> (C, N, (H + 2*PH + 1) * Wp): zero-padded, channels first, each image flattened.

    Wp = W + 2*PW. One extra zero row at the bottom keeps every shifted
    slice of ``im2col_wide`` inside its image.
    """
    xp = array_module(x)
    (ph, pw) = padding
    n, c, h, w = x.shape
    hp, wp = h + 2 * ph + 1, w + 2 * pw
    xpad = xp.zeros((c, n, hp, wp), dtype=x.dtype)
    xpad[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    return xpad.reshape(c, n, hp * wp)


def im2col_wide(xflat, width, kernel_size, dilation, rows):
    """Wide columns of a stride-1 conv for the output rows ``rows``: (C*KH*KW, N*R*Wp), R = len(rows).

    xflat (C, N, Hp*Wp) comes from ``_pad_flat``, Wp = ``width``. With the
    output computed at all Wp positions of a padded row (not only the first
    OW), the window of output pixel p = oh*Wp + ow starts at xflat[p], and
    kernel offset (i, j) reads xflat[p + i*DH*Wp + j*DW]: for one offset,
    the values of consecutive output pixels are consecutive in memory::

        cols[(c, i, j), (n, p)] = xflat[c, n, p + i*DH*Wp + j*DW],   p = oh*Wp + ow

    so each offset is one contiguous slice per (channel, image), not OH
    short rows. The price: positions with ow >= OW (they straddle the
    right border) are computed and thrown away (``_wide_to_nchw``).
    """
    xp = array_module(xflat)
    (kh, kw), (dh, dw) = kernel_size, dilation
    c, n, _ = xflat.shape
    count = (rows.stop - rows.start) * width
    cols = xp.empty((c, kh, kw, n, count), dtype=xflat.dtype)
    for i in range(kh):
        for j in range(kw):
            start = (rows.start + i * dh) * width + j * dw
            cols[:, i, j] = xflat[:, :, start:start + count]
    return cols.reshape(c * kh * kw, n * count)


def _wide_to_nchw(m, width, out):
    """Write the wide result m (C, N*R*Wp), Wp = ``width``, into out (N, C, R, W): drop the positions ow >= W."""
    n, c, r, w = out.shape
    out[...] = m.reshape(c, n, r, width)[:, :, :, :w].transpose(1, 0, 2, 3)


def _wide_blocks(x, rows, row_bytes):
    """[(images, [row blocks])]: slices of the batch and of the ``rows`` output rows, for ``im2col_wide``.

    A block's columns (``row_bytes`` per output row and image) stay within
    WIDE_BLOCK_BYTES on a CPU (within the budget on a GPU): several whole
    images when they fit, else one image at a time, in blocks of rows.
    """
    n, budget = x.shape[0], get_im2col_budget()
    if row_bytes > budget:
        raise MemoryError(
            f"im2col needs {row_bytes / 2**20:.2f} MiB for one row of windows, more than the im2col budget of "
            f"{budget / 2**20:.2f} MiB; raise it with set_im2col_budget() or MINIMAL_SEG_IM2COL_BUDGET"
        )
    target = budget if is_device_array(x) else min(budget, WIDE_BLOCK_BYTES)
    if rows * row_bytes <= target:
        return [(part, [slice(0, rows)]) for part in batch_chunks(x, rows * row_bytes, target)]
    per_block = max(1, target // row_bytes)
    row_blocks = [slice(r, min(rows, r + per_block)) for r in range(0, rows, per_block)]
    return [(slice(i, min(n, i + 1)), row_blocks) for i in range(max(n, 1))]  # an empty batch: one empty block


def _use_wide(out_width, width):
    """Wide columns pay when few of their positions are thrown away: OW / Wp >= MIN_WIDE_FILL."""
    return out_width >= MIN_WIDE_FILL * width


def _conv2d_wide(x, w, b, padding, dilation, out):
    """Stride-1 conv2d into out (N, OC, OH, OW) by blocks of wide columns: out = W @ cols per block, then + b.

    The bias is added once to the whole output: per block, a broadcast add
    over short rows costs more than the copy it would be fused into.
    """
    oc, c, kh, kw = w.shape
    n, _, oh, ow = out.shape
    width = x.shape[3] + 2 * padding[1]
    w_mat = w.reshape(oc, c * kh * kw)
    for images, row_blocks in _wide_blocks(x, oh, c * kh * kw * width * x.itemsize):
        xflat = _pad_flat(x[images], padding)
        for rows in row_blocks:
            cols = im2col_wide(xflat, width, (kh, kw), dilation, rows)
            _wide_to_nchw(w_mat @ cols, width, out[images, :, rows])
    if b is not None:
        out.reshape(n, oc, oh * ow)[...] += b[:, None]


def _grads_wide(dout, x, w_mat, kernel_size, padding, dilation):
    """``_grads_from_dout_columns`` for stride 1, by blocks of wide columns of dout.

    dW = x @ dcols.T needs x at the same wide positions, with zeros at the
    thrown-away ones (ow >= W): x padded on the right to Wp columns.
    """
    xp = array_module(x)
    n, c, h, wd = x.shape
    width = dout.shape[3] + 2 * padding[1]
    dx, dw = xp.empty(x.shape, dtype=x.dtype), 0
    for images, row_blocks in _wide_blocks(x, h, w_mat.shape[1] * width * x.itemsize):
        dflat = _pad_flat(dout[images], padding)
        xwide = xp.zeros((c, images.stop - images.start, h, width), dtype=x.dtype)
        xwide[:, :, :, :wd] = x[images].transpose(1, 0, 2, 3)
        for rows in row_blocks:
            dcols = im2col_wide(dflat, width, kernel_size, dilation, rows)
            dw = dw + conv_weight_grad(xwide[:, :, rows].reshape(c, -1), dcols)
            _wide_to_nchw(w_mat @ dcols, width, dx[images, :, rows])
    return dx, dw


def conv_weight_grad(dout, cols):
    """dW = dout @ cols.T, shared by conv2d and conv_transpose2d.

    dout (OC, N*L) is the gradient of the conv's output and cols (K, N*L) its
    unfolded input; returns (OC, K). One GEMM over the whole batch, computed
    as (cols @ dout.T).T: the same product, but OpenBLAS runs this long,
    thin one up to 3x faster with the big matrix on the left.
    """
    return (cols @ dout.T).T


# ---- conv2d ---------------------------------------------------------------------


def _check_weight(x, w, b, x_channels_axis, name_in):
    """Validate w (4-D, float, same dtype/backend as x), its channel count and b."""
    check_nchw(x)
    check_ndim(w, 4, "w")
    check_float(w, "w")
    check_same_module("x", x, "w", w)
    if w.dtype != x.dtype:
        raise TypeError(f"w has dtype {w.dtype} but x has dtype {x.dtype}; use one dtype")
    if w.shape[x_channels_axis] != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has {x.shape[1]} channels but w of shape {tuple(w.shape)} "
            f"expects {name_in}={w.shape[x_channels_axis]}"
        )
    if b is not None:
        check_array(b, "b")
        out_channels = w.shape[1 - x_channels_axis]
        if tuple(b.shape) != (out_channels,):
            raise ValueError(f"b must have shape ({out_channels},), got {tuple(b.shape)}")
        if b.dtype != x.dtype:
            raise TypeError(f"b has dtype {b.dtype} but x has dtype {x.dtype}")


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """2-D convolution (cross-correlation, as PyTorch) by im2col.

    x (N, C, H, W), w (OC, C, KH, KW), b (OC,) or None -> out (N, OC, OH, OW)::

        out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*SH + i*DH, q*SW + j*DW]

    cache: x, w, stride, padding, dilation, has_bias, flip_padding (see
    ``conv2d_backward``) and cols (K, N*L) when the backward will need them
    (no flip_padding) and they fit the im2col budget, else None; pointwise:
    True for a 1x1 stride-1 conv without padding, which needs no im2col
    (``_pointwise_forward``). A stride-1 conv whose backward takes the
    flip shortcut runs on wide columns (``_conv2d_wide``): it keeps no cols.
    """
    _check_weight(x, w, b, 1, "C_in")
    oc, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding, dilation)
    if _is_pointwise(w.shape, stride, padding):
        return _pointwise_forward(x, w, b, stride, padding, dilation)
    out = array_module(x).empty((n, oc, oh, ow), dtype=x.dtype)
    flip_padding = _flip_padding(w.shape, stride, padding, dilation)
    pad, dil = nonnegative_pair(padding, "padding"), positive_pair(dilation, "dilation")
    if flip_padding is not None and _use_wide(ow, wd + 2 * pad[1]):
        _conv2d_wide(x, w, b, pad, dil, out)
        cache = Cache(x=x, w=w, cols=None, stride=stride, padding=padding, dilation=dilation,
                      has_bias=b is not None, flip_padding=flip_padding, pointwise=False)
        return out, cache
    w_mat = w.reshape(oc, c * kh * kw)
    chunks = batch_chunks(x, c * kh * kw * oh * ow * x.itemsize)
    for part in chunks:
        cols = im2col(x[part], (kh, kw), stride, padding, dilation, out_size=(oh, ow))
        _batch_first(w_mat @ cols, out[part], b)  # (OC, nb*L): one GEMM for the whole chunk
    keep = flip_padding is None and len(chunks) == 1
    cache = Cache(x=x, w=w, cols=cols if keep else None, stride=stride, padding=padding, dilation=dilation,
                  has_bias=b is not None, flip_padding=flip_padding, pointwise=False)
    return out, cache


def conv2d_backward(dout, cache):
    """Gradients of conv2d: dout (N, OC, OH, OW) -> (dx, dw, db); db is None without bias.

    In general, as the gradients of ``out = W @ cols``: dw = dout @ cols.T
    (``conv_weight_grad``) and dx = col2im(W.T @ dout), the transposed
    convolution of dout.

    With stride 1 there is a faster way to the same numbers. Such a
    convolution is itself a transposed convolution: of x, with the flipped
    kernel ``w[:, :, ::-1, ::-1]`` (its two channel axes swapped) and padding
    D*(K-1) - P. So its gradients are those of ``conv_transpose2d_backward``:
    both come from one im2col of dout, dx = W_flip @ dcols and
    dW_flip = x @ dcols.T, with no col2im, and the forward need not keep its
    cols. ``cache.flip_padding`` is D*(K-1) - P when this applies.
    """
    x, w = cache.x, cache.w
    oc, c, kh, kw = w.shape
    n, _, oh, ow = dout.shape
    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    if cache.pointwise:
        return _pointwise_backward(dout, x, w) + (db,)
    if cache.flip_padding is not None:
        w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, oc * kh * kw)
        dx, dw_flip = _grads_from_dout_columns(dout, x, w_flip, (kh, kw), 1, cache.flip_padding, cache.dilation)
        dw = dw_flip.reshape(c, oc, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        return dx, array_module(dw).ascontiguousarray(dw), db
    kept = cache.cols is not None  # the forward kept the columns of the whole batch
    chunks = [slice(0, n)] if kept else batch_chunks(x, c * kh * kw * oh * ow * x.itemsize)
    dw, dx_parts = 0, []
    for part in chunks:
        cols = cache.cols if kept else im2col(x[part], (kh, kw), cache.stride, cache.padding, cache.dilation)
        d = _channels_first(dout[part])  # (OC, nb*L)
        dw = dw + conv_weight_grad(d, cols)
        dx_parts.append(col2im(w.reshape(oc, -1).T @ d, x[part].shape, (kh, kw), cache.stride, cache.padding,
                               cache.dilation))
    return _join(dx_parts), dw.reshape(w.shape), db


def _is_pointwise(w_shape, stride, padding):
    """A 1x1 kernel with stride 1 and no padding: the conv only mixes channels, pixel by pixel."""
    return tuple(w_shape[2:]) == (1, 1) and positive_pair(stride, "stride") == (1, 1) \
        and nonnegative_pair(padding, "padding") == (0, 0)


def _pointwise_forward(x, w, b, stride, padding, dilation):
    """1x1 conv: every image is a (C, H*W) matrix already, so there is nothing to unfold::

        out[n] = W @ x[n]          W (OC, C), x[n] (C, H*W) -> (OC, H*W)

    One batched GEMM (``matmul`` over the N images) writes the output in its
    final (N, OC, H, W) layout: no im2col, no transposes.
    """
    n, c, h, wd = x.shape
    oc = w.shape[0]
    out = array_module(x).matmul(w.reshape(oc, c), x.reshape(n, c, h * wd))
    if b is not None:
        out += b[:, None]
    cache = Cache(x=x, w=w, cols=None, stride=stride, padding=padding, dilation=dilation,
                  has_bias=b is not None, flip_padding=None, pointwise=True)
    return out.reshape(n, oc, h, wd), cache


def _pointwise_backward(dout, x, w):
    """(dx, dw) of the 1x1 conv, as the gradients of out[n] = W @ x[n]::

        dx[n] = W.T @ dout[n]                   (C, H*W), batched over n
        dW    = sum_n dout[n] @ x[n].T          (OC, C)
    """
    xp = array_module(x)
    n, c, h, wd = x.shape
    oc = w.shape[0]
    d = dout.reshape(n, oc, h * wd)
    dx = xp.matmul(w.reshape(oc, c).T, d).reshape(x.shape)
    dw = xp.matmul(d, x.reshape(n, c, h * wd).transpose(0, 2, 1)).sum(axis=0)
    return dx, dw.reshape(w.shape)


def _flip_padding(w_shape, stride, padding, dilation):
    """D*(K-1) - P per axis when conv2d_backward takes its stride-1 shortcut, else None.

    Needs stride 1 and P <= D*(K-1). Taken when OC <= 2*C: the columns of
    dout (OC channels) are then at most twice as large as those of x, and
    building them is still cheaper than keeping cols and running col2im.
    A first layer (C = 1 or 3, OC = 16 or more) takes the general path.
    """
    oc, c, kh, kw = w_shape
    (sh, sw), (ph, pw), (dh, dw) = positive_pair(stride, "stride"), nonnegative_pair(padding, "padding"), \
        positive_pair(dilation, "dilation")
    flip = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)
    if (sh, sw) == (1, 1) and min(flip) >= 0 and oc <= 2 * c:
        return flip
    return None


def _grads_from_dout_columns(dout, x, w_mat, kernel_size, stride, padding, dilation):
    """(dx, dW) of out = conv_transpose(x) with weight matrix w_mat (C_x, C_out*KH*KW).

    out is C^T x for the conv C that maps out back to x's shape, so with
    dcols = im2col(dout) (C_out*KH*KW, N*H*W), the columns of that conv::

        dx = w_mat @ dcols          (C^T's gradient is C)
        dW = x @ dcols.T            (conv_weight_grad, roles of input and output swapped)

    With stride 1, on wide columns of dout, by blocks of rows (``_grads_wide``).
    """
    n, c, h, wd = x.shape
    pad, dil = nonnegative_pair(padding, "padding"), positive_pair(dilation, "dilation")
    if positive_pair(stride, "stride") == (1, 1) and _use_wide(wd, dout.shape[3] + 2 * pad[1]):
        return _grads_wide(dout, x, w_mat, kernel_size, pad, dil)
    per_image = w_mat.shape[1] * h * wd * x.itemsize
    dw, dx = 0, array_module(x).empty(x.shape, dtype=x.dtype)
    for part in batch_chunks(x, per_image):
        dcols = im2col(dout[part], kernel_size, stride, padding, dilation, out_size=(h, wd))
        dw = dw + conv_weight_grad(_channels_first(x[part]), dcols)
        _batch_first(w_mat @ dcols, dx[part])
    return dx, dw


# ---- conv_transpose2d ---------------------------------------------------------------


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1,
                             method="im2col"):
    """Transposed convolution: out = C^T x, where C is the matrix of conv2d with weight w.

    x (N, C_in, H, W), w (C_in, C_out, KH, KW), b (C_out,) or None -> out (N, C_out, OH, OW) with
    OH = (H-1)*SH - 2*PH + DH*(KH-1) + output_padding + 1 (likewise OW).

    ``method="im2col"`` (fast): out = col2im(W^T @ x), the conv's input gradient.
    ``method="matrix"`` (the lecture's view): build C with ``conv_matrix`` and multiply by C^T.
    cache: x, w, stride, padding, dilation, out_size, has_bias, method (and C for "matrix").
    """
    if method not in ("im2col", "matrix"):
        raise ValueError(f"method must be 'im2col' or 'matrix', got {method!r}")
    _check_weight(x, w, b, 0, "C_in")
    c_in, c_out, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = conv_transpose2d_output_shape((h, wd), (kh, kw), stride, padding, output_padding, dilation)
    cache = Cache(x=x, w=w, stride=stride, padding=padding, dilation=dilation,
                  out_size=(oh, ow), has_bias=b is not None, method=method)
    if method == "matrix":
        cache.C = _transposed_conv_matrix(w, (h, wd), (oh, ow), stride, padding, dilation)
        out = (x.reshape(n, -1) @ cache.C).reshape(n, c_out, oh, ow)
    else:
        w_mat = w.reshape(c_in, c_out * kh * kw)
        parts = []
        for part in batch_chunks(x, c_out * kh * kw * h * wd * x.itemsize):
            dcols = w_mat.T @ _channels_first(x[part])  # (C_out*KH*KW, nb*H*W)
            parts.append(col2im(dcols, (part.stop - part.start, c_out, oh, ow), (kh, kw), stride, padding,
                                dilation, out_size=(h, wd)))
        out = _join(parts)
    if b is not None:
        out += b[:, None, None]
    return out, cache


def conv_transpose2d_backward(dout, cache):
    """Gradients of conv_transpose2d: dout (N, C_out, OH, OW) -> (dx, dw, db).

    dx is conv2d's forward applied to dout (C x = (C^T)^T x); dw uses the shared
    ``conv_weight_grad`` with the roles of input and output swapped. Both
    come from one im2col of dout (``_grads_from_dout_columns``).
    """
    x, w = cache.x, cache.w
    c_in, c_out, kh, kw = w.shape
    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    dx, dw = _grads_from_dout_columns(dout, x, w.reshape(c_in, c_out * kh * kw), (kh, kw), cache.stride,
                                      cache.padding, cache.dilation)
    if cache.method == "matrix":
        dx = (dout.reshape(dout.shape[0], -1) @ cache.C.T).reshape(x.shape)
    return dx, dw.reshape(w.shape), db


# ---- memory: the im2col budget and chunks of the batch ---------------------------


def _parse_bytes(text: str) -> int:
    """'268435456', '256M', '1G', '512k' -> bytes (K, M, G are powers of 1024)."""
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    value = int(float(text[:-1] if scale > 1 else text) * scale)
    if value < 1:
        raise ValueError(f"the im2col budget must be at least 1 byte, got {text!r}")
    return value


_im2col_budget = _parse_bytes(os.environ.get("MINIMAL_SEG_IM2COL_BUDGET", "256M"))


def get_im2col_budget() -> int:
    """Largest column matrix (bytes) one im2col/col2im call may build."""
    return _im2col_budget


def set_im2col_budget(nbytes) -> None:
    """Set the im2col budget: an int (bytes) or a string such as ``"64M"``."""
    global _im2col_budget
    _im2col_budget = _parse_bytes(str(nbytes))


@contextlib.contextmanager
def use_im2col_budget(nbytes):
    """``with use_im2col_budget("16M"): ...`` changes the budget for a block."""
    previous = get_im2col_budget()
    set_im2col_budget(nbytes)
    try:
        yield
    finally:
        set_im2col_budget(previous)


CPU_CHUNK_BYTES = 4 * 2**20


def batch_chunks(x, bytes_per_image: int, cpu_target: int | None = None) -> list[slice]:
    """Split the batch of x into slices of images whose column matrices fit the budget.

    On a CPU, chunks are also kept near ``cpu_target`` (default
    CPU_CHUNK_BYTES, 4 MiB) when the images are small enough: a chunk's
    columns are then still in the cache when the GEMM reads them, and the
    allocator reuses the same memory instead of asking the OS for fresh
    pages (zeroed, one fault per page) on every call. On a GPU, chunks are as large as the budget allows.
    Raises MemoryError when the columns of a single image exceed the budget.
    """
    n, budget = x.shape[0], get_im2col_budget()
    if bytes_per_image > budget:
        raise MemoryError(
            f"im2col needs {bytes_per_image / 2**20:.1f} MiB for a single image, more than the "
            f"im2col budget of {budget / 2**20:.1f} MiB; raise it with set_im2col_budget() or "
            "MINIMAL_SEG_IM2COL_BUDGET, or use smaller images"
        )
    target = budget if is_device_array(x) else min(budget, cpu_target or CPU_CHUNK_BYTES)
    count = -(-n // max(1, target // max(bytes_per_image, 1)))  # number of chunks, rounded up
    per_chunk = max(1, -(-n // max(count, 1)))  # the same number of images in every chunk but the last
    return [slice(start, min(n, start + per_chunk)) for start in range(0, max(n, 1), per_chunk)]


def _transposed_conv_matrix(w, in_size, out_size, stride, padding, dilation):
    """C of the conv that maps an ``out_size`` image back to ``in_size``: (C_in*H*W, C_out*OH*OW).

    With output_padding >= stride the conv would see a few more positions than
    the transposed conv's input has; only the first H x W rows are kept.
    """
    from .conv_matrix import conv_matrix

    c_in, c_out = w.shape[:2]
    full = conv_matrix(w, out_size, stride, padding, dilation)
    fh, fw = conv2d_output_shape(out_size, w.shape[2:], stride, padding, dilation)
    h, wd = in_size
    full = full.reshape(c_in, fh, fw, c_out * out_size[0] * out_size[1])[:, :h, :wd]
    return full.reshape(c_in * h * wd, -1)
