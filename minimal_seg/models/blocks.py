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
