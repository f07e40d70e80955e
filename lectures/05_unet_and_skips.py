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
# # 5. Encoder-decoder and skip connections: U-Net
#
# *Lecture 000 ("U-Net", "Плюсы U-Net", "Минусы U-Net"), lecture 001 ("Skipped connections", "U-Net"),
# lecture 002 ("свернули в скрытое представление, развернули, спрогнозировали"; "можно добавить связи
# между слоями, отражающими одинаковую абстракцию"), lecture 004 (hourglass, "песочные часы").*
#
# An **encoder-decoder** ("hourglass") squeezes the image into a small, deep representation and
# expands it back. What the encoder threw away (exact positions, thin structures) the decoder cannot
# invent. **Skip connections** hand each decoder level the encoder's features of the same resolution:
# that is U-Net. We build it, check that its hand-written backward pass is right, train it with and
# without skips, and test the lecture's list of pros and cons by experiment.
#
# Colours in the masks: background black, circle blue, square orange, triangle green.

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=4, suppress=True)

# %%
import tempfile
import time

from minimal_seg import functional as F
from minimal_seg.classical import boundaries
from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.metrics import ConfusionMatrix, iou
from minimal_seg.models import UNet
from minimal_seg.train import TrainConfig, predict, train
from minimal_seg.viz import colorize, plot_matrix, plot_predictions

# %% [markdown]
# ## 5.1 The architecture
#
#     x ─ enc0 ─────────────────────────────── cat ─ dec0 ─ head ─ logits
#           └ pool ─ enc1 ───────────── cat ─ dec1 ┘ up0
#                       └ pool ─ enc2 ─ cat ─ dec2 ┘ up1
#                                  └ pool ─ bottleneck ┘ up2
#
# Every `enc`/`dec` block is two 3 x 3 convolutions (+ batch norm + ReLU); level $l$ has
# $b \cdot 2^l$ channels; `up` is a 2 x 2 transposed convolution with stride 2 (notebook 3); `cat`
# concatenates the encoder's features with the upsampled ones along the channel axis. With
# `skips=False` the `cat`s disappear: the plain hourglass. Shapes for a 32 x 32 input, $b = 8$:

# %%
unet = UNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
rows = unet.summary((1, 1, 32, 32), print_fn=lambda line: None)
blocks = {}
for name, kind, shape, params in rows:                   # group the leaf layers by block
    block = name.split(".")[0]
    blocks.setdefault(block, [shape, 0])
    blocks[block][0] = shape
    blocks[block][1] += params
for block, (shape, params) in blocks.items():
    print(f"{block:<11} output {str(shape):<18} parameters {params:>7,}")
plain = UNet(in_channels=1, num_classes=4, base_channels=8, depth=3, skips=False)
print(f"total: {unet.num_parameters():,} parameters with skips, {plain.num_parameters():,} without")

# %% [markdown]
# ## 5.2 A tensor used twice: its gradient is the sum
#
# The output of `enc0` feeds two paths: the pool (down the encoder) and the skip (to `dec0`). In the
# backward pass both paths send a gradient back, and by the chain rule
# $\frac{\partial L}{\partial e} = \frac{\partial L}{\partial e}\big|_{\text{pool path}} +
# \frac{\partial L}{\partial e}\big|_{\text{skip path}}$: **add, never overwrite** (the micrograd lesson).
# Concatenation's backward simply splits the gradient into the two inputs' channels:

# %%
a = np.ones((1, 2, 2, 2)); b = 2 * np.ones((1, 3, 2, 2))
cat, cache = F.concat_forward([a, b])                    # (1, 5, 2, 2)
da, db = F.concat_backward(np.arange(20.0).reshape(1, 5, 2, 2), cache)
print("cat", cat.shape, "-> gradients", da.shape, db.shape)

# %% [markdown]
# `gradcheck_layer` compares the hand-written backward of a whole (tiny, float64) U-Net with central
# differences along random directions, for the input and every parameter. Then we break it on purpose:
# keep only the skip path's gradient at the encoder, as a tempting `d = d_skip` would.

# %%
tiny = UNet(in_channels=1, num_classes=3, base_channels=2, depth=1, seed=0).astype(np.float64)
x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
report = gradcheck_layer(tiny, x, directions=3)
print(f"correct U-Net: passed = {report.passed}, worst relative error {report.max_rel_error:.1e}")
assert report.passed

tiny._skip_sum = lambda d_pool, d_skip: d_skip           # overwrite instead of add
broken = gradcheck_layer(tiny, x, directions=3)
print(f"overwriting:   passed = {broken.passed}")
print("\n".join(line for line in str(broken).splitlines() if "FAIL" in line))
assert not broken.passed


# %% [markdown]
# Everything *after* the skip (bottleneck, decoder, head) is still right; every tensor before it
# (the encoder and the input) gets a wrong gradient, and training would quietly get worse.
#
# ## 5.3 Training with and without skips
#
# Both networks get the same data (960 `Shapes` images of 32 x 32), the same budget (5 epochs of
# 120 steps, batch 8, Adam, cosine schedule) and the same seed, through the library's `train`
# (what `python -m minimal_seg train` runs). The checkpoints go to a temporary folder.
#
# Training a segmentation network on `Shapes` has two phases. First it learns *where* the objects
# are and gives every shape one class: a **plateau** where the validation mIoU stalls. Only later does
# it learn *which* shape is which. How high is that plateau? Take the true object masks, perfect to the
# pixel, and give every object the same shape class:

# %%
def run(**changes):
    settings = dict(model="unet", image_size=32, num_train=960, num_val=48, epochs=5, batch_size=8,
                    base_channels=8, lr=3e-3, seed=0)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(**{**settings, **changes, "out": out})
        t0 = time.perf_counter()
        result = train(config, progress=False, log=lambda line: None)
    result["seconds"] = time.perf_counter() - t0
    return result


def miou_of(pred, masks):
    cm = ConfusionMatrix(4)
    cm.update(pred, masks)
    return cm.miou()


runs = {"with skips": run(), "without skips": run(model_options={"skips": False})}
val_set = runs["with skips"]["val_set"]
objects = val_set.masks > 0
plateau = max(miou_of(np.where(objects, k, 0), val_set.masks) for k in (1, 2, 3))
print(f"perfect object masks, one class for every shape: mIoU {plateau:.3f} (the plateau)\n")
for name, result in runs.items():
    last = result["history"][-1]
    print(f"{name:<14} {result['seconds']:5.1f} s   val mIoU per epoch "
          f"{[round(row['val_miou'], 3) for row in result['history']]}   "
          f"IoU per class {[round(last[f'val_iou_{k}'], 2) for k in range(4)]}")
final = {name: result["history"][-1]["val_miou"] for name, result in runs.items()}
assert final["with skips"] > plateau + 0.1, "the U-Net has not left the plateau"
assert final["with skips"] > final["without skips"]

# %%
fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.2))
for name, result in runs.items():
    steps = [v for row in result["history"] for v in row["step_losses"]]
    ax_loss.plot(steps, label=name)
    ax_iou.plot([row["epoch"] for row in result["history"]], [row["val_miou"] for row in result["history"]],
                marker="o", label=name)
ax_iou.axhline(plateau, color="grey", ls="--", lw=1, label="plateau: one class for every shape")
ax_loss.set_xlabel("step"); ax_loss.set_ylabel("training loss"); ax_loss.legend(); ax_loss.grid(alpha=0.3)
ax_iou.set_xlabel("epoch"); ax_iou.set_ylabel("validation mIoU"); ax_iou.legend(fontsize=8); ax_iou.grid(alpha=0.3)
plt.show()

shown = slice(0, 4)
preds = {name: predict(result["model"], val_set.images[shown]) for name, result in runs.items()}
plot_predictions(val_set.images[shown], val_set.masks[shown], preds, on_image=False)
plt.show()

# %% [markdown]
# The U-Net with skips starts on the plateau (its first epochs in the printout and on the plot) and
# leaves it within the budget: its final mIoU is well above the plateau line (the `assert` above holds
# it to at least 0.1 above). A shorter budget stops on the plateau, and then nothing can be
# concluded about shapes (try `run(epochs=1)`).
#
# Without skips the decoder has to rebuild every boundary from the 4 x 4 bottleneck: with the same
# budget its mIoU stays lower, its masks come out as rounded blobs, and the blobs carry the regular
# texture of the 2 x 2, stride-2 transposed convolutions (each input pixel stamps one copy of the
# kernel, notebook 3). With skips the outlines come straight from the full-resolution encoder features.
#
# ## 5.4 The lecture's pros and cons, by experiment
#
# **Pros** ("Плюсы U-Net"): computationally efficient; trains on a small data set; made for
# biomedical images (notebook 6 trains it on the nuclei image). **Cons** ("Минусы U-Net"):
# multi-class segmentation is harder (FPN and PSPNet, with their multi-scale context, do better);
# boundaries. Each one below is measured on the U-Net trained in 5.3 (small data: on one more run).
#
# ### Pro: cheap
#
# The model has about 120 thousand parameters and segments a batch in milliseconds on a CPU:

# %%
model = runs["with skips"]["model"]
t0 = time.perf_counter()
predict(model, val_set.images)
print(f"{model.num_parameters():,} parameters; {len(val_set)} images of 32 x 32 in "
      f"{1000 * (time.perf_counter() - t0):.0f} ms")

# %% [markdown]
# ### Pro: a small data set
#
# The U-Net paper trained on 30 images, with heavy augmentation. Do the same on a small scale: a tenth
# of the data, 96 images, each repeated 10 times per epoch so that the number of steps stays the
# same, and augmented with the 8 symmetries of the square (flips and quarter turns, notebook 6):

# %%
small = run(num_train=96, repeat=10, augment=True)
small_miou = small["history"][-1]["val_miou"]
print(f"val mIoU per epoch, 96 images + augmentation: {[round(row['val_miou'], 3) for row in small['history']]}")
print(f"final val mIoU: 96 images + augmentation {small_miou:.3f}, 960 images {final['with skips']:.3f}, "
      f"plateau {plateau:.3f};   the small set reaches {small_miou / final['with skips']:.0%} of the full one")
assert small_miou < final["with skips"]

# %% [markdown]
# Read the numbers above, not the slogan: with the same number of steps, ten times fewer images cost
# accuracy here (the `assert` checks that the small set stays below the full one), and the printout says
# how much, and whether the small set got past the plateau as well. "Trains on a small data set" means
# that a small set still gives a useful network when every image is used well (augmentation, many
# labelled pixels per image), not that it matches a large one. Exercise 5 takes the augmentation away.
#
# ### Con: many classes
#
# Merge the three shapes into one "object" class and compare with the 4-class score; then split the
# wrong pixels into "object taken for background or back" and "one shape taken for another":

# %%
pred_all = predict(model, val_set.images)
cm = ConfusionMatrix(4)
cm.update(pred_all, val_set.masks)
M = cm.to_numpy()
wrong_pixels = M.sum() - np.trace(M)
between_shapes = M[1:, 1:].sum() - np.trace(M[1:, 1:])
object_iou = iou(pred_all > 0, objects)
print(f"object vs background IoU {object_iou:.3f};   mIoU over the 4 classes {cm.miou():.3f}")
print(f"wrong pixels: {wrong_pixels}, of which shape-for-another-shape: {between_shapes} "
      f"({between_shapes / wrong_pixels:.0%})")
assert object_iou > cm.miou() + 0.1 and between_shapes > wrong_pixels / 2
ax = plot_matrix(M, fmt="{:.0f}", title="confusion matrix (rows: truth)")
ax.figure.set_size_inches(3.6, 3.6)
ax.set_xticks(range(4), val_set.class_names, rotation=45, fontsize=8)
ax.set_yticks(range(4), val_set.class_names, fontsize=8)
plt.show()

# %% [markdown]
# The object/background mask is much better than the 4-class score, and most of the wrong pixels
# (the share is printed above; the `assert` holds it above one half) are one shape taken for another.
# Telling a square from a triangle takes the context of the whole shape, not local evidence; this is
# what the lecture means by "multi-class is harder", and where the multi-scale context of PSPNet,
# FPN and DeepLab (notebooks 7 and 8) is meant to help.
#
# ### Con: boundaries
#
# Where are the object/background mistakes? Measure how far each pixel is from the nearest true object
# boundary. The distance map comes from growing the boundary map one pixel at a time, and a 3 x 3 max
# pool with stride 1 (notebook 3) is exactly one step of that growth (a morphological dilation).

# %%
edges = np.stack([boundaries(mask) for mask in objects]).astype(np.float32)   # (N, 32, 32)
distance = np.full(edges.shape, 5)
grown = edges[:, None]
for d in range(5):
    distance[(grown[:, 0] > 0) & (distance == 5)] = d
    grown, _ = F.max_pool2d_forward(grown, kernel_size=3, stride=1, padding=1)
wrong = (pred_all > 0) != objects                         # object/background errors only
rates = [wrong[distance == d].mean() for d in range(6)]
share = [(distance == d).mean() for d in range(6)]
for d in range(6):
    label = f"{d} px" if d < 5 else ">= 5 px"
    print(f"distance {label:<8} {100 * share[d]:5.1f} % of the pixels, error rate {100 * rates[d]:5.1f} %")
near = wrong[distance <= 1].sum() / wrong.sum()
print(f"{near:.0%} of the object/background errors lie within 1 pixel of a boundary, "
      f"where {share[0] + share[1]:.0%} of the pixels are")
assert rates[0] > 3 * rates[5] and near > 0.5

fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
i = 1
axes[0].imshow(colorize(val_set.masks[i])); axes[0].set_title("truth")
axes[1].imshow(colorize(pred_all[i])); axes[1].set_title("prediction")
axes[2].imshow(wrong[i], cmap="Reds"); axes[2].set_title("object/background\nerrors")
axes[3].imshow(distance[i], cmap="viridis"); axes[3].set_title("distance to a boundary\n(capped at 5)")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The error rate is highest on the boundary itself, and far lower 5 or more pixels away (the `assert`
# above: more than 3 times); more than half of the object/background errors lie within one pixel of a
# boundary (the printout gives the share, against the share of pixels there). The interior of
# shapes and the open background are easy; the outline is where U-Net hesitates.
#
# ## Summary
#
# * Encoder-decoder ("hourglass"): down to a small deep representation, then back up.
#   U-Net adds skip connections that concatenate encoder features to the decoder level of the same size.
# * A tensor used by two paths receives the **sum** of their gradients; overwriting it breaks every
#   gradient before the skip, which `gradcheck_layer` catches at once.
# * Training first gives every shape one class (a plateau, here at the printed mIoU); a budget that
#   stops there says nothing about shapes. With the budget of 5.3 the U-Net leaves it.
# * With the same budget, skips give sharper masks and higher mIoU than the plain hourglass.
# * U-Net is cheap; a tenth of the data, augmented, still trains it, at a measured cost in mIoU. Its
#   weak points show in its errors: most are one shape taken for another (context), and the
#   object/background errors crowd at the boundaries.
#
# ## Exercises
#
# 1. Replace the transposed-convolution `up` by `up="nearest"` or `up="bilinear"` (a 1 x 1 conv after
#    the upsampling). Compare mIoU and look for checkerboard patterns in the logits.
# 2. LinkNet adds the skip instead of concatenating it (`build_model("linknet", ...)`). Write down the
#    backward pass of an additive skip. What changes in the parameter count?
# 3. Train with `depth=2` and `depth=4`. How does the receptive field (notebook 2) of the bottleneck
#    relate to telling circles from squares?
# 4. Plot the error rate against the distance to a boundary for the model *without* skips.
# 5. Train on 96 images without augmentation (`run(num_train=96, repeat=10)`), then on 24 and on 8
#    images (with and without it). Where does "trains on a small data set" stop being true here?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. `run(model_options={"up": "nearest"})` and `{"up": "bilinear"}`. Look at `model.forward` logits of
#    one image: the transposed convolution's pattern repeats every 2 pixels (the stride), the others
#    do not have one.
# 2. For $d = a + b$: $\partial L/\partial a = \partial L/\partial b = \partial L/\partial d$, no split
#    and no sum at the merge (the sum happens where $a$ was also used elsewhere). The decoder blocks read
#    $C$ channels instead of $2C$, so their first convolutions have half the input weights.
# 3. `run(model_options={"depth": 2})`: compute the bottleneck's receptive field with `receptive_field`
#    (two 3 x 3 convolutions per level, a 2 x 2 pool with stride 2 between levels) and compare it with the
#    size of a shape (up to about half the image).
# 4. Use `runs["without skips"]["model"]` in the cell of the distance map.
# 5. `repeat` keeps the number of steps: `run(num_train=24, repeat=40)`, `run(num_train=8, repeat=120)`,
#    each with and without `augment=True`; compare with the plateau line of 5.3.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** A U-Net with $b = 8$ base channels and depth 3 reads a 32 x 32 image. What is the shape of the
# bottleneck's output (channels, height, width)?
#
# <details><summary>Answer</summary>
#
# Level $l$ has $b \cdot 2^l$ channels and three poolings halve the size three times:
# $(8 \cdot 2^3, 32/8, 32/8) = (64, 4, 4)$, as the table of 5.1 shows.
#
# </details>
#
# **2.** The encoder output $e$ goes to the pool and to the skip. In the backward pass, what is
# $\partial L/\partial e$, and what goes wrong if the code keeps only the skip's part?
#
# <details><summary>Answer</summary>
#
# The sum of the two paths' gradients. Keeping one part gives a wrong gradient to $e$ and to everything
# before it (the first encoder block and the input), while the layers after the skip stay right; the
# gradient check of 5.2 fails for exactly those tensors.
#
# </details>
#
# **3.** Concatenation joins a (N, 8, H, W) and a (N, 16, H, W) tensor. What does its backward pass do
# with the gradient (N, 24, H, W)?
#
# <details><summary>Answer</summary>
#
# It splits it along the channel axis: the first 8 channels go to the first input, the other 16 to the
# second. Nothing is added or multiplied.
#
# </details>
#
# **4.** A segmentation network's validation mIoU stays near 0.37 for several epochs while its
# object-vs-background IoU is already high. What has it learned, and what not yet?
#
# <details><summary>Answer</summary>
#
# Where the objects are, but not which shape each one is: it gives every shape the same class (the
# plateau of 5.3). One class out of three shapes right, background right: about
# $(1 + 0.4 + 0 + 0)/4$.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [U-Net, encoder-decoders and skip connections](../concepts/unet.md)
#   (`docs/concepts/unet.md`).
# * API: [`minimal_seg.models`](../api/models.rst) (`UNet`),
#   [`functional.tensor`](../api/functional/tensor.rst) (concatenation),
#   [`minimal_seg.gradcheck`](../api/gradcheck.rst) (`gradcheck_layer`),
#   [`minimal_seg.train`](../api/train.rst) (`TrainConfig`, `train`, `predict`),
#   [`minimal_seg.metrics`](../api/metrics.rst) (`ConfusionMatrix`).
# * Assignment: [a6, U-Net's backward pass through the skips](../assignments.md#assignment-a6) (`a6_unet_skips.py`:
#   sum the gradients at every skip; `python -m minimal_seg check a6 --impl ...`).
# * Next: [notebook 6, losses and practice](06_losses_and_practice.ipynb).
