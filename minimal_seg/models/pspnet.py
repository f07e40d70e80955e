"""PSPNet (Zhao et al., 2017), small: pyramid pooling on top of an encoder.

    x ─ encoder ─ f (1/8) ─ pyramid pooling ─ head (1x1) ─ bilinear to x ─ logits

**Pyramid pooling** summarises the feature map f (C channels) at several
scales and hands every pixel all of them next to its own features::

    f ─┬─────────────────────────────────────────────────────┐   the features themselves
       ├ adaptive avg pool 1x1 ─ 1x1 conv ─ bilinear to f ───┤   (whole image)
       ├ adaptive avg pool 2x2 ─ 1x1 conv ─ bilinear to f ───┼ cat ─ project (3x3) ─ out
       ├ adaptive avg pool 3x3 ─ 1x1 conv ─ bilinear to f ───┤
       └ adaptive avg pool 6x6 ─ 1x1 conv ─ bilinear to f ───┘   (finest sub-regions)

Each pooled branch reduces the channels to C / len(bins) (with ReLU; see
``blocks.PoolingBranch`` for why no BatchNorm), so the concatenation has 2C
channels; ``project`` is 3x3 conv -> BN -> ReLU. Adaptive pooling takes the
bins from PyTorch's rule, so 6 bins work on a 4x4 map too (they overlap).

The encoder is ``blocks.Encoder`` (VGG-like, max pooling between levels);
PSPNet reads only its deepest output. f is read by five branches, so in
backward their five input gradients are summed (``nn.Parallel``). Input
sizes that do not divide by 2**depth are zero-padded at the bottom/right
and the logits cropped back (``Model.forward``).
"""
from __future__ import annotations

from .. import nn
from ..nn.init import as_generator
from .base import Model
from .blocks import Encoder, PoolingBranch, SpatialPyramid, conv_bn_relu, level_widths, positive_ints


class PyramidPooling(SpatialPyramid):
    """PyramidPooling(c_in, c_out, bins, rng, batch_norm=True): x (N, c_in, H, W) -> (N, c_out, H, W).

    Branches ``features`` (identity) and ``bins{b}`` for each b in ``bins``
    (adaptive average pool to b x b, 1x1 conv to c_in // len(bins) channels,
    ReLU, bilinear back to H x W); concatenated, then ``project``: 3x3 conv
    -> BN -> ReLU.
    """

    def __init__(self, c_in, c_out, bins, rng, batch_norm=True):
        c_branch = max(1, c_in // len(bins))
        branches = {"features": nn.Identity()}
        for b in bins:
            branches[f"bins{b}"] = PoolingBranch(c_in, c_branch, b, rng, bias=not batch_norm)
        width = c_in + len(bins) * c_branch
        super().__init__(branches, conv_bn_relu(width, c_out, rng, batch_norm, kernel_size=3))


class PSPNet(Model):
    """PSPNet(in_channels, num_classes, base_channels=16, depth=3, bins=(1, 2, 3, 6), batch_norm=True, seed=0).

    forward: x (N, in_channels, H, W) -> logits (N, num_classes, H, W).
    """

    name = "pspnet"

    def __init__(self, in_channels=1, num_classes=4, base_channels=16, depth=3, bins=(1, 2, 3, 6),
                 batch_norm=True, seed=0):
        bins = positive_ints(bins, "bins")
        super().__init__(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                         depth=depth, bins=bins, batch_norm=batch_norm, seed=seed)
        widths, rng = level_widths(base_channels, depth), as_generator(seed)
        self.depth, self.output_stride = depth, 2 ** depth
        self.encoder = Encoder(in_channels, widths, rng, batch_norm)
        self.pyramid = PyramidPooling(widths[depth], widths[depth - 1], bins, rng, batch_norm)
        self.head = nn.Conv2d(widths[depth - 1], num_classes, 1, rng=rng)
        self.up_out = nn.UpsampleBilinear()

    def children(self):
        return {"encoder": self.encoder, "pyramid": self.pyramid, "head": self.head, "up_out": self.up_out}

    def forward_body(self, x):
        f = self.encoder(x)
        return self.up_out(self.head(self.pyramid(f[self.depth])), size=tuple(x.shape[2:]))

    def backward_body(self, dout):
        d = self.up_out.backward(dout)
        d_f = [None] * self.depth + [self.pyramid.backward(self.head.backward(d))]  # only f[depth] was read
        return self.encoder.backward(d_f)
