"""Nuclei: a real fluorescence microscopy image with hand-annotated nuclei.

One 512 x 512 image from the 2018 Data Science Bowl (BBBC038, CC0; see
``LICENSE_nuclei.txt``) with 125 annotated nuclei, shipped with the package
as ``nuclei.npz``. It is cut into four 256 x 256 quadrants::

    +-------+-------+
    | train | train |      train: top-left, top-right, bottom-left (N = 3)
    +-------+-------+      test:  bottom-right                     (N = 1)
    | train | test  |      all:   the whole 512 x 512 image        (N = 1)
    +-------+-------+

Nuclei that straddle a cut appear, cut in two, in both quadrants.

How ``nuclei.npz`` was made (once, by hand; tifffile is not a dependency):
the files ``stardist/data/images/img2d.tif`` and ``mask2d.tif`` were taken
from the stardist 0.9.2 wheel, read with ``tifffile.imread`` and saved
unchanged with ``numpy.savez_compressed(path, image=image, mask=mask)``:
``image`` (512, 512) uint16 intensities, ``mask`` (512, 512) uint16
instance labels (0 = background; ids need not be contiguous).

The baseline every model has to beat is Otsu's global threshold: no
learning, one number per image (``otsu_threshold``, ``otsu_baseline_dice``).
"""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from .dataset import SegmentationDataset

CLASS_NAMES = ("background", "nucleus")
SPLITS = ("train", "test", "all")
TILE = 256
# (top, left) corner of each quadrant, in the order they are stacked.
QUADRANTS = {
    "train": ((0, 0), (0, TILE), (TILE, 0)),
    "test": ((TILE, TILE),),
}


@functools.lru_cache(maxsize=1)
def load_raw():
    """The vendored arrays: (image (512, 512) uint16, instance mask (512, 512) uint16)."""
    with resources.as_file(resources.files(__package__) / "nuclei.npz") as path:
        with np.load(path, allow_pickle=False) as data:
            image, mask = data["image"], data["mask"]
    image.setflags(write=False)
    mask.setflags(write=False)
    return image, mask


def percentile_normalize(image, pmin: float = 1.0, pmax: float = 99.8, eps: float = 1e-20):
    """x -> (x - p_lo) / (p_hi - p_lo), with p_lo, p_hi the pmin / pmax percentiles.

    As in StarDist: robust to a few very bright pixels; most values end up in
    [0, 1] (nothing is clipped). image: any shape -> float32, same shape.
    """
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, [pmin, pmax])
    return ((image - lo) / (hi - lo + eps)).astype(np.float32)


def tiles(array, split: str):
    """Cut a (512, 512) array into the split's quadrants: (N, 256, 256)."""
    if split == "all":
        return np.asarray(array)[None]
    return np.stack([array[top : top + TILE, left : left + TILE] for top, left in QUADRANTS[split]])


class Nuclei(SegmentationDataset):
    """The nuclei image as a dataset of 256 x 256 tiles (``split="all"``: 512 x 512).

    images    (N, 1, H, W) float32, each tile percentile-normalised (1 - 99.8 %)
    masks     (N, H, W) int64, 0 = background, 1 = nucleus
    instances (N, H, W) int64, the annotated instance ids (0 = background)
    """

    def __init__(self, split: str = "train"):
        if split not in SPLITS:
            raise ValueError(f"Nuclei split must be one of {SPLITS}, got {split!r}")
        image, mask = load_raw()
        raw = tiles(image, split)
        images = np.stack([percentile_normalize(tile) for tile in raw])[:, None]
        self.instances = tiles(mask, split).astype(np.int64)
        self.raw = raw  # (N, H, W) uint16, the unnormalised intensities
        self.split = split
        super().__init__(images, (self.instances > 0).astype(np.int64), CLASS_NAMES)

    def num_instances(self) -> int:
        """Number of distinct nuclei summed over the tiles (a cut nucleus counts per tile)."""
        return sum(int(np.unique(tile[tile > 0]).size) for tile in self.instances)


def otsu_threshold(image, bins: int = 256) -> float:
    """Otsu's threshold: the t that maximises the between-class variance.

    Split the histogram of ``image`` (any shape) at every bin edge t into
    class 0 (x <= t) and class 1 (x > t), with weights w0, w1 (pixel counts)
    and means m0, m1. Otsu picks

        t* = argmax_t  w0(t) w1(t) (m0(t) - m1(t))^2

    which is the same as minimising the summed within-class variance.
    Returns t* (the upper edge of the last bin of class 0), so the
    foreground is ``image > t*``.
    """
    x = np.asarray(image, dtype=np.float64).ravel()
    counts, edges = np.histogram(x, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)  # pixels at or below each bin
    w1 = w0[-1] - w0
    s0 = np.cumsum(counts * centres)  # their sum of intensities
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1 + np.argmax(between[:-1])])  # the last split leaves class 1 empty


def dice_score(pred, target) -> float:
    """Foreground Dice 2 |P & T| / (|P| + |T|) of two boolean arrays (1.0 if both empty)."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    total = pred.sum() + target.sum()
    return 1.0 if total == 0 else float(2 * (pred & target).sum() / total)


def otsu_baseline_dice(split: str = "test") -> float:
    """Foreground Dice of Otsu's threshold on the given split.

    Each tile gets its own threshold (computed on that tile alone, so nothing
    is learned from other data); the Dice is pooled over all pixels of the
    split. On the test quadrant it is about 0.893; on the whole image
    (``split="all"``) about 0.835.
    """
    data = Nuclei(split)
    pred = np.stack([image[0] > otsu_threshold(image[0]) for image in data.images])
    return dice_score(pred, data.masks == 1)
