"""SegNet (Badrinarayanan, Kendall, Cipolla, 2017), small: the decoder unpools with the encoder's indices.

    x ─ enc0                              dec0 ─ head ─ logits
         │                                  │
       pool0 ┄┄┄┄┄┄┄┄ indices ┄┄┄┄┄┄┄┄ unpool0
         │                                  │
       enc1                               dec1
         │                                  │
       pool1 ┄┄┄┄┄┄┄┄ indices ┄┄┄┄┄┄┄┄ unpool1
         │                                  │
       enc2                               dec2
         │                                  │
       pool2 ┄┄┄┄┄┄┄┄ indices ┄┄┄┄┄┄┄┄ unpool2
         └──────────────────────────────────┘

Every max pool remembers where each window's maximum was (flat h*W + w,
``MaxPool2d.indices``); its partner ``MaxUnpool2d(pool=...)`` puts each
decoder value back at exactly that position and zeros everywhere else, so
the decoder recovers *where* the strong responses were without storing the
feature maps themselves (U-Net sends whole feature maps across instead).
``enc`` is two 3x3 conv -> BN -> ReLU at base_channels * 2**l channels;
``dec`` is the same, ending with the channels of the level above.

The indices are data, not a function of the weights, so nothing is
differentiated through them. There is no skip to sum either: backward runs
back down the decoder (each unpool *gathers* the gradient at its saved
positions), then up the encoder (each pool *scatters* it to the same
positions). Input sizes that do not divide by 2**depth are zero-padded at
the bottom/right and the logits cropped back (``Model.forward``).
"""
from __future__ import annotations

from .. import nn
from ..nn.init import as_generator
from .base import Model
from .blocks import double_conv, level_widths


class SegNet(Model):
    """SegNet(in_channels, num_classes, base_channels=16, depth=3, batch_norm=True, seed=0).

    forward: x (N, in_channels, H, W) -> logits (N, num_classes, H, W). Per level l
    the model holds ``enc[l]``, ``pools[l]`` (after a forward, ``pools[l].indices``
    are the saved argmax positions), ``unpools[l]`` (reads them) and ``dec[l]``.
    """

    name = "segnet"

    def __init__(self, in_channels=1, num_classes=4, base_channels=16, depth=3, batch_norm=True, seed=0):
        super().__init__(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                         depth=depth, batch_norm=batch_norm, seed=seed)
        widths, rng = level_widths(base_channels, depth), as_generator(seed)
        widths = widths[:depth]  # SegNet pools after every level: no level below the last pool
        self.depth, self.output_stride = depth, 2 ** depth
        self.enc = [double_conv(c_in, c, rng, batch_norm) for c_in, c in zip([in_channels] + widths, widths)]
        self.pools = [nn.MaxPool2d(2) for _ in range(depth)]
        self.unpools = [nn.MaxUnpool2d(2, pool=pool) for pool in self.pools]  # tied: reads pool's indices
        self.dec = [double_conv(widths[level], widths[max(level - 1, 0)], rng, batch_norm)
                    for level in range(depth)]
        self.head = nn.Conv2d(base_channels, num_classes, 1, rng=rng)

    def children(self):
        named = {}
        for level in range(self.depth):  # one rung of the diagram's ladder at a time
            named.update({f"enc{level}": self.enc[level], f"pool{level}": self.pools[level],
                          f"unpool{level}": self.unpools[level], f"dec{level}": self.dec[level]})
        named["head"] = self.head
        return named

    def forward_body(self, x):
        for enc, pool in zip(self.enc, self.pools):
            x = pool(enc(x))  # pool keeps its argmax indices for the unpool of its level
        for level in reversed(range(self.depth)):
            x = self.dec[level](self.unpools[level](x))
        return self.head(x)

    def backward_body(self, dout):
        d = self.head.backward(dout)
        for level in range(self.depth):  # the decoder ran bottom-up: undo it top-down
            d = self.unpools[level].backward(self.dec[level].backward(d))
        for level in reversed(range(self.depth)):
            d = self.enc[level].backward(self.pools[level].backward(d))
        return d
