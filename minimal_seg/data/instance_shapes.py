"""Instance Shapes: Shapes whose objects touch or overlap, with one mask, box and class per object.

The data set of detection and instance segmentation (lecture 004). Every
image is drawn like a Shapes image (``data/shapes.py``: the same classes,
sizes, textures, background and noise, by the same functions) but its 2 to 4
shapes form a *cluster*: each shape after the first is placed against an
earlier one, its centre at a distance ``f * (r_i + r_j)`` with
f in [TOUCH_RANGE], so neighbours touch (f ~ 1) or overlap (f < 1). Telling
two touching circles apart is what semantic segmentation cannot do and
instance segmentation must.

Per image, for its M objects in drawing order::

    masks   (M, H, W) bool     the *visible* pixels of each object (later shapes occlude)
    boxes   (M, 4)   float32   (x1, y1, x2, y2) around the visible pixels, pixel
                                edges: a pixel (row y, column x) covers [x, x+1) x [y, y+1)
    labels  (M,)     int64     1 circle, 2 square, 3 triangle (0 is the background)

A placement is retried (up to 30 times) until every object keeps at least
MIN_VISIBLE of its own area, so no object is (almost) hidden.
"""
from __future__ import annotations

import numpy as np

from .shapes import Shapes, draw_geometry, render_image, shape_mask

TOUCH_RANGE = (0.6, 1.0)  # centre distance / (r_i + r_j): < 1 overlaps, ~1 touches
MIN_VISIBLE = 0.5  # each object keeps at least this fraction of its own area
PLACEMENT_TRIES = 30


def visible_masks(footprints):
    """(M, H, W) footprints in drawing order -> (M, H, W) visible parts (a later shape hides earlier ones)."""
    later = np.zeros_like(footprints)
    later[:-1] = np.logical_or.accumulate(footprints[::-1], axis=0)[::-1][1:]
    return footprints & ~later


def masks_to_boxes(masks):
    """(M, H, W) bool -> (M, 4) float32 boxes (x1, y1, x2, y2) around each mask's pixels (pixel edges)."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def instance_id_map(masks):
    """(M, H, W) disjoint bool masks -> (H, W) int64: 0 background, m + 1 on mask m's pixels."""
    ids = np.zeros(masks.shape[1:], dtype=np.int64)
    for m, mask in enumerate(masks):
        ids[mask] = m + 1
    return ids


def cluster_geometry(rng, geometry, h, w):
    """Move the shapes of ``draw_geometry`` into a cluster: each one touches or overlaps an earlier one.

    Returns the new list of (class, cy, cx, radius, angle) and the (M, H, W)
    visible masks. Placement: a random earlier shape j, a random direction,
    distance f * (r_j + r), f uniform in TOUCH_RANGE, centre clipped so the
    shape stays mostly inside the image.
    """
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    placed = [geometry[0]]
    footprints = [shape_mask(yy, xx, geometry[0])]
    for cls, _, _, radius, angle in geometry[1:]:
        for _try in range(PLACEMENT_TRIES):
            _, cy, cx, r_j, _ = placed[rng.integers(len(placed))]
            f, phi = rng.uniform(*TOUCH_RANGE), rng.uniform(0, 2 * np.pi)
            cy = float(np.clip(cy + f * (r_j + radius) * np.sin(phi), 0.5 * radius, h - 1 - 0.5 * radius))
            cx = float(np.clip(cx + f * (r_j + radius) * np.cos(phi), 0.5 * radius, w - 1 - 0.5 * radius))
            shape = (cls, cy, cx, radius, angle)
            candidate = np.stack(footprints + [shape_mask(yy, xx, shape)])
            kept = visible_masks(candidate).sum(axis=(1, 2)) / np.maximum(candidate.sum(axis=(1, 2)), 1)
            if kept.min() >= MIN_VISIBLE:
                break
        placed.append(shape)
        footprints.append(candidate[-1])
    return placed, visible_masks(np.stack(footprints))


class InstanceShapes(Shapes):
    """``num_images`` clusters of shapes, the same ones for the same seed.

    As a ``SegmentationDataset``: images (N, C, H, W) float32 (standardised
    per image and channel) and semantic masks (N, H, W) int64 with the
    classes of Shapes. Per object, for detection and instance segmentation:

    ``targets[i]``       dict of image i: ``boxes`` (M, 4) float32 xyxy,
                         ``labels`` (M,) int64 in 1..3, ``masks`` (M, H, W) bool
                         (the format ``metrics.mean_average_precision`` takes);
    ``instance_ids``     (N, H, W) int64: 0 background, m + 1 on object m's pixels.

    ``dataset[i]`` stays ``(image, semantic mask)``; ``dataset.target(i)`` is
    the dict. Every object keeps >= MIN_VISIBLE of its area, unless all 30
    placements failed (the last one is kept; a shape hidden entirely is dropped).
    """

    def __init__(self, num_images: int, image_size=64, seed: int = 0, channels: int = 1):
        self.targets = []  # filled by draw_image, one dict per image
        super().__init__(num_images, image_size, seed, channels)
        self.instance_ids = np.stack([instance_id_map(t["masks"]) for t in self.targets])

    def draw_image(self, geometry_rng, look_rng, h, w, channels):
        """Shapes' hook: cluster the shapes, render them, and keep their boxes, labels and masks."""
        geometry, masks = cluster_geometry(geometry_rng, draw_geometry(geometry_rng, h, w), h, w)
        image, semantic = render_image(geometry, look_rng, h, w, channels)
        present = masks.any(axis=(1, 2))  # a shape hidden entirely (rare) is not an object
        masks, labels = masks[present], np.array([s[0] for s in geometry], dtype=np.int64)[present]
        self.targets.append({"boxes": masks_to_boxes(masks), "labels": labels, "masks": masks})
        return image, semantic

    def target(self, i: int) -> dict:
        """The objects of image i: ``boxes`` (M, 4), ``labels`` (M,), ``masks`` (M, H, W)."""
        return self.targets[i]
