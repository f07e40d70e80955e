"""CUDA kernels for max pooling and max unpooling, one launch each.

The reference is ``functional/pool.py`` (same notation: x (N, C, H, W), out
(N, C, OH, OW), kernel (KH, KW), stride (SH, SW), padding (PH, PW)); each
kernel gives exactly its numbers, indices and tie rule.

- ``max_pool2d_forward``: one thread per output pixel walks its KH x KW
  window in row-major order (offset k = i*KW + j), a padded pixel counting
  as -inf. The first offset that holds the max wins; a NaN wins at once.
  It writes out, the flat index h*W + w of the winner and its offset k.
- ``max_pool2d_backward``: one thread per *input* pixel gathers the dout of
  the windows that cover it (a gather, not a scatter: no two threads write
  one address, so overlapping windows need no atomics and the sum does not
  depend on the order threads run in). It adds the windows in the
  reference's order, offset k ascending, as ``dout * (window chose k)``.
- ``max_unpool2d_forward``: one thread per input value writes it to its
  position in the zeroed output (a scatter; pooling's indices never send
  two different values to one pixel).
- ``max_unpool2d_backward``: one thread per input value gathers dout at its
  position.
"""
from __future__ import annotations

from ...backend import array_module
from . import for_float_types, launch, typed_name

# window_argmax is uint8 (KH*KW < 256) or int32: each pooling kernel is written for both, named _u8 / _i32
_POOLING = r"""
extern "C" __global__ void max_pool2d_forward_KIND_scalar_t(
        const scalar_t* __restrict__ x, scalar_t* __restrict__ out, long long* __restrict__ indices,
        argmax_t* __restrict__ window_argmax,
        int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int n) {
    // thread i = ((n*C + c)*OH + p)*OW + q: the window whose top-left (padded) corner is (p*SH, q*SW)
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int q = i % OW, p = (i / OW) % OH;
    const scalar_t* plane = x + (long long)(i / (OH * OW)) * H * W;
    int h0 = p * SH - PH, w0 = q * SW - PW;  // the corner in unpadded coordinates
    const scalar_t negative_infinity = -(scalar_t)1 / (scalar_t)0;
    scalar_t best = negative_infinity;
    int best_k = -1;
    for (int k = 0; k < KH * KW; ++k) {
        int h = h0 + k / KW, w = w0 + k % KW;
        scalar_t v = (h >= 0 && h < H && w >= 0 && w < W) ? plane[h * W + w] : negative_infinity;
        // the first max wins (strict >); a NaN beats any number and stays
        if (best_k < 0 || (best == best && (v > best || v != v))) { best = v; best_k = k; }
    }
    out[i] = best;
    window_argmax[i] = (argmax_t)best_k;
    indices[i] = (long long)(h0 + best_k / KW) * W + (w0 + best_k % KW);
}

extern "C" __global__ void max_pool2d_backward_KIND_scalar_t(
        const scalar_t* __restrict__ dout, const argmax_t* __restrict__ window_argmax, scalar_t* __restrict__ dx,
        int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int n) {
    // thread i = ((n*C + c)*H + h)*W + w; in padded coordinates the pixel is (hp, wp)
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int hp = i / W % H + PH, wp = i % W + PW;
    long long plane = (long long)(i / (H * W)) * OH * OW;
    // the windows p with p*SH <= hp <= p*SH + KH - 1 (likewise q), inside [0, OH) x [0, OW)
    int p_lo = hp >= KH ? (hp - KH) / SH + 1 : 0, p_hi = min(hp / SH, OH - 1);
    int q_lo = wp >= KW ? (wp - KW) / SW + 1 : 0, q_hi = min(wp / SW, OW - 1);
    scalar_t sum = 0;
    for (int p = p_hi; p >= p_lo; --p)      // p down, q down: offset k up, the reference's order
        for (int q = q_hi; q >= q_lo; --q) {
            long long o = plane + p * OW + q;
            int k = (hp - p * SH) * KW + (wp - q * SW);  // where this pixel sits in window (p, q)
            sum += dout[o] * (scalar_t)(window_argmax[o] == k);
        }
    dx[i] = sum;
}
"""

_UNPOOLING = r"""
extern "C" __global__ void max_unpool2d_forward_scalar_t(
        const scalar_t* __restrict__ x, const long long* __restrict__ indices, scalar_t* __restrict__ out,
        long long* __restrict__ positions, int HW, int OHOW, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long position = (long long)(i / HW) * OHOW + indices[i];  // plane (n*C + c), then h*OW + w
    positions[i] = position;
    out[position] = x[i];
}

extern "C" __global__ void max_unpool2d_backward_scalar_t(
        const scalar_t* __restrict__ dout, const long long* __restrict__ positions, scalar_t* __restrict__ dx, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    dx[i] = dout[positions[i]];
}
"""

_ARGMAX_TYPES = {"uint8": ("u8", "unsigned char"), "int32": ("i32", "int")}

SOURCE = for_float_types(_UNPOOLING + "".join(
    _POOLING.replace("KIND", kind).replace("argmax_t", c_type) for kind, c_type in _ARGMAX_TYPES.values()))


def _argmax_kind(window_argmax):
    """"u8" or "i32": which variant of a kernel reads/writes this window_argmax dtype."""
    return _ARGMAX_TYPES[window_argmax.dtype.name][0]


def _geometry(xp, kernel, stride, padding):
    """KH, KW, SH, SW, PH, PW as the kernels' int arguments."""
    return tuple(xp.int32(v) for v in (*kernel, *stride, *padding))


def max_pool2d_forward(x, kernel, stride, padding, out_size):
    """Max pooling in one launch: x (N, C, H, W) -> out, indices, window_argmax (each (N, C, OH, OW)).

    kernel, stride, padding, out_size: (h, w) pairs, already checked (pool.py).
    out[n, c, p, q] = max of the window, padding counting as -inf; indices
    (int64) = h*W + w of its first max; window_argmax (uint8 when KH*KW <
    256, else int32) = its offset i*KW + j in the window.
    """
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    n, c, h, w = x.shape
    oh, ow = out_size
    out = xp.empty((n, c, oh, ow), dtype=x.dtype)
    indices = xp.empty((n, c, oh, ow), dtype=xp.int64)
    window_argmax = xp.empty((n, c, oh, ow), dtype=xp.uint8 if kernel[0] * kernel[1] < 256 else xp.int32)
    name = typed_name(f"max_pool2d_forward_{_argmax_kind(window_argmax)}", x.dtype)
    launch(SOURCE, name, out.size,
           (x, out, indices, window_argmax, xp.int32(h), xp.int32(w), xp.int32(oh), xp.int32(ow),
            *_geometry(xp, kernel, stride, padding), xp.int32(out.size)), like=x)
    return out, indices, window_argmax


def max_pool2d_backward(dout, window_argmax, x_shape, kernel, stride, padding):
    """dx (x_shape) of max pooling in one launch, from dout and the forward's window_argmax (N, C, OH, OW).

    dx[n, c, h, w] = sum over the windows (p, q) that cover (h, w) of
    ``dout[n, c, p, q] * (window_argmax[n, c, p, q] == the offset of (h, w) in it)``.
    """
    xp = array_module(dout)
    dout = xp.ascontiguousarray(dout)
    n, c, h, w = x_shape
    oh, ow = dout.shape[2:]
    dx = xp.empty((n, c, h, w), dtype=dout.dtype)
    name = typed_name(f"max_pool2d_backward_{_argmax_kind(window_argmax)}", dout.dtype)
    launch(SOURCE, name, dx.size,
           (dout, xp.ascontiguousarray(window_argmax), dx, xp.int32(h), xp.int32(w), xp.int32(oh), xp.int32(ow),
            *_geometry(xp, kernel, stride, padding), xp.int32(dx.size)), like=dout)
    return dx


def max_unpool2d_forward(x, indices, out_size):
    """Max unpooling in one launch: x (N, C, H, W), indices (N, C, H, W) -> out (N, C, OH, OW), positions.

    indices: flat h*OW + w into each output plane, already checked to lie in
    [0, OH*OW). positions (N*C*H*W,) int64 = plane*OH*OW + indices, the flat
    index into the whole output; ``out.reshape(-1)[positions] = x.reshape(-1)``,
    every other pixel 0.
    """
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    indices = xp.ascontiguousarray(indices.astype(xp.int64, copy=False))
    n, c, h, w = x.shape
    oh, ow = out_size
    out = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    positions = xp.empty(x.size, dtype=xp.int64)
    launch(SOURCE, typed_name("max_unpool2d_forward", x.dtype), x.size,
           (x, indices, out, positions, xp.int32(h * w), xp.int32(oh * ow), xp.int32(x.size)), like=x)
    return out, positions


def max_unpool2d_backward(dout, positions, x_shape):
    """dx (x_shape) of max unpooling in one launch: ``dx.reshape(-1) = dout.reshape(-1)[positions]``."""
    xp = array_module(dout)
    dout = xp.ascontiguousarray(dout)
    dx = xp.empty(x_shape, dtype=dout.dtype)
    launch(SOURCE, typed_name("max_unpool2d_backward", dout.dtype), dx.size,
           (dout, positions, dx, xp.int32(dx.size)), like=dout)
    return dx
