"""Winograd's minimal filtering F(2x2, 3x3): a fast path for 3x3, stride-1 convolutions.

A 3x3 convolution computes each 2x2 block ("tile") of its output from a 4x4
patch ``d`` of the (padded) input. Done directly that is 2*2*9 = 36
multiplications per tile and channel pair; Winograd (Lavin and Gray, 2016)
needs 4*4 = 16:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          (one tile, one channel pair)

        Bᵀ = [[1, 0,-1, 0],      G = [[  1,    0,   0],      Aᵀ = [[1, 1, 1, 0],
              [0, 1, 1, 0],           [1/2,  1/2, 1/2],            [0, 1,-1,-1]]
              [0,-1, 1, 0],           [1/2, -1/2, 1/2],
              [0, 1, 0,-1]]           [  0,    0,   1]]

``U = G g Gᵀ`` (4x4 per filter) and ``V = Bᵀ d B`` (4x4 per input patch) are
computed once; the sum over input channels of ``U ⊙ V`` is, for each of the
16 positions of the 4x4 grid, an ordinary matrix product

    M[a, b] = U[a, b] @ V[a, b]      (C_out, C_in) @ (C_in, tiles)

so the whole convolution is 16 GEMMs of 1/2.25 the size of im2col's one,
plus cheap additions (the transforms use only +, - and halves).

The backward pass is the exact adjoint of these three linear steps:

    dM = A dY Aᵀ,   dU = dM @ Vᵀ -> dw = Gᵀ dU G,   dV = Uᵀ @ dM -> dx = B dV Bᵀ (scattered back)

so it too runs as 16 + 16 smaller GEMMs.

Cost in accuracy: the transforms add and subtract before multiplying, so
float32 rounding errors are a few times those of the direct sum (the tests
state the bound); float64 agrees with im2col to ~1e-13.

Layout: the tiles of all images and channels are kept channels-first,
``(16, C, N*tiles_h*tiles_w)``, so each of the 16 products is one plain GEMM.
The transforms are GEMMs too: with d the 16 pixels of every patch as rows,
``Bᵀ d B`` for all patches is ``kron(Bᵀ, Bᵀ) @ d`` (16 x 16), and ``Aᵀ M A``
is ``kron(Aᵀ, Aᵀ) @ M`` (4 x 16): one pass each instead of a dozen
element-wise ones. ``method="fast"`` picks this path where it was measured
faster (``_conv_fast.py``).
"""
from __future__ import annotations

from ..backend import array_module
from .im2col import pad_channels_first
from .common import window

# The transforms of F(2x2, 3x3) (Lavin and Gray, 2016, section 4.1).
B_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
A_T = ((1, 1, 1, 0), (0, 1, -1, -1))


def applies(w_shape, stride, dilation) -> bool:
    """True when Winograd F(2x2, 3x3) computes this convolution: 3x3 kernel, stride 1, dilation 1."""
    return tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)


def _tile_counts(out_h, out_w):
    """(th, tw) = (ceil(OH / 2), ceil(OW / 2)): the 2x2 output tiles per axis (a last half tile is cropped)."""
    return (out_h + 1) // 2, (out_w + 1) // 2


def _padded_channels_first(x, padding, th, tw):
    """(C, N, 2*th + 2, 2*tw + 2): x zero-padded by ``padding`` (and on the bottom/right to whole tiles)."""
    (ph, pw), (h, w) = padding, x.shape[2:]
    return pad_channels_first(x, (ph, 2 * th + 2 - h - ph), (pw, 2 * tw + 2 - w - pw))  # 2*th + 2 >= h + 2*ph


def _kron(m, like):
    """kron(m, m) as an array like ``like``: row (a, b), column (i, j) holds m[a][i] * m[b][j].

    For a 4x4 patch d flattened to 16 values, ``kron(Bᵀ, Bᵀ) @ d`` is Bᵀ d B
    flattened: each two-sided transform of every tile is one small GEMM.
    """
    m = array_module(like).asarray(m, dtype=like.dtype)
    rows, cols = m.shape
    return (m[:, None, :, None] * m[None, :, None, :]).reshape(rows * rows, cols * cols)


def _patches(xpad, th, tw):
    """The 4x4 input patch of every tile (stride 2): (16, C, N*th*tw), row (i, j) = pixel (i, j) of each patch."""
    xp = array_module(xpad)
    c, n = xpad.shape[:2]
    patches = xp.empty((4, 4, c, n, th, tw), dtype=xpad.dtype)
    for i in range(4):
        for j in range(4):
            patches[i, j] = xpad[:, :, window(i, 2, th), window(j, 2, tw)]
    return patches.reshape(16, c, n * th * tw)


def input_transform(xpad, th, tw):
    """V = Bᵀ d B for every 4x4 input patch d: (16, C, N*th*tw), row (a, b) of the 4x4 grid."""
    d = _patches(xpad, th, tw)
    return (_kron(B_T, d) @ d.reshape(16, -1)).reshape(d.shape)


def _sandwich(left, a, right):
    """left @ a[k, c] @ right for every (k, c) of a (K, C, p, q), returned as (rows, cols, K, C)."""
    xp = array_module(a)
    a_right = xp.tensordot(a, right, axes=([3], [0]))                # (K, C, p, cols)
    return xp.tensordot(left, a_right, axes=([1], [2])).transpose(0, 3, 1, 2)  # (rows, cols, K, C)


def filter_transform(w):
    """U = G g Gᵀ for every filter g: (16, C_out, C_in), row (a, b) of the 4x4 grid."""
    g = array_module(w).asarray(G, dtype=w.dtype)
    u = _sandwich(g, w, g.T)
    return u.reshape((16,) + u.shape[2:])


def output_transform(m):
    """Y = Aᵀ M A for every tile: m (16, K, P) -> (2, 2, K, P), P = N*th*tw tiles."""
    return (_kron(A_T, m) @ m.reshape(16, -1)).reshape((2, 2) + m.shape[1:])


def conv2d_forward(x, w, b, cache):
    """out (N, K, OH, OW) of a 3x3 stride-1 conv2d, x (N, C, H, W), w (K, C, 3, 3): the ``"winograd"`` method.

    ``cache`` comes from ``conv.conv2d_forward`` (options as pairs, out_size); V and U are added to it.
    """
    if not applies(w.shape, cache.stride, cache.dilation):
        raise ValueError("method='winograd' computes 3x3 convolutions with stride 1 and dilation 1; got kernel "
                         f"{tuple(w.shape[2:])}, stride {cache.stride}, dilation {cache.dilation}")
    xp = array_module(x)
    n = x.shape[0]
    k = w.shape[0]
    out_h, out_w = cache.out_size
    th, tw = _tile_counts(out_h, out_w)
    v = input_transform(_padded_channels_first(x, cache.padding, th, tw), th, tw)  # (16, C, P)
    u = filter_transform(w)                                                         # (16, K, C)
    y = output_transform(u @ v).reshape(2, 2, k, n, th, tw)                         # y[r, s]: output pixel (r, s)
    out = y.transpose(3, 2, 4, 0, 5, 1).reshape(n, k, 2 * th, 2 * tw)[:, :, :out_h, :out_w]
    out = xp.ascontiguousarray(out)
    if b is not None:
        out += b.reshape(1, k, 1, 1)
    cache.v, cache.u, cache.tiles = v, u, (th, tw)
    return out


def _output_grad_transform(dout, th, tw):
    """dM = A dY Aᵀ per tile (the adjoint of ``output_transform``): (16, K, N*th*tw)."""
    xp = array_module(dout)
    n, k, out_h, out_w = dout.shape
    tiles = xp.zeros((n, k, th, 2, tw, 2), dtype=dout.dtype)  # dout, zero-padded to whole tiles
    tiles.reshape(n, k, 2 * th, 2 * tw)[:, :, :out_h, :out_w] = dout
    dy = tiles.transpose(3, 5, 1, 0, 2, 4).reshape(4, -1)  # row (r, s): the gradient of output pixel (r, s) of each tile
    return (_kron(A_T, dy).T @ dy).reshape(16, k, n * th * tw)


def _input_grad_transform(dv, x_shape, padding, th, tw):
    """dx from dV (16, C, N*th*tw): the adjoint of ``input_transform`` (B dV Bᵀ, added back into each patch)."""
    xp = array_module(dv)
    n, c, h, wd = x_shape
    dpatches = (_kron(B_T, dv).T @ dv.reshape(16, -1)).reshape(4, 4, c, n, th, tw)
    dxpad = xp.zeros((c, n, 2 * th + 2, 2 * tw + 2), dtype=dv.dtype)
    for i in range(4):
        for j in range(4):
            dxpad[:, :, window(i, 2, th), window(j, 2, tw)] += dpatches[i, j]
    ph, pw = padding
    return xp.ascontiguousarray(dxpad[:, :, ph:ph + h, pw:pw + wd].transpose(1, 0, 2, 3))


def conv2d_backward(dout, cache):
    """(dx, dw) of the ``"winograd"`` forward (``conv.conv2d_backward`` adds db)."""
    xp = array_module(dout)
    th, tw = cache.tiles
    k, c = cache.u.shape[1:]
    dm = _output_grad_transform(dout, th, tw)                                          # (16, K, P)
    du = (dm @ cache.v.transpose(0, 2, 1)).reshape(4, 4, k, c).transpose(2, 3, 0, 1)  # (K, C, 4, 4)
    g = xp.asarray(G, dtype=dout.dtype)
    dw = xp.ascontiguousarray(_sandwich(g.T, du, g).transpose(2, 3, 0, 1))           # Gᵀ dU G: (K, C, 3, 3)
    dv = cache.u.transpose(0, 2, 1) @ dm                                              # (16, C, P)
    return _input_grad_transform(dv, cache.x.shape, cache.padding, th, tw), dw
