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
# Both networks get the same data (192 `Shapes` images of 32 x 32), the same budget (4 epochs of
# 24 steps, batch 8, Adam, cosine schedule) and the same seed, through the library's `train`
# (what `python -m minimal_seg train` runs). The checkpoints go to a temporary folder.

# %%
def run(**changes):
    settings = dict(model="unet", image_size=32, num_train=192, num_val=48, epochs=4, batch_size=8,
                    base_channels=8, lr=3e-3, seed=0)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(**{**settings, **changes, "out": out})
        t0 = time.perf_counter()
        result = train(config, progress=False, log=lambda line: None)
    result["seconds"] = time.perf_counter() - t0
    return result

runs = {"with skips": run(), "without skips": run(model_options={"skips": False})}
for name, result in runs.items():
    last = result["history"][-1]
    print(f"{name:<14} {result['seconds']:5.1f} s   val mIoU per epoch "
          f"{[round(row['val_miou'], 3) for row in result['history']]}   "
          f"IoU per class {[round(last[f'val_iou_{k}'], 2) for k in range(4)]}")

# %%
fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.2))
for name, result in runs.items():
    steps = [v for row in result["history"] for v in row["step_losses"]]
    ax_loss.plot(steps, label=name)
    ax_iou.plot([row["epoch"] for row in result["history"]], [row["val_miou"] for row in result["history"]],
                marker="o", label=name)
ax_loss.set_xlabel("step"); ax_loss.set_ylabel("training loss"); ax_loss.legend(); ax_loss.grid(alpha=0.3)
ax_iou.set_xlabel("epoch"); ax_iou.set_ylabel("validation mIoU"); ax_iou.legend(); ax_iou.grid(alpha=0.3)
plt.show()

val_set = runs["with skips"]["val_set"]
shown = slice(0, 4)
preds = {name: predict(result["model"], val_set.images[shown]) for name, result in runs.items()}
plot_predictions(val_set.images[shown], val_set.masks[shown], preds, on_image=False)
plt.show()

# %% [markdown]
# Without skips the decoder has to rebuild every boundary from the 4 x 4 bottleneck: the masks come out
# as rounded blobs, the background IoU drops, and the blobs carry the regular texture of the 2 x 2,
# stride-2 transposed convolutions (each input pixel stamps one copy of the kernel, notebook 3). With skips the outlines come straight from the
# full-resolution encoder features. (At this budget neither model tells the three shapes apart well;
# that is the next point.)
#
# ## 5.4 The lecture's pros and cons, by experiment
#
# **Pros** ("Плюсы U-Net"): computationally efficient; trains on a small data set; made for
# biomedical images (notebook 6 trains it on the nuclei image).
#
# **Cheap.** The model above has about 120 thousand parameters and segments a batch in milliseconds
# on a CPU:

# %%
model = runs["with skips"]["model"]
t0 = time.perf_counter()
predict(model, val_set.images)
print(f"{model.num_parameters():,} parameters; {len(val_set)} images of 32 x 32 in "
      f"{1000 * (time.perf_counter() - t0):.0f} ms")

# %% [markdown]
# **Small data.** Train the same U-Net on only 24 images (each repeated 8 times per epoch, so the
# number of steps stays the same) and compare with the 192-image run:

# %%
small = run(num_train=24, repeat=8)
print(f"val mIoU after training on 24 images: {small['history'][-1]['val_miou']:.3f},   "
      f"on 192 images: {runs['with skips']['history'][-1]['val_miou']:.3f}")

# %% [markdown]
# **Cons** ("Минусы U-Net"): multi-class segmentation is harder (FPN and PSPNet, with their
# multi-scale context, do better); and **boundaries**. Both show up in the errors of the trained model.
#
# *Multi-class.* Merge the three shapes into one "object" class: the object/background mask is
# almost right, and most of the remaining errors are confusions *between* shapes, which need the
# context of a whole shape rather than local evidence.

# %%
pred_all = predict(model, val_set.images)
cm = ConfusionMatrix(4)
cm.update(pred_all, val_set.masks)
M = cm.to_numpy()
between_shapes = M[1:, 1:].sum() - np.trace(M[1:, 1:])
print(f"object vs background IoU {iou(pred_all > 0, val_set.masks > 0):.3f};   "
      f"mIoU over the 4 classes {cm.miou():.3f}")
print(f"wrong pixels: {M.sum() - np.trace(M)}, of which shape-for-another-shape: {between_shapes}")
ax = plot_matrix(M, fmt="{:.0f}", title="confusion matrix (rows: truth)")
ax.figure.set_size_inches(3.6, 3.6)
ax.set_xticks(range(4), val_set.class_names, rotation=45, fontsize=8)
ax.set_yticks(range(4), val_set.class_names, fontsize=8)
plt.show()

# %% [markdown]
# Within this budget 24 images are about as good as 192: the network does not memorise a small set
# quickly, because every image holds hundreds of labelled pixels, not one label. (Train much longer
# and it will; augmentation, notebook 6, is the usual remedy.)
#
# *Boundaries.* Where are the object/background mistakes? Measure how far each pixel is from the
# nearest true object boundary. The distance map comes from growing the boundary map one pixel at a
# time, and a 3 x 3 max pool with stride 1 (notebook 3) is exactly one step of that growth
# (a morphological dilation).

# %%
objects = val_set.masks > 0
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
# Nearly all object/background errors sit on or next to a boundary: the interior of shapes and the
# open background are easy, the outline is where U-Net hesitates.
#
# ## Summary
#
# * Encoder-decoder ("hourglass"): down to a small deep representation, then back up.
#   U-Net adds skip connections that concatenate encoder features to the decoder level of the same size.
# * A tensor used by two paths receives the **sum** of their gradients; overwriting it breaks every
#   gradient before the skip, which `gradcheck_layer` catches at once.
# * With the same budget, skips give sharper masks and higher mIoU than the plain hourglass.
# * U-Net is cheap and learns from few images (augmentation helps); its weak points are telling many
#   classes apart (context) and the pixels at boundaries.
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
# 5. Train on 8 and on 4 images. Where does "trains on a small data set" stop being true here?
