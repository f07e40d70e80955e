"""Max pooling (with the argmax indices) and max unpooling.

Notation: x (N, C, H, W), out (N, C, OH, OW); kernel (KH, KW), stride
(SH, SW) = the kernel unless given, padding (PH, PW) <= half the kernel.
Output sizes come from ``shapes.py`` (PyTorch, ``ceil_mode=False``)::

    OH = floor((H + 2*PH - KH) / SH) + 1          (likewise OW)

**Max pooling** keeps the largest value of every KH x KW window::

    out[n, c, p, q] = max_{i, j} xpad[n, c, p*SH + i, q*SW + j]

where ``xpad`` is x padded with -inf (a padded pixel never wins). Ties go to
the first window position in row-major order (i, then j), as in PyTorch.
The winner's position is saved as a flat index into the *unpadded* plane,
``indices[n, c, p, q] = h*W + w``, exactly like
``torch.nn.functional.max_pool2d(..., return_indices=True)``.

Its gradient sends each ``dout`` entry to the pixel that won its window; a
pixel that wins several overlapping windows (stride < kernel) collects the
sum. When the windows do not overlap this is exactly max unpooling of dout.

**Max unpooling** (SegNet's decoder) is the opposite scatter: every value goes
back to the position its pooling layer saved, all other pixels are zero::

    out.reshape(N, C, OH*OW)[n, c, indices[n, c, p, q]] = x[n, c, p, q]

with the default output size OH = (H - 1)*SH - 2*PH + KH (likewise OW). It is
linear in x, and its backward (the transpose) is a gather:
``dx[n, c, p, q] = dout.reshape(N, C, -1)[n, c, indices[n, c, p, q]]``.
"""
from __future__ import annotations

from ..backend import array_module
from .common import Cache, check_array, check_int, check_nchw, check_same_module, check_dout, window
from .shapes import max_unpool2d_output_shape, nonnegative_pair, pool2d_output_shape, positive_pair


def _pool_params(kernel_size, stride, padding):
    """(KH, KW), (SH, SW), (PH, PW); the stride defaults to the kernel size."""
    kernel = positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else positive_pair(stride, "stride")
    return kernel, stride, nonnegative_pair(padding, "padding")


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max pooling of x (N, C, H, W) -> out (N, C, OH, OW), with PyTorch's indices.

    kernel_size, stride, padding: int or (h, w) pair; stride defaults to
    kernel_size; padding (at most half the kernel) counts as -inf.

    Recipe: stack the KH*KW strided views of the padded input (one per kernel
    offset (i, j)) into windows (N, C, KH*KW, OH, OW); ``argmax`` over the
    window axis picks the first maximum, which is PyTorch's tie rule; the
    offset k = i*KW + j of the winner and the window's corner give its pixel
    ``h = p*SH - PH + i``, ``w = q*SW - PW + j`` and the index h*W + w.

    cache: x_shape, dtype, kernel_size, stride, padding (as pairs),
    indices (N, C, OH, OW) int64, flat h*W + w into each unpadded plane,
    window_argmax (N, C, OH, OW), the winning offset k = i*KW + j.
    """
    check_nchw(x)
    (kh, kw), (sh, sw), (ph, pw) = _pool_params(kernel_size, stride, padding)
    n, c, h, w = x.shape
    oh, ow = pool2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw))
    xp = array_module(x)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=float("-inf")) if ph or pw else x
    windows = xp.stack(
        [xpad[:, :, window(i, sh, oh), window(j, sw, ow)] for i in range(kh) for j in range(kw)],
        axis=2,
    )
    k = xp.argmax(windows, axis=2)  # (N, C, OH, OW): the first maximum wins
    out = xp.take_along_axis(windows, k[:, :, None], axis=2)[:, :, 0]
    rows = xp.arange(oh, dtype=xp.int64)[:, None] * sh - ph + k // kw
    cols = xp.arange(ow, dtype=xp.int64)[None, :] * sw - pw + k % kw
    indices = (rows * w + cols).astype(xp.int64, copy=False)
    cache = Cache(x_shape=x.shape, dtype=x.dtype, kernel_size=(kh, kw), stride=(sh, sw),
                  padding=(ph, pw), indices=indices, window_argmax=k)
    return out, cache


def max_pool2d_backward(dout, cache):
    """Gradient of max pooling: dout (N, C, OH, OW) -> dx (N, C, H, W).

    For every kernel offset k = (i, j), the windows that chose k add their
    ``dout`` into the strided slice of (padded) dx that offset reads; the
    slices overlap when stride < kernel, so gradients accumulate (+=, never =).
    The padding border is cropped at the end.
    """
    check_dout(dout, cache.indices.shape)
    (kh, kw), (sh, sw), (ph, pw) = cache.kernel_size, cache.stride, cache.padding
    n, c, h, w = cache.x_shape
    oh, ow = dout.shape[2:]
    xp = array_module(dout)
    dout = dout.astype(cache.dtype, copy=False)
    dxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cache.dtype)
    for i in range(kh):
        for j in range(kw):
            won = cache.window_argmax == i * kw + j
            dxpad[:, :, window(i, sh, oh), window(j, sw, ow)] += xp.where(won, dout, 0)
    return xp.ascontiguousarray(dxpad[:, :, ph:ph + h, pw:pw + w])


def max_unpool2d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Max unpooling: put each x value back where max pooling found it.

    x (N, C, H, W) float; indices (N, C, H, W) integer, flat h*OW + w into
    each output plane (what ``max_pool2d_forward`` saved in ``cache.indices``);
    kernel_size, stride (default kernel_size), padding: int or (h, w) pair;
    output_size: None, (OH, OW) or (N, C, OH, OW). Returns out (N, C, OH, OW)::

        out.reshape(N*C, OH*OW)[row, indices[row, :]] = x[row, :]

    Every other pixel is zero. Two entries of a plane with the same index
    (one pixel that won two overlapping windows) write the same cell: the
    last write wins on NumPy in practice, CuPy keeps any one, and PyTorch
    calls it undefined. Indices saved by max pooling carry equal values
    there, so the output is the same whichever write wins.

    cache: indices (N*C, H*W) int64, x_shape, dtype, out_shape.
    """
    check_nchw(x)
    check_int(indices, "indices")
    check_same_module("x", x, "indices", indices)
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"indices must have the shape of x {tuple(x.shape)}, got {tuple(indices.shape)}")
    n, c, h, w = x.shape
    oh, ow = max_unpool2d_output_shape((h, w), kernel_size, stride, padding, output_size)
    xp = array_module(x)
    flat = indices.reshape(n * c, h * w).astype(xp.int64, copy=False)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= oh * ow):
        raise ValueError(
            f"indices must lie in [0, {oh * ow}) for an output plane of {(oh, ow)}, "
            f"got values in [{int(flat.min())}, {int(flat.max())}]"
        )
    out = xp.zeros((n * c, oh * ow), dtype=x.dtype)
    rows = xp.arange(n * c, dtype=xp.int64)[:, None]
    out[rows, flat] = x.reshape(n * c, h * w)
    cache = Cache(indices=flat, x_shape=x.shape, dtype=x.dtype, out_shape=(n, c, oh, ow))
    return out.reshape(n, c, oh, ow), cache


def max_unpool2d_backward(dout, cache):
    """Gradient of max unpooling, a gather: dout (N, C, OH, OW) -> dx (N, C, H, W).

    dx[n, c, p, q] = dout[n, c] at the flat position indices[n, c, p, q].
    """
    check_dout(dout, cache.out_shape)
    xp = array_module(dout)
    n, c = cache.out_shape[:2]
    dx = xp.take_along_axis(dout.reshape(n * c, -1), cache.indices, axis=1)
    return dx.astype(cache.dtype, copy=False).reshape(cache.x_shape)
