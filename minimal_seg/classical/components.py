"""From a foreground mask to instances: connected components, small-piece removal, boundaries.

The simplest way from a semantic mask to instances: every 4-connected piece
of foreground is one object::

    mask            label_components(mask)
    . # # . . .     . 1 1 . . .
    . # # . # .     . 1 1 . 2 .          4-neighbours: up, down, left, right
    . . . . # #     . . . . 2 2          (a diagonal touch does not connect)
    # . . . . .     3 . . . . .

It fails exactly where objects touch: two touching nuclei are one piece.
That is why the one-stage model predicts a *boundary* class too, and only
the interior (where touching nuclei are apart) is split into components.

Labels are numbered 1..n in raster order of each piece's first pixel, as
``scipy.ndimage.label`` numbers them; 0 is the background. The union-find
itself is ``slic.connected_components`` (components of equal labels), run
on the mask; here its background pieces are dropped and the rest renumbered.
Host (NumPy) arrays only: these are post-processing steps on predictions.
"""
from __future__ import annotations

import numpy as np

from .slic import _consecutive, boundaries, connected_components


def _check_2d(array, name):
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {array.shape}")
    return array


def label_components(mask):
    """4-connected components of the foreground: mask (H, W) bool/int -> (H, W) int64 labels 0..n (0 = background)."""
    mask = _check_2d(mask, "mask") != 0
    pieces = connected_components(mask.astype(np.int64))  # ids 0..k-1, ordered by first pixel
    return relabel_sequential(np.where(mask, pieces + 1, 0))


def relabel_sequential(labels):
    """Renumber the instance ids present 1..n keeping their order; 0 (and anything < 0) becomes 0."""
    labels = np.where(_check_2d(labels, "labels") > 0, labels, 0)
    with_zero = np.concatenate([[0], labels.ravel()])  # so that 0 is always the smallest value, id 0
    return _consecutive(with_zero)[1:].reshape(labels.shape).astype(np.int64)


def remove_small(labels, min_size: int):
    """Drop instances of fewer than ``min_size`` pixels (set to 0) and renumber the rest 1..n."""
    labels = _check_2d(labels, "labels")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, got {min_size}")
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return relabel_sequential(np.where(small[labels], 0, labels))


def instance_boundaries(labels):
    """Pixels of an instance that touch (4-neighbourhood) a different label or the background.

    labels (H, W) ints -> (H, W) bool. The image border does not count as a
    different label. These are the pixels the one-stage model learns as
    "boundary": between two touching nuclei they form a line of background-like
    pixels that separates the interiors.
    """
    labels = _check_2d(labels, "labels")
    return boundaries(labels) & (labels > 0)  # slic.boundaries: pixels that differ from a 4-neighbour


def instance_masks(labels):
    """(H, W) instance labels -> (n, H, W) bool masks, one per id present (in increasing id), and the ids."""
    labels = _check_2d(labels, "labels")
    ids = np.unique(labels[labels > 0])
    return labels[None] == ids[:, None, None], ids
