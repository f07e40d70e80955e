"""A piecewise-constant test scene and a coarse, noisy "network prediction" of it.

For demos and tests of the post-processing (CRF, superpixel voting), where the
right answer must be known: three regions (background 0, a disc 1, a
rectangle 2) of constant intensity plus Gaussian noise, and probabilities that
look like an FCN-32s output: right on average, blocky at ``factor`` x
``factor`` cells, noisy. Host (NumPy) arrays, from an explicit seed.
"""
from __future__ import annotations

import numpy as np

LEVELS = (0.0, 1.0, -1.0)  # intensity of classes 0, 1, 2 (standardised units)


def piecewise_scene(h=32, w=32, noise=0.2, seed=0):
    """image (1, H, W) float64 and truth (H, W) int64 with classes 0 (background), 1 (disc), 2 (rectangle)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    truth = np.zeros((h, w), dtype=np.int64)
    cy, cx = h * rng.uniform(0.3, 0.45), w * rng.uniform(0.3, 0.45)
    truth[(yy - cy) ** 2 + (xx - cx) ** 2 < (0.25 * min(h, w)) ** 2] = 1
    truth[(yy > h * rng.uniform(0.5, 0.6)) & (xx > w * rng.uniform(0.45, 0.6))] = 2
    image = np.asarray(LEVELS)[truth][None] + noise * rng.standard_normal((1, h, w))
    return image, truth


def coarse_prediction(truth, num_classes=3, factor=8, confidence=3.0, noise=1.0, seed=0):
    """Probabilities (K, H, W) of a blurred, blocky, noisy guess at ``truth`` (H, W).

    logits = confidence * (one-hot averaged over factor x factor blocks, repeated back)
             + noise * N(0, 1) per pixel and class;  probs = softmax(logits).
    H and W must be multiples of ``factor``.
    """
    h, w = truth.shape
    if h % factor or w % factor:
        raise ValueError(f"truth {truth.shape} must divide into {factor} x {factor} blocks")
    rng = np.random.default_rng(seed)
    onehot = np.eye(num_classes)[truth].transpose(2, 0, 1)
    blocks = onehot.reshape(num_classes, h // factor, factor, w // factor, factor).mean(axis=(2, 4))
    coarse = blocks.repeat(factor, axis=1).repeat(factor, axis=2)
    logits = confidence * coarse + noise * rng.standard_normal((num_classes, h, w))
    e = np.exp(logits - logits.max(axis=0))
    return e / e.sum(axis=0)
