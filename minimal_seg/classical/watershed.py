"""Marker-based watershed by priority flood (Meyer, 1991), and the one-stage instance recipe.

Think of ``elevation`` as a landscape and of every marker as a spring. Water
rises from all springs at once; a pixel belongs to the spring whose water
reaches it first, and where two floods meet a ridge (a watershed line)
separates them. The priority-flood algorithm does this with one heap::

    push every marker pixel with priority elevation[p]
    while the heap is not empty:
        pop the pixel p of lowest (elevation, age)
        for each 4-neighbour q of p that is inside the mask and not labelled yet:
            label[q] = label[p]                       # q joins p's flood
            push q with priority (elevation[q], age)   # age: a counter, first come first served

Each pixel is labelled once (when first reached) and pushed once, so it runs
in O(HW log HW). Ties in elevation are broken by age, so a plateau is split
between the floods that reach it in order of arrival; this is the rule of
``skimage.segmentation.watershed`` (compactness 0, no watershed line), and the
tests check that both give the same labels.

**The one-stage recipe** (``instances_from_classes``): a network labels every
pixel background / interior / boundary. The interiors of touching nuclei
are apart (the boundary class runs between them), so the connected
components of the interior are the seeds, one per object; the watershed
then grows each seed over the elevation 1 - p(interior) until the predicted
foreground (interior or boundary) is used up, giving every boundary pixel
back to the nucleus it borders.
"""
from __future__ import annotations

import heapq

import numpy as np

from .components import _check_2d, label_components, remove_small

NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def watershed(elevation, markers, mask=None):
    """Grow ``markers`` over ``elevation`` by priority flood; returns (H, W) int64 labels.

    elevation (H, W) float: low is filled first.
    markers   (H, W) int: seeds (> 0, their label), 0 where unlabelled.
    mask      (H, W) bool or None: pixels that may be labelled (default all);
              pixels outside stay 0 (a marker outside the mask is dropped).
    """
    elevation = _check_2d(elevation, "elevation").astype(np.float64)
    markers = _check_2d(markers, "markers")
    mask = np.ones(elevation.shape, bool) if mask is None else _check_2d(mask, "mask").astype(bool)
    if markers.shape != elevation.shape or mask.shape != elevation.shape:
        raise ValueError(f"elevation, markers and mask must have one shape; got {elevation.shape}, "
                         f"{markers.shape}, {mask.shape}")
    h, w = elevation.shape
    labels = np.where(mask, markers, 0).astype(np.int64)
    heap = [(elevation[y, x], 0, y, x) for y, x in zip(*np.nonzero(labels))]
    heapq.heapify(heap)
    age = 0
    while heap:
        _, _, y, x = heapq.heappop(heap)
        for dy, dx in NEIGHBOURS:
            qy, qx = y + dy, x + dx
            if 0 <= qy < h and 0 <= qx < w and mask[qy, qx] and not labels[qy, qx]:
                labels[qy, qx] = labels[y, x]
                age += 1
                heapq.heappush(heap, (elevation[qy, qx], age, qy, qx))
    return labels


def instances_from_classes(probabilities, interior_threshold=0.5, min_seed_size=4, min_size=8):
    """Instances from a background / interior / boundary prediction of one image.

    probabilities (3, H, W): softmax of the classes (0 background, 1 interior, 2 boundary).
    seeds      = components of p(interior) > interior_threshold, pieces under
                 ``min_seed_size`` pixels dropped (noise);
    foreground = p(background) < 0.5;
    instances  = watershed(1 - p(interior), seeds, mask=foreground), then
                 instances under ``min_size`` pixels dropped.
    Returns (H, W) int64 labels 0..n.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 3 or probabilities.shape[0] != 3:
        raise ValueError(f"probabilities must be (3, H, W) (background, interior, boundary), "
                         f"got shape {probabilities.shape}")
    seeds = remove_small(label_components(probabilities[1] > interior_threshold), min_seed_size)
    foreground = probabilities[0] < 0.5
    return remove_small(watershed(1.0 - probabilities[1], seeds, mask=foreground), min_size)
