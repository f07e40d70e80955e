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
``(C, N, tiles_h, tiles_w)``, so each of the 16 products is one plain GEMM.
"""
from __future__ import annotations

from ..backend import array_module

# The transforms of F(2x2, 3x3) (Lavin and Gray, 2016, section 4.1).
B_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
A_T = ((1, 1, 1, 0), (0, 1, -1, -1))


def applies(w_shape, stride, dilation) -> bool:
    """True when Winograd F(2x2, 3x3) computes this convolution: 3x3 kernel, stride 1, dilation 1."""
    return tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)


def _combine(coeffs, parts, out):
    """out = sum_k coeffs[k] * parts[k], with coefficients in {-1, 0, 1} (only adds and subtracts)."""
    xp = array_module(out)
    terms = [(c, p) for c, p in zip(coeffs, parts) if c != 0]
    (c0, p0), rest = terms[0], terms[1:]
    if c0 > 0:
        out[...] = p0
    else:
        xp.negative(p0, out=out)
    for c, p in rest:
        (xp.add if c > 0 else xp.subtract)(out, p, out=out)
    return out


def _add_combined(coeffs, part, outs):
    """outs[k] += coeffs[k] * part for each k (the adjoint of ``_combine``)."""
    xp = array_module(part)
    for c, out in zip(coeffs, outs):
        if c != 0:
            (xp.add if c > 0 else xp.subtract)(out, part, out=out)


def _tile_counts(out_h, out_w):
    return (out_h + 1) // 2, (out_w + 1) // 2


def _padded_channels_first(x, padding, th, tw):
    """(C, N, 2*th + 2, 2*tw + 2): x zero-padded by ``padding`` (and on the bottom/right to whole tiles)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    ph, pw = padding
    xpad = xp.zeros((c, n, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)  # 2*th + 2 >= out_h + 2 = h + 2*ph
    xpad[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    return xpad


def input_transform(xpad, th, tw):
    """V = Bᵀ d B for every 4x4 input patch d (stride 2): (4, 4, C, N, th, tw).

    Rows first: t[a] = sum_i Bᵀ[a, i] * (row i of every patch), then the same over columns.
    """
    xp = array_module(xpad)
    c, n = xpad.shape[:2]
    rows = [xpad[:, :, i:i + 2 * th:2, :] for i in range(4)]
    v = xp.empty((4, 4, c, n, th, tw), dtype=xpad.dtype)
    t = xp.empty(rows[0].shape, dtype=xpad.dtype)
    for a in range(4):
        _combine(B_T[a], rows, t)
        cols = [t[..., j:j + 2 * tw:2] for j in range(4)]
        for b in range(4):
            _combine(B_T[b], cols, v[a, b])
    return v


def _sandwich(left, a, right):
    """left @ a[k, c] @ right for every (k, c) of a (K, C, p, q), returned as (rows, cols, K, C)."""
    xp = array_module(a)
    a_right = xp.tensordot(a, right, axes=([3], [0]))                # (K, C, p, cols)
    return xp.tensordot(left, a_right, axes=([1], [2])).transpose(0, 3, 1, 2)  # (rows, cols, K, C)


def filter_transform(w):
    """U = G g Gᵀ for every filter g: (4, 4, C_out, C_in)."""
    g = array_module(w).asarray(G, dtype=w.dtype)
    return _sandwich(g, w, g.T)


def output_transform(m, out):
    """out[:, :, :, r, :, s] = sum_{a,b} Aᵀ[r, a] Aᵀ[s, b] M[a, b];  m (4, 4, K, N, th, tw), out (K, N, th, 2, tw, 2)."""
    xp = array_module(m)
    q = xp.empty(m.shape[1:], dtype=m.dtype)
    for r in range(2):
        _combine(A_T[r], [m[a] for a in range(4)], q)
        for s in range(2):
            _combine(A_T[s], [q[b] for b in range(4)], out[:, :, :, r, :, s])
    return out


def conv2d_forward(x, w, b, cache):
    """out (N, K, OH, OW) of a 3x3 stride-1 conv2d, x (N, C, H, W), w (K, C, 3, 3): the ``"winograd"`` method.

    ``cache`` comes from ``conv.conv2d_forward`` (options as pairs, out_size); V and U are added to it.
    """
    if not applies(w.shape, cache.stride, cache.dilation):
        raise ValueError("method='winograd' computes 3x3 convolutions with stride 1 and dilation 1; got kernel "
                         f"{tuple(w.shape[2:])}, stride {cache.stride}, dilation {cache.dilation}")
    xp = array_module(x)
    n, c = x.shape[:2]
    k = w.shape[0]
    out_h, out_w = cache.out_size
    th, tw = _tile_counts(out_h, out_w)
    v = input_transform(_padded_channels_first(x, cache.padding, th, tw), th, tw)
    u = filter_transform(w)
    m = u.reshape(16, k, c) @ v.reshape(16, c, n * th * tw)
    y = output_transform(m.reshape(4, 4, k, n, th, tw), xp.empty((k, n, th, 2, tw, 2), dtype=x.dtype))
    out = xp.ascontiguousarray(y.reshape(k, n, 2 * th, 2 * tw)[:, :, :out_h, :out_w].transpose(1, 0, 2, 3))
    if b is not None:
        out += b.reshape(1, k, 1, 1)
    cache.v, cache.u, cache.tiles = v.reshape(16, c, n * th * tw), u.reshape(16, k, c), (th, tw)
    return out


def _output_grad_transform(dout, th, tw):
    """dM = A dY Aᵀ per tile (the adjoint of ``output_transform``): (4, 4, K, N, th, tw)."""
    xp = array_module(dout)
    n, k, out_h, out_w = dout.shape
    dy = xp.zeros((k, n, th, 2, tw, 2), dtype=dout.dtype)
    dy.reshape(k, n, 2 * th, 2 * tw)[:, :, :out_h, :out_w] = dout.transpose(1, 0, 2, 3)
    dq = xp.zeros((4, 2, k, n, th, tw), dtype=dout.dtype)  # dq[a, s]: rows adjoined, columns not yet
    dm = xp.zeros((4, 4, k, n, th, tw), dtype=dout.dtype)
    for s in range(2):
        for r in range(2):
            _add_combined(A_T[r], dy[:, :, :, r, :, s], [dq[a, s] for a in range(4)])
    for a in range(4):
        for s in range(2):
            _add_combined(A_T[s], dq[a, s], [dm[a, b] for b in range(4)])
    return dm


def _input_grad_transform(dv, x_shape, padding, th, tw):
    """dx from dV (4, 4, C, N, th, tw): the adjoint of ``input_transform`` and of the padding."""
    xp = array_module(dv)
    n, c, h, wd = x_shape
    dxpad = xp.zeros((c, n, 2 * th + 2, 2 * tw + 2), dtype=dv.dtype)
    drows = [dxpad[:, :, i:i + 2 * th:2, :] for i in range(4)]
    dt = xp.empty(drows[0].shape, dtype=dv.dtype)
    for a in range(4):
        dt[...] = 0
        dcols = [dt[..., j:j + 2 * tw:2] for j in range(4)]
        for b in range(4):
            _add_combined(B_T[b], dv[a, b], dcols)
        _add_combined(B_T[a], dt, drows)
    ph, pw = padding
    return xp.ascontiguousarray(dxpad[:, :, ph:ph + h, pw:pw + wd].transpose(1, 0, 2, 3))


def conv2d_backward(dout, cache):
    """(dx, dw) of the ``"winograd"`` forward (``conv.conv2d_backward`` adds db)."""
    xp = array_module(dout)
    th, tw = cache.tiles
    k, c = cache.u.shape[1:]
    dm = _output_grad_transform(dout, th, tw).reshape(16, k, -1)
    du = (dm @ cache.v.transpose(0, 2, 1)).reshape(4, 4, k, c).transpose(2, 3, 0, 1)  # (K, C, 4, 4)
    g = xp.asarray(G, dtype=dout.dtype)
    dw = xp.ascontiguousarray(_sandwich(g.T, du, g).transpose(2, 3, 0, 1))           # Gᵀ dU G: (K, C, 3, 3)
    dv = (cache.u.transpose(0, 2, 1) @ dm).reshape(4, 4, c, cache.x.shape[0], th, tw)
    return _input_grad_transform(dv, cache.x.shape, cache.padding, th, tw), dw
