"""im2col, col2im and the two layout moves of the convolutions, one CUDA launch each.

The CUDA twins of ``functional/im2col.py``: the same names, arguments and
results (tested equal, ``tests/test_kernels_conv.py``), for the CuPy backend,
where ``method="fast"`` of conv2d and conv_transpose2d runs them
(``_conv_fast.py``). The array code loops over the KH*KW kernel offsets, one
strided copy (one launch on a GPU) per offset; each function here is a single
launch, one thread per element of its result. Notation as in ``im2col.py``:
x (N, C, H, W), kernel (KH, KW), stride (SH, SW), padding (PH, PW), dilation
(DH, DW), OH x OW window positions.

**im2col**: thread t is entry (c, i, j, n, oh, ow) of cols (C*KH*KW, N*OH*OW)
and copies the one pixel it holds::

    cols[t] = xpad[n, c, oh*SH + i*DH, ow*SW + j*DW]          (0 on the padding)

**col2im**, its adjoint, as a *gather*: thread t is pixel (n, c, y, x) of the
image and adds up every entry of cols that im2col copied from it: the kernel
offsets (i, j) whose window position is a whole number inside the map::

    y + PH = oh*SH + i*DH,   0 <= oh < OH     (SH divides y + PH - i*DH; likewise x, j, ow)
    out[n, c, y, x] = sum over those (i, j) of cols[(c, i, j), (n, oh, ow)]

Those i are every (SH / gcd(SH, DH))-th offset from the first, so a thread
visits only them: a 64x64 kernel of stride 32 (FCN-32s) gives each pixel
2 x 2 offsets to add, not 4096 to test.

Every thread writes only its own pixel: no atomics, and the result does not
depend on the order threads run in. It adds in the order of the array code's
loop (i, then j), so both round alike: the same numbers, bit for bit.

**channels_first** (N, C, H, W) -> (C, N*H*W) and **batch_first**, its
inverse, which adds the bias in the same launch: the layouts a GEMM over the
whole batch reads and writes.

Each kernel exists for float32 and float64: its CUDA C is written once with
``scalar_t`` for the type, and ``SOURCE`` holds it twice (``for_float_types``;
kernel names ending in ``_float`` and ``_double``).
"""
from __future__ import annotations

from ...backend import array_module
from ..common import check_nchw
from ..im2col import conv_options
from ..shapes import conv2d_output_shape
from . import for_float_types, launch, typed_name

__all__ = ["im2col", "col2im", "channels_first", "batch_first", "SOURCE"]

_OFFSETS = r"""
// The kernel offsets i of col2im whose window holds a pixel at padded position pos: S divides pos - i*D
// (then pos - i*D = oh*S). They are every (S / gcd(S, D))-th offset from the first one.
__device__ __forceinline__ int offset_step(int S, int D) {
    int a = S, b = D;
    while (b != 0) { int r = a % b; a = b; b = r; }
    return S / a;
}

__device__ __forceinline__ int first_offset(int pos, int S, int D, int step, int K) {
    for (int i = 0; i < step && i < K; ++i)
        if ((pos - i * D) % S == 0) return i;
    return K;                                // none: no window holds this pixel along this axis
}
"""
_KERNELS = r"""
extern "C" __global__ void im2col_scalar_t(const scalar_t* __restrict__ x, scalar_t* __restrict__ cols,
        int N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW,
        int OH, int OW, int total) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    int ow = t % OW, rest = t / OW;          // t = (((((c*KH + i)*KW + j)*N + n)*OH + oh)*OW + ow
    int oh = rest % OH; rest /= OH;
    int n = rest % N; rest /= N;
    int j = rest % KW; rest /= KW;
    int i = rest % KH;
    int c = rest / KH;
    int y = oh * SH - PH + i * DH, x_ = ow * SW - PW + j * DW;   // the pixel in the unpadded image
    bool inside = y >= 0 && y < H && x_ >= 0 && x_ < W;
    cols[t] = inside ? x[((n * C + c) * H + y) * W + x_] : (scalar_t)0;
}

extern "C" __global__ void col2im_scalar_t(const scalar_t* __restrict__ cols, scalar_t* __restrict__ x,
        int N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW,
        int OH, int OW, int total) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    int x_ = t % W, rest = t / W;            // t = ((n*C + c)*H + y)*W + x_
    int y = rest % H; rest /= H;
    int c = rest % C;
    int n = rest / C;
    int L = N * OH * OW;                     // the columns of cols
    int step_i = offset_step(SH, DH), step_j = offset_step(SW, DW);
    int j0 = first_offset(x_ + PW, SW, DW, step_j, KW);
    scalar_t sum = 0;
    for (int i = first_offset(y + PH, SH, DH, step_i, KH); i < KH; i += step_i) {
        int top = y + PH - i * DH;           // = oh*SH: the window that reads this pixel at row offset i
        if (top < 0) break;                  // and for every later i too
        if (top / SH >= OH) continue;
        for (int j = j0; j < KW; j += step_j) {
            int left = x_ + PW - j * DW;     // = ow*SW
            if (left < 0) break;
            if (left / SW >= OW) continue;
            sum += cols[((c * KH + i) * KW + j) * L + (n * OH + top / SH) * OW + left / SW];
        }
    }
    x[t] = sum;
}

extern "C" __global__ void channels_first_scalar_t(const scalar_t* __restrict__ a, scalar_t* __restrict__ m,
        int N, int C, int HW, int total) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    int p = t % HW, rest = t / HW;           // t = (c*N + n)*HW + p
    int n = rest % N;
    int c = rest / N;
    m[t] = a[(n * C + c) * HW + p];
}

extern "C" __global__ void batch_first_scalar_t(const scalar_t* __restrict__ m, const scalar_t* __restrict__ b,
        scalar_t* __restrict__ out, int N, int C, int HW, int has_bias, int total) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    int p = t % HW, rest = t / HW;           // t = (n*C + c)*HW + p
    int c = rest % C;
    int n = rest / C;
    scalar_t v = m[(c * N + n) * HW + p];
    out[t] = has_bias ? v + b[c] : v;
}
"""
SOURCE = _OFFSETS + for_float_types(_KERNELS)  # what NVRTC compiles


def _run(kernel, inputs, out, sizes):
    """Launch ``kernel`` (its float or double version) with one thread per element of out; returns out.

    The kernel's parameters: the input arrays, out, the ints ``sizes``, then
    the thread count. Inputs are made C-contiguous and must have out's dtype.
    """
    xp = array_module(out)
    if out.dtype.name not in ("float32", "float64"):
        raise TypeError(f"{kernel}: the CUDA kernels take float32 or float64 arrays, got {out.dtype}")
    for a in inputs:
        if a.dtype != out.dtype:
            raise TypeError(f"{kernel}: every array must have dtype {out.dtype}, got {a.dtype}")
    args = [xp.ascontiguousarray(a) for a in inputs] + [out] + [xp.int32(s) for s in (*sizes, out.size)]
    launch(SOURCE, typed_name(kernel, out.dtype), out.size, args, like=out)
    return out


def _geometry(x_shape, kernel_size, stride, padding, dilation, out_size):
    """The 14 ints of the im2col and col2im kernels: N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW."""
    opts = conv_options(kernel_size, stride, padding, dilation)
    oh, ow = out_size or conv2d_output_shape(x_shape[2:], *opts)
    return (*x_shape, *opts.kernel_size, *opts.stride, *opts.padding, *opts.dilation, oh, ow)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Unfold the windows of x (N, C, H, W) into cols (C*KH*KW, N*OH*OW): one launch, one thread per entry.

    As ``functional.im2col.im2col``; ``out_size`` (OH, OW) may ask for fewer
    window positions than the formula gives (the transposed convolution does).
    """
    check_nchw(x)
    n, c, h, w, kh, kw, *_, oh, ow = sizes = _geometry(x.shape, kernel_size, stride, padding, dilation, out_size)
    cols = array_module(x).empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    return _run("im2col", [x], cols, sizes)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1, out_size=None):
    """Fold cols (C*KH*KW, N*OH*OW) back into an image of ``x_shape`` (N, C, H, W): one thread per pixel.

    As ``functional.im2col.col2im``: overlapping windows add up. Each thread
    gathers the entries of its own pixel (see the module's docstring).
    """
    n, c, h, w, kh, kw, *_, oh, ow = sizes = _geometry(tuple(x_shape), kernel_size, stride, padding, dilation,
                                                        out_size)
    expected = (c * kh * kw, n * oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"cols must have shape {expected} for x_shape {tuple(x_shape)}, got {tuple(cols.shape)}")
    x = array_module(cols).empty((n, c, h, w), dtype=cols.dtype)
    return _run("col2im", [cols], x, sizes)


def channels_first(a):
    """(N, C, H, W) -> the (C, N*H*W) matrix the GEMMs use (a copy): one thread per entry."""
    n, c, h, w = a.shape
    m = array_module(a).empty((c, n * h * w), dtype=a.dtype)
    return _run("channels_first", [a], m, (n, c, h * w))


def batch_first(m, out, b=None):
    """Write the (C, N*H*W) matrix m into out (N, C, H, W), plus b (C,) if given: one launch.

    As ``functional.im2col.batch_first``; the bias is added by the same
    threads that move the entries. A non-contiguous ``out`` (a view) gets
    the result through one more copy.
    """
    n, c, h, w = out.shape
    if tuple(m.shape) != (c, n * h * w):
        raise ValueError(f"m must have shape {(c, n * h * w)} for out of shape {tuple(out.shape)}, "
                         f"got {tuple(m.shape)}")
    if b is not None and tuple(b.shape) != (c,):
        raise ValueError(f"b must have shape ({c},), got {tuple(b.shape)}")
    target = out if out.flags.c_contiguous else array_module(out).empty(out.shape, dtype=out.dtype)
    _run("batch_first", [m, m if b is None else b], target, (n, c, h * w, b is not None))
    if target is not out:
        out[...] = target
