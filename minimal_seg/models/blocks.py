"""Building blocks shared by the models."""
from __future__ import annotations

from .. import nn


def conv_bn_relu(c_in, c_out, rng, batch_norm=True, kernel_size=3, dilation=1):
    """Conv (same size) -> [BatchNorm] -> ReLU. The conv has no bias when BatchNorm follows
    (BatchNorm subtracts the channel mean, so a bias there would get a zero gradient)."""
    padding = dilation * (kernel_size - 1) // 2
    layers = [nn.Conv2d(c_in, c_out, kernel_size, padding=padding, dilation=dilation, bias=not batch_norm, rng=rng)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def double_conv(c_in, c_out, rng, batch_norm=True):
    """Two 3x3 conv -> [BN] -> ReLU in a row: U-Net's and VGG's basic block."""
    return nn.Sequential(conv_bn_relu(c_in, c_out, rng, batch_norm), conv_bn_relu(c_out, c_out, rng, batch_norm))


def level_widths(base_channels, depth):
    """Channels of encoder levels 0..depth, base_channels * 2**level; raises unless depth >= 1."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return [base_channels * 2 ** level for level in range(depth + 1)]


def positive_ints(values, name: str) -> tuple:
    """``values`` as a non-empty tuple of ints >= 1 (ASPP rates, pyramid bins), else ValueError naming it.

    A tuple, not the list a checkpoint's JSON gives back, so a reloaded config equals the original.
    """
    values = tuple(int(v) for v in values)
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be a non-empty sequence of ints >= 1, got {values!r}")
    return values


def sum_present(d_a, d_b):
    """Gradient of a tensor read twice: d_a + d_b, a None term (that reader sent nothing) left out; both None: None."""
    if d_a is None or d_b is None:
        return d_b if d_a is None else d_a
    return d_a + d_b


class Encoder(nn.Layer):
    """A VGG-like encoder that hands back the features of *every* level (for skips and heads).

        x ─ stage0 ─ f0 ─ pool1 ─ stage1 ─ f1 ─ pool2 ─ stage2 ─ f2 ─ ... ─ f_depth

    Each stage is ``double_conv``; f_l has ``widths[l]`` channels at 1/2**l
    of the input size. ``forward(x)`` returns the list [f0, ..., f_depth].
    ``backward(d_features)`` takes one gradient per level (None for a level
    the model did not read; the deepest level must have one). A level's
    output fed both the next pool and the model, so where both send a
    gradient the two are summed.
    """

    def __init__(self, in_channels, widths, rng, batch_norm=True):
        super().__init__()
        self.stages = [double_conv(c_in, c, rng, batch_norm) for c_in, c in zip([in_channels] + widths, widths)]
        self.pools = [nn.MaxPool2d(2) for _ in widths[1:]]  # pools[l - 1] leads into stage l

    def children(self):
        named = {"stage0": self.stages[0]}
        for level in range(1, len(self.stages)):
            named[f"pool{level}"] = self.pools[level - 1]
            named[f"stage{level}"] = self.stages[level]
        return named

    def forward(self, x):
        features = []
        for level, stage in enumerate(self.stages):
            if level:
                x = self.pools[level - 1](x)
            x = stage(x)
            features.append(x)
        return features

    @staticmethod
    def _level_sum(d_below, d_model):
        """f_l fed the next pool (d_below) and the model (d_model): sum what came back, never overwrite."""
        return sum_present(d_below, d_model)

    def backward(self, d_features):
        if len(d_features) != len(self.stages) or d_features[-1] is None:
            raise ValueError(f"Encoder.backward needs a list of {len(self.stages)} gradients "
                             "(one per level, None where unused, the deepest one given)")
        d = None
        for level in reversed(range(len(self.stages))):
            d = self._level_sum(d, d_features[level])
            d = self.stages[level].backward(d)
            if level:
                d = self.pools[level - 1].backward(d)
        return d


class PoolingBranch(nn.Layer):
    """Summarise a feature map on a bins x bins grid, mix channels, spread it back::

        x (N, C, H, W) ─ AdaptiveAvgPool2d(bins) ─ 1x1 conv ─ ReLU ─ bilinear to (H, W) ─ (N, C_out, H, W)

    One level of PSPNet's pyramid; with bins = 1 it is DeepLab's image-level
    feature (bilinear upsampling of a 1x1 map is a broadcast). No BatchNorm:
    on a 1x1 map it would normalise one number per image over the batch
    alone (with a batch of one it outputs beta whatever x is). ``bias=False``
    where the branch's output is concatenated and then batch-normalised: the
    constant a bias adds comes out of the ReLU unchanged wherever it is
    positive, and the BatchNorm after the projection subtracts it again.
    """

    def __init__(self, c_in, c_out, bins, rng, bias=True):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(bins)
        self.conv = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=bias, rng=rng), nn.ReLU())
        self.up = nn.UpsampleBilinear()

    def children(self):
        return {"pool": self.pool, "conv": self.conv, "up": self.up}

    def forward(self, x):
        return self.up(self.conv(self.pool(x)), size=tuple(x.shape[2:]))

    def backward(self, dout):
        return self.pool.backward(self.conv.backward(self.up.backward(dout)))


class SpatialPyramid(nn.Layer):
    """Branches that all read one feature map, concatenated, then a projection conv::

        x ─┬ branch ─┐
           ├ ...     ├ cat ─ project ─ out
           └ branch ─┘

    DeepLab's ASPP and PSPNet's pyramid pooling are both this shape; they
    differ in their branches. ``branches`` is a dict name -> layer (an
    ``nn.Parallel``, whose backward sums the branches' input gradients).
    """

    def __init__(self, branches: dict, project):
        super().__init__()
        self.branches = nn.Parallel(**branches)
        self.project = project

    def children(self):
        return {"branches": self.branches, "project": self.project}

    def forward(self, x):
        return self.project(self.branches(x))

    def backward(self, dout):
        return self.branches.backward(self.project.backward(dout))
