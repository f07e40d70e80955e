"""What every dataset in ``minimal_seg.data`` looks like.

A segmentation dataset is two host (NumPy) arrays of the same length::

    images   (N, C, H, W) float32, roughly normalised
    masks    (N, H, W)    int64, one class index in [0, K) per pixel

plus ``num_classes`` (K) and ``class_names`` (K strings, index 0 is the
background). Data stay on the host; only batches move to the device (see
``minimal_seg.data.loader.batches``).
"""
from __future__ import annotations

import numpy as np

from ..backend import to_numpy


class SegmentationDataset:
    """Images (N, C, H, W) float32 and masks (N, H, W) int64, held on the host.

    ``dataset[i]`` is the pair ``(image (C, H, W), mask (H, W))``. Arrays
    handed over on the device (CuPy) are copied to the host once, here.
    """

    def __init__(self, images, masks, class_names):
        images = np.ascontiguousarray(to_numpy(images), dtype=np.float32)
        masks = np.ascontiguousarray(to_numpy(masks), dtype=np.int64)
        if images.ndim != 4 or masks.ndim != 3:
            raise ValueError(f"need images (N, C, H, W) and masks (N, H, W), got {images.shape} and {masks.shape}")
        if images.shape[0] != masks.shape[0] or images.shape[2:] != masks.shape[1:]:
            raise ValueError(f"images {images.shape} and masks {masks.shape} do not match")
        self.images = images
        self.masks = masks
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.masks[i]

    def class_frequencies(self) -> np.ndarray:
        """(K,) fraction of all pixels that belong to each class; sums to 1."""
        counts = np.bincount(self.masks.ravel(), minlength=self.num_classes)
        return counts / counts.sum()

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"{type(self).__name__}(N={n}, C={c}, H={h}, W={w}, num_classes={self.num_classes})"


def standardize(images: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per image and channel: x -> (x - mean) / std, over H and W.

    images: (N, C, H, W) -> (N, C, H, W) float32 with mean 0 and std 1 each.
    """
    images = images.astype(np.float64)
    mean = images.mean(axis=(2, 3), keepdims=True)
    std = images.std(axis=(2, 3), keepdims=True)
    return ((images - mean) / (std + eps)).astype(np.float32)


def image_hw(image_size) -> tuple[int, int]:
    """An int or an (H, W) pair -> (H, W), both >= 1."""
    if np.isscalar(image_size):
        image_size = (image_size, image_size)
    h, w = (int(s) for s in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w
