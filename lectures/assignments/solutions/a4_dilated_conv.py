"""Assignment 4: dilated (atrous) convolution and the receptive field.

A dilated convolution with dilation D reads its K x K kernel taps D pixels
apart: 3x3 weights cover a 5x5 patch at D = 2 (the lecture's picture), 7x7
at D = 3. It is an ordinary convolution with a sparse, bigger kernel, the
weights spread out with D - 1 zeros between them; computed by im2col it
costs no more than the 3x3 one. Stacking dilations 1, 2, 3 grows the
receptive field fast without pooling away resolution (DeepLab, ASPP).

Implement, top to bottom:

    dilate_kernel             the equivalent sparse kernel
    dilated_conv2d_forward    by im2col, with the kernel offsets D pixels apart
    receptive_field           the formula, for a stack of layers
    measure_receptive_field   the same number, measured with a backward pass

Notation: x (N, C, H, W), w (OC, C, KH, KW), b (OC,); stride 1; P zero
padding; D dilation (1 = none). The dilated kernel spans D*(K-1) + 1 pixels::

    OH = H + 2P - D*(KH - 1),       OW = W + 2P - D*(KW - 1)

A layer of a stack is a tuple (kernel, stride, dilation) along one axis;
a 2x2 max pool with stride 2 counts as (2, 2, 1).

Use NumPy through ``xp = array_module(x)``; measure_receptive_field builds
its layers as ``nn.Conv2d`` (the backward pass of Conv2d is given: the
receptive field is a property of the layer shapes, so any correct
convolution measures it). Nothing else from ``minimal_seg``, and nn.Conv2d
nowhere but in measure_receptive_field: the autograder refuses a file that
breaks this rule.
Check your work with ``python -m minimal_seg check a4 --impl a4_dilated_conv.py``.
"""
from __future__ import annotations

import numpy

from minimal_seg import nn
from minimal_seg.backend import array_module


def dilate_kernel(w, dilation):
    """The sparse kernel of a dilated convolution: (OC, C, KH, KW) -> (OC, C, D*(KH-1)+1, D*(KW-1)+1).

        w_big[o, c, i*D, j*D] = w[o, c, i, j],      every other entry 0

    so conv(x, w, dilation=D) == conv(x, dilate_kernel(w, D), dilation=1).
    The lecture's 3x3 kernel at D = 2 becomes 5x5 with zero rows and columns between the taps.
    """
    # ===== START SOLUTION: the sparse kernel, its taps D pixels apart =====
    xp = array_module(w)
    oc, c, kh, kw = w.shape
    big = xp.zeros((oc, c, dilation * (kh - 1) + 1, dilation * (kw - 1) + 1), dtype=w.dtype)
    big[:, :, ::dilation, ::dilation] = w
    return big
    # ===== END SOLUTION =====


def dilated_conv2d_forward(x, w, b=None, padding=0, dilation=1):
    """Dilated convolution, stride 1, by im2col with the kernel offsets D pixels apart.

    x (N, C, H, W), w (OC, C, KH, KW), b (OC,) or None -> out (N, OC, OH, OW),
    OH = H + 2P - D*(KH - 1), OW = W + 2P - D*(KW - 1):

        out[n, o, p, q] = b[o] + sum_{c,i,j} w[o, c, i, j] * xpad[n, c, p + i*D, q + j*D]

    With cols[n, c*KH*KW + i*KW + j, p*OW + q] = xpad[n, c, p + i*D, q + j*D]
    (N, C*KH*KW, OH*OW), out[n] = w.reshape(OC, -1) @ cols[n] (+ b[:, None]).
    For kernel offset (i, j) the pixels all windows read are one slice:
    xpad[:, :, i*D : i*D + OH, j*D : j*D + OW].

    Returns (out, cache), cache = {"x_shape": x.shape, "w": w, "cols": cols,
    "padding": P, "dilation": D} (what a backward pass would need; it is
    a1's backward with the offsets i*D, j*D).
    """
    # ===== START SOLUTION: im2col with dilated offsets, then one product =====
    xp = array_module(x)
    oc, c, kh, kw = w.shape
    n, _, h, width = x.shape
    d, p = dilation, padding
    oh, ow = h + 2 * p - d * (kh - 1), width + 2 * p - d * (kw - 1)
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    taps = [xpad[:, :, i * d:i * d + oh, j * d:j * d + ow] for i in range(kh) for j in range(kw)]
    cols = xp.stack(taps, axis=2).reshape(n, c * kh * kw, oh * ow)  # (c, i, j) in row-major order
    out = (w.reshape(oc, -1) @ cols).reshape(n, oc, oh, ow)
    if b is not None:
        out = out + b.reshape(1, oc, 1, 1)
    return out, {"x_shape": x.shape, "w": w, "cols": cols, "padding": p, "dilation": d}
    # ===== END SOLUTION =====


def receptive_field(layers):
    """Receptive field (pixels along one axis) of one output pixel of a stack of layers.

    layers: list of (kernel K, stride S, dilation D), first layer first.
    Layer l widens the field by D_l*(K_l - 1) of its own input pixels, and one
    of those is J_l input pixels of the network apart, where J_l is the product
    of the strides before it (the "jump"):

        r = 1 + sum_l D_l*(K_l - 1) * J_l,        J_l = S_1 * S_2 * ... * S_{l-1}  (J_1 = 1)

    Examples from the lecture: [(3, 1, 2)] -> 5;  [(3, 1, 1), (3, 1, 2), (3, 1, 3)] -> 13.
    """
    # ===== START SOLUTION: r = 1 + sum of D*(K-1) times the jump =====
    field, jump = 1, 1
    for kernel, stride, dilation in layers:
        field += dilation * (kernel - 1) * jump
        jump *= stride
    return field
    # ===== END SOLUTION =====


def measure_receptive_field(layers, size=64):
    """Measure the receptive field with a backward pass: which input pixels can move one output pixel?

    layers  list of (kernel, stride, dilation), as for receptive_field
    size    side of the square test image; the field of the centre pixel must fit in it
    returns (r, footprint): r (int) the measured field along h, and footprint = dx[0, 0]
            (size, size), the gradient of the centre output pixel w.r.t. the input

    Recipe:
    1. one ``nn.Conv2d(1, 1, K, stride=S, dilation=D, bias=False, dtype=numpy.float64)``
       per layer, with every weight set to 1 (``conv.params["w"][...] = 1``), so no
       tap can cancel another;
    2. forward a zeros image (1, 1, size, size) through them (the stack is linear,
       so the gradient does not depend on the image). Make it, and dout, with
       ``xp = array_module(convs[0].params["w"])``: the layers live on the current
       backend (NumPy, or CuPy on a GPU), and the image must live there too;
    3. dout = zeros of the output's shape with a 1 at the centre pixel (OH // 2, OW // 2);
       backward through the layers in reverse order;
    4. r = last - first + 1 over the rows of dx that hold a nonzero entry.

    With dilations the footprint has holes (the "gridding" of stacked dilated
    convs), but its extent is still r.
    """
    # ===== START SOLUTION: the measurement: one-hot dout at the centre, backward, the extent =====
    convs = [nn.Conv2d(1, 1, k, stride=s, dilation=d, bias=False, dtype=numpy.float64) for k, s, d in layers]
    for conv in convs:
        conv.params["w"][...] = 1
    xp = array_module(convs[0].params["w"])
    out = xp.zeros((1, 1, size, size))
    for conv in convs:
        out = conv.forward(out)
    grad = xp.zeros_like(out)
    grad[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1
    for conv in reversed(convs):
        grad = conv.backward(grad)
    footprint = grad[0, 0]
    rows = xp.flatnonzero(xp.abs(footprint).sum(axis=1))
    return int(rows[-1] - rows[0] + 1), footprint
    # ===== END SOLUTION =====
