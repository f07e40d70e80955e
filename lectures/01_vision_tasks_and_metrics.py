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
# # 1. Vision tasks and metrics
#
# *Lectures 001, 002 and 004 ("Задачи в компьютерном зрении"), 003 (Dice), 004 (IoU, mIoU, NMS).*
#
# The same picture can be asked five different questions. This notebook shows one image under each
# task, then the numbers we use to grade an answer: **IoU** and **Dice** of two masks, the
# **confusion matrix** and **mIoU** for many classes, and **IoU of boxes** with
# **non-maximum suppression** for detection.
#
# | task | answer for one image |
# |---|---|
# | classification ("Классификация") | one label |
# | localization ("Локализация") | one label + one box $(x, y, w, h)$ |
# | detection ("Детектирование объектов") | a label and a box for *every* object |
# | semantic segmentation ("Семантическая сегментация") | a class for every pixel |
# | instance segmentation ("Сегментация объектов") | a class *and an object id* for every pixel |

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=4, suppress=True)

# %%
from minimal_seg import metrics
from minimal_seg.data import Nuclei, Shapes
from minimal_seg.viz import colorize, draw_boxes, overlay, plot_matrix, to_display

# %% [markdown]
# ## 1.1 One image, five tasks
#
# A crop of the real fluorescence image that ships with the library (`Nuclei`, lecture 001's
# "медицинские изображения"). Besides the nucleus/background mask it stores an *instance* map:
# every annotated nucleus has its own id. Everything else we derive from it with a few loops.
# A box is written as in lecture 002: $(x, y, w, h)$, the top-left corner, the width and the height.

# %%
nuclei = Nuclei("all")                                   # the whole 512 x 512 image
top, left, size = 176, 40, 80
image = nuclei.images[0, :, top:top + size, left:left + size]          # (1, 80, 80)
instances = nuclei.instances[0, top:top + size, left:left + size]      # 0 = background, else an id
semantic = (instances > 0).astype(np.int64)                            # 1 = nucleus

# Boxes (x, y, w, h) from the instance map: the tiny loop version.
ids = [int(i) for i in np.unique(instances) if i > 0]
boxes_xywh = []
for i in ids:
    ys, xs = np.nonzero(instances == i)
    boxes_xywh.append((xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()))
boxes_xywh = np.array(boxes_xywh, dtype=np.float64)
boxes = metrics.xywh_to_xyxy(boxes_xywh)                # (x1, y1, x2, y2) for the library
largest = int(np.argmax(metrics.box_area(boxes)))
print(f"{len(ids)} nuclei in the crop; the largest has (x, y, w, h) = {boxes_xywh[largest]}")

# %%
shown = to_display(image)
relabelled = np.searchsorted([0] + ids, instances)       # ids -> 0, 1, 2, ... for colouring
fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
for ax in axes:
    ax.imshow(shown, cmap="gray")
    ax.set_axis_off()
axes[0].set_title('classification:\n"nuclei"')
draw_boxes(axes[1], boxes[largest:largest + 1], ["nucleus"])
axes[1].set_title("localization:\none box (x, y, w, h)")
draw_boxes(axes[2], boxes, ["nucleus"] * len(ids), color="yellow", linewidth=1.5)
axes[2].set_title(f"detection:\n{len(ids)} boxes")
axes[3].imshow(overlay(image, semantic, alpha=0.6))
axes[3].set_title("semantic segmentation:\nclass per pixel")
axes[4].imshow(colorize(relabelled))
axes[4].set_title("instance segmentation:\nobject id per pixel")
plt.show()

# %% [markdown]
# Semantic segmentation does not separate touching objects: in the mask, nuclei that touch merge into
# one blob of class "nucleus" (compare the last two panels). Counting the connected pieces shows it:

# %%
from minimal_seg.classical import connected_components

pieces = connected_components(semantic)                  # 4-connected regions of equal label
blobs = len(np.unique(pieces[semantic == 1]))
print(f"{len(ids)} nuclei, but only {blobs} connected blobs in the semantic mask")
assert blobs < len(ids)

# %% [markdown]
# ## 1.2 IoU and Dice of two masks
#
# For two sets of pixels $A$ (prediction) and $B$ (truth), lectures 003 and 004 define
#
# $$\mathrm{IoU}(A, B) = J(A, B) = \frac{|A \cap B|}{|A \cup B|} = \frac{|A \cap B|}{|A| + |B| - |A \cap B|},
# \qquad
# \mathrm{Dice}(A, B) = \frac{2\,|A \cap B|}{|A| + |B|}.$$
#
# IoU is also called the **Jaccard** coefficient, Dice the **Sørensen** coefficient.
#
# **Hand example.** On an 8 x 8 grid, $A$ is the 4 x 4 square with corner (1, 1) and $B$ the 4 x 4
# square with corner (2, 3). They share 3 rows x 2 columns = 6 pixels, so
# $|A \cup B| = 16 + 16 - 6 = 26$, $\mathrm{IoU} = 6/26 \approx 0.231$ and
# $\mathrm{Dice} = 12/32 = 0.375$. First the loop version, pixel by pixel:

# %%
A = np.zeros((8, 8), dtype=np.int64)
B = np.zeros((8, 8), dtype=np.int64)
A[1:5, 1:5] = 1
B[2:6, 3:7] = 1

def iou_dice_loop(a, b):
    inter = union = size_a = size_b = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            inter += bool(a[i, j] and b[i, j])
            union += bool(a[i, j] or b[i, j])
            size_a += bool(a[i, j])
            size_b += bool(b[i, j])
    return inter / union, 2 * inter / (size_a + size_b)

iou_loop, dice_loop = iou_dice_loop(A, B)
print(f"loop:    IoU = {iou_loop:.4f}   Dice = {dice_loop:.4f}")
print(f"library: IoU = {metrics.iou(A, B):.4f}   Dice = {metrics.dice(A, B):.4f}")
assert iou_loop == metrics.iou(A, B) == 6 / 26
assert dice_loop == metrics.dice(A, B) == 12 / 32

# %%
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, m, title in zip(axes, (A, B, A & B, A | B), ("A (prediction)", "B (truth)",
                                                    f"A ∩ B: {(A & B).sum()} px", f"A ∪ B: {(A | B).sum()} px")):
    plot_matrix(m, ax=ax, fmt="{:.0f}", cmap="Greys", vmin=0, vmax=1.6, fontsize=8, title=title)
plt.show()

# %% [markdown]
# The two scores measure the same overlap on different scales. Because
# $|A| + |B| = |A \cup B| + |A \cap B|$,
#
# $$\mathrm{Dice} = \frac{2\,\mathrm{IoU}}{1 + \mathrm{IoU}} \ge \mathrm{IoU},$$
#
# with equality only at 0 and 1: Dice is the more generous number, so always say which one you report.

# %%
assert np.isclose(metrics.dice_from_iou(metrics.iou(A, B)), metrics.dice(A, B))
t = np.linspace(0, 1, 101)
plt.figure(figsize=(3.6, 3.2))
plt.plot(t, metrics.dice_from_iou(t), label="Dice")
plt.plot(t, t, "--", label="IoU")
plt.scatter([metrics.iou(A, B)], [metrics.dice(A, B)], color="red", zorder=3, label="hand example")
plt.xlabel("IoU"); plt.ylabel("score"); plt.legend(); plt.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 1.3 Many classes: confusion matrix, per-class IoU, mIoU
#
# With $K$ classes we count pixels in a $K \times K$ **confusion matrix**: $M_{ij}$ = number of pixels
# of true class $i$ predicted as class $j$. For class $c$
#
# $$TP_c = M_{cc}, \quad FP_c = \sum_i M_{ic} - M_{cc}, \quad FN_c = \sum_j M_{cj} - M_{cc}, \qquad
# \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c},$$
#
# and lecture 004's **mean IoU** is the average over classes,
# $\mathrm{mIoU} = \frac1K \sum_c \mathrm{IoU}_c$. Pixel accuracy is $\operatorname{tr} M / \sum M$.
#
# A `Shapes` image (background, circle, square, triangle; drawn black, blue, orange, green) and a
# made-up prediction: the truth shifted 2 pixels to the right, with triangles mistaken for squares.

# %%
shapes = Shapes(64, image_size=64, seed=3)
K = shapes.num_classes
index = next(i for i, m in enumerate(shapes.masks) if len(np.unique(m)) == K)   # all four classes
truth = shapes.masks[index]
pred = np.roll(truth, 2, axis=1)
pred[pred == 3] = 2                                      # triangles called squares

# The loop version: one pixel at a time.
M = np.zeros((K, K), dtype=np.int64)
for t, p in zip(truth.ravel(), pred.ravel()):
    M[t, p] += 1

cm = metrics.ConfusionMatrix(K)
cm.update(pred[None], truth[None])                       # batches (N, H, W)
assert (cm.to_numpy() == M).all()
tp = np.diag(M)
iou_loop = tp / (M.sum(0) + M.sum(1) - tp)
assert np.allclose(iou_loop, cm.iou())
for name, v in zip(shapes.class_names, cm.iou()):
    print(f"IoU {name:<11} {v:.3f}")
print(f"mIoU {cm.miou():.3f}    pixel accuracy {cm.pixel_accuracy():.3f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
axes[0].imshow(colorize(truth)); axes[0].set_title("truth")
axes[1].imshow(colorize(pred)); axes[1].set_title("prediction")
axes[2].imshow(truth != pred, cmap="Reds"); axes[2].set_title(f"errors: {(truth != pred).sum()} px")
for ax in axes[:3]:
    ax.set_axis_off()
plot_matrix(M, ax=axes[3], fmt="{:.0f}", title="confusion matrix (rows: truth)")
axes[3].set_xticks(range(K), shapes.class_names, rotation=45, fontsize=8)
axes[3].set_yticks(range(K), shapes.class_names, fontsize=8)
plt.tight_layout(); plt.show()

# %% [markdown]
# **Why not pixel accuracy?** The background is most of the picture. A "model" that answers
# *background* everywhere is right on most pixels of the whole data set, yet it finds nothing:

# %%
lazy = metrics.ConfusionMatrix(K)
lazy.update(np.zeros_like(shapes.masks), shapes.masks)
print("class frequencies:", np.round(shapes.class_frequencies(), 3))
print(f"all-background:  pixel accuracy {lazy.pixel_accuracy():.3f}   mIoU {lazy.miou():.3f}")
print("per-class IoU:", np.round(lazy.iou(), 3))


# %% [markdown]
# ## 1.4 Boxes: IoU and non-maximum suppression
#
# For boxes (lecture 004, "если работаем с боксами") IoU is the same ratio of areas. The
# intersection of two boxes is again a box, from the larger top-left corner to the smaller
# bottom-right corner.
#
# **Hand example.** $A = (x, y, w, h) = (0, 0, 4, 4)$ and $B = (2, 2, 4, 4)$ overlap in a 2 x 2 square:
# $\mathrm{IoU} = 4 / (16 + 16 - 4) = 1/7$. The loop version counts unit cells, so $\cap$ and $\cup$
# are literally set operations:

# %%
def box_iou_loop(a, b):
    def cells(box):
        x, y, w, h = box
        return {(i, j) for i in range(x, x + w) for j in range(y, y + h)}
    return len(cells(a) & cells(b)) / len(cells(a) | cells(b))

a, b = (0, 0, 4, 4), (2, 2, 4, 4)
lib = metrics.box_iou(metrics.xywh_to_xyxy(np.array([a], float)), metrics.xywh_to_xyxy(np.array([b], float)))
print(f"loop {box_iou_loop(a, b):.4f}   library {lib[0, 0]:.4f}   1/7 = {1 / 7:.4f}")
assert box_iou_loop(a, b) == 1 / 7 and np.isclose(lib[0, 0], 1 / 7)

# %% [markdown]
# A detector proposes many overlapping boxes for the same object. **Non-maximum suppression**, as
# lecture 004 states it, for a list $S$ of boxes with confidences:
#
# 1. pick the box with the highest confidence and remove it from $S$ (keep it);
# 2. compute its IoU with every other box;
# 3. remove the boxes with IoU above a threshold (often 0.5) from $S$;
# 4. repeat 1-3 while $S$ is not empty.
#
# Below, every nucleus gets four copies of its box, each corner moved by up to 10 % of the box size,
# with random scores.

# %%
rng = np.random.default_rng(0)
copies = 4
wh = np.repeat(boxes_xywh[:, 2:], copies, axis=0)
proposals = np.repeat(boxes, copies, axis=0) + 0.1 * np.tile(wh, 2) * rng.uniform(-1, 1, (len(wh), 4))
scores = rng.uniform(0.3, 1.0, len(proposals))
keep = metrics.nms(proposals, scores, iou_threshold=0.5)
print(f"{len(proposals)} proposals -> {len(keep)} kept (the crop has {len(ids)} nuclei)")
assert len(keep) == len(ids)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
for ax in axes:
    ax.imshow(shown, cmap="gray"); ax.set_axis_off()
draw_boxes(axes[0], proposals, color="yellow", linewidth=1)
axes[0].set_title(f"before NMS: {len(proposals)} boxes")
draw_boxes(axes[1], proposals[keep], [f"{s:.2f}" for s in scores[keep]], color="yellow", linewidth=1.5)
axes[1].set_title(f"after NMS: {len(keep)} boxes (with their scores)")
plt.show()

# %% [markdown]
# Detection is graded by **mAP** (mean average precision), built from box IoU: a detection counts as
# correct when its IoU with a true box exceeds a threshold. It is mentioned in lecture 004 and left
# for the practice.
#
# ## Summary
#
# * Classification, localization, detection, semantic and instance segmentation answer ever more
#   detailed questions; semantic segmentation cannot tell touching objects of one class apart.
# * $\mathrm{IoU} = |A\cap B| / |A \cup B|$ and $\mathrm{Dice} = 2|A \cap B|/(|A| + |B|)$ measure the
#   same overlap: $\mathrm{Dice} = 2\,\mathrm{IoU}/(1 + \mathrm{IoU})$.
# * With many classes, count a confusion matrix and average the per-class IoU (mIoU); pixel accuracy
#   rewards predicting the background.
# * Box IoU uses areas; NMS keeps the best box and drops the ones that overlap it by more than a threshold.
#
# ## Exercises
#
# 1. Prove $\mathrm{Dice} = 2\,\mathrm{IoU}/(1 + \mathrm{IoU})$. For which masks are Dice and IoU equal?
# 2. `metrics.iou` returns 1.0 for two empty masks, while `ConfusionMatrix` gives NaN for a class that is
#    absent from truth and prediction and leaves it out of the mean. Argue for each convention.
#    What would mIoU over the 64 Shapes images be if absent classes counted as 0 instead?
# 3. Compute the confusion matrix of section 1.3 with a single `np.bincount` (hint: the pair
#    (true $i$, predicted $j$) is bin $K i + j$). Check it against the loop.
# 4. Run NMS on the proposals with thresholds 0.3 and 0.7. Which one merges the two touching nuclei,
#    which one keeps duplicates? Plot both.
# 5. Shift the prediction of section 1.3 by 1, 2, ..., 8 pixels and plot the IoU of each class against
#    the shift. Why do small shapes lose IoU fastest?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. Write $I = |A \cap B|$ and $U = |A \cup B| = |A| + |B| - I$, so $|A| + |B| = U + I$ and
#    $\mathrm{Dice} = 2I/(U + I)$; divide by $U$. The two are equal only where
#    $2x/(1+x) = x$: $x = 0$ or $x = 1$ (no overlap, or identical masks).
# 2. An image without triangles, predicted without triangles, made no triangle mistake: 1.0 (or
#    "leave it out") says so, 0 would punish a correct answer. For the "count as 0" mean, replace the NaNs
#    of `cm.iou()` by 0 before averaging.
# 3. `np.bincount(K * truth.ravel() + pred.ravel(), minlength=K * K).reshape(K, K)`.
# 4. A lower threshold removes more boxes: at 0.3 two touching nuclei whose boxes overlap by more than
#    0.3 collapse into one box; at 0.7 near-duplicates of one nucleus survive.
# 5. `np.roll(pred, shift, axis=-1)`. A shift of $t$ pixels loses about $t$ times the height of a shape
#    from the overlap, a fixed number of pixels per shift; divided by a small area, that is a large share.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** A true mask has 100 pixels. The prediction covers all of them and 100 background pixels
# besides. What are its IoU and its Dice?
#
# <details><summary>Answer</summary>
#
# $|A \cap B| = 100$, $|A \cup B| = 200$: IoU $= 0.5$; Dice $= 2 \cdot 100 / (100 + 200) = 2/3$, which
# is also $2 \cdot 0.5 / (1 + 0.5)$.
#
# </details>
#
# **2.** In an image, 95 % of the pixels are background and the rest belong to three shape classes. A
# "model" predicts background everywhere. What are its pixel accuracy and its mIoU over the 4 classes?
#
# <details><summary>Answer</summary>
#
# Pixel accuracy 0.95. IoU of the background $= 0.95 / 1.0 = 0.95$, IoU of each shape class $= 0$, so
# mIoU $= 0.95 / 4 \approx 0.24$: mIoU sees that the model found nothing, pixel accuracy does not.
#
# </details>
#
# **3.** Two nuclei touch. Which of the five tasks can report that there are two of them, and which
# cannot?
#
# <details><summary>Answer</summary>
#
# Detection (two boxes) and instance segmentation (two masks) can; semantic segmentation gives both the
# same class, and its mask is one connected blob. Classification and localization describe one object
# per image.
#
# </details>
#
# **4.** Boxes $(x_1, y_1, x_2, y_2) = (0, 0, 10, 10)$ with confidence 0.9 and $(5, 0, 15, 10)$ with
# confidence 0.8. What is their IoU, and does NMS with threshold 0.5 keep the second box?
#
# <details><summary>Answer</summary>
#
# The intersection is $5 \times 10 = 50$, the union $100 + 100 - 50 = 150$: IoU $= 1/3$. That is below
# 0.5, so the second box is kept.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Vision tasks and metrics](../concepts/tasks_metrics.md) (`docs/concepts/tasks_metrics.md`).
# * API: [`minimal_seg.metrics`](../api/metrics.rst) (`iou`, `dice`, `ConfusionMatrix`, `box_iou`, `nms`).
# * Assignment: none for this notebook; the metrics here grade every model of the course, and
#   [assignment a5](../assignments.md#assignment-a5) (`a5_losses.py`, notebook 6) turns Dice into a loss with a gradient.
# * Next: [notebook 2, convolution arithmetic](02_convolution_arithmetic.ipynb).
