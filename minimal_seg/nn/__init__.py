"""Layers with parameters: thin objects that hold state and call the functional ops."""
from .base import Layer, Sequential
from .init import as_generator, kaiming_normal
from .layers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    MaxPool2d,
    MaxUnpool2d,
    ReLU,
    Sigmoid,
    UnpoolBedOfNails,
    UnpoolNearest,
    UpsampleBilinear,
)
from .branches import AdaptiveAvgPool2d, Identity, Parallel
from .linear import Flatten, Linear

__all__ = [
    "Layer", "Sequential", "as_generator", "kaiming_normal", "BatchNorm2d", "Conv2d", "ConvTranspose2d",
    "MaxPool2d", "MaxUnpool2d", "ReLU", "Sigmoid", "UnpoolBedOfNails", "UnpoolNearest", "UpsampleBilinear",
    "AdaptiveAvgPool2d", "Identity", "Parallel",
    "Flatten", "Linear",
]
