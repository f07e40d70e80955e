"""Branches over one input: what the pyramid heads (PSPNet, DeepLab) are built from.

``Parallel`` is the container the heads are built from: several branches
read the *same* input and their outputs are concatenated along the channels::

    x ─┬ branch_1 ─┐
       ├ branch_2 ─┼ cat ─ out
       └ branch_k ─┘

Its backward is micrograd's lesson in one place: x was used k times, so the
k gradients that come back are added up, never overwritten.

The branches these heads use besides ``nn.Sequential``: ``Identity`` (keep
the features themselves) and ``AdaptiveAvgPool2d`` (summarise the map on a
bins x bins grid; it wraps its functional pair like every layer in
``layers.py``).
"""
from __future__ import annotations

from .. import functional as F
from ..functional.shapes import positive_pair
from .base import Layer


class AdaptiveAvgPool2d(Layer):
    """Adaptive average pooling to ``output_size`` bins (int or (OH, OW)), PyTorch's bin rule."""

    def __init__(self, output_size):
        super().__init__()
        positive_pair(output_size, "output_size")  # fail when the model is built, not at its first forward
        self.output_size = output_size

    def forward(self, x):
        out, self.cache = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return out

    def backward(self, dout):
        self._check_forward_done()
        return F.adaptive_avg_pool2d_backward(dout, self.cache)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Identity(Layer):
    """out = x; dx = dout. The "keep the features themselves" branch of PSPNet's pyramid."""

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


class Parallel(Layer):
    """Named branches on one input, outputs concatenated along channels: ``Parallel(a=..., b=...)``.

    forward: x (N, C, H, W) -> concat([branch(x) for each branch], axis=1);
    every branch must keep H and W. backward: dout is split back into the
    branches' channel blocks, each branch returns a dx, and the dx's are summed.
    """

    def __init__(self, **branches):
        super().__init__()
        if not branches:
            raise ValueError("Parallel needs at least one branch")
        self.branches = dict(branches)

    def children(self) -> dict:
        return dict(self.branches)

    def forward(self, x):
        out, self.cache = F.concat_forward([branch(x) for branch in self.branches.values()])
        return out

    @staticmethod
    def _branch_sum(dx, d_branch):
        """x fed every branch: its gradient is the sum over branches, never the last one alone."""
        return d_branch if dx is None else dx + d_branch

    def backward(self, dout):
        self._check_forward_done()
        dx = None
        for branch, d in zip(self.branches.values(), F.concat_backward(dout, self.cache)):
            dx = self._branch_sum(dx, branch.backward(d))
        return dx

    def extra_repr(self):
        return ", ".join(self.branches)
