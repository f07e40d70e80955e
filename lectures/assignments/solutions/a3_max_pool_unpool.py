"""Assignment 3: max pooling with indices, max unpooling, and their backward passes.

Max pooling keeps the largest value of every K x K window, and remembers
where it was. The lecture's example (2x2 windows, stride 2)::

    4 3 1 5
    1 3 4 8      ->    4 8         indices (flat h*W + w):   0  7
    4 5 4 3            6 9                                   12 14
    6 5 9 4

Its gradient goes to the winner of each window and nowhere else. SegNet's
decoder reuses those indices: max unpooling puts every value back where the
maximum was and fills the rest with zeros; its backward is a gather.

Implement, top to bottom:

    max_pool2d_forward      out and the argmax indices
    max_pool2d_backward     route dout to the winners; ADD where windows overlap
    max_unpool2d_forward    scatter x to the saved indices
    max_unpool2d_backward   gather dout from the saved indices

Notation: x (N, C, H, W); square windows K x K; stride S (default K);
no padding; OH = (H - K) // S + 1, OW = (W - K) // S + 1. Indices are flat
positions in one (H, W) plane, ``h*W + w``, exactly what
``torch.nn.functional.max_pool2d(..., return_indices=True)`` returns.

Use NumPy through ``xp = array_module(x)``, and nothing from
``minimal_seg.functional`` (the autograder refuses a file that imports
it, or torch). Check your work with
``python -m minimal_seg check a3 --impl a3_max_pool_unpool.py``.
"""
from __future__ import annotations

from minimal_seg.backend import array_module


def max_pool2d_forward(x, kernel_size, stride=None):
    """Max pooling of x (N, C, H, W) -> (out, cache).

    kernel_size K: int (K x K windows); stride S: int, None means K
    out      (N, C, OH, OW), OH = (H - K) // S + 1 (likewise OW):

        out[n, c, p, q] = max_{0 <= i, j < K} x[n, c, p*S + i, q*S + j]

    indices  (N, C, OH, OW) int64: where each maximum was, as a flat index into
             the (H, W) plane: indices[n, c, p, q] = h*W + w with h = p*S + i, w = q*S + j
             of the winning offset (i, j). Ties: the first maximum in row-major window
             order (i, then j) wins, which is what argmax does.
    cache = {"x_shape": x.shape, "indices": indices, "kernel_size": K, "stride": S}

    Hint: stack the K*K strided slices x[:, :, i : i + S*OH : S, j : j + S*OW : S]
    (one per offset) on a new axis 2, take argmax over it (k = i*K + j), then
    turn k and the window's corner (p*S, q*S) into h and w.
    """
    # ===== START SOLUTION: max pooling and its argmax indices =====
    xp = array_module(x)
    k = kernel_size
    s = k if stride is None else stride
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    windows = xp.stack([x[:, :, i:i + s * oh:s, j:j + s * ow:s] for i in range(k) for j in range(k)], axis=2)
    best = windows.argmax(axis=2)  # (N, C, OH, OW): the winning offset i*K + j
    out = xp.take_along_axis(windows, best[:, :, None], axis=2)[:, :, 0]
    rows = xp.arange(oh).reshape(oh, 1) * s + best // k
    cols = xp.arange(ow).reshape(1, ow) * s + best % k
    indices = (rows * w + cols).astype(xp.int64)
    return out, {"x_shape": x.shape, "indices": indices, "kernel_size": k, "stride": s}
    # ===== END SOLUTION =====


def max_pool2d_backward(dout, cache):
    """Gradient of max pooling: dout (N, C, OH, OW) -> dx (N, C, H, W).

    Each dout[n, c, p, q] goes to the pixel that won window (p, q), and every
    other pixel of the window gets nothing:

        dx[n, c].ravel()[indices[n, c, p, q]] += dout[n, c, p, q]

    ADD, never assign: when windows overlap (S < K) one pixel can win several
    windows, and then its gradient is the sum of their dout values.

    Hint: a sum of the values that point at each pixel is a weighted count:
    ``xp.bincount(target, weights=dout.ravel(), minlength=N*C*H*W)`` with
    target = (n*C + c)*H*W + indices, one entry per dout value.
    """
    # ===== START SOLUTION: the scatter-add of dout to the winners =====
    xp = array_module(dout)
    n, c, h, w = cache["x_shape"]
    indices = cache["indices"].reshape(n * c, -1)
    plane = xp.arange(n * c).reshape(n * c, 1) * (h * w)  # where each (n, c) plane starts
    dx = xp.bincount((plane + indices).ravel(), weights=dout.ravel(), minlength=n * c * h * w)
    return dx.astype(dout.dtype).reshape(n, c, h, w)
    # ===== END SOLUTION =====


def max_unpool2d_forward(x, indices, output_size):
    """Max unpooling: put every value of x back where its maximum was; zeros elsewhere.

    x            (N, C, H, W) float, e.g. the pooled (and processed) feature map
    indices      (N, C, H, W) integer, what max_pool2d_forward saved in cache["indices"]
    output_size  (OH, OW), the size of the image that was pooled
    returns (out, cache), out (N, C, OH, OW):

        out[n, c].ravel()[indices[n, c, p, q]] = x[n, c, p, q]      (all other pixels 0)

    cache = {"indices": indices, "x_shape": x.shape}
    """
    # ===== START SOLUTION: the scatter of x to the saved indices =====
    xp = array_module(x)
    n, c, h, w = x.shape
    oh, ow = output_size
    out = xp.zeros((n * c, oh * ow), dtype=x.dtype)
    rows = xp.arange(n * c).reshape(n * c, 1)
    out[rows, indices.reshape(n * c, h * w)] = x.reshape(n * c, h * w)
    return out.reshape(n, c, oh, ow), {"indices": indices, "x_shape": x.shape}
    # ===== END SOLUTION =====


def max_unpool2d_backward(dout, cache):
    """Gradient of max unpooling, a gather: dout (N, C, OH, OW) -> dx (N, C, H, W).

    Unpooling copied x[n, c, p, q] to one pixel, so its gradient is the
    gradient at that pixel:

        dx[n, c, p, q] = dout[n, c].ravel()[indices[n, c, p, q]]

    Hint: ``xp.take_along_axis`` on dout.reshape(N, C, OH*OW).
    """
    # ===== START SOLUTION: the gather of dout from the saved indices =====
    xp = array_module(dout)
    n, c = dout.shape[:2]
    flat = cache["indices"].reshape(n, c, -1)
    return xp.take_along_axis(dout.reshape(n, c, -1), flat, axis=2).reshape(cache["x_shape"])
    # ===== END SOLUTION =====
