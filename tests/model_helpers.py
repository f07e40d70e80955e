"""Helpers for the model tests (test_models.py, test_unet.py, ..., test_blocks.py, test_branches.py,
test_fpn.py).

Tolerances of a whole-model gradient check: eps = 1e-6 (not 1e-5) keeps the
central differences off the kinks of ReLU and max pooling (a difference that
straddles one is wrong, not the backward pass), and 1e-5 absorbs what
training-mode BatchNorm on tiny maps does to rounding noise (it divides by
small standard deviations, ~1e-7 of the gradient's scale); a wrong backward
is off by 1e-2 or more (test_models.py::test_overwritten_gradient_sum_is_caught).

Before a check every parameter is moved off its initial value (``off_init``):
biases start at exactly zero, so a pixel whose inputs are all exactly zero (a
dead ReLU, the zeros of max unpooling) would sit exactly on the next ReLU's
kink, where a central difference means nothing.
"""
import numpy as np

from minimal_seg.backend import asarray
from minimal_seg.models import build_model

EPS, MODEL_TOL = 1e-6, 1e-5
# LinkNet's decoder block narrows to C/4 channels; at C = 4 that is one channel, whose BatchNorm
# gamma the next BatchNorm cancels exactly (a zero gradient, so a relative error of pure noise).
BASE = {"linknet": 4}


def off_init(layer, seed=7):
    """Add N(0, 0.1^2) noise to every parameter, in place (see the module docstring)."""
    rng = np.random.default_rng(seed)
    for params, _ in layer.parameters():
        for key, value in params.items():
            params[key] = value + asarray(0.1 * rng.standard_normal(value.shape), dtype=value.dtype)
    return layer


def tiny(name, **kw):
    """A float64 model by name: 2 input channels, 3 classes, base_channels 2 (4 for LinkNet), off its init."""
    kw = {"base_channels": BASE.get(name, 2), **kw}
    return off_init(build_model(name, in_channels=2, num_classes=3, seed=1, **kw).astype(np.float64))


def randn(xp, shape, seed=0):
    """Standard normal float64 array on the backend of ``xp``."""
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))
