"""Fully connected layers: ``Linear`` (out = x @ w.T + b) and ``Flatten`` ((N, C, H, W) -> (N, C*H*W)).

Weights are laid out as in PyTorch: Linear w (out_features, in_features).
A classifier ends with them; ``minimal_seg.classical.sliding_window`` shows
how they turn into convolutions.
"""
from __future__ import annotations

import numpy

from .. import functional as F
from .base import Layer
from .init import kaiming_normal


class Linear(Layer):
    """Fully connected layer. Kaiming-normal weights (fan_in = in_features), zero bias."""

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=numpy.float32):
        super().__init__()
        self.add_param("w", kaiming_normal((out_features, in_features), in_features, rng, dtype))
        if bias:
            self.add_param("b", numpy.zeros(out_features, dtype=dtype))

    def forward(self, x):
        out, self.cache = F.linear_forward(x, self.params["w"], self.params.get("b"))
        return out

    def backward(self, dout):
        self._check_forward_done()
        dx, dw, db = F.linear_backward(dout, self.cache)
        self._accumulate("w", dw)
        self._accumulate("b", db)
        return dx

    def extra_repr(self):
        out_features, in_features = self.params["w"].shape
        return f"{in_features}, {out_features}, bias={'b' in self.params}"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), row-major; backward reshapes the gradient back."""

    def forward(self, x):
        out, self.cache = F.flatten_forward(x)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.flatten_backward(dout, self.cache)
