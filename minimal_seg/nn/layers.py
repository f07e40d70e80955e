"""The layers of the course, each a thin wrapper around its functional pair.

Shapes are NCHW throughout; weights are laid out as in PyTorch:
Conv2d w (C_out, C_in, KH, KW), ConvTranspose2d w (C_in, C_out, KH, KW).
"""
from __future__ import annotations

import numpy

from .. import functional as F
from ..backend import get_xp, to_numpy
from ..functional.shapes import positive_pair
from .base import Layer
from .init import kaiming_normal


class Conv2d(Layer):
    """2-D convolution. Kaiming-normal weights (fan_in = C_in*KH*KW), zero bias."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, rng=None, dtype=numpy.float32):
        super().__init__()
        kh, kw = positive_pair(kernel_size, "kernel_size")
        self.options = dict(stride=stride, padding=padding, dilation=dilation)
        self.add_param("w", kaiming_normal((out_channels, in_channels, kh, kw), in_channels * kh * kw, rng, dtype))
        if bias:
            self.add_param("b", numpy.zeros(out_channels, dtype=dtype))

    def forward(self, x):
        out, self.cache = F.conv2d_forward(x, self.params["w"], self.params.get("b"), **self.options)
        return out

    def backward(self, dout):
        self._check_forward_done()
        dx, dw, db = F.conv2d_backward(dout, self.cache)
        self._accumulate("w", dw)
        self._accumulate("b", db)
        return dx

    def extra_repr(self):
        oc, c, kh, kw = self.params["w"].shape
        return f"{c}, {oc}, kernel_size={(kh, kw)}, " + ", ".join(f"{k}={v}" for k, v in self.options.items())


class ConvTranspose2d(Layer):
    """Transposed convolution (out = C^T x). ``init="bilinear"`` starts as bilinear upsampling.

    Kaiming init uses the number of inputs one output pixel sums over,
    fan_in = C_in*KH*KW / (SH*SW). The bilinear init (FCN paper) puts
    ``bilinear_kernel(kernel_size)`` on the channel diagonal w[c, c] and zeros
    elsewhere, so with kernel 2s - s%2, stride s, padding s//2 it upsamples
    every channel by s bilinearly (away from a border of s//2 pixels).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 dilation=1, bias=True, init="kaiming", rng=None, dtype=numpy.float32):
        super().__init__()
        kh, kw = positive_pair(kernel_size, "kernel_size")
        sh, sw = positive_pair(stride, "stride")
        self.options = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
        shape = (in_channels, out_channels, kh, kw)
        if init == "kaiming":
            w = kaiming_normal(shape, max(1, in_channels * kh * kw // (sh * sw)), rng, dtype)
        elif init == "bilinear":
            w = numpy.zeros(shape, dtype=dtype)
            kernel = to_numpy(F.bilinear_kernel((kh, kw), dtype=dtype))
            for c in range(min(in_channels, out_channels)):
                w[c, c] = kernel
        else:
            raise ValueError(f"init must be 'kaiming' or 'bilinear', got {init!r}")
        self.add_param("w", w)
        if bias:
            self.add_param("b", numpy.zeros(out_channels, dtype=dtype))

    def forward(self, x):
        out, self.cache = F.conv_transpose2d_forward(x, self.params["w"], self.params.get("b"), **self.options)
        return out

    def backward(self, dout):
        self._check_forward_done()
        dx, dw, db = F.conv_transpose2d_backward(dout, self.cache)
        self._accumulate("w", dw)
        self._accumulate("b", db)
        return dx

    def extra_repr(self):
        c, oc, kh, kw = self.params["w"].shape
        return f"{c}, {oc}, kernel_size={(kh, kw)}, " + ", ".join(f"{k}={v}" for k, v in self.options.items())


class MaxPool2d(Layer):
    """Max pooling; keeps the argmax ``indices`` and ``input_size`` of the last forward for a MaxUnpool2d."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.options = dict(kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x):
        out, self.cache = F.max_pool2d_forward(x, **self.options)
        self.input_size = tuple(x.shape[2:])
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.max_pool2d_backward(dout, self.cache)

    @property
    def indices(self):
        """Flat h*W + w argmax positions of the last forward, shape of its output."""
        self._check_forward_done()
        return self.cache.indices

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self.options.items())


class MaxUnpool2d(Layer):
    """Max unpooling with saved indices; ``pool=`` ties it to a MaxPool2d (SegNet's decoder)."""

    def __init__(self, kernel_size, stride=None, padding=0, pool: MaxPool2d | None = None):
        super().__init__()
        self.options = dict(kernel_size=kernel_size, stride=stride, padding=padding)
        self.pool = pool

    def forward(self, x, indices=None, output_size=None):
        if indices is None:
            if self.pool is None:
                raise ValueError("MaxUnpool2d needs indices: pass them, or build it with pool=<MaxPool2d>")
            indices = self.pool.indices
            output_size = output_size or self.pool.input_size
        out, self.cache = F.max_unpool2d_forward(x, indices, output_size=output_size, **self.options)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.max_unpool2d_backward(dout, self.cache)


class UnpoolNearest(Layer):
    """Nearest-neighbour unpooling: every value copied into a scale x scale block."""

    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        out, self.cache = F.unpool_nearest_forward(x, self.scale)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.unpool_nearest_backward(dout, self.cache)


class UnpoolBedOfNails(Layer):
    """Bed-of-nails unpooling: the value in the top-left of each block, zeros elsewhere."""

    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        out, self.cache = F.unpool_bed_of_nails_forward(x, self.scale)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.unpool_bed_of_nails_backward(dout, self.cache)


class UpsampleBilinear(Layer):
    """Bilinear resize (align_corners=False) to ``size`` or by ``scale``."""

    def __init__(self, size=None, scale=None):
        super().__init__()
        self.size, self.scale = size, scale

    def forward(self, x, size=None):
        out, self.cache = F.upsample_bilinear_forward(x, size=size or self.size,
                                                      scale=None if size else self.scale)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.upsample_bilinear_backward(dout, self.cache)


class ReLU(Layer):
    """max(0, x)."""

    def forward(self, x):
        out, self.cache = F.relu_forward(x)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.relu_backward(dout, self.cache)


class Sigmoid(Layer):
    """1 / (1 + exp(-x))."""

    def forward(self, x):
        out, self.cache = F.sigmoid_forward(x)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.sigmoid_backward(dout, self.cache)


class BatchNorm2d(Layer):
    """Batch normalisation; gamma = 1, beta = 0; running_mean = 0, running_var = 1 as buffers."""

    def __init__(self, num_features, momentum=0.1, eps=1e-5, dtype=numpy.float32):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.add_param("gamma", numpy.ones(num_features, dtype=dtype))
        self.add_param("beta", numpy.zeros(num_features, dtype=dtype))
        xp = get_xp()
        self.buffers["running_mean"] = xp.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = xp.ones(num_features, dtype=dtype)

    def forward(self, x):
        out, self.cache = F.batch_norm2d_forward(
            x, self.params["gamma"], self.params["beta"], self.buffers["running_mean"],
            self.buffers["running_var"], self.training, self.momentum, self.eps)
        return out

    def backward(self, dout):
        self._check_forward_done()
        dx, dgamma, dbeta = F.batch_norm2d_backward(dout, self.cache)
        self._accumulate("gamma", dgamma)
        self._accumulate("beta", dbeta)
        return dx

    def extra_repr(self):
        return f"{self.params['gamma'].shape[0]}, momentum={self.momentum}, eps={self.eps}"
