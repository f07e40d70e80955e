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

**Speed.** Pooling loops over the KH*KW kernel offsets, never over pixels:
one strided copy per offset stacks the windows as contiguous rows, and the
max, the tie rule and the gradient are then whole-array operations on
those rows. Unpooling is a single flat scatter, its gradient a single flat
gather. On a GPU each of the four runs instead as one hand-written CUDA
kernel (``kernels/pool.py``, same numbers, indices and tie rule): the code
here is the reference it is tested against, and what runs on NumPy.
"""
from __future__ import annotations

from ..backend import array_module
from . import kernels
from .common import Cache, check_dout, check_int, check_nchw, check_same_module, window
from .kernels import pool as pool_kernels
from .shapes import max_unpool2d_output_shape, nonnegative_pair, pool2d_output_shape, positive_pair


def _pool_params(kernel_size, stride, padding):
    """(KH, KW), (SH, SW), (PH, PW); the stride defaults to the kernel size."""
    kernel = positive_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else positive_pair(stride, "stride")
    return kernel, stride, nonnegative_pair(padding, "padding")


def _windows(xpad, kernel, stride, out_size):
    """Stack the windows of xpad (N, C, H', W') as rows: (KH*KW, N, C, OH, OW).

    Row k = i*KW + j holds, for every window, its pixel at kernel offset (i, j):
    ``windows[k, n, c, p, q] = xpad[n, c, p*SH + i, q*SW + j]``. One strided
    copy per offset; afterwards every reduction over the offsets runs on
    contiguous rows.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_size
    xp = array_module(xpad)
    windows = xp.empty((kh * kw,) + tuple(xpad.shape[:2]) + (oh, ow), dtype=xpad.dtype)
    for i in range(kh):
        for j in range(kw):
            windows[i * kw + j] = xpad[:, :, window(i, sh, oh), window(j, sw, ow)]
    return windows


def _first_max(windows, out):
    """k (N, C, OH, OW): the first offset whose value is its window's max ``out``.

    Ties go to the smallest offset, a NaN beats any number (both as
    ``argmax``). Vectorised: offset k scores KK - k where it holds the max
    (``hit``) and 0 elsewhere, so the best score marks the first hit::

        k = KK - max_k(hit[k] * (KK - k))

    uint8 (when KK < 256) keeps these passes small. The scores KK, ..., 1 are
    made in a signed type and then cast: CuPy casts arange's step -1 into
    the dtype, which fails for uint8.
    """
    xp = array_module(windows)
    kk = windows.shape[0]
    hit = windows == out
    hit |= xp.isnan(windows)
    score = xp.arange(kk, 0, -1, dtype=xp.int32).astype(xp.uint8 if kk < 256 else xp.int32).reshape(kk, 1, 1, 1, 1)
    return kk - (hit * score).max(axis=0)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max pooling of x (N, C, H, W) -> out (N, C, OH, OW), with PyTorch's indices.

    kernel_size, stride, padding: int or (h, w) pair; stride defaults to
    kernel_size; padding (at most half the kernel) counts as -inf.

    Recipe: stack the KH*KW strided views of the padded input (one per kernel
    offset (i, j)) into windows (KH*KW, N, C, OH, OW); their max over the
    first axis is out; the first offset k = i*KW + j that holds it
    (``_first_max``, PyTorch's tie rule) and the window's corner give the
    winner's pixel ``h = p*SH - PH + i``, ``w = q*SW - PW + j`` and its index
    h*W + w = corner[p, q] + (i*W + j). (Where +0.0 and -0.0 tie for the max,
    out may hold either sign; the index is the first one's.)

    cache: x_shape, dtype, kernel_size, stride, padding (as pairs),
    indices (N, C, OH, OW) int64, flat h*W + w into each unpadded plane,
    window_argmax (N, C, OH, OW) uint8 (int32 for KH*KW >= 256), the
    winning offset k = i*KW + j.
    """
    check_nchw(x)
    (kh, kw), (sh, sw), (ph, pw) = _pool_params(kernel_size, stride, padding)
    n, c, h, w = x.shape
    oh, ow = pool2d_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw))
    if kernels.kernels_enabled(x):  # the CUDA kernel: one launch (kernels/pool.py)
        out, indices, k = pool_kernels.max_pool2d_forward(x, (kh, kw), (sh, sw), (ph, pw), (oh, ow))
    else:
        xp = array_module(x)
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=float("-inf")) if ph or pw else x
        windows = _windows(xpad, (kh, kw), (sh, sw), (oh, ow))
        out = windows.max(axis=0)
        k = _first_max(windows, out)
        corner = (xp.arange(oh, dtype=xp.int64)[:, None] * sh - ph) * w + xp.arange(ow, dtype=xp.int64) * sw - pw
        offset = (xp.arange(kh, dtype=xp.int64)[:, None] * w + xp.arange(kw, dtype=xp.int64)).reshape(-1)
        indices = xp.take(offset, k)  # i*W + j of the winning offset
        indices += corner
    cache = Cache(x_shape=x.shape, dtype=x.dtype, kernel_size=(kh, kw), stride=(sh, sw),
                  padding=(ph, pw), indices=indices, window_argmax=k)
    return out, cache


def max_pool2d_backward(dout, cache):
    """Gradient of max pooling: dout (N, C, OH, OW) -> dx (N, C, H, W).

    The window rows of the gradient, ``grads[k] = dout where the window chose
    offset k, else 0`` (KH*KW, N, C, OH, OW), go back into the strided slices
    of (padded) dx that offset k read. When windows overlap (stride <
    kernel) a pixel collects the sum (+=); otherwise each pixel belongs to at
    most one window and the rows are written (=). The padding border is
    cropped at the end.
    """
    check_dout(dout, cache.indices.shape)
    (kh, kw), (sh, sw), (ph, pw) = cache.kernel_size, cache.stride, cache.padding
    n, c, h, w = cache.x_shape
    oh, ow = dout.shape[2:]
    xp = array_module(dout)
    dout = dout.astype(cache.dtype, copy=False)
    if kernels.kernels_enabled(dout):  # the CUDA kernel: a gather per input pixel, one launch (kernels/pool.py)
        return pool_kernels.max_pool2d_backward(dout, cache.window_argmax, cache.x_shape,
                                                cache.kernel_size, cache.stride, cache.padding)
    chosen = cache.window_argmax == xp.arange(kh * kw, dtype=cache.window_argmax.dtype).reshape(-1, 1, 1, 1, 1)
    grads = chosen * dout
    grads += 0.0  # 0 * (negative dout) is -0.0; + 0.0 makes it +0.0, as PyTorch's gradient
    dxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cache.dtype)
    overlap = sh < kh or sw < kw
    for i in range(kh):
        for j in range(kw):
            pixels = dxpad[:, :, window(i, sh, oh), window(j, sw, ow)]
            if overlap:
                pixels += grads[i * kw + j]
            else:
                pixels[...] = grads[i * kw + j]
    if ph or pw:
        return xp.ascontiguousarray(dxpad[:, :, ph:ph + h, pw:pw + w])
    return dxpad


def max_unpool2d_forward(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Max unpooling: put each x value back where max pooling found it.

    x (N, C, H, W) float; indices (N, C, H, W) integer, flat h*OW + w into
    each output plane (what ``max_pool2d_forward`` saved in ``cache.indices``);
    kernel_size, stride (default kernel_size), padding: int or (h, w) pair;
    output_size: None, (OH, OW) or (N, C, OH, OW). Returns out (N, C, OH, OW)::

        out.reshape(-1)[positions] = x.reshape(-1),   positions = plane*OH*OW + indices

    one scatter through the flat index ``positions`` of each value in the whole
    output (plane = n*C + c). Every other pixel is zero. Two entries of a
    plane with the same index (one pixel that won two overlapping windows)
    write the same cell: the last write wins on NumPy in practice, CuPy
    keeps any one, and PyTorch calls it undefined. Indices saved by max
    pooling carry equal values there, so the output is the same whichever
    write wins.

    cache: positions (N*C*H*W,) int64, x_shape, dtype, out_shape.
    """
    check_nchw(x)
    check_int(indices, "indices")
    check_same_module("x", x, "indices", indices)
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"indices must have the shape of x {tuple(x.shape)}, got {tuple(indices.shape)}")
    n, c, h, w = x.shape
    oh, ow = max_unpool2d_output_shape((h, w), kernel_size, stride, padding, output_size)
    xp = array_module(x)
    _check_unpool_indices(indices, (oh, ow))
    if kernels.kernels_enabled(x):  # the CUDA kernel: one launch (kernels/pool.py)
        out, positions = pool_kernels.max_unpool2d_forward(x, indices, (oh, ow))
    else:
        positions = indices.reshape(n * c, h * w).astype(xp.int64)  # a copy: the caller's indices stay as they are
        positions += xp.arange(0, n * c * oh * ow, oh * ow, dtype=xp.int64)[:, None]
        positions = positions.reshape(-1)
        out = xp.zeros(n * c * oh * ow, dtype=x.dtype)
        out[positions] = x.reshape(-1)
    cache = Cache(positions=positions, x_shape=x.shape, dtype=x.dtype, out_shape=(n, c, oh, ow))
    return out.reshape(n, c, oh, ow), cache


def _check_unpool_indices(indices, out_size):
    """Raise ValueError unless every index lies in [0, OH*OW) for out_size (OH, OW).

    One reduction: seen as unsigned, a negative index is huge, so the
    largest unsigned value alone tells whether all lie in range.
    """
    if indices.size == 0:
        return
    xp = array_module(indices)
    plane_size = out_size[0] * out_size[1]
    unsigned = indices.astype(xp.int64, copy=False).view(xp.uint64)
    if int(unsigned.max()) >= plane_size:
        raise ValueError(
            f"indices must lie in [0, {plane_size}) for an output plane of {tuple(out_size)}, "
            f"got values in [{int(indices.min())}, {int(indices.max())}]"
        )


def max_unpool2d_backward(dout, cache):
    """Gradient of max unpooling, a gather: dout (N, C, OH, OW) -> dx (N, C, H, W).

    dx[n, c, p, q] = dout[n, c] at the flat position indices[n, c, p, q],
    i.e. ``dx.reshape(-1) = dout.reshape(-1)[positions]``.
    """
    check_dout(dout, cache.out_shape)
    if kernels.kernels_enabled(dout):  # the CUDA kernel: one launch (kernels/pool.py)
        return pool_kernels.max_unpool2d_backward(dout.astype(cache.dtype, copy=False), cache.positions,
                                                  cache.x_shape)
    dx = dout.reshape(-1)[cache.positions]
    return dx.astype(cache.dtype, copy=False).reshape(cache.x_shape)
