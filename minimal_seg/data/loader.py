"""The batch iterator: host arrays in, backend arrays out, one batch at a time.

    for images, masks in batches(train_set, 16, seed=0, epoch=e, crop_size=48):
        ...   # images (B, C, 48, 48) float32, masks (B, 48, 48) int64

The whole dataset stays on the host (NumPy). For each batch the iterator
gathers the samples, crops and augments them on the host, and then makes one
explicit host -> device copy per array with ``minimal_seg.backend.asarray``,
so the batch lives on the *current* backend (NumPy or CuPy).

Reproducibility: the order, the crops and the augmentations of an epoch
come from one generator seeded with (seed, epoch). Epoch e of a run can thus
be replayed exactly, e.g. after resuming from a checkpoint, without
replaying epochs 0 .. e-1.
"""
from __future__ import annotations

import numpy as np

from minimal_seg.backend import asarray, to_numpy

from .transforms import RandomCrop


def as_arrays(data):
    """A dataset (with ``.images``/``.masks``) or an (images, masks) pair -> two host arrays.

    Arrays on the device (CuPy) are copied to the host once, here (``to_numpy``).
    """
    if hasattr(data, "images") and hasattr(data, "masks"):
        images, masks = data.images, data.masks
    else:
        images, masks = data
    images, masks = to_numpy(images), to_numpy(masks)
    if images.ndim != 4 or masks.ndim != 3 or len(images) != len(masks):
        raise ValueError(f"need images (N, C, H, W) and masks (N, H, W), got {images.shape} and {masks.shape}")
    return images, masks


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch, a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch])


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches ``batches`` yields for n samples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def image_batches(images, batch_size: int):
    """Yield whole host images (N, C, H, W) in order, as float32 (B, C, H, W) batches on the current backend.

    The batching of inference (``train.predict``, ``train_detect.detect``,
    ``train_instance.class_probabilities``): no masks, no shuffling, one host -> device copy per batch.
    """
    for start in range(0, len(images), batch_size):
        yield asarray(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32))


def batches(data, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
            transform=None, crop_size=None, drop_last: bool = False):
    """Yield (images (B, C, h, w) float32, masks (B, h, w) int64) on the current backend.

    data        a dataset or an (images (N, C, H, W), masks (N, H, W)) pair of arrays
                (host arrays; device arrays are brought to the host once)
    shuffle     visit the samples in a random order (else 0, 1, ..., N-1)
    seed, epoch seed the epoch's generator (order, crops, transform)
    transform   a paired transform ``t(images, masks, rng)`` (see ``transforms``)
    crop_size   int or (h, w): train on random crops; None keeps whole images
    drop_last   skip a last batch smaller than ``batch_size``

    Every sample appears exactly once per epoch (drop_last aside). h, w are
    the crop size, or H, W without cropping.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    images, masks = as_arrays(data)
    rng = epoch_rng(seed, epoch)
    order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
    cropper = None if crop_size is None else RandomCrop(crop_size)
    for b in range(num_batches(len(images), batch_size, drop_last)):
        index = order[b * batch_size : (b + 1) * batch_size]
        x, y = images[index], masks[index]  # host copies of this batch
        if cropper is not None:
            x, y = cropper(x, y, rng)
        if transform is not None:
            x, y = transform(x, y, rng)
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.int64)
        yield asarray(x), asarray(y)  # the one host -> device copy of each array
