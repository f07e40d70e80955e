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
# # 10. Sliding window and non-maximum suppression
#
# *Lecture 001 ("Скользящее окно", "Классификатор"), lecture 004 ("Детекция объектов (Object Detection)",
# "Non-maximum suppression", "IoU – Intersection over Union").*
#
# Lecture 004 starts detection with "the simplest way": look at small parts of the image and for each one
# predict whether there is an object or not ("рассматривать небольшие части изображения и для каждого из
# них делать предсказание, есть ли объект или нет"). This notebook builds that detector end to end:
#
# 1. a small classifier with fully connected layers, run on **every window**;
# 2. the same classifier with its FC layers turned into **convolutions**, one pass over the image;
# 3. windows with a high score become **boxes** $(x_1, y_1, x_2, y_2, \text{confidence})$;
# 4. overlapping boxes of one object are merged by **non-maximum suppression** (NMS), exactly as the
#    lecture states it, then by the library's vectorised `metrics.nms`;
# 5. **box IoU** and **mask IoU** grade the result.
#
# Notebook 4 used the same classifier for *segmentation* (heatmap -> class mask); notebook 1 (section 1.4)
# ran NMS on jittered nuclei boxes.

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=4, suppress=True)

# %%
import time
from fractions import Fraction

from minimal_seg import functional as F
from minimal_seg import metrics
from minimal_seg.classical import (FCClassifier, connected_components, fc_to_conv, sliding_window_heatmap,
                                   train_classifier, window_crops)
from minimal_seg.data import Shapes
from minimal_seg.viz import colorize, draw_boxes, plot_matrix, to_display

# %% [markdown]
# ## 10.1 A window classifier
#
# The classifier of notebook 4: 16 x 16 windows, two unpadded convolutions with 2 x 2 max pooling, then
# `Flatten` and two fully connected layers. A window's label is the class of its centre pixel
# (background, circle, square, triangle), so "is there an object here?" becomes "is the window centred on
# a shape, and which one?". Trained on 4000 random windows of 128 `Shapes` images (48 x 48) for 4 epochs.

# %%
train_set = Shapes(128, image_size=48, seed=0)
test_set = Shapes(8, image_size=48, seed=2_000_000)
names = train_set.class_names
window, stride = 16, 4
crops, labels = window_crops(train_set.images, train_set.masks, window, count=4000, seed=0)
classifier = FCClassifier(in_channels=1, num_classes=4, window=window, seed=0)
t0 = time.perf_counter()
history = train_classifier(classifier, crops, labels, epochs=4, batch_size=64, lr=3e-3)
classifier.eval()
test_crops, test_labels = window_crops(test_set.images, test_set.masks, window, count=1000, seed=1)
accuracy = (classifier(test_crops).argmax(axis=1) == test_labels).mean()
print(f"trained in {time.perf_counter() - t0:.1f} s; loss per epoch {np.round(history, 3)}; "
      f"window accuracy on test images {accuracy:.3f}")

# %% [markdown]
# ## 10.2 Every window, then one pass
#
# The loop version: cut every 16 x 16 window with a step of 4 pixels and classify it. Then `fc_to_conv`
# rewrites the first FC layer as a 2 x 2 convolution and the second as a 1 x 1 convolution (notebook 4,
# section 4.3), and the converted network computes the whole heatmap in one pass. Cell $(i, j)$ of the
# heatmap must be the classifier's output on the window with top-left corner $(4i, 4j)$, cell by cell:

# %%
image, truth = test_set[0]                                 # (1, 48, 48), (48, 48)
positions = range(0, 48 - window + 1, stride)              # 0, 4, ..., 32: 9 positions per axis
t0 = time.perf_counter()
heat_loop = np.zeros((4, len(positions), len(positions)), dtype=np.float32)
for i, y in enumerate(positions):
    for j, x in enumerate(positions):
        heat_loop[:, i, j] = classifier(image[None, :, y:y + window, x:x + window])[0]
t_loop = time.perf_counter() - t0

fcn = fc_to_conv(classifier)
t0 = time.perf_counter()
heat = fcn(image[None])[0]                                 # (4, 9, 9), one pass
t_fcn = time.perf_counter() - t0
for i in range(len(positions)):
    for j in range(len(positions)):
        assert np.allclose(heat[:, i, j], heat_loop[:, i, j], atol=1e-4), (i, j)
print(f"heatmap {heat.shape}: largest difference, one pass vs window loop {np.abs(heat - heat_loop).max():.1e}")
print(f"time: {len(positions) ** 2} windows one by one {1000 * t_loop:.1f} ms, one pass {1000 * t_fcn:.1f} ms")

big = Shapes(1, image_size=96, seed=7).images[0]            # any image size, same identity
assert np.allclose(fcn(big[None])[0], sliding_window_heatmap(classifier, big, stride=stride), atol=1e-4)
print("96 x 96 image: heatmap", fcn(big[None]).shape[1:], "equal to the sliding window too")

# %% [markdown]
# ## 10.3 Windows become boxes
#
# Window $(i, j)$ covers the pixels $4j \le x < 4j + 16$, $4i \le y < 4i + 16$: the box
# $(x_1, y_1, x_2, y_2) = (4j, 4i, 4j + 16, 4i + 16)$ (pixel $(r, c)$ covers $[c, c+1] \times [r, r+1]$).
# Its confidence is the lecture's "windmill or background" question, the probability that the window
# holds an object, $1 - p(\text{background})$; its class is the most probable shape. A window becomes a
# detection when the confidence is above 0.5. The loop version, then the same with arrays:

# %%
probs, _ = F.softmax_forward(heat[None], axis=1)
probs = probs[0]                                           # (4, 9, 9)
threshold = 0.5
detections = []                                            # (x1, y1, x2, y2, confidence, class)
for i, y in enumerate(positions):
    for j, x in enumerate(positions):
        confidence = 1 - probs[0, i, j]                    # P(object)
        if confidence > threshold:
            k = 1 + int(probs[1:, i, j].argmax())          # which shape
            detections.append((x, y, x + window, y + window, float(confidence), k))

conf_map, cls_map = 1 - probs[0], 1 + probs[1:].argmax(axis=0)
ii, jj = np.nonzero(conf_map > threshold)
boxes = np.stack([stride * jj, stride * ii, stride * jj + window, stride * ii + window], axis=1).astype(np.float64)
scores, classes = conf_map[ii, jj].astype(np.float64), cls_map[ii, jj]
assert np.array_equal(boxes, np.array([d[:4] for d in detections], dtype=np.float64))
assert np.allclose(scores, [d[4] for d in detections]) and np.array_equal(classes, [d[5] for d in detections])

# The true objects: connected pieces of each shape class, and their boxes.
pieces = connected_components(truth)
objects = [p for p in np.unique(pieces) if truth[pieces == p][0] > 0]
true_masks = np.stack([pieces == p for p in objects])
true_classes = np.array([truth[pieces == p][0] for p in objects])
true_boxes = []
for mask in true_masks:
    ys, xs = np.nonzero(mask)
    true_boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
true_boxes = np.array(true_boxes, dtype=np.float64)
print(f"{len(boxes)} windows above {threshold}, for {len(objects)} objects: "
      f"{[names[k] for k in true_classes]}")


# %% [markdown]
# ## 10.4 Box IoU
#
# $$\mathrm{IoU}(A, B) = \frac{\text{площадь пересечения}}{\text{площадь объединения}}
#   = \frac{|A \cap B|}{|A \cup B|},\qquad |A \cap B| = \max(0, \min(x_2^A, x_2^B) - \max(x_1^A, x_1^B))
#   \cdot \max(0, \min(y_2^A, y_2^B) - \max(y_1^A, y_1^B)).$$
#
# **Hand example** (notebook 1 has another): a 16 x 16 window and its neighbours on the stride-4 grid.
# Moved by 4 to the right, they share a 12 x 16 strip: $192 / (256 + 256 - 192) = 3/5$. Moved by 4 right
# and 4 down: $144 / 368 = 9/23$. Moved by 8 right: $128 / 384 = 1/3$.

# %%
def box_iou_loop(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

a = (0, 0, 16, 16)
for shifted, expected in (((4, 0, 20, 16), Fraction(3, 5)), ((4, 4, 20, 20), Fraction(9, 23)),
                          ((8, 0, 24, 16), Fraction(1, 3))):
    lib = metrics.box_iou(np.array([a], float), np.array([shifted], float))[0, 0]
    print(f"{a} vs {shifted}: loop {box_iou_loop(a, shifted):.4f}, library {lib:.4f}, expected {expected}")
    assert box_iou_loop(a, shifted) == float(expected) and lib == float(expected)

# %% [markdown]
# The matrix view: the IoU of the window at (0, 0) with the window moved by $(4a, 4b)$. With threshold 0.5,
# NMS can only suppress the four direct neighbours (IoU 0.6); the diagonal neighbours (0.39) and windows
# 8 pixels away survive. The threshold decides how far apart two detections of one object may be.

# %%
steps = np.arange(5)
shifted = np.array([(4 * b, 4 * a, 4 * b + 16, 4 * a + 16) for a in steps for b in steps], dtype=np.float64)
table = metrics.box_iou(np.array([[0, 0, 16, 16]], float), shifted).reshape(5, 5)
fig, ax = plt.subplots(figsize=(4, 3.6))
plot_matrix(np.round(table, 2), ax=ax, title="IoU with the window moved by (4b right, 4a down)",
            highlight=table > 0.5)
ax.set_xlabel("b"); ax.set_ylabel("a")
plt.show()


# %% [markdown]
# ## 10.5 Non-maximum suppression, as lecture 004 states it
#
# Let $S$ be the list of boxes, each $(x_1, y_1, x_2, y_2, \text{confidence})$:
#
# 1. take the box with the largest confidence and remove it from $S$ ("выбрать бокс с наибольшим
#    confidence и удалить его из S");
# 2. compute its IoU with all the others;
# 3. remove from $S$ the boxes with IoU above the threshold (often 0.5);
# 4. repeat 1-3 while $S$ has boxes.
#
# The boxes taken in step 1 are the result. Plain Python, printing $S$ after each round:

# %%
def nms_lecture(S, threshold=0.5, verbose=False):
    S = list(S)
    kept = []
    while S:                                               # 4. while S has boxes
        best = max(S, key=lambda box: box[4])              # 1. the largest confidence (first one on a tie)
        S.remove(best)
        kept.append(best)
        ious = [box_iou_loop(best, box) for box in S]      # 2. its IoU with all the others
        S = [box for box, v in zip(S, ious) if v <= threshold]   # 3. remove IoU > threshold
        if verbose:
            print(f"round {len(kept)}: keep {best}, IoU {[round(float(v), 3) for v in ious]}")
            print(f"         S = {S}")
    return kept

A = (10, 10, 50, 50, 0.9)
B = (12, 12, 52, 52, 0.8)      # A moved by 2: IoU 0.82 with A
C = (30, 30, 70, 70, 0.7)      # overlaps A a little: IoU 0.14
D = (32, 28, 72, 68, 0.6)      # C moved: IoU 0.82 with C
E = (100, 100, 130, 130, 0.75) # far from the others
F_ = (105, 98, 133, 128, 0.5)  # E moved: IoU 0.67 with E
S = [A, B, C, D, E, F_]
kept = nms_lecture(S, 0.5, verbose=True)
assert kept == [A, E, C]

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, chosen, title in zip(axes, (S, kept), ("S: 6 boxes", "after NMS: 3 boxes")):
    ax.imshow(np.ones((150, 150)), cmap="gray", vmin=0, vmax=1)
    draw_boxes(ax, [b[:4] for b in chosen], [f"{'ABCDEF'[S.index(b)]} {b[4]}" for b in chosen], linewidth=1.5)
    ax.set_title(title); ax.set_axis_off()
plt.show()

# %% [markdown]
# The library's `metrics.nms` sorts the boxes by confidence once and compares each kept box with all the
# remaining ones in one vectorised `box_iou` call. It must return the same boxes in the same order:
# checked on random boxes, three thresholds, with float coordinates and with integer coordinates and
# rounded scores (so that IoU can hit the threshold exactly and confidences tie).

# %%
rng = np.random.default_rng(0)
checked = 0
for trial in range(6):
    n = 300
    corner = rng.uniform(0, 100, (n, 2))
    size = rng.uniform(5, 40, (n, 2))
    boxes_r = np.concatenate([corner, corner + size], axis=1)
    scores_r = rng.uniform(0, 1, n)
    if trial % 2:                                          # integers and ties
        boxes_r, scores_r = np.round(boxes_r), np.round(scores_r, 1)
    for thr in (0.3, 0.5, 0.7):
        S_r = [(*box, score, index) for index, (box, score) in enumerate(zip(boxes_r.tolist(), scores_r.tolist()))]
        by_loop = [box[5] for box in nms_lecture(S_r, thr)]
        by_library = metrics.nms(boxes_r, scores_r, iou_threshold=thr).tolist()
        assert by_loop == by_library, (trial, thr)
        checked += 1
print(f"{checked} random cases of 300 boxes: the lecture's loop and metrics.nms keep the same boxes, "
      "in the same order")

# %% [markdown]
# (The loop carries the box's index as a sixth element only to compare with the library's indices. Its
# IoU uses the same floating-point operations as `box_iou`, so an IoU that lands exactly on the threshold
# goes the same way in both. With exact fractions it would not: an IoU of exactly $3/10$ is *above* the
# float `0.3`, which is $0.29999999999999998...$, and the integer boxes with threshold 0.3 would differ.)
#
# ## 10.6 NMS on the sliding-window detections
#
# Before NMS every object is covered by a cloud of windows; after it, a few boxes per object remain, and
# how few depends on the threshold (the IoU table of 10.4). The lecture's loop and `metrics.nms` agree
# here too.

# %%
kept_05 = metrics.nms(boxes, scores, iou_threshold=0.5)
kept_03 = metrics.nms(boxes, scores, iou_threshold=0.3)
S_det = [(*box, score, index) for index, (box, score) in enumerate(zip(boxes.tolist(), scores.tolist()))]
assert [box[5] for box in nms_lecture(S_det, 0.5)] == kept_05.tolist()
colours = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}

fig, axes = plt.subplots(1, 4, figsize=(15, 4))
panels = ((np.arange(len(boxes)), f"all {len(boxes)} windows above {threshold}"),
          (kept_05, f"NMS 0.5: {len(kept_05)} boxes"), (kept_03, f"NMS 0.3: {len(kept_03)} boxes"))
for ax, (keep, title) in zip(axes, panels):
    ax.imshow(to_display(image), cmap="gray")
    for k in (1, 2, 3):
        sel = keep[classes[keep] == k]
        draw_boxes(ax, boxes[sel], [f"{scores[i]:.2f}" for i in sel] if len(keep) <= 8 else None,
                   color=colours[k], linewidth=1.2)
    ax.set_title(title); ax.set_axis_off()
axes[3].imshow(colorize(truth))
draw_boxes(axes[3], true_boxes, [names[k] for k in true_classes], color="white", linewidth=1.2)
axes[3].set_title(f"truth: {len(objects)} objects"); axes[3].set_axis_off()
plt.show()

for name, keep in (("NMS 0.5", kept_05), ("NMS 0.3", kept_03)):
    best_iou = metrics.box_iou(true_boxes, boxes[keep]).max(axis=1)
    print(f"{name}: {len(keep)} boxes for {len(objects)} objects; best IoU of each true box with a kept box "
          f"{np.round(best_iou, 2)}; true box sizes {(true_boxes[:, 2:] - true_boxes[:, :2]).astype(int).tolist()}")


# %% [markdown]
# The windows have one size, 16 x 16, and the objects do not: a fixed window cannot fit a large shape, and
# the best IoU with the true box stays low for it. The lecture's remedy is to look at thousands of windows
# of different scales ("тысячи таких областей разного масштаба"), which is what makes the plain sliding
# window slow.
#
# ## 10.7 Mask IoU
#
# Segmentation grades masks, not boxes: the same ratio over pixels, $|A \cap B| / |A \cup B|$.
# `metrics.mask_iou` flattens masks to 0/1 rows and gets every intersection as one matrix product. On two
# squares it agrees with box IoU (notebook 1's $1/7$); a disc and its own bounding box differ, by the
# corners the box covers and the disc does not, about $\pi/4$:

# %%
def box_mask(box, size):
    mask = np.zeros(size, dtype=bool)
    x1, y1, x2, y2 = (int(v) for v in box)
    mask[y1:y2, x1:x2] = True
    return mask

sq_a, sq_b = box_mask((0, 0, 4, 4), (8, 8)), box_mask((2, 2, 6, 6), (8, 8))
m_iou = metrics.mask_iou(sq_a[None], sq_b[None])[0, 0]
b_iou = metrics.box_iou(np.array([[0, 0, 4, 4]], float), np.array([[2, 2, 6, 6]], float))[0, 0]
print(f"two squares: mask IoU {m_iou:.4f}, box IoU {b_iou:.4f}, 1/7 = {1 / 7:.4f}")
assert np.isclose(m_iou, 1 / 7) and np.isclose(b_iou, 1 / 7)

yy, xx = np.mgrid[:64, :64]
disc = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 30 ** 2
disc_vs_box = metrics.mask_iou(disc[None], box_mask((2, 2, 62, 62), (64, 64))[None])[0, 0]
print(f"a disc of radius 30 and its bounding box: mask IoU {disc_vs_box:.4f}, pi / 4 = {np.pi / 4:.4f}")

# %% [markdown]
# The detections kept by NMS 0.3 as masks (the window filled) against the true object masks: even a
# well placed box scores a modest mask IoU with a circle or a triangle. That is the gap between detection
# and segmentation.

# %%
det_masks = np.stack([box_mask(boxes[i], truth.shape) for i in kept_03])
table = metrics.mask_iou(true_masks, det_masks)               # (objects, detections)
fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(kept_03), 0.8 + 0.6 * len(objects)))
plot_matrix(np.round(table, 2), ax=ax, title="mask IoU: true objects (rows) x kept boxes (columns)")
ax.set_yticks(range(len(objects)), [names[k] for k in true_classes])
ax.set_xticks(range(len(kept_03)), [names[k] for k in classes[kept_03]], rotation=45)
plt.show()
print("best mask IoU per object:", np.round(table.max(axis=1), 2))

# %% [markdown]
# ## 10.8 Beyond the sliding window (lecture 004, for context)
#
# * **Region proposals.** Instead of all windows of all sizes, an algorithm such as Selective Search
#   proposes a few thousand regions that may contain an object.
# * **R-CNN** ("Regions with CNN features") classifies every proposal with a CNN; about a minute per image.
#   **Fast R-CNN** runs the CNN once and pools each region from its feature map (2-3 s per image; now the
#   proposals take most of the time). **Faster R-CNN** predicts the proposals too, with a Region Proposal
#   Network (about 0.2 s per image). These are **two-stage** detectors: better quality, slower.
# * **YOLO** ("You Only Look Once") skips the proposals: it divides the image into an $S \times S$ grid, and
#   each cell predicts $B$ boxes with a confidence each and $C$ class probabilities, an
#   $S \times S \times (B \cdot 5 + C)$ tensor. A **one-stage** detector (like SSD, RetinaNet): faster,
#   lower quality.
#
# Our one-pass heatmap is a YOLO-like grid without the box regression: $S = 9$ cells per side, $C = 4$
# class scores per cell, and one *fixed* 16 x 16 box per cell where YOLO predicts $B$ boxes of any size.
# All of them end with the same NMS.
#
# ## Summary
#
# * Sliding window detection: classify every window; windows with a high score become boxes
#   $(x_1, y_1, x_2, y_2, \text{confidence})$.
# * With its FC layers turned into $h \times w$ and 1 x 1 convolutions, the classifier computes all windows
#   in one pass, with the same numbers cell by cell.
# * Box IoU is intersection over union of areas; neighbouring windows on a stride-4 grid overlap with IoU
#   0.6, 0.39, 0.33, ..., so the NMS threshold decides which duplicates survive.
# * NMS: take the most confident box, drop the boxes that overlap it by more than the threshold, repeat.
#   The vectorised library version keeps exactly the boxes of the lecture's loop.
# * Mask IoU grades pixels: a box around a round object is far from its mask.
#
# ## Exercises
#
# 1. Add a second window size (24 x 24, a second `FCClassifier`) and run NMS over the boxes of both sizes.
#    Does the best IoU with the large true boxes improve?
# 2. Run NMS on the detections of 10.6 with confidence thresholds 0.5, 0.7, 0.9 and count the boxes
#    kept. Then run it *per class* (a circle box never suppresses a square box). What changes?
# 3. *Soft-NMS* multiplies the scores of overlapping boxes by $1 - \mathrm{IoU}$ instead of removing them.
#    Write it as a variant of `nms_lecture` and compare on the hand example.
# 4. Prove that the result of NMS does not depend on the order of $S$ when all confidences differ. Find a
#    small example with a tie where it does.
# 5. Count the multiply-adds of classifying the 81 windows one by one and of the one-pass network, and
#    compare with the measured times of 10.2.
#
# <details><summary>Hints for the exercises</summary>
#
# 1. Train a second `FCClassifier(window=24)` on 24 x 24 crops, convert it with `fc_to_conv`, turn both
#    heatmaps into boxes, concatenate boxes and scores, and run NMS once over all of them.
# 2. Filter `scores > t` before NMS. Per class: run NMS separately on the boxes of each class and
#    concatenate the results (or offset each class's boxes far apart, the usual trick).
# 3. Keep all boxes; in each round take the best, multiply the scores of the others by
#    $1 - \mathrm{IoU}$ with it, and drop boxes whose score falls below a small threshold.
# 4. The box chosen first is the one with the highest confidence among those left, whatever the order
#    of $S$; each later step depends only on the set that is left. With a tie, two boxes that overlap each
#    other but different third boxes give different results depending on which is picked first.
# 5. Multiply-adds per window from the layer shapes (`summary`), times 81 for the loop; for the one pass,
#    the same layers on the whole image, each output position computed once.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** Two 16 x 16 windows, one moved 4 pixels right and 4 down from the other. What is their IoU?
# Does NMS with threshold 0.5 remove the weaker one?
#
# <details><summary>Answer</summary>
#
# They share a 12 x 12 square: $144 / (256 + 256 - 144) = 144/368 = 9/23 \approx 0.39$. Below 0.5, so
# the weaker window survives as a duplicate detection.
#
# </details>
#
# **2.** NMS with threshold 0.5 on three boxes: A (confidence 0.9), B (0.8), C (0.7), where IoU(A, B) = 0.6,
# IoU(A, C) = 0.1 and IoU(B, C) = 0.7. Which boxes are kept?
#
# <details><summary>Answer</summary>
#
# A is taken first and removes B (0.6 > 0.5). C overlaps A by only 0.1 and is kept: A and C. (B would have
# removed C, but B is already gone.)
#
# </details>
#
# **3.** Why can a box fit a round nucleus well (high box IoU with the true box) and still make a poor
# mask?
#
# <details><summary>Answer</summary>
#
# A box covers its corners too: a disc fills only $\pi/4 \approx 79\%$ of its bounding square, so even a
# perfect box, taken as a mask, has mask IoU of about 0.79 with the disc.
#
# </details>
#
# **4.** What does the fully convolutional version of the window classifier save, compared with
# classifying the windows one by one?
#
# <details><summary>Answer</summary>
#
# The convolutions of overlapping windows: neighbouring windows share most of their pixels, and the one
# pass computes each convolution output once instead of once per window that contains it. The numbers
# are the same.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept pages: [Vision tasks and metrics](../concepts/tasks_metrics.md) (box IoU, NMS) and
#   [From a sliding window to a fully convolutional network](../concepts/fcn.md).
# * API: [`minimal_seg.metrics`](../api/metrics.rst) (`box_iou`, `nms`, `mask_iou`),
#   [`minimal_seg.classical`](../api/classical.rst) (`FCClassifier`, `fc_to_conv`,
#   `sliding_window_heatmap`).
# * Assignment: none for this notebook.
# * Next: [notebook 11, detection](11_detection.ipynb): the R-CNN family, RoIAlign, YOLO and mAP.
