"""Paired transforms: the same geometric change applied to an image and its mask.

A transform is called as ``image, mask = t(image, mask, rng)`` with an
explicit ``numpy.random.Generator``, on either

    one pair    image (C, H, W), mask (H, W)
    a batch     images (N, C, H, W), masks (N, H, W)   (independent draws per sample)

Only flips, 90-degree rotations and crops are offered: they move pixels
without creating new ones, so a mask is never interpolated and keeps
exactly its set of labels. ``batches`` applies them on the host, before a
batch is sent to the device; on CuPy arrays they work too, on the device
(``np.rot90`` and ``np.stack`` dispatch to CuPy). The results may be views
of the inputs.

The deterministic functions (``hflip``, ``vflip``, ``rot90``, ``crop``)
act on the last two axes, so they accept a pair or a batch alike.
"""
from __future__ import annotations

import numpy as np

from .dataset import image_hw


def hflip(image, mask):
    """Mirror left <-> right (the W axis)."""
    return image[..., ::-1], mask[..., ::-1]


def vflip(image, mask):
    """Mirror top <-> bottom (the H axis)."""
    return image[..., ::-1, :], mask[..., ::-1, :]


def rot90(image, mask, k: int = 1):
    """Rotate by k * 90 degrees counter-clockwise in the (H, W) plane."""
    return np.rot90(image, k, axes=(-2, -1)), np.rot90(mask, k, axes=(-2, -1))


def crop(image, mask, top: int, left: int, size):
    """The (h, w) = ``size`` window whose top-left pixel is (top, left)."""
    h, w = image_hw(size)
    return image[..., top : top + h, left : left + w], mask[..., top : top + h, left : left + w]


class PairTransform:
    """Base class: subclasses define ``apply(image (C,H,W), mask (H,W), rng)`` for one pair.

    ``__call__`` also accepts a batch and then draws independently per sample.
    """

    def apply(self, image, mask, rng):
        raise NotImplementedError

    def __call__(self, image, mask, rng: np.random.Generator):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"pass an explicit numpy Generator (np.random.default_rng(seed)), got {rng!r}")
        if image.ndim == 3 and mask.ndim == 2:
            return self.apply(image, mask, rng)
        if image.ndim == 4 and mask.ndim == 3 and len(image) == len(mask):
            pairs = [self.apply(image[i], mask[i], rng) for i in range(len(image))]
            return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        raise ValueError(f"need image (C, H, W) + mask (H, W) or a batch of them, got {image.shape} and {mask.shape}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomHorizontalFlip(PairTransform):
    """``hflip`` with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def apply(self, image, mask, rng):
        return hflip(image, mask) if rng.random() < self.p else (image, mask)


class RandomVerticalFlip(PairTransform):
    """``vflip`` with probability p."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def apply(self, image, mask, rng):
        return vflip(image, mask) if rng.random() < self.p else (image, mask)


class RandomRot90(PairTransform):
    """``rot90`` by k = 0, 1, 2 or 3 quarter turns, uniformly.

    Odd k swap H and W, so a batch of non-square images cannot be rotated.
    """

    def apply(self, image, mask, rng):
        return rot90(image, mask, int(rng.integers(4)))

    def __call__(self, image, mask, rng):
        if image.ndim == 4 and image.shape[-1] != image.shape[-2]:
            raise ValueError(f"RandomRot90 on a batch needs square images, got {image.shape}")
        return super().__call__(image, mask, rng)


class RandomCrop(PairTransform):
    """A ``size`` (int or (h, w)) window at a uniformly random position."""

    def __init__(self, size):
        self.size = image_hw(size)

    def apply(self, image, mask, rng):
        h, w = self.size
        H, W = mask.shape
        if h > H or w > W:
            raise ValueError(f"crop size {self.size} is larger than the image ({H}, {W})")
        top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        return crop(image, mask, top, left, self.size)


class Compose(PairTransform):
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def apply(self, image, mask, rng):
        for t in self.transforms:
            image, mask = t.apply(image, mask, rng)
        return image, mask

    def __call__(self, image, mask, rng):
        for t in self.transforms:
            image, mask = t(image, mask, rng)
        return image, mask


def default_augmentation():
    """Flips in both directions and quarter turns: the 8 symmetries of a square."""
    return Compose([RandomHorizontalFlip(), RandomVerticalFlip(), RandomRot90()])
