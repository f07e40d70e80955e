# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11. Detection: RoI pooling, RoIAlign, YOLO and mAP
#
# *Lecture 004 ("R-CNN (Region-based CNN)", "Fast R-CNN", "Faster R-CNN", "YOLO (You Only Look Ones)",
# "One-stage и two-stage детекторы", "Метрики в сегментации и детекции: mean Average Precision (mAP)").*
#
# Notebook 10 ended the sliding window with one fixed box per cell. Lecture 004 then goes two ways:
#
# * **two-stage** detectors (the R-CNN family) first find region proposals, then look at each one; the
#   operation that "pools each RoI into a fixed-size feature map" is **RoI pooling** (Fast R-CNN) and,
#   without its rounding, **RoIAlign** (Mask R-CNN);
# * **one-stage** detectors (YOLO, SSD, RetinaNet) predict boxes from a grid in one pass: YOLO's
#   $S \times S \times (B \cdot 5 + C)$ tensor.
#
# Both are graded by **mAP**, "how well the model localises objects and predicts their classes". This
# notebook builds each piece from the library's ops, checks the library against loops, trains a tiny YOLO
# on generated shapes, and computes AP by hand.

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=3, suppress=True)

# %%
import math
import tempfile
import time

from minimal_seg import functional as F
from minimal_seg import metrics, nn
from minimal_seg.data import InstanceShapes
from minimal_seg.gradcheck import gradcheck
from minimal_seg.models.blocks import Encoder
from minimal_seg.models.yolo import YOLO, encode_targets
from minimal_seg.train_detect import DetectConfig, detect, plot_detections, train_detect
from minimal_seg.viz import draw_boxes, to_display

# %% [markdown]
# ## 11.1 The data: Instance Shapes
#
# `InstanceShapes` draws the shapes of `Shapes` in clusters: each shape touches or overlaps an earlier
# one. Every object has its visible mask, its box $(x_1, y_1, x_2, y_2)$ around the visible pixels and a
# class (1 circle, 2 square, 3 triangle). The target dicts have the format `metrics.mean_average_precision`
# takes.

# %%
data = InstanceShapes(6, image_size=64, seed=1_000_000)   # the first validation images
names = data.class_names
fig, axes = plt.subplots(1, 6, figsize=(15, 2.8))
for ax, i in zip(axes, range(6)):
    ax.imshow(to_display(data.images[i]), cmap="gray")
    t = data.target(i)
    draw_boxes(ax, t["boxes"], [names[c] for c in t["labels"]], linewidth=1.2)
    ax.set_axis_off()
plt.show()
print({k: (v.shape, v.dtype.name) for k, v in data.target(0).items()})

# %% [markdown]
# ## 11.2 The R-CNN family, built from our ops
#
# Each diagram below is drawn from the shapes that the library's ops actually return, on one 64 x 64
# image and $K = 32$ proposals (random boxes here: the point is the data flow and its cost, so the
# weights are untrained).
#
# * **R-CNN**: crop every proposal from the *image*, resize it to a fixed size, run the whole CNN on it:
#   $K$ CNN passes per image ("~1 minute per image" in the lecture, with ~2000 proposals).
# * **Fast R-CNN**: run the CNN *once*; cut each proposal out of the *feature map* with **RoI pooling**
#   (a fixed $P \times P$ grid per box), then small FC layers per RoI: class scores and box offsets.
# * **Faster R-CNN**: the proposals come from the network too, a **Region Proposal Network** (a 3 x 3 conv
#   and 1 x 1 convs that score $A$ anchor boxes at every feature cell).

# %%
rng = np.random.default_rng(0)
image = data.images[:1]
K, P, A = 32, 4, 3                                    # proposals, pooled size, anchors per cell
corner = rng.uniform(0, 40, (K, 2))
proposals = np.concatenate([np.zeros((K, 1)), corner, corner + rng.uniform(8, 24, (K, 2))], axis=1)
backbone = Encoder(1, [8, 16, 32], rng)               # two 2x2 pools: feature stride 4
head = nn.Sequential(nn.Flatten(), nn.Linear(32 * P * P, 64, rng=rng), nn.ReLU(),
                     nn.Linear(64, 4 + 4 * 3, rng=rng))    # C + 1 = 4 class scores, 4 offsets per class
rpn = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.Conv2d(32, 5 * A, 1, rng=rng))


def timed(fn, repeat=3):
    """(result, best wall time in ms of ``repeat`` runs)."""
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, 1000 * best


def rcnn():
    crops = []
    for _, x1, y1, x2, y2 in proposals:                # one crop, one resize, one CNN pass per proposal
        crop = image[:, :, int(y1):int(y2) + 1, int(x1):int(x2) + 1]
        crops.append(F.upsample_bilinear_forward(crop, size=16)[0])
    features = [backbone(c)[-1] for c in crops]        # K x (1, 32, 4, 4)
    return head(np.concatenate(features))


def fast_rcnn():
    feature = backbone(image)[-1]                      # (1, 32, 16, 16): once per image
    pooled, _ = F.roi_pool2d_forward(feature, proposals.astype(np.float32), P, spatial_scale=1 / 4)
    return head(pooled)


def faster_rcnn():
    feature = backbone(image)[-1]
    scores = rpn(feature)                              # (1, 5A, 16, 16): objectness + 4 offsets per anchor
    objectness = scores[0, :A].reshape(-1)
    best = np.argsort(-objectness)[:K]                 # top-K anchors -> proposals (offsets not applied here)
    cy, cx = np.divmod(best % 256, 16)
    boxes = np.stack([np.zeros(K), 4 * cx - 6, 4 * cy - 6, 4 * cx + 10, 4 * cy + 10], axis=1)
    pooled, _ = F.roi_align2d_forward(feature, boxes.astype(np.float32), P, spatial_scale=1 / 4, aligned=True)
    return head(pooled)


with backbone.eval_mode():
    out_r, ms_r = timed(rcnn)
    out_f, ms_f = timed(fast_rcnn)
    out_fr, ms_fr = timed(faster_rcnn)
feature = backbone(image)[-1]
print(f"R-CNN {ms_r:.1f} ms, Fast R-CNN {ms_f:.1f} ms, Faster R-CNN {ms_fr:.1f} ms per image "
      f"(K = {K} proposals); every head output is {out_f.shape}")


# %%
def draw_pipeline(ax, stages, title):
    """Boxes left to right, one per stage: its name and the shape the op returned."""
    for i, (name, shape) in enumerate(stages):
        ax.add_patch(plt.Rectangle((i * 2.2, 0), 1.8, 1, fill=True, color="#dde8f5", ec="k"))
        ax.text(i * 2.2 + 0.9, 0.62, name, ha="center", va="center", fontsize=8.5)
        ax.text(i * 2.2 + 0.9, 0.3, str(shape), ha="center", va="center", fontsize=7.5, color="tab:blue")
        if i:
            ax.annotate("", (i * 2.2, 0.5), (i * 2.2 - 0.4, 0.5), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(-0.1, len(stages) * 2.2)
    ax.set_ylim(-0.1, 1.1)
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_axis_off()


crop_shape = (K, 1, 16, 16)
pooled_shape = F.roi_pool2d_forward(feature, proposals.astype(np.float32), P, spatial_scale=1 / 4)[0].shape
fig, axes = plt.subplots(3, 1, figsize=(14, 4.6))
draw_pipeline(axes[0], [("image", image.shape), ("K crops + resize", crop_shape),
                        ("CNN, K times", (K,) + feature.shape[1:2] + (4, 4)), ("FC head", out_r.shape)],
              f"R-CNN: {ms_r:.1f} ms")
draw_pipeline(axes[1], [("image", image.shape), ("CNN once", feature.shape), ("+ K proposals", proposals.shape),
                        ("RoI pooling", pooled_shape), ("FC head", out_f.shape)], f"Fast R-CNN: {ms_f:.1f} ms")
draw_pipeline(axes[2], [("image", image.shape), ("CNN once", feature.shape), ("RPN", rpn(feature).shape),
                        ("top-K anchors", (K, 5)), ("RoIAlign", pooled_shape), ("FC head", out_fr.shape)],
              f"Faster R-CNN: {ms_fr:.1f} ms")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 11.3 RoI pooling, by loops and by the library
#
# Fast R-CNN's RoI pooling (torchvision's semantics, which the library follows): round the box to whole
# feature cells (halves away from zero), split it into $P_H \times P_W$ bins with floor/ceil edges, take
# the max of each bin:
#
# $$\text{bin } (i, j):\ \text{rows } y_1 + \lfloor i\,h/P_H \rfloor \ldots y_1 + \lceil (i+1)\,h/P_H \rceil - 1,
# \quad h = y_2 - y_1 + 1 .$$
#
# The loop below is the whole algorithm; the library does the same for all boxes and bins at once.

# %%
def roi_pool_loop(x, roi, size, scale=1.0):
    """One box, one image plane (H, W): the max of each bin, and where it was."""
    _, x1, y1, x2, y2 = (math.floor(abs(v * scale) + 0.5) * np.sign(v) for v in roi)   # round half away
    h, w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
    out, where = np.zeros((size, size)), np.zeros((size, size), dtype=int)
    for i in range(size):
        for j in range(size):
            r0, r1 = int(y1 + math.floor(i * h / size)), int(y1 + math.ceil((i + 1) * h / size))
            c0, c1 = int(x1 + math.floor(j * w / size)), int(x1 + math.ceil((j + 1) * w / size))
            r0, r1, c0, c1 = max(r0, 0), min(r1, x.shape[0]), max(c0, 0), min(c1, x.shape[1])
            window = x[r0:r1, c0:c1]
            out[i, j] = window.max()
            where[i, j] = (r0 + window.argmax() // window.shape[1]) * x.shape[1] + c0 + window.argmax() % window.shape[1]
    return out, where


plane = rng.permutation(64).reshape(8, 8).astype(np.float64)      # no ties
roi = np.array([0, 1.4, 0.6, 6.5, 5.2])                            # rounds to x 1..7 (6.5 -> 7), y 1..5
loop_out, loop_where = roi_pool_loop(plane, roi, 2)
lib_out, cache = F.roi_pool2d_forward(plane[None, None], roi[None], 2)
print("loop:\n", loop_out, "\nlibrary:\n", lib_out[0, 0])
assert np.array_equal(loop_out, lib_out[0, 0]) and np.array_equal(loop_where, cache.argmax[0, 0])

fig, ax = plt.subplots(figsize=(4.2, 4.2))
ax.imshow(plane, cmap="Greys", alpha=0.5)
for (r, c), v in np.ndenumerate(plane):
    ax.text(c, r, int(v), ha="center", va="center", fontsize=8,
            color="tab:red" if r * 8 + c in cache.argmax else "k")
ax.add_patch(plt.Rectangle((roi[1] - 0.5, roi[2] - 0.5), roi[3] - roi[1], roi[4] - roi[2], fill=False,
                           ec="tab:blue", lw=2, ls="--", label="the box"))
ax.add_patch(plt.Rectangle((0.5, 0.5), 7, 5, fill=False, ec="tab:orange", lw=2, label="after rounding"))
ax.legend(loc="lower left", fontsize=8)
ax.set_title("RoI pooling 2 x 2: the maxima (red)")
plt.show()

# %% [markdown]
# The rounding moved the box by up to half a cell on each side. On a stride-16 feature map that is up to
# 8 image pixels, which matters for a mask but hardly for a class: the reason for RoIAlign.
#
# The backward pass sends each output's gradient to the pixel that won its bin, like max pooling:

# %%
dout = rng.standard_normal((1, 1, 2, 2))
dx = F.roi_pool2d_backward(dout, cache)
print("gradient lands on the maxima only:", np.flatnonzero(dx[0, 0]), "= the winners", np.unique(cache.argmax))
assert np.array_equal(np.flatnonzero(dx[0, 0]), np.unique(cache.argmax))   # a pixel winning two bins gets both
report = gradcheck(F.roi_pool2d_forward, F.roi_pool2d_backward, {"x": plane[None, None] * 0.1, "rois": roi[None]},
                   kwargs={"output_size": 2}, wrt=("x",))
print(report)

# %% [markdown]
# ## 11.4 RoIAlign: sampling points instead of rounding
#
# RoIAlign keeps the box in continuous coordinates. Each bin is sampled at a $G \times G$ grid of points
# (adaptive: $G = \lceil \text{box size} / P \rceil$), each point is read by **bilinear interpolation**
# of the four cells around it, and the bin is their average. With `aligned=True` the box is shifted by
# half a cell, so that a pixel's centre sits at $+0.5$ (Detectron2's correction).
#
# The points of one box, drawn over the feature cells (cell $(r, c)$ spans $[c, c+1] \times [r, r+1]$
# in these continuous coordinates):

# %%
def sample_points(roi, size, ratio=-1, aligned=False):
    """The (y, x) sample points of every bin of one box, as the library computes them."""
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v - off for v in roi[1:])
    h, w = (y2 - y1, x2 - x1) if aligned else (max(y2 - y1, 1), max(x2 - x1, 1))
    gh = ratio if ratio > 0 else math.ceil(h / size)
    gw = ratio if ratio > 0 else math.ceil(w / size)
    return {(i, j): [(y1 + (i + (a + 0.5) / gh) * h / size, x1 + (j + (b + 0.5) / gw) * w / size)
                     for a in range(gh) for b in range(gw)] for i in range(size) for j in range(size)}


def bilinear(x, y, xx):
    """Read plane x at the continuous point (y, xx) as RoIAlign does (0 outside [-1, H] x [-1, W])."""
    h, w = x.shape
    if y < -1 or y > h or xx < -1 or xx > w:
        return 0.0
    y, xx = min(max(y, 0), h - 1), min(max(xx, 0), w - 1)
    r, c = min(int(y), h - 2), min(int(xx), w - 2)
    ly, lx = y - r, xx - c
    return ((1 - ly) * (1 - lx) * x[r, c] + (1 - ly) * lx * x[r, c + 1]
            + ly * (1 - lx) * x[r + 1, c] + ly * lx * x[r + 1, c + 1])


roi_a = np.array([0, 1.3, 0.8, 6.1, 5.9])
for aligned in (False, True):
    points = sample_points(roi_a, 2, aligned=aligned)
    loop = np.array([[np.mean([bilinear(plane, y, xx) for y, xx in points[i, j]]) for j in range(2)]
                     for i in range(2)])
    lib, _ = F.roi_align2d_forward(plane[None, None], roi_a[None], 2, aligned=aligned)
    print(f"aligned={aligned}: loop {loop.ravel()}, library {lib.ravel()}")
    assert np.allclose(loop, lib[0, 0], atol=1e-12)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
for ax, aligned in zip(axes, (False, True)):
    for k in range(9):
        ax.axhline(k, color="0.85", lw=0.8); ax.axvline(k, color="0.85", lw=0.8)
    off = 0.5 if aligned else 0
    ax.add_patch(plt.Rectangle((roi_a[1] - off, roi_a[2] - off), roi_a[3] - roi_a[1], roi_a[4] - roi_a[2],
                               fill=False, ec="tab:blue", lw=2))
    for (i, j), pts in sample_points(roi_a, 2, aligned=aligned).items():
        ys, xs = zip(*pts)
        ax.plot(xs, ys, "o", ms=4, color=plt.cm.tab10(2 * i + j + 1))
    ax.set_xlim(0, 8); ax.set_ylim(8, 0); ax.set_aspect("equal")
    ax.set_title(f"aligned={aligned}: {len(pts)} points per bin, 4 bins")
plt.show()

# %% [markdown]
# RoIAlign is linear in the feature map: every output is a weighted sum of cells, and the weights of one
# box are separable, a $(P, H)$ matrix $A$ for the rows and a $(P, W)$ matrix $B$ for the columns, so
# $\text{out} = A\,x\,B^\top$ and the backward pass is $A^\top\,\text{dout}\,B$: the library's whole
# implementation. The float64 gradient check agrees:

# %%
lib, cache_a = F.roi_align2d_forward(plane[None, None], roi_a[None], 2)
assert np.allclose(cache_a.a[0] @ plane @ cache_a.b[0].T, lib[0, 0])
report = gradcheck(F.roi_align2d_forward, F.roi_align2d_backward,
                   {"x": rng.standard_normal((2, 3, 8, 8)), "rois": np.array([roi_a, [1, 0.2, 2.5, 7.7, 6.0]])},
                   kwargs={"output_size": 3, "sampling_ratio": 2}, wrt=("x",))
print(report)

# %% [markdown]
# ## 11.5 YOLO's target tensor
#
# YOLO cuts the image into an $S \times S$ grid. The cell that holds an object's box centre is
# responsible for it and its target row reads: objectness 1, the centre $(x, y)$ inside the cell (0..1),
# the size $(w, h)$ as fractions of the image, and the one-hot class. Every other cell has objectness 0.
# With $S = 8$, $B = 2$ and $C = 3$ the network predicts $8 \times 8 \times (2 \cdot 5 + 3)$ numbers.

# %%
S = 8
i0 = 1                                                  # a triangle, a circle and a square
target = encode_targets([data.target(i0)], num_classes=3, grid=S, image_size=64)[0]   # (5 + C, S, S)
print("target tensor:", target.shape, "; cells with an object:", int(target[0].sum()))
fig, axes = plt.subplots(1, 5, figsize=(16, 3.4))
axes[0].imshow(to_display(data.images[i0]), cmap="gray")
for k in range(S + 1):
    axes[0].axhline(k * 8 - 0.5, color="y", lw=0.5); axes[0].axvline(k * 8 - 0.5, color="y", lw=0.5)
objects = data.target(i0)
draw_boxes(axes[0], objects["boxes"], [names[c] for c in objects["labels"]], linewidth=1.2)
centres = (objects["boxes"][:, :2] + objects["boxes"][:, 2:]) / 2
axes[0].plot(centres[:, 0] - 0.5, centres[:, 1] - 0.5, "r+", ms=10)
axes[0].set_title("image, grid, box centres")
panels = [(target[0], "objectness"), (target[1], "x in cell"), (target[3], "w / image width"),
          (np.where(target[0] > 0, target[5:].argmax(0) + 1, 0), "class (1..3)")]
for ax, (values, title) in zip(axes[1:], panels):
    ax.imshow(values, cmap="viridis")
    for (r, c), v in np.ndenumerate(values):
        if target[0, r, c]:
            ax.text(c, r, f"{v:.2f}" if title != "class (1..3)" else names[int(v)][:3], ha="center",
                    va="center", fontsize=7, color="w")
    ax.set_title(title)
plt.show()

# %% [markdown]
# The loss (`functional.yolo_loss_forward`, the paper's equation 3) compares the predictions with this
# tensor. In an object's cell, of the $B$ boxes the one with the highest IoU with the truth is
# *responsible*: its $x, y$ and $\sqrt w, \sqrt h$ are pulled to the target (weight $\lambda_\text{coord}
# = 5$) and its confidence to 1; every other box's confidence is pulled to 0 (weight $\lambda_\text{noobj}
# = 0.5$, there are many of them); the class probabilities of the cell are pulled to the one-hot class.
# The square roots make a few pixels of error cost more on a small box than on a large one. Its backward
# pass is written by hand and passes the gradient check away from ties of the responsible choice:

# %%
pred = rng.standard_normal((2, 13, S, S))
targets2 = encode_targets([data.target(0), data.target(1)], 3, S, 64).astype(np.float64)
loss, cache_y = F.yolo_loss_forward(pred, targets2)
print("loss", float(loss), {k: round(float(v), 3) for k, v in cache_y.terms.items()})
print(gradcheck(F.yolo_loss_forward, F.yolo_loss_backward, {"pred": pred, "target": targets2}, wrt=("pred",)))

# %% [markdown]
# ## 11.6 Training a tiny YOLO
#
# `train_detect` is the loop of `python -m minimal_seg train --task detect` (see README for the full
# run: 6000 images, 8 epochs, mAP@0.5 0.80 in about 6 CPU minutes). Here a small budget: 8 base channels,
# 480 images, 6 epochs.

# %%
with tempfile.TemporaryDirectory() as out:
    config = DetectConfig(num_train=480, num_val=64, epochs=6, base_channels=8, batch_size=16, lr=4e-3, out=out)
    t0 = time.perf_counter()
    run = train_detect(config, progress=False)
    seconds = time.perf_counter() - t0
model, val_set = run["model"], run["val_set"]
print(f"trained in {seconds:.0f} s")

# %%
found = detect(model, val_set.images)
fig, axes = plt.subplots(1, 6, figsize=(16, 3))
for ax, i in zip(axes, range(6)):
    plot_detections(ax, val_set.images[i], val_set.target(i), found[i], names)
plt.suptitle("held-out images: true boxes dashed, detections with score >= 0.3 solid")
plt.show()

# %% [markdown]
# ## 11.7 One stage against two
#
# The lecture: two-stage detectors have "higher quality, longer prediction time", one-stage ones "lower
# quality, shorter time". The times measured here, per 64 x 64 image, with the backbones of similar size:

# %%
x1 = val_set.images[:1]
with model.eval_mode():
    _, ms_yolo = timed(lambda: detect(model, x1))
candidates = S * S * 2
print(f"YOLO (one pass + decoding + NMS over {candidates} boxes): {ms_yolo:.1f} ms")
print(f"Fast R-CNN with K = {K} given proposals: {ms_f:.1f} ms; Faster R-CNN (RPN + RoIAlign): {ms_fr:.1f} ms; "
      f"R-CNN: {ms_r:.1f} ms")
print(f"R-CNN / Fast R-CNN = {ms_r / ms_f:.1f}x: the CNN runs {K} times instead of once")

# %% [markdown]
# On this machine R-CNN costs many Fast R-CNN passes, since the CNN runs once per proposal; Fast and
# Faster R-CNN run the CNN once and add a per-RoI head that grows with $K$ (real detectors use
# $K \approx 300$-$2000$ proposals and a large FC head per RoI, where here $K = 32$ and the head is tiny),
# while YOLO's cost does not depend on the number of objects at all: every one of its
# $S^2 B = 128$ boxes comes out of the same pass. The quality side of the trade-off shows in YOLO's
# limits, visible on Instance Shapes: one class per cell and a coarse grid, so two objects whose centres
# share a cell cannot both be found, and small boxes are localised only as well as an 8-pixel cell
# allows; a two-stage detector re-examines every proposal at a fixed resolution (RoIAlign) and has no such
# limit. (The companion instance-segmentation notebook trains a two-stage model on the same data.)
#
# ## 11.8 Precision, recall and AP by hand
#
# For one class and one IoU threshold: sort all detections of the class (over all images) by score;
# walk down the list; a detection is a true positive if it overlaps a not-yet-found true object of its
# class with IoU $\ge t$ (the best such object), else a false positive. After each step
#
# $$\text{precision} = \frac{TP}{TP + FP}, \qquad \text{recall} = \frac{TP}{\#\text{true objects}} .$$
#
# AP is the area under this curve, COCO-style: make precision non-increasing (each point takes the best
# precision at any higher recall) and average it at the 101 recall levels $0, 0.01, \ldots, 1$.

# %%
label, t = 1, 0.5                                       # circles, IoU 0.5
rows = []                                               # (score, image, detection box)
for i, d in enumerate(found):
    for box, score, lab in zip(d["boxes"], d["scores"], d["labels"]):
        if lab == label:
            rows.append((score, i, box))
truth = {i: val_set.target(i)["boxes"][val_set.target(i)["labels"] == label] for i in range(len(val_set))}
n_true = sum(len(b) for b in truth.values())
# the best-scoring 100 per image count (COCO); here there are fewer
taken = {i: np.zeros(len(b), bool) for i, b in truth.items()}
flags = []
for score, i, box in sorted(rows, key=lambda r: -r[0]):
    ious = metrics.box_iou(box[None].astype(np.float64), truth[i].astype(np.float64))[0] if len(truth[i]) else []
    best, match = t, -1
    for g, v in enumerate(ious):
        if not taken[i][g] and v >= best:
            best, match = v, g
    if match >= 0:
        taken[i][match] = True
    flags.append(match >= 0)
tp = np.cumsum(flags)
precision, recall = tp / np.arange(1, len(flags) + 1), tp / n_true
envelope = [max(precision[k:]) for k in range(len(precision))]
levels = np.linspace(0, 1, 101)
interp = [next((envelope[k] for k in range(len(recall)) if recall[k] >= r), 0.0) for r in levels]
ap_hand = float(np.mean(interp))

curve = metrics.precision_recall_curve(found, val_set.targets, label=label, iou_threshold=t)
coco = metrics.mean_average_precision(found, val_set.targets, iou_thresholds=[t])
ap_lib = coco["map_per_class"][list(coco["classes"]).index(label)]
print(f"{len(flags)} circle detections, {n_true} true circles: AP@0.5 by hand {ap_hand:.6f}, "
      f"library {curve['ap']:.6f} and {ap_lib:.6f}")
assert np.isclose(ap_hand, curve["ap"], atol=1e-12) and np.isclose(ap_hand, ap_lib, atol=1e-12)
assert np.allclose(precision, curve["precision"]) and np.allclose(recall, curve["recall"])

fig, ax = plt.subplots(figsize=(5, 3.8))
ax.plot(recall, precision, ".-", lw=1, label="precision after each detection")
ax.step(levels, interp, where="post", color="tab:red", label=f"interpolated: AP = {ap_hand:.3f}")
ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.05), title="circles, IoU >= 0.5")
ax.legend(loc="lower left", fontsize=8)
plt.show()

# %% [markdown]
# mAP averages AP over the classes, and COCO's headline number also over ten IoU thresholds
# $0.50, 0.55, \ldots, 0.95$, so a box must be placed well, not just roughly, to score. The library's
# numbers equal pycocotools' (the tests check 20+ random cases):

# %%
full = metrics.mean_average_precision(found, val_set.targets)
print(f"mAP@[.5:.95] {full['map']:.3f}   mAP@0.5 {full['map_50']:.3f}   mAP@0.75 {full['map_75']:.3f}")
print("AP@[.5:.95] per class:", {names[c]: round(float(v), 3) for c, v in zip(full["classes"], full["map_per_class"])})

# %% [markdown]
# ## Summary
#
# * Two-stage detectors (R-CNN, Fast, Faster R-CNN) propose regions, then classify and refine each one;
#   Fast R-CNN made the CNN run once per image by pooling each region from the feature map.
# * RoI pooling rounds the box to cells and max-pools $P \times P$ bins (gradient to the winners);
#   RoIAlign samples bilinearly at $G \times G$ points per bin, with no rounding, and is linear:
#   $A\,x\,B^\top$ per box, backward $A^\top\,\text{dout}\,B$.
# * YOLO predicts an $S \times S \times (B \cdot 5 + C)$ tensor in one pass; the target holds one object
#   per cell, the loss trains the responsible box (best IoU), with $\sqrt w, \sqrt h$ and
#   $\lambda_\text{coord}, \lambda_\text{noobj}$.
# * AP: sort by score, greedy matching at an IoU threshold, precision-recall curve, the 101-point
#   interpolated mean; mAP averages over classes (and COCO over IoU 0.5:0.95).
#
# ## Exercises
#
# 1. RoI pooling with `spatial_scale=1/16`: how far (in image pixels) can the pooled region be from the
#    box? Measure it with boxes at random sub-pixel offsets.
# 2. Show that RoIAlign's output is continuous in the box coordinates and RoI pooling's is not: plot one
#    output entry of each against $x_1$.
# 3. Train the YOLO of 11.6 with `boxes_per_cell=1`, then with $\lambda_\text{noobj} = 1$; compare
#    mAP@0.5 with the run above.
#
# <details><summary>Hints for the exercises</summary>
#
# 1. Each edge is rounded to the nearest feature cell, so it moves by up to half a cell: $16 / 2 = 8$
#    image pixels. Compare $x_1$ with `16 * round(x1 / 16)` (halves away from zero, as in 11.3) for many
#    random $x_1$, and likewise $x_2$.
# 2. Keep one feature map and one box, sweep $x_1$ from 2 to 4 in steps of 0.05, and plot
#    `out[0, 0, 0, 0]` of `F.roi_pool2d_forward` and of `F.roi_align2d_forward`: the first jumps where
#    the rounded edge changes, the second moves smoothly (bilinear weights are continuous).
# 3. Both are fields of `DetectConfig` (`boxes_per_cell`, `lambda_noobj`); change one at a time and keep
#    the seed, so the difference is the setting's.
#
# </details>
#
# ## Check your understanding
#
# 1. A box from $x_1 = 2.5$ to $x_2 = 9.5$ on a stride-1 map: which columns does RoI pooling use, and what
#    would `numpy.round` have given?
#
# <details><summary>Answer</summary>
#
# Rounding halves away from zero: $x_1 \to 3$, $x_2 \to 10$, columns 3..10 (width $10 - 3 + 1 = 8$).
# `numpy.round` rounds halves to even: $2.5 \to 2$, $9.5 \to 10$, columns 2..10, a different box. That is
# why the library writes its own rounding.
# </details>
#
# 2. Why does RoIAlign's gradient with respect to the feature map reach pixels *outside* the box, and why
#    does RoI pooling's not?
#
# <details><summary>Answer</summary>
#
# A sample point near the box edge is interpolated from the four cells around it, and some of them lie
# outside the box, so they get a share of the gradient (the weights $A$, $B$ are nonzero there). RoI
# pooling reads only the cells of its rounded bins and passes the gradient to one winner per bin.
# </details>
#
# 3. In YOLO's loss, why is the confidence of the non-responsible boxes weighted by
#    $\lambda_\text{noobj} = 0.5$ and the coordinates by $\lambda_\text{coord} = 5$?
#
# <details><summary>Answer</summary>
#
# Most of the $S^2 B$ boxes contain no object; without a small weight their "confidence 0" errors would
# dominate the sum and push every confidence to 0. The coordinates concern only the few responsible
# boxes, so they get a large weight to matter at all.
# </details>
#
# 4. A detector outputs a second, slightly shifted copy of every correct box, with a lower score. What
#    happens to precision, recall and AP?
#
# <details><summary>Answer</summary>
#
# The copies are false positives (each true object is matched once), so precision drops. Recall does not
# change. If every copy scores below every original, the copies come after full recall on the curve and
# AP is unchanged (the interpolated precision at each recall is taken from the originals); if copies are
# interleaved with originals, AP drops. This is why NMS runs before evaluation.
# </details>
#
# 5. Two objects have their centres in the same YOLO cell. What does the target tensor hold, and what is
#    the best AP this model can reach on such an image?
#
# <details><summary>Answer</summary>
#
# One cell holds one object (the library's `encode_targets` keeps the later one), so the other object is
# never a target and can be found only by a box of a neighbouring cell. If it is never found, recall for
# its class stays below 1 and AP is below 1. YOLO v2 and later predict several anchors per cell for this.
# </details>

# %% [markdown]
# ## Where next
#
# * Concept page: [Detection](../concepts/detection.md) (`docs/concepts/detection.md`), with exercises.
# * API: [`functional.roi`](../api/functional/roi.rst) (`roi_pool2d_forward`, `roi_align2d_forward`),
#   [`functional.yolo_loss`](../api/functional/yolo_loss.rst),
#   [YOLO and `train_detect`](../api/detection.rst) (`YOLO`, `encode_targets`, `detect`),
#   [`minimal_seg.metrics`](../api/metrics.rst) (`precision_recall_curve`, `mean_average_precision`),
#   [`minimal_seg.data`](../api/data.rst) (`InstanceShapes`).
# * Assignment: [a7, RoIAlign](../assignments.md#assignment-a7) (`a7_roi_align.py`: the bilinear weights,
#   the forward and backward pass; `python -m minimal_seg check a7 --impl ...`).
# * Next: [notebook 12, instance segmentation](12_instance_segmentation.ipynb).
