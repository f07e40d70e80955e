"""Weight initialisation, always from an explicit random generator.

Kaiming (He) normal for layers followed by ReLU: w ~ N(0, 2 / fan_in), where
fan_in is the number of input values one output value sums over.
"""
from __future__ import annotations

import math

import numpy


def as_generator(rng) -> numpy.random.Generator:
    """A numpy Generator from a Generator, an int seed, or None (a fresh, unseeded one)."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    return numpy.random.default_rng(rng)


def kaiming_normal(shape, fan_in: int, rng, dtype=numpy.float32) -> numpy.ndarray:
    """Array of ``shape`` drawn from N(0, 2 / fan_in) on the host (numpy)."""
    std = math.sqrt(2.0 / fan_in)
    return (as_generator(rng).standard_normal(shape) * std).astype(dtype)
