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
# # 4. From a classifier to a fully convolutional network
#
# *Lecture 001 ("Скользящее окно", "Тепловая карта", "Маска класса", "ФС слои: фиксированный размер",
# "Свёртка 1 x 1", "Полносвёрточная сеть (FCN)", "FCN + argmax", "FCN + upscale + argmax",
# "Обучение FCN", "Постобработка: DL + CRF"), lecture 004 (sliding window).*
#
# The lecture's path from image classification to segmentation:
#
# 1. run a classifier on every window of the image (**sliding window**) -> a class **heatmap**;
# 2. notice that the fully connected (FC) layers are convolutions in disguise: rewrite them as
#    $h \times w$ and **1 x 1 convolutions**, and the classifier runs on a whole image in one pass;
# 3. **FCN + upscale + argmax**: upsample the coarse heatmap back to the image and take the best
#    class per pixel;
# 4. train it end to end with a **per-pixel softmax cross-entropy**; add skips from earlier layers
#    (**FCN-32s vs FCN-8s**).
#
# The classifier and its conversion live in `minimal_seg.classical.sliding_window`.

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

from minimal_seg import functional as F
from minimal_seg import nn
from minimal_seg.classical import (FCClassifier, fc_to_conv, heatmap_to_mask, linear_to_conv,
                                   sliding_window_heatmap, train_classifier, window_crops)
from minimal_seg.data import Shapes, batches
from minimal_seg.models import build_model
from minimal_seg.optim import Adam, CosineSchedule
from minimal_seg.train import evaluate, make_loss, predict, train_step
from minimal_seg.viz import colorize, plot_matrix, plot_predictions, to_display

# %% [markdown]
# ## 4.1 Sliding window -> heatmap -> class mask
#
# A small classifier for 16 x 16 windows: two unpadded convolutions with max pooling, then
# `Flatten` and two fully connected layers. A window's label is the class of its centre pixel
# (background, circle, square, triangle; black, blue, orange, green in the masks). We train it on 4000
# random windows of 128 `Shapes` images.

# %%
train_set = Shapes(128, image_size=48, seed=0)
val_set = Shapes(8, image_size=48, seed=1_000_000)
names = train_set.class_names
window = 16
crops, labels = window_crops(train_set.images, train_set.masks, window, count=4000, seed=0)
classifier = FCClassifier(in_channels=1, num_classes=4, window=window, seed=0)
print(classifier)
history = train_classifier(classifier, crops, labels, epochs=4, batch_size=64, lr=3e-3)
classifier.eval()
val_crops, val_labels = window_crops(val_set.images, val_set.masks, window, count=1000, seed=1)
val_acc = (classifier(val_crops).argmax(axis=1) == val_labels).mean()
print("loss per epoch", np.round(history, 3), f"  window accuracy on new images {val_acc:.3f}")

# %% [markdown]
# Now slide it over a new image, one window at a time, with a step of 4 pixels: the loop version.
# Every window gives 4 class scores, so the result is a heatmap (4, 9, 9): cell $(i, j)$ belongs to the
# window with top-left corner $(4i, 4j)$. The library's `sliding_window_heatmap` does the same with
# the windows batched.

# %%
image, truth = val_set[0]                                # (1, 48, 48), (48, 48)
stride = 4
positions = range(0, 48 - window + 1, stride)
t0 = time.perf_counter()
heat_loop = np.zeros((4, len(positions), len(positions)), dtype=np.float32)
for i, y in enumerate(positions):
    for j, x in enumerate(positions):
        heat_loop[:, i, j] = classifier(image[None, :, y:y + window, x:x + window])[0]
t_loop = time.perf_counter() - t0
heat = sliding_window_heatmap(classifier, image, stride=stride)
assert np.allclose(heat, heat_loop, atol=1e-5)

probs, _ = F.softmax_forward(heat[None], axis=1)
mask = heatmap_to_mask(heat, (48, 48), window, stride)    # each pixel: argmax of the nearest window
fig, axes = plt.subplots(1, 6, figsize=(16, 3))
axes[0].imshow(to_display(image), cmap="gray"); axes[0].set_title("image")
for k in range(1, 4):
    axes[k].imshow(probs[0, k], cmap="magma", vmin=0, vmax=1); axes[k].set_title(f"heatmap: {names[k]}")
axes[4].imshow(colorize(mask)); axes[4].set_title("class mask (argmax)")
axes[5].imshow(colorize(truth)); axes[5].set_title("truth")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 4.2 FC layers need a fixed size
#
# The first FC layer multiplies a flattened feature map of exactly $16 \cdot 2 \cdot 2 = 64$ numbers
# ("ФС слои: фиксированный размер"). A whole 48 x 48 image gives a larger map, and the classifier refuses:

# %%
try:
    classifier(image[None])
except Exception as error:
    print(type(error).__name__, ":", error)

# %% [markdown]
# ## 4.3 FC layers are convolutions: $h \times w$ and 1 x 1
#
# The first FC layer sees a feature map $(C, h, w)$ flattened row-major, so its weight matrix
# $W \in \mathbb{R}^{D \times C h w}$ *is* a convolution kernel of shape $(D, C, h, w)$: on a map of
# exactly $h \times w$ it has one output position, and that output equals $W\,\mathrm{vec}(\cdot)$.
# Every later FC layer sees a $1 \times 1$ "map" and becomes a **1 x 1 convolution**
# ("Свёртка 1 x 1"; "Conv H x W", then "Conv 1 x 1" on the slide):
#
# $$\text{Linear}\; W\,(D, C h w) \;\to\; \text{Conv2d}\; W.\mathrm{reshape}(D, C, h, w), \qquad
# \text{Linear}\; W\,(D', D) \;\to\; \text{Conv2d}\; W.\mathrm{reshape}(D', D, 1, 1).$$

# %%
conv_part = nn.Sequential(*classifier.layers[:6])        # conv, ReLU, pool, conv, ReLU, pool
features = conv_part(val_crops[:5])                      # 5 windows -> (5, 16, 2, 2)
fc1 = classifier[7]                                      # Linear(64, 32), after Flatten
by_linear = fc1(features.reshape(5, -1))                 # (5, 32)
conv1 = linear_to_conv(fc1, features.shape[1:])          # Conv2d(16, 32, kernel (2, 2))
by_conv = conv1(features)                                # (5, 32, 1, 1)
print(conv1, " weight", conv1.params["w"].shape)
assert np.allclose(by_linear, by_conv[:, :, 0, 0], atol=1e-5)

# %% [markdown]
# `fc_to_conv` converts the whole classifier. The converted network accepts **any** image size and
# returns the whole heatmap in **one pass**: overlapping windows share their convolutions instead of
# recomputing them. The stride between heatmap cells is the product of the pooling strides, $2 \cdot 2 = 4$.

# %%
fcn = fc_to_conv(classifier)
print(fcn)
t0 = time.perf_counter()
heat_fcn = fcn(image[None])[0]                           # (4, 9, 9) in one pass
t_fcn = time.perf_counter() - t0
print(f"one pass: {heat_fcn.shape}, max difference to the sliding window {np.abs(heat_fcn - heat).max():.1e}")
print(f"time: window loop {1000 * t_loop:.1f} ms, one pass {1000 * t_fcn:.1f} ms")
assert np.allclose(heat_fcn, heat, atol=1e-4)

big = Shapes(1, image_size=96, seed=7).images            # any size works now
print("a 96 x 96 image gives a heatmap of shape", fcn(big).shape)

# %% [markdown]
# ## 4.4 FCN + argmax, FCN + upscale + argmax
#
# The argmax of the heatmap is a 9 x 9 class map, 4 pixels per cell. "FCN + upscale + argmax":
# upsample the *scores* bilinearly first and take the argmax per pixel: the boundaries stop being
# blocky. (Cell $i$ is centred on pixel $4i + 7.5$; after x4 upsampling it sits at $4i + 1.5$, so the
# upsampled map is shifted by 6 pixels, and the 6-pixel border no window centre reaches is filled with
# the nearest value.)

# %%
coarse = heat_fcn.argmax(axis=0)                          # (9, 9)
up, _ = F.upsample_bilinear_forward(heat_fcn[None], scale=4)            # (1, 4, 36, 36)
upscaled = np.pad(up[0].argmax(axis=0), 6, mode="edge")                 # (48, 48)
blocky = heatmap_to_mask(heat_fcn, (48, 48), window, stride)

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, m, title in zip(axes, (coarse, blocky, upscaled, truth),
                        ("FCN + argmax (9 x 9)", "nearest cell, 48 x 48", "FCN + upscale + argmax", "truth")):
    ax.imshow(colorize(m)); ax.set_title(title); ax.set_axis_off()
plt.show()
for name, m in (("nearest", blocky), ("upscale", upscaled)):
    print(f"{name:8s} pixel accuracy {(m == truth).mean():.3f}")

# %% [markdown]
# ## 4.5 Training an FCN: per-pixel softmax cross-entropy
#
# Instead of training on windows, train the fully convolutional network on whole images against the
# ground-truth mask ("Обучение FCN": input $X$, prediction $F(X)$, ground truth $Y$). With logits
# $z_i \in \mathbb{R}^K$ at pixel $i$, $p_i = \mathrm{softmax}(z_i)$ and the true class $y_i$, the loss
# averages a classification loss over all $N$ pixels:
#
# $$L = -\frac{1}{N}\sum_{i} \log p_{i, y_i}, \qquad
# \frac{\partial L}{\partial z_{i,k}} = \frac{1}{N}\big(p_{i,k} - [k = y_i]\big).$$
#
# The loop version on a 2 x 2 image with 3 classes, against the library:

# %%
z = np.array([[[[2.0, 0.5], [0.1, -1.0]],
               [[1.0, 1.5], [0.3, 2.0]],
               [[0.0, -0.5], [2.5, 0.0]]]])              # (1, K=3, 2, 2)
y = np.array([[[0, 1], [2, 1]]])                          # (1, 2, 2)

loss, grad = 0.0, np.zeros_like(z)
n = y.size
for h in range(2):
    for w in range(2):
        p = np.exp(z[0, :, h, w]) / np.exp(z[0, :, h, w]).sum()
        loss -= np.log(p[y[0, h, w]]) / n
        grad[0, :, h, w] = (p - np.eye(3)[y[0, h, w]]) / n

loss_lib, cache = F.softmax_cross_entropy_forward(z, y)
grad_lib = F.softmax_cross_entropy_backward(1.0, cache)
print(f"loop {loss:.6f}   library {float(loss_lib):.6f}")
assert np.isclose(loss, loss_lib) and np.allclose(grad, grad_lib)

# %% [markdown]
# ## 4.6 FCN-32s vs FCN-8s
#
# The library's FCN has a VGG-like encoder of five stages (two 3 x 3 conv + BN + ReLU, then a 2 x 2
# max pool), the FC layers as convolutions (`fc6` 3 x 3, `fc7` 1 x 1), a 1 x 1 `score` layer and
# transposed convolutions initialised to bilinear upsampling (notebook 3):
#
# $$\text{FCN-32s:}\quad \text{up}_{32}\big(\text{score}(\text{pool}_5)\big)$$
# $$\text{FCN-8s:}\quad \text{up}_{8}\Big(\text{up}_2\big(\text{up}_2(\text{score}(\text{pool}_5)) +
# \text{score}_4(\text{pool}_4)\big) + \text{score}_3(\text{pool}_3)\Big)$$
#
# On a 64 x 64 image `pool5` is 2 x 2: FCN-32s has to paint the whole mask from four score vectors,
# FCN-8s adds the 8 x 8 scores of `pool3` ("FCN + upscale" with the outputs of the pooling layers).
# Both are trained below with the same budget: 60 steps of 8 images, Adam, cosine schedule.

# %%
shapes_train = Shapes(256, image_size=64, seed=0)
shapes_val = Shapes(64, image_size=64, seed=1_000_000)

def fit(model, data, steps, batch_size=8, lr=3e-3, seed=0):
    """The training loop of the lecture, built from the library's pieces; returns the step losses."""
    optimizer = Adam(model.parameters(), lr=lr)
    schedule = CosineSchedule(optimizer, steps, min_lr=lr / 100, warmup_steps=5)
    loss_fns = make_loss("ce")                           # per-pixel softmax cross-entropy
    losses, epoch = [], 0
    while len(losses) < steps:
        for images, masks in batches(data, batch_size, seed=seed, epoch=epoch):
            losses.append(float(train_step(model, optimizer, schedule, loss_fns, images, masks)))
            if len(losses) == steps:
                break
        epoch += 1
    return losses

runs = {}
for name in ("fcn32s", "fcn8s"):
    model = build_model(name, in_channels=1, num_classes=4, base_channels=8, seed=0)
    t0 = time.perf_counter()
    losses = fit(model, shapes_train, steps=60)
    runs[name] = dict(model=model, losses=losses, metrics=evaluate(model, shapes_val))
    m = runs[name]["metrics"]
    print(f"{name}: {time.perf_counter() - t0:.1f} s, {model.num_parameters():,} parameters, "
          f"val mIoU {m['miou']:.3f}, pixel accuracy {m['pixel_accuracy']:.3f}, "
          f"IoU per class {[round(m[f'iou_{k}'], 2) for k in range(4)]}")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
for name, run in runs.items():
    ax.plot(run["losses"], label=f"{name} (val mIoU {run['metrics']['miou']:.2f})")
ax.set_xlabel("step"); ax.set_ylabel("training loss"); ax.legend(); ax.grid(alpha=0.3)
plt.show()

shown = slice(0, 3)
preds = {title: predict(runs[name]["model"], shapes_val.images[shown])
         for name, title in (("fcn32s", "FCN-32s"), ("fcn8s", "FCN-8s"))}
plot_predictions(shapes_val.images[shown], shapes_val.masks[shown], preds, on_image=False)
plt.show()
print("FCN-8s beats FCN-32s on mIoU:", runs["fcn8s"]["metrics"]["miou"] > runs["fcn32s"]["metrics"]["miou"])

# %% [markdown]
# At this tiny budget neither network is good, but the direction is the lecture's: FCN-32s can only
# paint smooth blobs from its 2 x 2 score map ("слишком резкий upsampling - границы не чёткие") and mostly
# predicts background, while FCN-8s, which adds scores from the 1/16 and 1/8 resolution maps, finds the
# shapes and their outlines. (FCN-32s is also the *slower* of the two here: its final transposed
# convolution has a 64 x 64 kernel.)
#
# ## 4.7 Post-processing: network + CRF
#
# Lecture 001 ends the classical part with a **conditional random field**: the network's softmax
# gives the unary term, and a pairwise term rewards neighbouring pixels of similar colour for
# taking the same label,
#
# $$E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j), \qquad \Phi = -\log p_i(x_i), \quad
# \Psi = [x_i \ne x_j]\, k(f_i, f_j).$$
#
# `dense_crf` minimises it approximately by mean-field iterations. On a blocky, noisy,
# FCN-32s-like prediction of a simple scene it snaps the boundaries to the image edges:

# %%
from minimal_seg.classical import coarse_prediction, dense_crf, piecewise_scene

scene, scene_truth = piecewise_scene(48, 48, seed=0)
scene_probs = coarse_prediction(scene_truth, num_classes=3, factor=8, seed=0)
refined, energies = dense_crf(scene_probs, scene, iterations=5, return_energies=True)
before, after = scene_probs.argmax(0), refined.argmax(0)
print("energy E(x) per iteration:", np.round(energies, 1))
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, picture, title in zip(axes, (to_display(scene), colorize(scene_truth), colorize(before), colorize(after)),
                              ("image", "truth", f"network: acc {(before == scene_truth).mean():.3f}",
                               f"+ CRF: acc {(after == scene_truth).mean():.3f}")):
    ax.imshow(picture, cmap="gray"); ax.set_title(title); ax.set_axis_off()
plt.show()

# %% [markdown]
# ## Summary
#
# * A classifier slid over the image gives a class heatmap; its argmax is a (coarse) class mask.
# * FC layers need a fixed input size, but they are convolutions: the first one an $h \times w$
#   convolution, the rest 1 x 1. Converted, the classifier runs on any image in one pass, with the
#   same numbers as the sliding window.
# * FCN + upscale + argmax: upsample the scores (bilinearly), then take the argmax per pixel.
# * Train end to end with the per-pixel softmax cross-entropy, whose gradient is $(p - g)/N$.
# * Skips from higher-resolution layers (FCN-8s) give much better masks than one 32x upsampling
#   (FCN-32s); a CRF can clean boundaries afterwards.
#
# ## Exercises
#
# 1. Slide the classifier with stride 1 (`sliding_window_heatmap(..., stride=1)`). Can the converted
#    network produce this heatmap in one pass? (Hint: the pools fix the stride; try shifted inputs.)
# 2. Why must the classifier's convolutions be unpadded for `fc_to_conv` to reproduce the sliding
#    window exactly? Build a padded variant and measure the difference.
# 3. Count the multiply-adds of the window loop and of the one-pass FCN for a 48 x 48 image.
# 4. Train FCN-16s with the same budget and place it between FCN-32s and FCN-8s.
# 5. Run `dense_crf` on the softmax of the trained FCN-32s for a validation image
#    (`method="fast"`). Does it help a prediction that is wrong on most shapes? Why not?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. Not directly: the two 2 x 2 pools fix the step between heatmap cells at 4. Run the converted
#    network on the image shifted by 0..3 pixels in each direction (16 passes) and interleave the 16
#    heatmaps.
# 2. A padded convolution reads zeros outside the *image*, but the window classifier read zeros outside
#    the *window*; a window in the middle of the image sees real pixels there instead. Only with
#    unpadded convolutions does each heatmap cell depend on its window alone.
# 3. Per window: the multiply-adds of the two convolutions and the two FC layers (`summary` lists the
#    shapes). The loop pays them 81 times; the one pass computes each convolution output once, and
#    neighbouring windows share most of them.
# 4. `build_model("fcn16s", ...)` with the same `run` settings as FCN-32s and FCN-8s.
# 5. The CRF pulls labels towards edges and towards agreement with neighbours; it cannot turn a shape
#    predicted as background into the right class, because its unary term comes from the network.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** A classifier's first FC layer reads a (16, 2, 2) feature map and has 32 outputs. What does it
# become in the fully convolutional network, and what does the second FC layer (32 -> 4) become?
#
# <details><summary>Answer</summary>
#
# A convolution with weight (32, 16, 2, 2) (the FC matrix $32 \times 64$ reshaped, no padding), then a
# 1 x 1 convolution with weight (4, 32, 1, 1).
#
# </details>
#
# **2.** The converted network of 4.3 gives a 9 x 9 heatmap for a 48 x 48 image. How large is the
# heatmap of a 96 x 96 image, and why?
#
# <details><summary>Answer</summary>
#
# $(96 - 16)/4 + 1 = 21$, so 21 x 21: one cell per 16 x 16 window, windows 4 pixels apart (the
# product of the two pooling strides).
#
# </details>
#
# **3.** Why take the argmax *after* upsampling the scores, rather than upsampling the argmax?
#
# <details><summary>Answer</summary>
#
# Class labels cannot be interpolated (the "average" of circle and triangle is no class); scores can.
# Upsampling the scores bilinearly and then taking the argmax per pixel gives boundaries that run
# between the coarse cells instead of along their blocky edges.
#
# </details>
#
# **4.** The gradient of the per-pixel softmax cross-entropy with respect to the scores is $(p - g)/N$.
# What is it at a pixel whose prediction is already certain and right?
#
# <details><summary>Answer</summary>
#
# Zero: $p$ equals the one-hot $g$ there. The well-classified pixels stop contributing, and the
# gradient comes from the uncertain or wrong ones.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [From a sliding window to a fully convolutional network](../concepts/fcn.md) (`docs/concepts/fcn.md`).
# * API: [`minimal_seg.classical`](../api/classical.rst) (`FCClassifier`, `fc_to_conv`,
#   `sliding_window_heatmap`), [`minimal_seg.models`](../api/models.rst) (FCN-32s/16s/8s),
#   [`functional.loss`](../api/functional/loss.rst) (softmax cross-entropy),
#   [`minimal_seg.train`](../api/train.rst).
# * Assignment: none for this notebook; the closest are [a1](../assignments.md#assignment-a1) (the convolution these
#   layers run on) and [a5](../assignments.md#assignment-a5) (the cross-entropy's backward pass, notebook 6).
# * Next: [notebook 5, U-Net and skip connections](05_unet_and_skips.ipynb).
