"""U-Net (Ronneberger et al., 2015), small: an encoder-decoder with concatenation skips.

    x ─ enc0 ─────────────────────────────── cat ─ dec0 ─ head ─ logits
          └ pool ─ enc1 ───────────── cat ─ dec1 ┘ up0
                      └ pool ─ enc2 ─ cat ─ dec2 ┘ up1
                                 └ pool ─ bottleneck ┘ up2

Level l has base_channels * 2**l channels; every ``enc``/``dec`` is two
3x3 conv -> BN -> ReLU. ``up`` doubles the size: a 2x2 transposed conv with
stride 2 (``"transpose"``), or nearest / bilinear upsampling followed by a
1x1 conv that halves the channels. ``skips=False`` gives the plain
hourglass (encoder-decoder without skips), for the lecture's comparison.
Input sizes that do not divide by 2**depth are zero-padded at the
bottom/right and the logits are cropped back (``Model.forward``).
"""
from __future__ import annotations

from .. import functional as F
from .. import nn
from ..nn.init import as_generator
from .base import Model
from .blocks import double_conv, level_widths

UP_MODES = ("transpose", "nearest", "bilinear")


def _up(c_in, c_out, mode, rng):
    if mode == "transpose":
        return nn.ConvTranspose2d(c_in, c_out, 2, stride=2, rng=rng)
    upsample = nn.UnpoolNearest(2) if mode == "nearest" else nn.UpsampleBilinear(scale=2)
    return nn.Sequential(upsample, nn.Conv2d(c_in, c_out, 1, rng=rng))


class UNet(Model):
    """UNet(in_channels, num_classes, base_channels=16, depth=3, up="transpose", batch_norm=True, skips=True, seed=0).

    forward: x (N, in_channels, H, W) -> logits (N, num_classes, H, W).
    """

    name = "unet"

    def __init__(self, in_channels=1, num_classes=4, base_channels=16, depth=3, up="transpose",
                 batch_norm=True, skips=True, seed=0):
        super().__init__(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                         depth=depth, up=up, batch_norm=batch_norm, skips=skips, seed=seed)
        if up not in UP_MODES:
            raise ValueError(f"up must be one of {UP_MODES}, got {up!r}")
        widths, rng = level_widths(base_channels, depth), as_generator(seed)
        self.skips, self.depth, self.output_stride = skips, depth, 2 ** depth
        self.enc = [double_conv(c_in, c, rng, batch_norm) for c_in, c in zip([in_channels] + widths, widths[:depth])]
        self.pools = [nn.MaxPool2d(2) for _ in range(depth)]
        self.bottleneck = double_conv(widths[depth - 1], widths[depth], rng, batch_norm)
        self.ups = [_up(widths[level + 1], widths[level], up, rng) for level in range(depth)]
        self.dec = [double_conv(widths[level] * (2 if skips else 1), widths[level], rng, batch_norm)
                    for level in range(depth)]
        self.head = nn.Conv2d(base_channels, num_classes, 1, rng=rng)

    def children(self):
        named = {}
        for level in range(self.depth):
            named[f"enc{level}"] = self.enc[level]
            named[f"pool{level}"] = self.pools[level]
        named["bottleneck"] = self.bottleneck
        for level in reversed(range(self.depth)):
            named[f"up{level}"] = self.ups[level]
            named[f"dec{level}"] = self.dec[level]
        named["head"] = self.head
        return named

    def forward_body(self, x):
        features, self._concat = [], {}
        for enc, pool in zip(self.enc, self.pools):
            x = enc(x)
            features.append(x)  # kept for the skip connection
            x = pool(x)
        x = self.bottleneck(x)
        for level in reversed(range(self.depth)):
            x = self.ups[level](x)
            if self.skips:
                x, self._concat[level] = F.concat_forward([features[level], x])
            x = self.dec[level](x)
        return self.head(x)

    @staticmethod
    def _skip_sum(d_pool, d_skip):
        """The encoder output fed two paths (pool and skip): its gradient is the sum, never one of them."""
        return d_pool + d_skip

    def backward_body(self, dout):
        d = self.head.backward(dout)
        d_features = {}
        for level in range(self.depth):  # the decoder ran from the bottom level up: undo it top-down
            d = self.dec[level].backward(d)
            if self.skips:
                d_features[level], d = F.concat_backward(d, self._concat[level])
            d = self.ups[level].backward(d)
        d = self.bottleneck.backward(d)
        for level in reversed(range(self.depth)):
            d = self.pools[level].backward(d)
            if self.skips:
                d = self._skip_sum(d, d_features[level])
            d = self.enc[level].backward(d)
        return d
