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
# # 12. Instance segmentation: one stage and two stages
#
# *Lecture 004 ("Сегментация объектов (Instance Segmentation)", "1 stage instance segmentation",
# "2 stages instance segmentation").*
#
# Semantic segmentation gives every pixel a class; **instance segmentation** also says *which object* the
# pixel belongs to: two touching nuclei are two objects, not one blob of class "nucleus". The lecture
# names two ways to get there, and this notebook builds both from the library's parts:
#
# 1. **one stage**: a semantic network predicts *foreground and boundary*; the instances are the connected
#    components of the interior, grown back over the foreground by a **watershed**
#    (`minimal_seg.classical`), on the real nuclei image with its 125 annotated nuclei;
# 2. **two stages**: proposals (boxes) -> **RoIAlign** -> a small mask head, a *Mask R-CNN-lite*
#    (`minimal_seg.models.mask_rcnn_lite`), on generated instance Shapes.
#
# Both are graded by mask AP (`metrics.mean_average_precision(..., iou_type="segm")`, notebook 11), and we
# look closely at where the one-stage model fails: at touching nuclei.

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=3, suppress=True)

# %%
import tempfile
import time

from minimal_seg import functional as F
from minimal_seg.classical import instances_from_classes, label_components, remove_small, watershed
from minimal_seg.data import Nuclei, get_dataset
from minimal_seg.metrics import box_iou, mask_iou
from minimal_seg.models.mask_rcnn_lite import mask_targets
from minimal_seg.train import TrainConfig
from minimal_seg.train_instance import (class_probabilities, instance_colours, mask_ap, sample_proposals,
                                        three_class_targets, train_one_stage, train_two_stage)
from minimal_seg.viz import draw_boxes

# %% [markdown]
# ## 12.1 Semantic against instance, on one picture
#
# The test quadrant of the nuclei image (the bottom-right 256 x 256 of the 512 x 512 image), with its
# annotation. The semantic mask says "nucleus" or "background"; the instance labels give each nucleus an
# id (drawn in its own colour).

# %%
test = Nuclei("test")
image, truth = test.images[0, 0], test.instances[0]
semantic = truth > 0
pieces = label_components(semantic)          # what the semantic mask alone can tell apart

fig, ax = plt.subplots(1, 4, figsize=(14, 3.8))
ax[0].imshow(image, cmap="gray"); ax[0].set_title("image")
ax[1].imshow(semantic, cmap="gray"); ax[1].set_title("semantic: nucleus / background")
ax[2].imshow(instance_colours(truth)); ax[2].set_title(f"instances: {len(np.unique(truth)) - 1} nuclei")
ax[3].imshow(instance_colours(pieces)); ax[3].set_title(f"components of the semantic mask: {pieces.max()}")
for a in ax:
    a.axis("off")
plt.tight_layout()
print(f"annotated nuclei in the quadrant: {len(np.unique(truth)) - 1}; "
      f"4-connected pieces of their union: {pieces.max()}")

# %% [markdown]
# Even a *perfect* semantic mask gives fewer pieces than there are nuclei: wherever two nuclei touch, their
# pixels form one connected blob. Connected components (`label_components`: 4-neighbours, numbered in
# raster order like `scipy.ndimage.label`, which the tests check) are the first tool, and the reason we
# need something more.
#
# ## 12.2 One stage: interior + boundary, components, watershed
#
# **The targets.** Turn every annotated nucleus into *interior* and a one-pixel *boundary* (its pixels with
# a 4-neighbour of another label). Between two touching nuclei the boundary is two pixels wide, and the
# interiors no longer touch.

# %%
def zoom_on(mask, margin=12):
    """A slice around the pixels of a boolean mask."""
    ys, xs = np.nonzero(mask)
    return np.s_[max(ys.min() - margin, 0):ys.max() + margin, max(xs.min() - margin, 0):xs.max() + margin]


classes = three_class_targets(test.instances)[0]
interior_pieces = label_components(classes == 1)
touching = [k for k in range(1, pieces.max() + 1) if len(np.unique(truth[pieces == k])) > 1]
crop = zoom_on(pieces == touching[0], margin=20)          # zoom on a piece that holds two nuclei
fig, ax = plt.subplots(1, 3, figsize=(11, 3.8))
ax[0].imshow(instance_colours(truth[crop])); ax[0].set_title("annotated instances")
ax[1].imshow(classes[crop], cmap="viridis", vmin=0, vmax=2); ax[1].set_title("background / interior / boundary")
ax[2].imshow(instance_colours(interior_pieces[crop])); ax[2].set_title("components of the interior")
for a in ax:
    a.axis("off")
plt.tight_layout()
print(f"components of the whole quadrant: foreground {pieces.max()}, interior {interior_pieces.max()} "
      f"(annotated nuclei {len(np.unique(truth)) - 1})")

# %% [markdown]
# **The watershed.** The interior components are *seeds*, one per nucleus, but they lack the boundary
# pixels. A marker-based watershed gives those back: picture the elevation as a landscape and every seed
# as a spring; water rises from all springs at once, and a pixel joins the spring that reaches it first.
# The priority-flood algorithm (Meyer) does it with one heap:
#
# ```
# push every seed pixel with priority elevation[p]
# while the heap is not empty:
#     pop the pixel p of lowest (elevation, arrival order)
#     for each 4-neighbour q inside the mask and not labelled yet:
#         label[q] = label[p]; push q
# ```
#
# One dimension first: two springs at the ends of a valley meet at the ridge.

# %%
elevation = np.array([[0, 1, 2, 3, 2, 1, 0, 1, 0.5]])
markers = np.array([[1, 0, 0, 0, 0, 0, 2, 0, 0]])
print("elevation", elevation[0])
print("markers  ", markers[0])
print("flooded  ", watershed(elevation, markers)[0])

# %% [markdown]
# With the interior's *probability* as the landscape (elevation = 1 - p(interior)), the flood grows each
# seed over its boundary ring and stops at the predicted background (the `mask`). That is
# `classical.instances_from_classes`. With the perfect three-class map of the annotation it recovers the
# instances almost exactly:

# %%
perfect = np.eye(3)[classes].transpose(2, 0, 1)           # probabilities 0/1 of the annotation's classes
recovered = instances_from_classes(perfect, min_seed_size=1, min_size=1)
perfect_ap = mask_ap(recovered[None], test.instances)
print(f"mask AP of the recipe on perfect classes: AP@0.5 {perfect_ap['map_50']:.3f}, "
      f"AP@0.75 {perfect_ap['map_75']:.3f}, AP@[.5:.95] {perfect_ap['map']:.3f}")

# %% [markdown]
# On this quadrant the recipe returns the annotation itself (a one-pixel-thin part of a nucleus, all
# boundary and no interior, could in principle be flooded from a neighbour, but none is lost here). So the
# post-processing costs nothing: every error of the one-stage model below comes from the network's classes.
#
# **The network.** Any semantic model of the library can learn the three classes with the segmentation
# training step (softmax cross-entropy): here a small U-Net (8 base channels) on random 128 x 128 crops of
# the three training quadrants, for about 20 CPU seconds. The command line trains a larger one
# (`python -m minimal_seg train --task instance --data nuclei`, 16 base channels, 12 epochs).

# %%
start = time.process_time()
run_dir = tempfile.mkdtemp()
config = TrainConfig(model="unet", data="nuclei", base_channels=8, epochs=20, repeat=16, crop_size=128,
                     batch_size=8, lr=5e-3, augment=True, out=run_dir)
one_stage = train_one_stage(config, progress=False)
print(f"{time.process_time() - start:.0f} CPU seconds")

# %% [markdown]
# The prediction step by step, on the test quadrant: softmax -> seeds (interior > 0.5) -> foreground
# (p(background) < 0.5) -> watershed.

# %%
probs = class_probabilities(one_stage["model"], test.images)[0]
seeds = remove_small(label_components(probs[1] > 0.5), 4)
pred = one_stage["predictions"][0]
fig, ax = plt.subplots(1, 4, figsize=(15, 3.8))
ax[0].imshow(probs.transpose(1, 2, 0)); ax[0].set_title("p(background, interior, boundary) as RGB")
ax[1].imshow(instance_colours(seeds)); ax[1].set_title(f"seeds: {seeds.max()}")
ax[2].imshow(instance_colours(pred)); ax[2].set_title(f"after the watershed: {pred.max()}")
ax[3].imshow(instance_colours(truth)); ax[3].set_title(f"annotated: {len(np.unique(truth)) - 1}")
for a in ax:
    a.axis("off")
plt.tight_layout()

# %% [markdown]
# ## 12.3 Where it fails: touching nuclei
#
# Match every annotated nucleus to the predicted instance it overlaps most, and every predicted instance to
# the annotated nucleus it overlaps most. Two kinds of error are specific to instances:
#
# * a **merge**: one predicted instance covers most of two annotated nuclei (the boundary between them was
#   missed, so their interiors formed one seed);
# * a **split**: one annotated nucleus is cut into two predicted instances (two seeds in one nucleus).
#
# Both show up as missed matches in AP: a merged blob has IoU < 0.5 with each of its nuclei.

# %%
def overlaps(a, b):
    """IoU of every instance of label map a with every instance of label map b."""
    ma = np.stack([a == k for k in range(1, a.max() + 1)])
    mb = np.stack([b == k for k in np.unique(b[b > 0])])
    return mask_iou(ma, mb)


iou = overlaps(pred, truth)                       # (predicted, annotated)
ids = np.unique(truth[truth > 0])
covered = np.stack([[((pred == p + 1) & (truth == t)).sum() / (truth == t).sum() for t in ids]
                    for p in range(pred.max())])  # fraction of annotated nucleus t inside predicted p
merges = [p for p in range(pred.max()) if (covered[p] > 0.4).sum() >= 2]
splits = [t for t in range(len(ids)) if (covered[:, t] > 0.25).sum() >= 2]
print(f"matched at IoU >= 0.5: {(iou.max(axis=0) >= 0.5).sum()} of {len(ids)} nuclei; "
      f"merges: {len(merges)}, splits: {len(splits)}")
print(f"mask AP on the test quadrant: AP@0.5 {one_stage['metrics']['map_50']:.3f}, "
      f"AP@[.5:.95] {one_stage['metrics']['map']:.3f}")


# %%
cases = [("merge", pred == p + 1) for p in merges[:2]] + [("split", truth == ids[t]) for t in splits[:2]]
if cases:
    fig, ax = plt.subplots(len(cases), 4, figsize=(12, 3 * len(cases)), squeeze=False)
    for row, (kind, region) in enumerate(cases):
        z = zoom_on(region)
        ax[row, 0].imshow(image[z], cmap="gray"); ax[row, 0].set_title(kind)
        ax[row, 1].imshow(probs[1][z], vmin=0, vmax=1); ax[row, 1].set_title("p(interior)")
        ax[row, 2].imshow(instance_colours(pred[z])); ax[row, 2].set_title("predicted")
        ax[row, 3].imshow(instance_colours(truth[z])); ax[row, 3].set_title("annotated")
        for a in ax[row]:
            a.axis("off")
    plt.tight_layout()

# %% [markdown]
# **Why.** Where two nuclei press against each other the image often shows no dark gap at all: the only
# evidence of the boundary is a faint change of shape or texture, and the network, trained on 3 quadrants
# with a one-pixel boundary class (a few percent of the pixels), puts p(interior) > 0.5 across the contact.
# The two interiors form one seed, the watershed has nothing to split, and the pair becomes one instance
# (a merge). The opposite happens in large or unevenly bright nuclei: a dim band inside lowers p(interior)
# and the interior breaks into two seeds (a split). Thicker boundary targets, a loss that weighs boundary
# pixels more, or seeds from a distance map (the centre + offset family) all attack exactly this.
#
# **Against the classical baseline.** Otsu's threshold + a distance-transform watershed (the usual
# scipy/scikit-image recipe: seeds at the maxima of the distance to the background) gets mask AP@0.5 0.747
# and AP@[.5:.95] 0.430 on this quadrant (`python tests/nuclei_baseline.py`, min_distance chosen on the
# training quadrants). The U-Net of the command line reaches 0.848 and 0.547 (README, results); the tiny
# one above is a little below that. The distance transform splits touching *round* nuclei well, but Otsu's
# mask already merges nuclei with no dark gap and loses dim ones, which is where learning helps.
#
# ## 12.4 Two stages: proposals -> RoIAlign -> mask head
#
# Mask R-CNN's idea: first find boxes, then segment *inside each box*. Touching objects are no problem for
# the second stage: each box gets its own mask, and the masks may overlap.
#
# **Data.** Instance Shapes: clusters of 2 to 4 touching or overlapping shapes, with one visible mask, box
# and class per object.

# %%
shapes = get_dataset("instance_shapes", "val", num_images=4, image_size=64, seed=0)
target = shapes.target(0)
print("boxes (x1, y1, x2, y2):\n", target["boxes"], "\nlabels:", target["labels"])

# %% [markdown]
# **Proposals.** A detector (the RPN of Faster R-CNN, or notebook 11's detector) would propose boxes. Here
# the stand-in is explicit: the annotated boxes *jittered* (kept while IoU >= 0.5 with their object, label =
# its class) plus random boxes that miss every object (IoU < 0.3, label 0 = background). So the numbers
# below measure the second stage given reasonable proposals, not a detector's recall.

# %%
rng = np.random.default_rng(1)
boxes, labels, matched = sample_proposals(target, rng, (64, 64), jitters=1, negatives=3)
fig, ax = plt.subplots(1, 2, figsize=(8, 4))
ax[0].imshow(shapes.images[0, 0], cmap="gray"); ax[0].set_title("proposals: objects (orange), background (blue)")
draw_boxes(ax[0], boxes[labels > 0], color="tab:orange")
draw_boxes(ax[0], boxes[labels == 0], color="tab:blue", linestyle="--")
ax[1].imshow(instance_colours(shapes.instance_ids[0])); ax[1].set_title("annotated instances")
for a in ax:
    a.axis("off")
plt.tight_layout()
print("IoU of each proposal with the annotated boxes:\n", box_iou(boxes, target["boxes"]))

# %% [markdown]
# **RoIAlign** cuts a fixed S x S window out of a feature map for every box, sampling it bilinearly at
# the box's real coordinates (RoI pooling would round them to whole cells; notebook 11). Applied to the
# *image* itself it shows what the heads see, and applied to the annotated mask it makes the **mask
# target** of each proposal (`mask_targets`: RoIAlign, then >= 0.5).

# %%
rois = np.concatenate([np.zeros((len(boxes), 1)), boxes], axis=1)
windows, _ = F.roi_align2d_forward(shapes.images[:1].astype(np.float64), rois, 14, sampling_ratio=2, aligned=True)
targets = mask_targets(target["masks"][matched].astype(np.float64), rois, 14)
fig, ax = plt.subplots(2, len(boxes), figsize=(2 * len(boxes), 4), squeeze=False)
for k in range(len(boxes)):
    ax[0, k].imshow(windows[k, 0], cmap="gray"); ax[0, k].set_title(f"label {labels[k]}")
    ax[1, k].imshow(targets[k] if labels[k] else np.zeros((14, 14)), cmap="gray", vmin=0, vmax=1)
    ax[0, k].axis("off"); ax[1, k].axis("off")
ax[1, 0].set_title("mask targets", loc="left")
plt.tight_layout()

# %% [markdown]
# **The model and its loss.** An FPN backbone (bottom-up encoder, lateral 1 x 1 convolutions, nearest
# top-down pathway; `models.fpn`), RoIAlign on one pyramid level, then two heads on the same 7 x 7 window:
# a class head (flatten -> two linear layers: background + 3 classes) and a mask head (two 3 x 3 convolutions, a
# 2 x 2 transposed convolution, a 1 x 1 convolution: one 14 x 14 mask per class). The loss is Mask R-CNN's
# $L = L_{cls} + L_{mask}$: cross-entropy of the classes over all proposals, plus the binary cross-entropy
# of the *true class's* mask over the positive proposals only. The backward pass is written by hand
# (both heads read the window, so their gradients are summed before RoIAlign's backward), and the tests
# check it by a float64 gradient check.
#
# A short training run (about 20 CPU seconds; the command line trains four times longer):

# %%
start = time.process_time()
config = TrainConfig(model="mask_rcnn_lite", data="instance_shapes", base_channels=8, num_train=1200,
                     num_val=50, epochs=4, batch_size=8, lr=3e-3, out=tempfile.mkdtemp())
two_stage = train_two_stage(config, progress=False)
print(f"{time.process_time() - start:.0f} CPU seconds")

# %%
val = get_dataset("instance_shapes", "val", num_images=50, image_size=64, seed=0)
fig, ax = plt.subplots(2, 4, figsize=(12, 6))
for i in range(4):
    p = two_stage["predictions"][i]
    confident = p["scores"] >= 0.3
    ax[0, i].imshow(val.images[i, 0], cmap="gray")
    draw_boxes(ax[0, i], p["boxes"][confident], labels=[f"{c} {s:.2f}" for c, s in
                                                       zip(p["labels"][confident], p["scores"][confident])])
    drawn = np.zeros((64, 64), int)
    for k in np.flatnonzero(confident)[np.argsort(p["scores"][confident])]:
        drawn[p["masks"][k]] = k + 1
    ax[1, i].imshow(instance_colours(drawn))
    ax[0, i].axis("off"); ax[1, i].axis("off")
ax[0, 0].set_title("score >= 0.3: class, score"); ax[1, 0].set_title("masks, one colour each")
plt.tight_layout()

# %% [markdown]
# The command `python -m minimal_seg train --task instance --data instance_shapes` trains longer (see
# README, results, for its mask AP). Its masks overlap where the shapes overlap: the two-stage model does not
# need a boundary class, because each object is segmented in its own window. Its weak point is the first
# stage: an object without a proposal is never found, and two objects in one box confuse the mask head.
#
# ## Summary
#
# * Semantic segmentation labels pixels; instance segmentation labels objects. Connected components of a
#   semantic mask merge every group of touching objects.
# * **One stage**: predict background / interior / boundary, take the components of the interior as seeds,
#   and grow them over the foreground with a marker-based watershed (priority flood). Its failures are
#   merges (no boundary predicted between touching nuclei) and splits.
# * **Two stages**: proposals -> RoIAlign -> class and mask heads (Mask R-CNN). Each object gets its own
#   mask in its own window; the quality hangs on the proposals.
# * Both are graded by mask AP: a predicted instance counts only if its mask has IoU >= t with an unclaimed
#   annotated object.
#
# ## Exercises
#
# 1. Make the boundary class two pixels wide. Do merges become rarer on the nuclei test quadrant? What
#    happens to small nuclei?
# 2. Replace the seeds by the maxima of a predicted distance-to-background map (the "centre" family of
#    one-stage models).
# 3. Feed Mask R-CNN-lite the boxes of the one-stage model's instances as proposals. Which errors of the
#    one stage can the two stages repair?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. Grow the boundary of `three_class_targets` by one pixel into each instance (a boundary pixel's
#    4-neighbours inside the same instance become boundary too), retrain, and count merges and splits
#    as in 12.3. A nucleus only a few pixels across may keep no interior at all: no seed, so it is lost.
# 2. Compute each nucleus's distance to the background on the annotations (a few passes of a 3 x 3
#    minimum, or `scipy.ndimage.distance_transform_edt`), train a regression head on it, and take the
#    local maxima above a threshold as the markers of `watershed`.
# 3. Turn each one-stage instance into a box (the bounding box of its pixels, pixel edges) and give these
#    boxes to the two-stage model instead of its sampled proposals. A merged blob gives one box around two
#    nuclei: the mask head then sees both, so a merge is repaired only if the box fits one nucleus.
#
# </details>
#
# ## Check your understanding
#
# 1. Why can connected components of even a *perfect* semantic mask not count the nuclei?
#
# <details><summary>Answer</summary>
#
# Touching nuclei share a border, so their pixels are 4-connected: one component per cluster of touching
# nuclei, not per nucleus (12.1: fewer components than nuclei).
#
# </details>
#
# 2. In the watershed, every pixel is labelled when it is *pushed*, not when it is popped. What would go
#    wrong if it were labelled when popped?
#
# <details><summary>Answer</summary>
#
# A pixel could be pushed several times, by different floods, before it is popped: the heap would grow to
# several entries per pixel, and the label would depend on which copy comes out first. Labelling at push
# time gives each pixel to the first flood that reaches it, once, so the run is O(HW log HW).
#
# </details>
#
# 3. A merged blob covers two nuclei of equal size exactly. What is its IoU with each, and what does it do
#    to AP@0.5?
#
# <details><summary>Answer</summary>
#
# IoU = |one nucleus| / |both| = 1/2: just at the 0.5 threshold it would still match one nucleus (and
# miss the other); any imprecision drops it below 0.5 and both nuclei are missed, and the blob is a false
# positive. At AP@[.5:.95] it fails every threshold above 0.5.
#
# </details>
#
# 4. Why does the mask loss of Mask R-CNN use only the true class's mask map (and only positive proposals)?
#
# <details><summary>Answer</summary>
#
# The class head already decides the class; the mask head then only has to answer "which pixels of this
# box belong to the object", per class, without the classes competing per pixel (a sigmoid per map, not a
# softmax across maps). A background proposal has no object whose mask could be learned.
#
# </details>
#
# 5. Why does RoIAlign give the mask head a better target than RoI pooling would?
#
# <details><summary>Answer</summary>
#
# RoI pooling rounds the box to whole feature cells (and bins to whole cells), shifting it by up to half a
# cell, so the window and the mask target no longer line up pixel for pixel. RoIAlign samples at the box's
# exact coordinates, so the 14 x 14 mask target and the features describe the same place.
#
# </details>

# %% [markdown]
# ## Where next
#
# * Concept page: [Instance segmentation](../concepts/instance_segmentation.md)
#   (`docs/concepts/instance_segmentation.md`), with exercises.
# * API: [instance segmentation](../api/instance.rst) (`FPN`, Mask R-CNN-lite, `label_components`,
#   `watershed`, `train_instance`), [`functional.roi`](../api/functional/roi.rst) (RoIAlign),
#   [`minimal_seg.metrics`](../api/metrics.rst) (`mask_iou`, `mean_average_precision`).
# * Assignment: [a7, RoIAlign](../assignments.md#assignment-a7) (`a7_roi_align.py`: the region features
#   the mask head reads).
# * Back to the start: [the list of lectures](../lectures.md).
