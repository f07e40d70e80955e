"""Assignment 2: the transposed convolution is multiplication by C^T.

A convolution is linear in its input, so it is a matrix: for one image,
``out.ravel() = C @ x.ravel()``. The lecture's 3x3 kernel on a 4x4 input
(stride 1, no padding) gives a 4x16 matrix C, one row per output pixel.
Multiplying by C^T (16x4) maps a 2x2 image back to 4x4: that is the
transposed convolution ("upconv"), the upsampling layer of FCN and U-Net.
C^T is not the inverse of C; it only has the right shape.

Implement, top to bottom:

    conv_matrix                 the matrix C of a convolution
    conv_transpose2d_forward    out = C^T x
    conv_transpose2d_backward   dx = C dout (a plain convolution!), dw, db

Notation::

    conv:             x (N, C, H, W), w (OC, C, KH, KW) -> (N, OC, OH, OW),
                      OH = (H + 2P - KH) // S + 1
    transposed conv:  x (N, C_in, H, W), w (C_in, C_out, KH, KW) -> (N, C_out, OH, OW),
                      OH = (H - 1)*S - 2P + KH + OP       (likewise OW)

OP, the output padding (0 <= OP < S), adds OP rows and columns at the
bottom and right. It exists because a stride-S conv maps several sizes
to one (5x5 and 6x6 both give 3x3 at S = 2, P = 1, K = 3), so its
transpose must be told which one to give back: the 2x2 -> 4x4 upconv of
the lecture (3x3 kernel, S = 2, P = 1) needs OP = 1.

The transposed conv's weight is laid out (C_in, C_out, KH, KW), as in
PyTorch: it is the weight of the convolution that maps C_out channels back
to C_in, and C is that convolution's matrix.

Use NumPy through ``xp = array_module(w)``, and nothing from
``minimal_seg.functional`` (the autograder refuses a file that imports
it, or torch). Check your work with
``python -m minimal_seg check a2 --impl a2_transposed_conv.py``.
"""
from __future__ import annotations

from minimal_seg.backend import array_module


def conv_matrix(w, input_size, stride=1, padding=0):
    """The matrix C of a convolution: conv2d(x)[n].ravel() == C @ x[n].ravel().

    w            (OC, C, KH, KW)
    input_size   (H, W); stride S and padding P: ints, the same along h and w
    returns C    (OC*OH*OW, C*H*W), OH = (H + 2P - KH) // S + 1 (likewise OW)

    Row (o, p, q) of C is output pixel out[o, p, q]; column (c, h, v) is input
    pixel x[c, h, v] (both in row-major order). The row holds the kernel at the
    pixels its window reads:

        C[(o, p, q), (c, h, v)] = w[o, c, i, j]   where h = p*S - P + i,  v = q*S - P + j

    and zeros elsewhere. Kernel taps that fall into the padding (h or v outside
    the image) read a zero, so they simply have no column.

    Hint: make C of shape (OC, OH, OW, C, H, W) and loop over p, q, i, j:
    ``C[:, p, q, :, h, v] = w[:, :, i, j]``; reshape at the end. The lecture's
    kernel on a 4x4 image must give the lecture's 4x16 matrix.
    """
    # ===== START SOLUTION: the matrix C, one kernel tap at a time =====
    xp = array_module(w)
    oc, c, kh, kw = w.shape
    height, width = input_size
    oh = (height + 2 * padding - kh) // stride + 1
    ow = (width + 2 * padding - kw) // stride + 1
    C = xp.zeros((oc, oh, ow, c, height, width), dtype=w.dtype)
    for p in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    h, v = p * stride - padding + i, q * stride - padding + j
                    if 0 <= h < height and 0 <= v < width:
                        C[:, p, q, :, h, v] = w[:, :, i, j]
    return C.reshape(oc * oh * ow, c * height * width)
    # ===== END SOLUTION =====


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution: out[n].ravel() = C^T @ x[n].ravel() + b.

    x (N, C_in, H, W), w (C_in, C_out, KH, KW), b (C_out,) or None, output_padding OP
    -> out (N, C_out, OH, OW), OH = (H - 1)*S - 2P + KH + OP, OW = (W - 1)*S - 2P + KW + OP

    C = conv_matrix(w, (OH, OW), S, P) is the matrix of the convolution that
    maps a C_out x OH x OW image back to C_in x H x W (for 0 <= OP < S the conv's
    size formula gives back exactly H and W), so C is (C_in*H*W, C_out*OH*OW)
    and C^T maps the other way. For the whole batch at once, in row-vector form:

        out.reshape(N, -1) = x.reshape(N, -1) @ C          (= C^T x for every image)

    then add b[co] to every pixel of channel co.
    Returns (out, cache), cache = {"x": x, "w": w, "C": C, "stride": S,
    "padding": P, "has_bias": b is not None}. Raise ValueError naming
    output_padding unless 0 <= OP < S.
    """
    # ===== START SOLUTION: out = C^T x =====
    if not 0 <= output_padding < stride:
        raise ValueError(f"output_padding must be in [0, stride) = [0, {stride}), got {output_padding}")
    c_in, c_out, kh, kw = w.shape
    n, _, h, width = x.shape
    oh = (h - 1) * stride - 2 * padding + kh + output_padding
    ow = (width - 1) * stride - 2 * padding + kw + output_padding
    C = conv_matrix(w, (oh, ow), stride, padding)
    out = (x.reshape(n, -1) @ C).reshape(n, c_out, oh, ow)
    if b is not None:
        out = out + b.reshape(1, c_out, 1, 1)
    cache = {"x": x, "w": w, "C": C, "stride": stride, "padding": padding, "has_bias": b is not None}
    return out, cache
    # ===== END SOLUTION =====


def conv_transpose2d_backward(dout, cache):
    """Gradients of conv_transpose2d_forward: dout (N, C_out, OH, OW) -> (dx, dw, db).

    dx (N, C_in, H, W): the forward is x -> C^T x, so dx = C @ dout for every
        image, i.e. dx.reshape(N, -1) = dout.reshape(N, -1) @ C.T. (C is a
        convolution: the backward of a transposed conv is a conv.)
    dw (C_in, C_out, KH, KW): input pixel x[n, ci, p, q] is spread by w[ci, co, i, j]
        onto out[n, co, p*S - P + i, q*S - P + j], so with doutpad = dout padded by P:

            dw[ci, co, i, j] = sum_{n, p, q} x[n, ci, p, q] * doutpad[n, co, p*S + i, q*S + j]

        one strided slice of doutpad per kernel offset (i, j), as in im2col (the
        OP extra rows and columns of dout are read by no input pixel).
    db (C_out,) or None (no bias): the sum of dout over n, h, w.
    """
    # ===== START SOLUTION: dx = C dout, dw by kernel offsets, db =====
    xp = array_module(dout)
    x, w, C = cache["x"], cache["w"], cache["C"]
    stride, padding = cache["stride"], cache["padding"]
    n, _, h, width = x.shape
    kh, kw = w.shape[2:]
    dx = (dout.reshape(n, -1) @ C.T).reshape(x.shape)
    doutpad = xp.pad(dout, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dw = xp.empty_like(w)
    for i in range(kh):
        for j in range(kw):
            window = doutpad[:, :, i:i + stride * h:stride, j:j + stride * width:stride]  # (N, C_out, H, W)
            dw[:, :, i, j] = xp.tensordot(x, window, axes=([0, 2, 3], [0, 2, 3]))
    db = dout.sum(axis=(0, 2, 3)) if cache["has_bias"] else None
    return dx, dw, db
    # ===== END SOLUTION =====
