"""Fully convolutional network (Long, Shelhamer, Darrell, 2015), small.

A VGG-like encoder of five stages (two 3x3 conv -> BN -> ReLU, then a 2x2
max pool), so the feature map after stage s is 1/2**s of the input. The
classifier's fully connected layers become convolutions (``fc6``: 3x3,
``fc7``: 1x1), a 1x1 ``score`` conv gives class scores at 1/32, and
transposed convolutions initialised to bilinear upsampling bring them back:

    FCN-32s:  logits = up32(score(fc7(pool5)))
    FCN-16s:  logits = up16(up2(score(...)) + score_pool4(pool4))
    FCN-8s:   logits = up8(up2(up2(score(...)) + score_pool4(pool4)) + score_pool3(pool3))

Skip fusion is by addition, so in backward the gradient of a sum is copied
to both of its inputs. Input sizes that do not divide by 32 are zero-padded
at the bottom/right and the logits are cropped back (``Model.forward``).
"""
from __future__ import annotations

from .. import nn
from ..nn.init import as_generator
from .base import Model
from .blocks import conv_bn_relu, double_conv

VARIANTS = ("32s", "16s", "8s")


def _bilinear_up(channels, factor, rng):
    """Transposed conv that starts as bilinear upsampling by ``factor`` (kernel 2f, stride f, padding f/2)."""
    return nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                              init="bilinear", rng=rng)


class FCN(Model):
    """FCN(in_channels, num_classes, variant="32s"|"16s"|"8s", base_channels=16, batch_norm=True, seed=0)."""

    name = "fcn"
    output_stride = 32  # five 2x2 max pools

    def __init__(self, in_channels=1, num_classes=4, variant="32s", base_channels=16, batch_norm=True, seed=0):
        super().__init__(in_channels=in_channels, num_classes=num_classes, variant=variant,
                         base_channels=base_channels, batch_norm=batch_norm, seed=seed)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        rng = as_generator(seed)
        b, k = base_channels, num_classes
        widths = [b, 2 * b, 4 * b, 8 * b, 8 * b]
        self.variant = variant
        self.stages = [double_conv(c_in, c, rng, batch_norm) for c_in, c in zip([in_channels] + widths, widths)]
        self.pools = [nn.MaxPool2d(2) for _ in widths]
        self.fc6 = conv_bn_relu(widths[-1], 16 * b, rng, batch_norm, kernel_size=3)
        self.fc7 = conv_bn_relu(16 * b, 16 * b, rng, batch_norm, kernel_size=1)
        self.score = nn.Conv2d(16 * b, k, 1, rng=rng)
        if variant == "32s":
            self.up_final = _bilinear_up(k, 32, rng)
        else:
            self.score_pool4 = nn.Conv2d(widths[3], k, 1, rng=rng)
            self.up2_a = _bilinear_up(k, 2, rng)
            if variant == "16s":
                self.up_final = _bilinear_up(k, 16, rng)
            else:
                self.score_pool3 = nn.Conv2d(widths[2], k, 1, rng=rng)
                self.up2_b = _bilinear_up(k, 2, rng)
                self.up_final = _bilinear_up(k, 8, rng)

    def children(self):
        named = {}
        for s, (stage, pool) in enumerate(zip(self.stages, self.pools), start=1):
            named[f"stage{s}"], named[f"pool{s}"] = stage, pool
        named.update(fc6=self.fc6, fc7=self.fc7, score=self.score)
        for name in ("score_pool4", "up2_a", "score_pool3", "up2_b", "up_final"):
            if hasattr(self, name):
                named[name] = getattr(self, name)
        return named

    def forward_body(self, x):
        pooled = []
        for stage, pool in zip(self.stages, self.pools):
            x = pool(stage(x))
            pooled.append(x)  # pooled[2] = pool3 (1/8), pooled[3] = pool4 (1/16)
        s = self.score(self.fc7(self.fc6(x)))
        if self.variant != "32s":
            s = self.up2_a(s) + self.score_pool4(pooled[3])
        if self.variant == "8s":
            s = self.up2_b(s) + self.score_pool3(pooled[2])
        return self.up_final(s)

    def backward_body(self, dout):
        d = self.up_final.backward(dout)
        d_pooled = [None] * 5
        if self.variant == "8s":  # s = up2_b(s) + score_pool3(pool3): the gradient goes to both terms
            d_pooled[2] = self.score_pool3.backward(d)
            d = self.up2_b.backward(d)
        if self.variant != "32s":
            d_pooled[3] = self.score_pool4.backward(d)
            d = self.up2_a.backward(d)
        d = self.fc6.backward(self.fc7.backward(self.score.backward(d)))
        for s in reversed(range(5)):
            if d_pooled[s] is not None:
                d = d + d_pooled[s]  # pool output fed the next stage and a score layer: sum
            d = self.stages[s].backward(self.pools[s].backward(d))
        return d
