"""Shapes: the embedded default dataset, generated from a seed.

Every image shows 2 to 4 shapes on a smoothly varying background::

    class 0  background      class 2  square
    class 1  circle          class 3  triangle

Shapes are drawn one after the other, so a later shape occludes an earlier
one, and the mask says which shape is on top at each pixel. Circles are the
most common shape and triangles the rarest, so the classes are imbalanced
(and the background is the largest class of all).

Only the *outline* tells the classes apart. All three kinds are drawn with
the same distribution of area, rotation, brightness and stripe texture, so a
model cannot segment them by size or intensity alone.

Rendering is vectorised: each shape is one boolean test over the whole pixel
grid (``yy, xx = np.meshgrid(...)``). A regular polygon is the intersection
of half-planes; a point p is inside an n-gon with centre c, apothem a (the
distance from the centre to a side) and rotation t iff, for every side k,

    n_k . (p - c) <= a,       n_k = (cos t_k, sin t_k),  t_k = t + 2 pi k / n

The loops run over images and shapes, never over pixels.

Sizes are measured at 64 x 64 and scale with ``min(H, W) / 64``: a circle's
radius r is drawn from [6, 16] px, and squares and triangles get the apothem
that gives them the same area pi r^2.
"""
from __future__ import annotations

import numpy as np

from .dataset import SegmentationDataset, image_hw, standardize

CLASS_NAMES = ("background", "circle", "square", "triangle")
CLASS_PROBS = (0.45, 0.33, 0.22)  # circle, square, triangle: deliberately unequal
SHAPES_PER_IMAGE = (2, 4)  # inclusive range
RADIUS_RANGE = (6.0, 16.0)  # px at 64 x 64
NOISE_STD = 0.15
STRIPE_AMPLITUDE = 0.3  # largest amplitude of a shape's stripes
MIN_CENTRE_DISTANCE = 0.7  # centres keep >= this * (r_i + r_j) apart (when possible)
# Seeds of the splits: Shapes.splits and get_dataset("shapes", split) add these.
SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_000, "test": 2_000_000}

# Apothem / radius giving a regular n-gon the area pi r^2 of the circle:
# area of an n-gon with apothem a is n a^2 tan(pi / n).
_EQUAL_AREA_APOTHEM = {n: float(np.sqrt(np.pi / (n * np.tan(np.pi / n)))) for n in (3, 4)}
_SIDES = {2: 4, 3: 3}  # class -> number of sides (square, triangle)


def circle_mask(yy, xx, cy, cx, radius):
    """Boolean (H, W): pixels whose centre lies within ``radius`` of (cy, cx)."""
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def polygon_mask(yy, xx, cy, cx, apothem, n_sides, angle):
    """Boolean (H, W): inside of a regular ``n_sides``-gon, as n half-plane tests.

    yy, xx: (H, W) pixel coordinates; (cy, cx) the centre; ``apothem`` the
    distance from the centre to each side; ``angle`` (radians) rotates it.
    """
    dy, dx = yy - cy, xx - cx
    inside = np.ones(np.shape(yy), dtype=bool)
    for k in range(n_sides):
        t = angle + 2 * np.pi * k / n_sides
        inside &= dx * np.cos(t) + dy * np.sin(t) <= apothem
    return inside


def shape_mask(yy, xx, shape):
    """Boolean (H, W) footprint of one shape record (see ``draw_geometry``)."""
    cls, cy, cx, radius, angle = shape
    if cls == 1:
        return circle_mask(yy, xx, cy, cx, radius)
    n = _SIDES[cls]
    return polygon_mask(yy, xx, cy, cx, _EQUAL_AREA_APOTHEM[n] * radius, n, angle)


def draw_geometry(rng, h, w):
    """Random shapes for one image: a list of (class, cy, cx, radius, angle).

    Centres keep a distance of at least MIN_CENTRE_DISTANCE * (r_i + r_j) from
    each other (50 tries, then the last try is kept), so shapes overlap but
    rarely hide one another completely.
    """
    scale = min(h, w) / 64
    count = rng.integers(SHAPES_PER_IMAGE[0], SHAPES_PER_IMAGE[1] + 1)
    shapes = []
    for _ in range(count):
        cls = 1 + rng.choice(3, p=CLASS_PROBS)
        radius = rng.uniform(*RADIUS_RANGE) * scale
        angle = rng.uniform(0, 2 * np.pi)
        for _try in range(50):
            cy = rng.uniform(0.5 * radius, h - 1 - 0.5 * radius)
            cx = rng.uniform(0.5 * radius, w - 1 - 0.5 * radius)
            if all(np.hypot(cy - s[1], cx - s[2]) >= MIN_CENTRE_DISTANCE * (radius + s[3]) for s in shapes):
                break
        shapes.append((int(cls), cy, cx, radius, angle))
    return shapes


def render_background(rng, yy, xx, channels):
    """(C, H, W) level + linear gradient in a random direction, per channel."""
    h, w = yy.shape
    level = rng.uniform(-0.2, 0.2, size=(channels, 1, 1))
    slope = rng.uniform(0.0, 0.6, size=(channels, 1, 1))
    phi = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * np.cos(phi) + (yy - h / 2) * np.sin(phi)) / max(h, w)
    return level + slope * ramp


def render_texture(rng, yy, xx, channels, scale):
    """(C, H, W) one shape's look: brightness per channel + sinusoidal stripes."""
    brightness = rng.uniform(0.5, 1.5, size=(channels, 1, 1))
    amplitude = rng.uniform(0.0, STRIPE_AMPLITUDE)
    period = rng.uniform(3.0, 8.0) * scale
    psi, phase = rng.uniform(0, 2 * np.pi, size=2)
    stripes = np.sin(2 * np.pi * (xx * np.cos(psi) + yy * np.sin(psi)) / period + phase)
    return brightness + amplitude * stripes


def render_image(geometry, look_rng, h, w, channels):
    """One image (C, H, W) float64 (not normalised) and its mask (H, W) int64."""
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    image = render_background(look_rng, yy, xx, channels)
    image = np.broadcast_to(image, (channels, h, w)).copy()
    mask = np.zeros((h, w), dtype=np.int64)
    for shape in geometry:  # later shapes occlude earlier ones
        inside = shape_mask(yy, xx, shape)
        texture = render_texture(look_rng, yy, xx, channels, min(h, w) / 64)
        image[:, inside] = texture[:, inside]
        mask[inside] = shape[0]
    image += NOISE_STD * look_rng.standard_normal(image.shape)
    return image, mask


class Shapes(SegmentationDataset):
    """``num_images`` generated images, the same ones for the same seed.

    images (N, C, H, W) float32, each image and channel standardised to mean 0
    and std 1; masks (N, H, W) int64 in {0: background, 1: circle,
    2: square, 3: triangle}. ``image_size`` is an int or an (H, W) pair;
    ``channels`` is 1 (grey) or 3 (each shape gets its own colour).

    Two random streams are derived from ``seed``: one for geometry, one for
    appearance, so the masks do not depend on ``channels``. Images are drawn
    one after the other, so ``Shapes(n, seed=s)`` is the first n images of
    ``Shapes(m, seed=s)`` for m > n.
    """

    def __init__(self, num_images: int, image_size=64, seed: int = 0, channels: int = 1):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images!r}")
        h, w = image_hw(image_size)
        geometry_rng, look_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        images = np.empty((num_images, channels, h, w), dtype=np.float64)
        masks = np.empty((num_images, h, w), dtype=np.int64)
        for i in range(num_images):
            images[i], masks[i] = self.draw_image(geometry_rng, look_rng, h, w, channels)
        super().__init__(standardize(images), masks, CLASS_NAMES)
        self.seed = seed

    def draw_image(self, geometry_rng, look_rng, h, w, channels):
        """One image (C, H, W) float64 and its mask (H, W) int64, from the two random streams.

        The hook a subclass replaces to place the shapes otherwise
        (``InstanceShapes`` clusters them and keeps one mask per object).
        """
        return render_image(draw_geometry(geometry_rng, h, w), look_rng, h, w, channels)

    @classmethod
    def splits(cls, n_train: int, n_val: int, image_size=64, seed: int = 0, channels: int = 1):
        """(train, val) datasets drawn with seeds ``seed`` and ``seed + 1_000_000``."""
        train = cls(n_train, image_size, seed + SPLIT_SEED_OFFSET["train"], channels)
        val = cls(n_val, image_size, seed + SPLIT_SEED_OFFSET["val"], channels)
        return train, val
