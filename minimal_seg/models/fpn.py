"""Feature Pyramid Network (Lin et al., 2017), small, with a semantic head (Kirillov et al., 2019).

Bottom-up, lateral, top-down, smooth (depth 3)::

    bottom-up          lateral    top-down (nearest 2x)    smooth     semantic head
    x ─ stage0 ─ f0 ─── lat0 ─── + ─ m0 ──────────────── out0 ─ p0 ─ conv ──────────────┐
         pool                    ↑ up                                                  │
        stage1 ─ f1 ─── lat1 ─── + ─ m1 ──────────────── out1 ─ p1 ─ conv ─ bilinear 2x ─ + ─ 1x1 ─ logits
         pool                    ↑ up                                                  │
        stage2 ─ f2 ─── lat2 ─── + ─ m2 ──────────────── out2 ─ p2 ─ conv ─ bilinear 4x ─┤
         pool                    ↑ up                                                  │
        stage3 ─ f3 ─── lat3 ─────── m3 ──────────────── out3 ─ p3 ─ conv ─ bilinear 8x ─┘

* **bottom-up**: ``blocks.Encoder`` (two 3x3 conv -> BN -> ReLU per level,
  max pooling between levels): f_l has base_channels * 2**l channels at
  1/2**l of the input.
* **lateral**: a 1x1 conv brings every f_l to the same ``pyramid_channels`` P.
* **top-down**: from the deepest level up, m_l = lat_l(f_l) + up(m_{l+1}),
  with up = nearest-neighbour upsampling by 2; deep, semantic features reach
  every resolution.
* **smooth**: a 3x3 conv on each m_l gives the pyramid p_l (P channels each).
  ``FPNBackbone`` returns [p_0, ..., p_depth]; the two-stage instance
  model (``mask_rcnn_lite``) reads its RoIs from it.
* **semantic head**: each p_l goes through 3x3 conv -> BN -> ReLU, is resized
  to the input size by bilinear upsampling (2**l), the maps are summed and a
  1x1 conv scores the classes.

Backward runs it in reverse. A sum hands its gradient unchanged to every
term; m_l was read twice (by out_l and by the upsampling into level l - 1),
so its gradient is the sum of both; f_l was read by lat_l and by the next
pool (summed in ``Encoder.backward``). Input sizes that do not divide by
2**depth are zero-padded at the bottom/right and the logits cropped back.
"""
from __future__ import annotations

from .. import nn
from ..nn.init import as_generator
from .base import Model
from .blocks import Encoder, conv_bn_relu, level_widths, sum_present


class FPNBackbone(nn.Layer):
    """The pyramid alone: FPNBackbone(in_channels, widths, pyramid_channels, rng, batch_norm=True).

    ``forward(x)`` -> [p_0 .. p_depth], p_l (N, P, H / 2**l, W / 2**l), for x
    with H, W divisible by 2**depth (depth = len(widths) - 1). ``backward``
    takes one gradient per level (None where nothing read it) and returns dx.
    Two models read it: ``FPN`` (semantic head) and ``MaskRCNNLite`` (RoIs).
    """

    def __init__(self, in_channels, widths, pyramid_channels, rng, batch_norm=True):
        super().__init__()
        self.depth, p = len(widths) - 1, pyramid_channels
        self.encoder = Encoder(in_channels, widths, rng, batch_norm)
        self.lateral = [nn.Conv2d(c, p, 1, rng=rng) for c in widths]
        self.top_down = [nn.UnpoolNearest(2) for _ in range(self.depth)]  # top_down[l]: m_{l+1} -> level l
        self.smooth = [nn.Conv2d(p, p, 3, padding=1, rng=rng) for _ in widths]

    def children(self):
        named = {"encoder": self.encoder}
        for level in reversed(range(self.depth + 1)):
            named[f"lateral{level}"] = self.lateral[level]
            if level < self.depth:
                named[f"top_down{level}"] = self.top_down[level]
            named[f"smooth{level}"] = self.smooth[level]
        return named

    def forward(self, x):
        f = self.encoder(x)
        m = [None] * (self.depth + 1)
        m[self.depth] = self.lateral[self.depth](f[self.depth])
        for level in reversed(range(self.depth)):
            m[level] = self.lateral[level](f[level]) + self.top_down[level](m[level + 1])
        return [smooth(m_l) for smooth, m_l in zip(self.smooth, m)]

    def backward(self, d_p):
        d_f = [None] * (self.depth + 1)
        d_up = None  # what m_{l-1}'s upsampling sent back to m_l
        for level in range(self.depth + 1):  # top-down ran deepest first: undo it from level 0
            d_m = self.smooth[level].backward(d_p[level]) if d_p[level] is not None else None
            d_m = self._sum_of_two_readers(d_m, d_up)
            if d_m is None:  # nothing read this level or any finer one
                continue
            d_f[level] = self.lateral[level].backward(d_m)
            if level < self.depth:
                d_up = self.top_down[level].backward(d_m)  # d(a + up(b)) / db = up^T dout
        return self.encoder.backward(d_f)

    @staticmethod
    def _sum_of_two_readers(d_smooth, d_up):
        """m_l fed smooth_l and the upsampling into level l - 1: add the gradients, never overwrite."""
        return sum_present(d_smooth, d_up)


class FPN(Model):
    """FPN(in_channels, num_classes, base_channels=16, depth=3, pyramid_channels=None, batch_norm=True, seed=0).

    forward: x (N, in_channels, H, W) -> logits (N, num_classes, H, W).
    ``backbone`` is the ``FPNBackbone`` (P = ``pyramid_channels``, default
    2 * base_channels); ``semantic[l]`` and ``resize[l]`` bring p_l to the
    input size; ``head`` scores the classes.
    """

    name = "fpn"

    def __init__(self, in_channels=1, num_classes=4, base_channels=16, depth=3, pyramid_channels=None,
                 batch_norm=True, seed=0):
        pyramid_channels = int(pyramid_channels or 2 * base_channels)
        super().__init__(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                         depth=depth, pyramid_channels=pyramid_channels, batch_norm=batch_norm, seed=seed)
        widths, rng = level_widths(base_channels, depth), as_generator(seed)
        self.depth, self.output_stride, p = depth, 2 ** depth, pyramid_channels
        self.backbone = FPNBackbone(in_channels, widths, p, rng, batch_norm)
        self.semantic = [conv_bn_relu(p, p, rng, batch_norm) for _ in widths]
        self.resize = [nn.Identity()] + [nn.UpsampleBilinear(scale=2 ** level) for level in range(1, depth + 1)]
        self.head = nn.Conv2d(p, num_classes, 1, rng=rng)

    def children(self):
        named = {"backbone": self.backbone}
        for level in range(self.depth + 1):
            named[f"semantic{level}"] = self.semantic[level]
            named[f"resize{level}"] = self.resize[level]
        named["head"] = self.head
        return named

    def forward_body(self, x):
        """x with H, W divisible by 2**depth -> logits of the same size."""
        p = self.backbone(x)
        return self.head(sum(resize(semantic(p_l)) for semantic, resize, p_l in zip(self.semantic, self.resize, p)))

    def backward_body(self, dout):
        d_merged = self.head.backward(dout)
        # the sum hands d_merged to every level unchanged
        d_p = [semantic.backward(resize.backward(d_merged)) for semantic, resize in zip(self.semantic, self.resize)]
        return self.backbone.backward(d_p)
