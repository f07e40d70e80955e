"""Assignment 1: convolution, forward and backward, by im2col.

A convolution slides a KH x KW window over the image. im2col copies every
window into one column of a matrix, and then the whole convolution is a
single matrix product. Its backward pass is two more matrix products and
col2im, the transpose of im2col.

Implement, top to bottom:

    im2col            unfold every window of x into a column
    col2im            fold columns back into an image, ADDING where windows overlap
    conv2d_forward    out[n] = W @ cols[n] + b
    conv2d_backward   db, dW = dout @ cols^T, dx = col2im(W^T @ dout)

Notation (as in minimal_seg.functional)::

    x    (N, C, H, W)       w  (OC, C, KH, KW)      b  (OC,)
    out  (N, OC, OH, OW)    S  stride, P zero padding (the same along h and w)

    OH = (H + 2P - KH) // S + 1,        OW = (W + 2P - KW) // S + 1

Use NumPy through ``xp = array_module(x)`` (then your code runs on CuPy
too), and nothing from ``minimal_seg.functional``: this file *is* the
convolution. The autograder reads your imports first and refuses a file
that uses the library's op, torch or the solutions. Check your work (a table of checks; exit code 1 if one fails)::

    python -m minimal_seg check a1 --impl a1_conv_im2col.py

or, in a notebook, ``from minimal_seg.assignments import check`` and
``check("a1", impl="a1_conv_im2col.py")``. Expect errors of ~1e-15 against
the reference and ~1e-9 in the gradient check.

The column layout here, one (C*KH*KW, OH*OW) matrix per image, is the
textbook one. The library's ``minimal_seg.functional.conv`` lays the whole
batch out as one (C*KH*KW, N*OH*OW) matrix so that forward and both backward
products are single GEMMs; once your version passes, switching to that
layout and timing both (``python -m minimal_seg bench`` shows how) is a good
extra exercise.
"""
from __future__ import annotations

from minimal_seg.backend import array_module


def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold every KH x KW window of x into one column.

    x            (N, C, H, W) float
    kernel_size  (KH, KW)
    stride S, padding P: ints, the same along h and w
    returns cols (N, C*KH*KW, OH*OW), with OH = (H + 2P - KH) // S + 1 (likewise OW) and

        cols[n, c*KH*KW + i*KW + j, p*OW + q] = xpad[n, c, p*S + i, q*S + j]

    where xpad is x with P zeros on every side: row (c, i, j) holds, for every
    window position (p, q), the pixel at kernel offset (i, j) of channel c.

    Hint: loop over the KH*KW kernel offsets, not over pixels. For one offset
    (i, j) the pixels that all the windows read form one strided slice,
    xpad[:, :, i : i + S*OH : S, j : j + S*OW : S] of shape (N, C, OH, OW).
    Fill an (N, C, KH, KW, OH, OW) array with them and reshape it.
    """
    # ===== START SOLUTION: im2col, one strided slice per kernel offset =====
    xp = array_module(x)
    kh, kw = kernel_size
    n, c, h, w = x.shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xpad[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return cols.reshape(n, c * kh * kw, oh * ow)
    # ===== END SOLUTION =====


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """Fold columns back into an image: the transpose (adjoint) of im2col.

    cols         (N, C*KH*KW, OH*OW), e.g. the gradient of im2col's output
    x_shape      (N, C, H, W), the shape of the image that im2col unfolded
    kernel_size  (KH, KW); stride S, padding P as in im2col
    returns dx   (N, C, H, W), with

        dxpad[n, c, p*S + i, q*S + j] += cols[n, c*KH*KW + i*KW + j, p*OW + q]
        dx = dxpad[:, :, P:P+H, P:P+W]            (cut the padding away)

    ADD, never assign: when windows overlap (S < K) one pixel was copied into
    several columns, and its gradient is the sum of theirs. It is the loop of
    im2col with the slice on the left of ``+=``. Adjoint means
    <im2col(x), y> == <x, col2im(y)> for all x, y: the checks test that.
    """
    # ===== START SOLUTION: col2im, the im2col loop with += =====
    xp = array_module(cols)
    kh, kw = kernel_size
    n, c, h, w = x_shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    dxpad = xp.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[:, :, i, j]
    return dxpad[:, :, padding:padding + h, padding:padding + w]
    # ===== END SOLUTION =====


def conv2d_forward(x, w, b, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in PyTorch) by im2col.

    x (N, C, H, W), w (OC, C, KH, KW), b (OC,) -> out (N, OC, OH, OW):

        out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p*S + i, q*S + j]

    that is, with cols = im2col(x) (N, C*KH*KW, OH*OW) and W = w.reshape(OC, C*KH*KW),

        out[n] = (W @ cols[n] + b[:, None]).reshape(OC, OH, OW)

    (``W @ cols`` multiplies every image of the batch at once).
    Returns (out, cache) with
    cache = {"x_shape": x.shape, "w": w, "cols": cols, "stride": S, "padding": P}:
    the backward needs cols for dW, w for dx, and the rest for col2im.
    """
    # ===== START SOLUTION: the forward pass, one matrix product =====
    oc, _, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    cols = im2col(x, (kh, kw), stride, padding)
    out = w.reshape(oc, -1) @ cols + b.reshape(oc, 1)
    cache = {"x_shape": x.shape, "w": w, "cols": cols, "stride": stride, "padding": padding}
    return out.reshape(n, oc, oh, ow), cache
    # ===== END SOLUTION =====


def conv2d_backward(dout, cache):
    """Gradients of conv2d_forward.

    dout (N, OC, OH, OW) -> dx (N, C, H, W), dw (OC, C, KH, KW), db (OC,)

    out[n] = W @ cols[n] + b is a matrix product, so with D[n] = dout[n].reshape(OC, OH*OW):

        db    = sum of dout over n, p, q
        dW    = sum_n D[n] @ cols[n].T         (OC, C*KH*KW)  -> reshape to w.shape
        dcols = W.T @ D[n]                     (N, C*KH*KW, OH*OW)
        dx    = col2im(dcols, x_shape, (KH, KW), S, P)

    Hint: ``xp.tensordot(D, cols, axes=([0, 2], [0, 2]))`` sums over the batch
    and the positions in one product.
    """
    # ===== START SOLUTION: the backward pass: db, dw, dx =====
    xp = array_module(dout)
    w, cols = cache["w"], cache["cols"]
    oc, _, kh, kw = w.shape
    d = dout.reshape(dout.shape[0], oc, -1)
    db = d.sum(axis=(0, 2))
    dw = xp.tensordot(d, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
    dcols = w.reshape(oc, -1).T @ d
    dx = col2im(dcols, cache["x_shape"], (kh, kw), cache["stride"], cache["padding"])
    return dx, dw, db
    # ===== END SOLUTION =====
