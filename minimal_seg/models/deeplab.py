"""DeepLab (v3+ style, Chen et al., 2018), small: encoder -> ASPP -> decoder.

    x ─ encoder ─ f2 (1/4) ─ reduce (1x1) ─────────────────────┐
                └ f3 (1/8) ─ ASPP ─ bilinear to f2's size ─ cat ─ fuse (3x3) ─ head (1x1) ─ bilinear to x ─ logits

**ASPP** (atrous spatial pyramid pooling) looks at the deepest feature map
with several receptive fields at once, in parallel branches that all read
the same tensor::

    f ─┬ 1x1 conv ───────────────────────────────────┐
       ├ 3x3 conv, dilation 2 ───────────────────────┤
       ├ 3x3 conv, dilation 4 ───────────────────────┼ cat ─ project (1x1) ─ out
       ├ 3x3 conv, dilation 6 ───────────────────────┤
       └ global average pool ─ 1x1 conv ─ broadcast ─┘   (image-level feature)

A 3x3 convolution with dilation d spans 2d+1 pixels with 9 weights; the
paper's rates 6, 12, 18 are for 1/16-size maps of 512-pixel images, so the
defaults here (2, 4, 6) are scaled for the small inputs of the course. Even
so, a rate d uses all nine taps only on maps at least 2d+1 pixels wide: on the
4x4 map of a 32x32 input, rates 4 and 6 read only their centre tap and act as
1x1 convolutions (lecture notebook 07 measures this by backward). Each
conv is followed by BN -> ReLU (the image-level branch skips BN: see
``blocks.PoolingBranch``).

The encoder (``blocks.Encoder``) gives features at 1/2**l for l = 0..depth;
ASPP reads the deepest, the decoder also reads the one just above it (the
"low-level" feature, 1/4 of the input with the default depth 3, as in the
paper). In backward the gradient splits at ``cat``, the ASPP branches' input
gradients are summed (``nn.Parallel``), and the encoder sums what comes
back to its two outputs. Input sizes that do not divide by 2**depth are
zero-padded at the bottom/right and the logits cropped back (``Model.forward``).
"""
from __future__ import annotations

from .. import functional as F
from .. import nn
from ..nn.init import as_generator
from .base import Model
from .blocks import Encoder, PoolingBranch, SpatialPyramid, conv_bn_relu, level_widths, positive_ints


class ASPP(SpatialPyramid):
    """ASPP(c_in, c_out, rates, rng, batch_norm=True): x (N, c_in, H, W) -> (N, c_out, H, W).

    Branches ``conv1x1``, ``rate{d}`` for each d in ``rates`` (3x3, dilation
    d, padding d: same size) and ``image_pool``, each with c_out channels;
    concatenated, then ``project``: 1x1 conv -> BN -> ReLU.
    """

    def __init__(self, c_in, c_out, rates, rng, batch_norm=True):
        branches = {"conv1x1": conv_bn_relu(c_in, c_out, rng, batch_norm, kernel_size=1)}
        for rate in rates:
            branches[f"rate{rate}"] = conv_bn_relu(c_in, c_out, rng, batch_norm, kernel_size=3, dilation=rate)
        branches["image_pool"] = PoolingBranch(c_in, c_out, 1, rng, bias=not batch_norm)
        super().__init__(branches, conv_bn_relu(len(branches) * c_out, c_out, rng, batch_norm, kernel_size=1))


class DeepLab(Model):
    """DeepLab(in_channels, num_classes, base_channels=16, depth=3, rates=(2, 4, 6), batch_norm=True, seed=0).

    forward: x (N, in_channels, H, W) -> logits (N, num_classes, H, W).
    """

    name = "deeplab"

    def __init__(self, in_channels=1, num_classes=4, base_channels=16, depth=3, rates=(2, 4, 6),
                 batch_norm=True, seed=0):
        rates = positive_ints(rates, "rates")
        super().__init__(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                         depth=depth, rates=rates, batch_norm=batch_norm, seed=seed)
        widths, rng = level_widths(base_channels, depth), as_generator(seed)
        mid = widths[depth - 1]  # width of ASPP and the decoder: half the deepest features
        self.depth, self.output_stride = depth, 2 ** depth
        self.encoder = Encoder(in_channels, widths, rng, batch_norm)
        self.aspp = ASPP(widths[depth], mid, rates, rng, batch_norm)
        self.up_aspp = nn.UpsampleBilinear()
        self.reduce = conv_bn_relu(widths[depth - 1], base_channels, rng, batch_norm, kernel_size=1)
        self.fuse = conv_bn_relu(mid + base_channels, mid, rng, batch_norm, kernel_size=3)
        self.head = nn.Conv2d(mid, num_classes, 1, rng=rng)
        self.up_out = nn.UpsampleBilinear()

    def children(self):
        return {"encoder": self.encoder, "aspp": self.aspp, "up_aspp": self.up_aspp, "reduce": self.reduce,
                "fuse": self.fuse, "head": self.head, "up_out": self.up_out}

    def forward_body(self, x):
        f = self.encoder(x)
        low = self.reduce(f[self.depth - 1])
        high = self.up_aspp(self.aspp(f[self.depth]), size=tuple(low.shape[2:]))
        y, self._concat = F.concat_forward([high, low])
        return self.up_out(self.head(self.fuse(y)), size=tuple(x.shape[2:]))

    def backward_body(self, dout):
        d = self.up_out.backward(dout)
        d = self.fuse.backward(self.head.backward(d))
        d_high, d_low = F.concat_backward(d, self._concat)
        d_f = [None] * (self.depth + 1)
        d_f[self.depth] = self.aspp.backward(self.up_aspp.backward(d_high))
        d_f[self.depth - 1] = self.reduce.backward(d_low)  # f[depth-1] also fed a pool: the encoder adds both
        return self.encoder.backward(d_f)
