"""``method="fast"`` of conv2d and conv_transpose2d: the same numbers as ``conv.py``, sooner.

Tested equal to ``method="reference"`` over the whole option grid
(``tests/test_conv.py``). Every function here takes the options as pairs,
already checked by ``conv.py``, and the cache the dispatcher started
(x, w, stride, padding, dilation, out_size, has_bias); the forward adds
``path`` and ``cols``. Four ideas, each a few lines:

**Chunks.** The columns are built a chunk of images at a time
(``_im2col_budget``): within the im2col budget, and on a CPU small enough
to be still in the cache when the GEMM reads them. A forward whose batch
fits one chunk keeps its columns for the backward.

**Stride 1: the backward from the columns of dout.** A stride-1
convolution is also a transposed convolution (of x, with the flipped
kernel ``w[:, :, ::-1, ::-1]``, channel axes swapped, and padding
D*(K-1) - P), so both its gradients come from one im2col of dout, as for
``conv_transpose2d``: no col2im, and no columns kept from the forward::

    dx = W_flip @ dcols          dW_flip = x @ dcols.T        (``_grads_from_dout_columns``)

Taken when OC <= 2*C: the columns of dout are then at most twice those of x.

**Stride 1: wide columns.** With stride 1 the windows of consecutive
output pixels of a row are shifted by one pixel. Let the output run over
all Wp = W + 2*PW positions of a padded row (not only the first OW): with
the padded image flattened (xflat), kernel offset (i, j) of output
position p = oh*Wp + ow reads xflat[p + i*DH*Wp + j*DW], so one offset is
one long contiguous slice instead of OH short rows (``im2col_wide``)::

    cols[(c, i, j), (n, p)] = xflat[c, n, p + i*DH*Wp + j*DW]      (C*KH*KW, N*OH*Wp)

The DW*(KW-1) positions per row that straddle the right border are
computed and dropped (``_wide_to_nchw``), so wide columns are used where
they are few (OW >= MIN_WIDE_FILL * Wp). On a CPU they are built by blocks
of rows of about 2 MiB (``row_blocks``), which the GEMM reads while they
are still in the cache.

**1x1, stride 1, no padding.** Image n already is the (C, H*W) matrix its
columns would be: out[n] = W @ x[n] is one batched GEMM (``matmul``) that
writes the output in its final layout, and so are both gradients.

(Winograd's F(2x2, 3x3), ``method="winograd"``, is not among them: with
OpenBLAS's own kernels it made the U-Net training step slower, 77.5 against
72.7 ms on one thread and 84 against 69 ms on two; see
docs/concepts/winograd.md.)

**CUDA kernels on a GPU.** Where ``kernels.kernels_enabled(x)`` (CuPy, unless
switched off), im2col, col2im and the two layout moves are one launch each
(``kernels/im2col.py``) instead of one per kernel offset, so every conv is
im2col + one GEMM + batch_first, a chunk at a time, and its backward one
im2col, the dW GEMM, one GEMM and col2im. The CPU shortcuts above (wide
columns, the backward from the columns of dout) are not taken
there; the 1x1 one is. The forward keeps no columns for the backward, which
rebuilds them (one launch) rather than hold K*N*L values per layer until then.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..backend import array_module
from ._im2col_budget import batch_chunks, row_blocks
from .im2col import batch_first, channels_first, col2im, conv_weight_grad, im2col, pad_channels_first
from .kernels import im2col as cuda
from .kernels import kernels_enabled

MIN_WIDE_FILL = 0.85  # wide columns only where OW >= 0.85 Wp (64x64: 0.97, 16x16: 0.89, 8x8: 0.8 -> im2col)


class Columns(NamedTuple):
    """The four functions that move a convolution's values between images and GEMM matrices."""

    im2col: Callable
    col2im: Callable
    channels_first: Callable
    batch_first: Callable


ARRAY_COLUMNS = Columns(im2col, col2im, channels_first, batch_first)  # im2col.py: a launch per kernel offset
CUDA_COLUMNS = Columns(cuda.im2col, cuda.col2im, cuda.channels_first, cuda.batch_first)  # one launch each


def _columns(x):
    """The CUDA kernels where they run on x (``kernels_enabled``), else the array code."""
    return CUDA_COLUMNS if kernels_enabled(x) else ARRAY_COLUMNS


# ---- conv2d ---------------------------------------------------------------------------


def conv2d_forward(x, w, b, cache):
    """out (N, OC, OH, OW) of conv2d by the fastest of the paths above; cache.path names the one taken."""
    xp = array_module(x)
    oc, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = cache.out_size
    cache.cols = None
    if _is_pointwise(w.shape, cache):
        cache.path = "pointwise"
        out = xp.matmul(w.reshape(oc, c), x.reshape(n, c, h * wd))  # (N, OC, H*W): out[n] = W @ x[n]
        if b is not None:
            out += b[:, None]
        return out.reshape(n, oc, h, wd)
    ops = _columns(x)
    shortcuts = ops is ARRAY_COLUMNS  # wide columns: not with the CUDA kernels
    out = xp.empty((n, oc, oh, ow), dtype=x.dtype)
    if shortcuts and cache.stride == (1, 1) and _use_wide(ow, wd + 2 * cache.padding[1]):
        cache.path = "wide"
        _conv2d_wide(x, w, b, cache.padding, cache.dilation, out)
        return out
    cache.path = "im2col"
    w_mat = w.reshape(oc, c * kh * kw)
    chunks = batch_chunks(x, c * kh * kw * oh * ow * x.itemsize)
    for part in chunks:
        cols = ops.im2col(x[part], (kh, kw), cache.stride, cache.padding, cache.dilation, out_size=(oh, ow))
        ops.batch_first(w_mat @ cols, out[part], b)  # (OC, nb*L): one GEMM for the whole chunk
    if shortcuts and len(chunks) == 1 and _flip_padding(w.shape, cache) is None:
        cache.cols = cols  # the backward needs them (it will not take the stride-1 shortcut)
    return out


def conv2d_backward(dout, cache):
    """(dx, dw) of conv2d: by the path the forward took and the stride-1 shortcut where it applies."""
    x, w = cache.x, cache.w
    oc, c, kh, kw = w.shape
    n = x.shape[0]
    if cache.path == "pointwise":
        return _pointwise_backward(dout, x, w)
    ops = _columns(x)
    flip = _flip_padding(w.shape, cache) if ops is ARRAY_COLUMNS else None
    if flip is not None:
        w_flip = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(c, oc * kh * kw)
        dx, dw_flip = _grads_from_dout_columns(dout, x, w_flip, (kh, kw), (1, 1), flip, cache.dilation)
        dw = dw_flip.reshape(c, oc, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        return dx, array_module(dw).ascontiguousarray(dw)
    kept = cache.cols is not None  # the forward kept the columns of the whole batch
    chunks = [slice(0, n)] if kept else batch_chunks(x, c * kh * kw * dout.shape[2] * dout.shape[3] * x.itemsize)
    dw, dx_parts = 0, []
    for part in chunks:
        cols = cache.cols if kept else ops.im2col(x[part], (kh, kw), cache.stride, cache.padding, cache.dilation)
        d = ops.channels_first(dout[part])  # (OC, nb*L)
        dw = dw + conv_weight_grad(d, cols)
        dx_parts.append(ops.col2im(w.reshape(oc, -1).T @ d, x[part].shape, (kh, kw), cache.stride, cache.padding,
                                   cache.dilation))
    return _join(dx_parts), dw.reshape(w.shape)


def _is_pointwise(w_shape, cache):
    """A 1x1 kernel with stride 1 and no padding: the conv only mixes channels, pixel by pixel."""
    return tuple(w_shape[2:]) == (1, 1) and cache.stride == (1, 1) and cache.padding == (0, 0)


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


def _flip_padding(w_shape, cache):
    """D*(K-1) - P per axis when conv2d's backward takes the stride-1 shortcut, else None.

    Needs stride 1, P <= D*(K-1) and OC <= 2*C (a first layer, C = 1 or 3,
    takes the general path: the columns of its dout would be much larger).
    """
    oc, c, kh, kw = w_shape
    (ph, pw), (dh, dw) = cache.padding, cache.dilation
    flip = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)
    if cache.stride == (1, 1) and min(flip) >= 0 and oc <= 2 * c:
        return flip
    return None


# ---- conv_transpose2d ------------------------------------------------------------------


def conv_transpose2d_forward(x, w, b, cache):
    """out = col2im(W.T @ x) of conv_transpose2d, a chunk of images at a time."""
    c_in, c_out, kh, kw = w.shape
    h, wd = x.shape[2:]
    w_mat = w.reshape(c_in, c_out * kh * kw)
    ops, parts = _columns(x), []
    for part in batch_chunks(x, c_out * kh * kw * h * wd * x.itemsize):
        dcols = w_mat.T @ ops.channels_first(x[part])  # (C_out*KH*KW, nb*H*W)
        parts.append(ops.col2im(dcols, (part.stop - part.start, c_out) + tuple(cache.out_size), (kh, kw),
                                cache.stride, cache.padding, cache.dilation, out_size=(h, wd)))
    out = _join(parts)
    if b is not None:
        out += b[:, None, None]
    return out


def conv_transpose2d_backward(dout, cache):
    """(dx, dw) of conv_transpose2d: both from one im2col of dout (``_grads_from_dout_columns``)."""
    c_in, c_out, kh, kw = cache.w.shape
    dx, dw = _grads_from_dout_columns(dout, cache.x, cache.w.reshape(c_in, c_out * kh * kw), (kh, kw),
                                      cache.stride, cache.padding, cache.dilation)
    return dx, dw.reshape(cache.w.shape)


def _grads_from_dout_columns(dout, x, w_mat, kernel_size, stride, padding, dilation):
    """(dx, dW) of out = conv_transpose(x) with weight matrix w_mat (C_x, C_out*KH*KW).

    out is C^T x for the conv C that maps out back to x's shape, so with
    dcols = im2col(dout) (C_out*KH*KW, N*H*W), the columns of that conv::

        dx = w_mat @ dcols          (C^T's gradient is C)
        dW = x @ dcols.T            (conv_weight_grad, roles of input and output swapped)

    With stride 1, on wide columns of dout, by blocks of rows (``_grads_wide``),
    unless the CUDA kernels run.
    """
    n, c, h, wd = x.shape
    ops = _columns(x)
    if ops is ARRAY_COLUMNS and stride == (1, 1) and _use_wide(wd, dout.shape[3] + 2 * padding[1]):
        return _grads_wide(dout, x, w_mat, kernel_size, padding, dilation)
    dw, dx = 0, array_module(x).empty(x.shape, dtype=x.dtype)
    for part in batch_chunks(x, w_mat.shape[1] * h * wd * x.itemsize):
        dcols = ops.im2col(dout[part], kernel_size, stride, padding, dilation, out_size=(h, wd))
        dw = dw + conv_weight_grad(ops.channels_first(x[part]), dcols)
        ops.batch_first(w_mat @ dcols, dx[part])
    return dx, dw


def _join(parts):
    """Concatenate per-chunk results along the batch axis (no copy for a single chunk)."""
    return parts[0] if len(parts) == 1 else array_module(parts[0]).concatenate(parts)


# ---- stride 1: wide columns, by blocks of rows -----------------------------------------


def _use_wide(out_width, width):
    """Wide columns pay when few of their positions are thrown away: OW / Wp >= MIN_WIDE_FILL."""
    return out_width >= MIN_WIDE_FILL * width


def _pad_flat(x, padding):
    """x (N, C, H, W) -> (C, N, (H + 2*PH + 1) * Wp): zero-padded, channels first, each image flattened.

    Wp = W + 2*PW. One extra zero row at the bottom keeps every shifted
    slice of ``im2col_wide`` inside its image.
    """
    xpad = pad_channels_first(x, (padding[0], padding[0] + 1), (padding[1], padding[1]))
    c, n, hp, wp = xpad.shape
    return xpad.reshape(c, n, hp * wp)


def im2col_wide(xflat, width, kernel_size, dilation, rows):
    """Wide columns of a stride-1 conv for the output rows ``rows``: (C*KH*KW, N*R*Wp), R = len(rows).

    xflat (C, N, Hp*Wp) comes from ``_pad_flat``, Wp = ``width``::

        cols[(c, i, j), (n, p)] = xflat[c, n, p + i*DH*Wp + j*DW],   p = oh*Wp + ow

    Positions with ow >= OW straddle the right border; ``_wide_to_nchw`` drops them.
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


def _conv2d_wide(x, w, b, padding, dilation, out):
    """Stride-1 conv2d into out (N, OC, OH, OW) by blocks of wide columns: out = W @ cols per block, then + b.

    The bias is added once to the whole output: per block, a broadcast add
    over short rows costs more than the copy it would be fused into.
    """
    oc, c, kh, kw = w.shape
    n, _, oh, ow = out.shape
    width = x.shape[3] + 2 * padding[1]
    w_mat = w.reshape(oc, c * kh * kw)
    for images, blocks in row_blocks(x, oh, c * kh * kw * width * x.itemsize):
        xflat = _pad_flat(x[images], padding)
        for rows in blocks:
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
    for images, blocks in row_blocks(x, h, w_mat.shape[1] * width * x.itemsize):
        dflat = _pad_flat(dout[images], padding)
        xwide = pad_channels_first(x[images], (0, 0), (0, width - wd))
        for rows in blocks:
            dcols = im2col_wide(dflat, width, kernel_size, dilation, rows)
            dw = dw + conv_weight_grad(xwide[:, :, rows].reshape(c, -1), dcols)
            _wide_to_nchw(w_mat @ dcols, width, dx[images, :, rows])
    return dx, dw
