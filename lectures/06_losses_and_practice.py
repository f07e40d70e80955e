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
# # 6. Losses and practice
#
# *Lecture 000 ("Loss": binary cross-entropy, categorical cross-entropy, Sørensen-Dice, Jaccard;
# "Приёмы": the training set can be smaller, augmentation, training on crops), lecture 003 (Dice).*
#
# Four losses, each with its gradient, checked by a loop on a hand example and by a numerical
# gradient check. Then what they do about **class imbalance**, and the lecture's practical tricks:
# **augmentation**, **training on crops and predicting whole images**, on the real nuclei image.
#
# Notation: logits $z$ (N, K, H, W); $p = \mathrm{softmax}(z)$ over the class axis; labels $y$;
# one-hot $g$; the sums run over all pixels $i$ of the batch.

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
from minimal_seg.data import (Nuclei, Shapes, batches, default_augmentation, dice_score, hflip,
                              otsu_baseline_dice, otsu_threshold, rot90)
from minimal_seg.gradcheck import gradcheck
from minimal_seg.metrics import ConfusionMatrix
from minimal_seg.models import build_model
from minimal_seg.optim import Adam, CosineSchedule
from minimal_seg.train import make_loss, predict, train_step
from minimal_seg.viz import colorize, overlay, to_display

# %% [markdown]
# ## 6.1 Binary cross-entropy
#
# One logit per pixel, a target $t \in \{0, 1\}$, $s = \sigma(z)$:
#
# $$\ell = -\big(t \log s + (1 - t)\log(1 - s)\big), \qquad \frac{\partial \ell}{\partial z} = s - t .$$
#
# The library computes it from the logits without ever forming $\log 0$:
# $\ell = (1 - t)\,z + \log(1 + e^{-z})$, with the softplus evaluated stably. The loss is the mean over
# pixels. Hand example: four pixels.

# %%
z = np.array([2.0, -1.0, 0.5, -3.0])
t = np.array([1.0, 0.0, 0.0, 1.0])

loss, grad = 0.0, np.zeros_like(z)
for i in range(len(z)):
    s = 1 / (1 + np.exp(-z[i]))
    loss += -(t[i] * np.log(s) + (1 - t[i]) * np.log(1 - s)) / len(z)
    grad[i] = (s - t[i]) / len(z)

loss_lib, cache = F.bce_with_logits_forward(z, t)
grad_lib = F.bce_with_logits_backward(1.0, cache)
print(f"loop {loss:.6f}   library {float(loss_lib):.6f}   gradient {grad_lib}")
assert np.isclose(loss, loss_lib) and np.allclose(grad, grad_lib)

# %% [markdown]
# ## 6.2 Categorical cross-entropy, Dice and Jaccard
#
# **Categorical cross-entropy** (notebook 4): $L = -\frac1N \sum_i \log p_{i, y_i}$, gradient
# $\frac1N (p - g)$.
#
# **Dice** and **Jaccard** are the metrics of notebook 1 made differentiable: replace the hard
# masks by the probabilities. Per class $k$, with $I_k = \sum_i p_{ik} g_{ik}$ (soft intersection),
# $P_k = \sum_i p_{ik}$, $G_k = \sum_i g_{ik}$ and a small smoothing constant $s$:
#
# $$\mathrm{Dice}_k = \frac{2 I_k + s}{P_k + G_k + s}, \qquad
# J_k = \frac{I_k + s}{P_k + G_k - I_k + s}, \qquad L = 1 - \frac{1}{K}\sum_k (\cdot)_k .$$
#
# By the quotient rule, for every pixel,
#
# $$\frac{\partial\,\mathrm{Dice}_k}{\partial p_{ik}} = \frac{2 g_{ik} - \mathrm{Dice}_k}{P_k + G_k + s},
# \qquad
# \frac{\partial J_k}{\partial p_{ik}} = \frac{g_{ik}(1 + J_k) - J_k}{U_k + s}, \quad U_k = P_k + G_k - I_k,$$
#
# and the softmax's backward takes it from $p$ to $z$. Note the denominators: a class's gradient is
# divided by its own size. The loop version of the soft Dice and Jaccard on a 2 x 2 image:

# %%
zk = np.array([[[[2.0, 0.5], [0.1, -1.0]],
                [[1.0, 1.5], [0.3, 2.0]],
                [[0.0, -0.5], [2.5, 0.0]]]])             # (1, K=3, 2, 2)
yk = np.array([[[0, 1], [2, 1]]])
smooth = 1.0

p = np.exp(zk) / np.exp(zk).sum(axis=1, keepdims=True)
dice_k, jaccard_k = [], []
for k in range(3):
    inter = p_sum = g_sum = 0.0
    for h in range(2):
        for w in range(2):
            g = float(yk[0, h, w] == k)
            inter += p[0, k, h, w] * g
            p_sum += p[0, k, h, w]
            g_sum += g
    dice_k.append((2 * inter + smooth) / (p_sum + g_sum + smooth))
    jaccard_k.append((inter + smooth) / (p_sum + g_sum - inter + smooth))

dice_lib, _ = F.dice_loss_forward(zk, yk, smooth=smooth)
jaccard_lib, _ = F.jaccard_loss_forward(zk, yk, smooth=smooth)
print(f"Dice loss:    loop {1 - np.mean(dice_k):.6f}   library {float(dice_lib):.6f}")
print(f"Jaccard loss: loop {1 - np.mean(jaccard_k):.6f}   library {float(jaccard_lib):.6f}")
assert np.isclose(1 - np.mean(dice_k), dice_lib) and np.isclose(1 - np.mean(jaccard_k), jaccard_lib)

# %% [markdown]
# The gradients are checked numerically (central differences along every entry of the logits,
# float64, a random upstream gradient; a correct backward gives about $10^{-9}$):

# %%
rng = np.random.default_rng(0)
logits = rng.standard_normal((2, 3, 5, 4))
labels = rng.integers(0, 3, (2, 5, 4))
checks = [("binary cross-entropy", F.bce_with_logits_forward, F.bce_with_logits_backward,
           {"logits": logits[:, :1].copy(), "targets": (labels[:, None] == 1).astype(np.float64)}),
          ("categorical cross-entropy", F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward,
           {"logits": logits, "labels": labels}),
          ("Dice", F.dice_loss_forward, F.dice_loss_backward, {"logits": logits, "labels": labels}),
          ("Jaccard", F.jaccard_loss_forward, F.jaccard_loss_backward, {"logits": logits, "labels": labels})]
for name, forward, backward, inputs in checks:
    report = gradcheck(forward, backward, inputs, wrt=["logits"])
    print(f"{name:<26} max relative error {report.max_rel_error:.1e}  {'pass' if report.passed else 'FAIL'}")
    assert report.passed

# %% [markdown]
# ## 6.3 Class imbalance: who gets the gradient?
#
# In `Shapes` most pixels are background and triangles are the rarest class. Cross-entropy gives
# every *pixel* the same weight, so the total push towards a class is proportional to its area.
# Two remedies:
#
# * **class weights**: $L = \sum_i w_{y_i}(-\log p_{i, y_i}) / \sum_i w_{y_i}$ with, e.g.,
#   $w_k \propto 1 / f_k$ ($f_k$ = the class's pixel frequency);
# * **Dice / Jaccard**: every class's score is a ratio, so each class counts $1/K$ however small it is.
#
# The total gradient magnitude that each class's pixels receive, for the same mediocre prediction
# (the truth plus noise):

# %%
shapes = Shapes(256, image_size=32, seed=0)
freq = shapes.class_frequencies()
weights = (1 / freq) / (1 / freq).mean()
names = shapes.class_names
print("pixel frequencies", np.round(freq, 3), "  class weights", np.round(weights, 2))

masks = shapes.masks[:32]
noisy = 1.5 * np.eye(4)[masks].transpose(0, 3, 1, 2) + rng.standard_normal((32, 4, 32, 32))
losses = {"cross-entropy": (F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward, {}),
          "weighted CE": (F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward,
                          {"weight": weights}),
          "Dice": (F.dice_loss_forward, F.dice_loss_backward, {})}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].bar(names, freq, color=colorize(np.arange(4)) / 255, edgecolor="grey")
axes[0].set_title("pixel frequency of each class")
for j, (name, (forward, backward, kw)) in enumerate(losses.items()):
    _, cache = forward(noisy, masks, **kw)
    dz = np.abs(backward(1.0, cache)).sum(axis=1)        # (N, H, W): gradient size per pixel
    mass = np.array([dz[masks == k].sum() for k in range(4)])
    axes[1].bar(np.arange(4) + 0.27 * (j - 1), mass / mass.sum(), width=0.27, label=name)
axes[1].set_xticks(range(4), names); axes[1].legend(); axes[1].set_title("share of the gradient")
plt.show()

# %% [markdown]
# Does it change what a network learns? Three small U-Nets (depth 2), the same 256 images, the same
# 150 steps, differing only in the loss. Besides IoU we look at each class's **recall** (the fraction
# of its pixels found) and at how much of the image the network *predicts* as that class.

# %%
val = Shapes(64, image_size=32, seed=1_000_000)

def fit(model, data, steps, loss_fns, batch_size=8, lr=3e-3, seed=0, crop_size=None, transform=None):
    """The training loop, from the library's pieces (as in notebook 4); returns the step losses."""
    optimizer = Adam(model.parameters(), lr=lr)
    schedule = CosineSchedule(optimizer, steps, min_lr=lr / 100, warmup_steps=5)
    history, epoch = [], 0
    while len(history) < steps:
        for images, masks in batches(data, batch_size, seed=seed, epoch=epoch, crop_size=crop_size,
                                     transform=transform):
            history.append(float(train_step(model, optimizer, schedule, loss_fns, images, masks)))
            if len(history) == steps:
                break
        epoch += 1
    return history

def weighted_ce(logits, labels):
    return F.softmax_cross_entropy_forward(logits, labels, weight=weights.astype(logits.dtype))

loss_choices = {"cross-entropy": make_loss("ce"),
                "weighted CE": (weighted_ce, F.softmax_cross_entropy_backward),
                "Dice": make_loss("dice")}
print(f"{'':14} {'mIoU':>5} {'pixel acc':>9} | IoU {' '.join(f'{n[:6]:>6}' for n in names)} | "
      f"triangle: recall, predicted / true area")
for name, loss_fns in loss_choices.items():
    model = build_model("unet", in_channels=1, num_classes=4, base_channels=8, depth=2, seed=0)
    fit(model, shapes, 150, loss_fns)
    cm = ConfusionMatrix(4)
    cm.update(predict(model, val.images), val.masks)
    M = cm.to_numpy()
    recall = np.diag(M) / M.sum(axis=1)
    predicted, true = M.sum(axis=0) / M.sum(), M.sum(axis=1) / M.sum()
    print(f"{name:14} {cm.miou():5.3f} {cm.pixel_accuracy():9.3f} |     "
          f"{' '.join(f'{v:6.2f}' for v in cm.iou())} | {recall[3]:.2f}, {predicted[3]:.3f} / {true[3]:.3f}")

# %% [markdown]
# With plain cross-entropy the network hardly ever says "triangle": it predicts a small fraction of
# the triangles' true area and finds few of them, while pixel accuracy looks fine. Class weights make
# it predict the rare class more often (higher recall, lower pixel accuracy: the price is paid in
# the frequent classes). Dice, which scores each class as a ratio, gives the rarest class the best IoU
# here. Exact numbers move with the seed at this tiny budget; the direction is what to look at.
#
# ## 6.4 Augmentation
#
# "Можно делать аугментацию": flips and quarter turns change the image and its mask *in the same way*
# and create no new pixel values, so the mask stays exact. Together they are the 8 symmetries of a
# square (`default_augmentation` draws one at random per sample):

# %%
image, mask = shapes[5]
fig, axes = plt.subplots(2, 8, figsize=(15, 4))
for k in range(8):
    im, ma = rot90(image, mask, k % 4)
    if k >= 4:
        im, ma = hflip(im, ma)
    assert set(np.unique(ma)) == set(np.unique(mask))   # a mask never gets new labels
    axes[0, k].imshow(to_display(im), cmap="gray")
    axes[1, k].imshow(colorize(ma))
    axes[0, k].set_title(f"rot {90 * (k % 4)}°" + (" + flip" if k >= 4 else ""), fontsize=9)
for ax in axes.ravel():
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 6.5 Training on crops, predicting whole images: the nuclei image
#
# "Не всегда размер картинки умещается в память: обучаемся на кропах картинки". The library's nuclei
# data is one real 512 x 512 fluorescence image (2018 Data Science Bowl): three 256 x 256 quadrants
# for training, the fourth for testing. A convolution's im2col matrix grows with the image; for the
# first 3 x 3 layer of our U-Net (8 channels) in float32:

# %%
nuclei_train, nuclei_test = Nuclei("train"), Nuclei("test")
for side in (512, 256, 48):
    print(f"{side:>3} x {side:<3} image: im2col of one 8-channel 3 x 3 conv = {8 * 9 * side * side * 4 / 2**20:7.2f} MiB")
print("nucleus pixels in the training quadrants:", np.round(nuclei_train.class_frequencies()[1], 3))

# %% [markdown]
# So we train on random 48 x 48 crops (with random flips and turns) and, because the network is
# fully convolutional, predict the whole 256 x 256 test quadrant in one pass. The baseline to beat is
# **Otsu's threshold**: one global intensity threshold chosen per image, no learning at all.

# %%
repeated = (np.repeat(nuclei_train.images, 16, axis=0), np.repeat(nuclei_train.masks, 16, axis=0))
unet = build_model("unet", in_channels=1, num_classes=2, base_channels=8, depth=3, seed=0)
t0 = time.perf_counter()
history = fit(unet, repeated, 120, make_loss("ce"), crop_size=48, transform=default_augmentation())
print(f"trained on 120 batches of 8 crops of 48 x 48 in {time.perf_counter() - t0:.1f} s")

test_image, test_mask = nuclei_test.images[0], nuclei_test.masks[0]
pred = predict(unet, nuclei_test.images)[0]             # the whole 256 x 256 quadrant
otsu = test_image[0] > otsu_threshold(test_image[0])
dice_unet, dice_otsu = dice_score(pred == 1, test_mask == 1), dice_score(otsu, test_mask == 1)
print(f"test Dice: U-Net {dice_unet:.3f}   Otsu {dice_otsu:.3f} (library baseline {otsu_baseline_dice('test'):.3f})")

# %%
fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
axes[0].plot(history); axes[0].set_yscale("log"); axes[0].set_xlabel("step"); axes[0].set_title("training loss")
axes[0].grid(alpha=0.3)
panels = [(to_display(test_image), "test quadrant (never seen)"), (overlay(test_image, test_mask), "truth"),
          (overlay(test_image, pred), f"U-Net, Dice {dice_unet:.3f}"),
          (overlay(test_image, otsu.astype(int)), f"Otsu, Dice {dice_otsu:.3f}")]
for ax, (picture, title) in zip(axes[1:], panels):
    ax.imshow(picture, cmap="gray"); ax.set_title(title); ax.set_axis_off()
plt.show()

# %% [markdown]
# After a few seconds of CPU training on crops the U-Net is at or above Otsu's Dice on the unseen
# quadrant (at this budget the margin is small and moves with the seed). Otsu is a strong baseline
# here because the nuclei are bright on a dark background; it fails where nuclei are dim, which is
# where learning pays off. Longer training (`python -m minimal_seg train --data nuclei`) widens the gap.
#
# ## Summary
#
# | loss | formula | gradient w.r.t. the scores |
# |---|---|---|
# | BCE | $-(t\log s + (1-t)\log(1-s))$ | $s - t$ (per pixel, / N) |
# | categorical CE | $-\log p_{y}$ | $p - g$ (per pixel, / N) |
# | Dice | $1 - \frac1K\sum_k \frac{2I_k + s}{P_k + G_k + s}$ | $-\frac1K \frac{2g - \mathrm{Dice}_k}{P_k + G_k + s}$ w.r.t. $p$ |
# | Jaccard | $1 - \frac1K\sum_k \frac{I_k + s}{U_k + s}$ | $-\frac1K \frac{g(1 + J_k) - J_k}{U_k + s}$ w.r.t. $p$ |
#
# * Cross-entropy weighs pixels, so large classes dominate; class weights or a Dice/Jaccard loss
#   (which weigh classes) help the rare ones, at some cost in pixel accuracy.
# * Augment with transforms that move pixels without inventing them (flips, turns, crops), applied to
#   image and mask alike.
# * A fully convolutional network trains on crops and predicts whole images of any size.
#
# ## Exercises
#
# 1. Derive $\partial \ell / \partial z = s - t$ for BCE, and the Dice gradient from the quotient rule.
# 2. What does `smooth` do to the Dice loss of a class that is absent from both the truth and the
#    prediction? Try `smooth=0` on a batch without triangles.
# 3. Train with `make_loss("ce+dice")` (the sum) and add it to the table of section 6.3.
# 4. Use median-frequency weights $w_k = \mathrm{median}(f) / f_k$. How do they differ from $1/f_k$
#    after normalisation?
# 5. Train the nuclei U-Net on 32 x 32 and on 96 x 96 crops with the same number of pixels per step.
#    Which works better, and why might the crop size matter for a U-Net of depth 3?
# 6. Predict the test quadrant tile by tile (four 128 x 128 tiles) and compare with the one-pass
#    prediction. Where do they differ, and why?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. With $s = \sigma(z)$, $\partial s / \partial z = s(1 - s)$, and
#    $\partial \ell / \partial s = -t/s + (1 - t)/(1 - s)$; multiply. For Dice, differentiate
#    $(2I_k + s)/(P_k + G_k + s)$ in $p_{ik}$: the numerator gives $2g_{ik}$, the denominator 1.
# 2. With $I_k = P_k = G_k = 0$ the class's Dice is $s/s = 1$: an absent class predicted absent is
#    perfect. With `smooth=0` it is $0/0$, NaN, and the whole loss becomes NaN.
# 3. Add `"ce+dice"` to the losses trained in 6.3 (`make_loss("ce+dice")`); same budget, same seed.
# 4. Normalised so that the weights sum to $K$, $1/f_k$ and $\mathrm{median}(f)/f_k$ are the same
#    weights: the median is a constant factor. They differ only before normalisation (in the size of the
#    loss, so in the effective learning rate).
# 5. Keep `crop_size ** 2 * batch_size` fixed. A depth-3 U-Net pools three times: a 32 x 32 crop has a
#    4 x 4 bottleneck, whose receptive field covers much of the crop, but more of each crop is border.
# 6. Each tile sees zero padding at its own borders, where the one-pass network sees the neighbouring
#    tile's pixels: the predictions differ in a band along the tile seams, about as wide as the
#    receptive field.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** A pixel's logits give softmax probabilities $p = (0.7, 0.2, 0.1)$ and its true class is 0. What
# is its cross-entropy, and its gradient with respect to the logits (before dividing by $N$)?
#
# <details><summary>Answer</summary>
#
# $-\log 0.7 \approx 0.357$; the gradient is $p - g = (-0.3, 0.2, 0.1)$: push class 0 up, the others
# down, in proportion to their probabilities.
#
# </details>
#
# **2.** Suppose triangles cover 2 % of the pixels. Under cross-entropy, roughly what share of the total
# gradient pushes towards triangles? Why does Dice change that?
#
# <details><summary>Answer</summary>
#
# About their share of the pixels, a few percent (more while they are still misclassified): every pixel
# weighs the same. The Dice loss averages one term per class, and each class's gradient is divided by
# its own size $P_k + G_k$, so a small class gets about as much push as a large one.
#
# </details>
#
# **3.** Which of these augmentations keep the mask exact: a horizontal flip, a rotation by 90 degrees,
# a rotation by 30 degrees, a change of brightness?
#
# <details><summary>Answer</summary>
#
# The flip, the quarter turn and the brightness change (applied to the image only). A 30 degree
# rotation must resample the pixel grid: the image gets interpolated values and the mask has to be
# interpolated or rounded, so it is no longer exact.
#
# </details>
#
# **4.** Why can a network trained on 48 x 48 crops predict a whole 256 x 256 quadrant in one pass?
#
# <details><summary>Answer</summary>
#
# It is fully convolutional: every layer is a convolution, a pooling or an upsampling, so the same
# weights apply at every position and the output simply grows with the input (as long as the size
# suits the poolings).
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Losses](../concepts/losses.md) (`docs/concepts/losses.md`); U-Net in practice on
#   [U-Net, encoder-decoders and skip connections](../concepts/unet.md).
# * API: [`functional.loss`](../api/functional/loss.rst) (BCE, cross-entropy, Dice, Jaccard),
#   [`minimal_seg.gradcheck`](../api/gradcheck.rst), [`minimal_seg.data`](../api/data.rst) (transforms,
#   `Nuclei`), [`minimal_seg.train`](../api/train.rst) (`make_loss`).
# * Assignment: [a5, cross-entropy and Dice](../assignments.md#assignment-a5) (`a5_losses.py`: the forward and backward
#   passes of softmax cross-entropy and Dice).
# * Next: [notebook 7, dilation and ASPP](07_dilation_and_aspp.ipynb).
