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
# # 9. Classical segmentation: CRF and superpixels
#
# *Lecture 001 ("Классическая сегментация", "Суперпиксели", "Условные случайные поля (CRF)",
# "Постобработка: DL + CRF").*
#
# Before the networks, segmentation was built from two classical ideas, and both survive as
# **post-processing** of a network's output:
#
# * a **conditional random field** (CRF): hidden labels $x_i$ ("скрытые значения (искомые метки)"),
#   observed values $y_i$ that give each label a cost ("наблюдаемые значения (унарный потенциал)")
#   and links between the labels ("связи между элементами (парный потенциал)"):
#
#   $$E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j);$$
#
# * **superpixels**: small compact regions of similar pixels (SLIC), over which a label is voted.
#
# Everything here lives in `minimal_seg.classical` (`crf.py`, `slic.py`). Notebook 4 (section 4.7)
# showed a dense CRF cleaning a synthetic prediction; here we open it up.

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=4, suppress=True)

# %%
import itertools
import tempfile
import time

from minimal_seg import functional as F
from minimal_seg.classical import (achievable_accuracy, boundaries, boundary_recall, coarse_prediction,
                                   crf_refine_eval, dense_crf, kernel_matrix, labelling_energy,
                                   piecewise_scene, slic, superpixel_vote)
from minimal_seg.classical.crf import ExactMessages, FastMessages, spatial_mass, unary_from_probs
from minimal_seg.classical.slic import (assign_pixels, enforce_connectivity, grid_centres,
                                        move_to_lowest_gradient, update_centres)
from minimal_seg.data import Nuclei, Shapes
from minimal_seg.metrics import ConfusionMatrix
from minimal_seg.train import TrainConfig, train
from minimal_seg.viz import colorize, overlay, to_display

# %% [markdown]
# ## 9.1 The energy, by hand
#
# Pixel $i$ has a position $p_i$ and an intensity $I_i$; a labelling $x$ gives it a label $x_i$.
# The library's (dense) CRF, after Krähenbühl & Koltun (2011):
#
# * **unary** $\Phi_i(l) = -\log p_i(l)$, where $p_i$ is the network's softmax at pixel $i$;
# * **pairwise** between *every* pair of pixels, the Potts penalty $[x_i \ne x_j]$ times a kernel
#
# $$k(f_i, f_j) = \frac{w_g}{Z_\gamma} e^{-\frac{|p_i - p_j|^2}{2\theta_\gamma^2}}
#   + \frac{w_b}{Z_\alpha} e^{-\frac{|p_i - p_j|^2}{2\theta_\alpha^2} - \frac{|I_i - I_j|^2}{2\theta_\beta^2}},$$
#
# a **Gaussian** (smoothness: near pixels should agree) plus a **bilateral** kernel (appearance: near
# pixels *of similar intensity* should agree). $Z_\theta = \sum_{d \ne 0} e^{-|d|^2/2\theta^2}$ sums the
# spatial Gaussian over all integer offsets, so $w$ is the cost of disagreeing with a whole neighbourhood.
#
# The slide writes $x^* = \mathrm{argmax}_x E(x, y)$: read it as the most *probable* labelling,
# $P(x \mid y) \propto e^{-E(x, y)}$, i.e. the labelling of **lowest** energy, $x^* = \mathrm{argmin}_x E$.
#
# **Hand example.** A 2 x 3 image: a dark left part and a bright right part, and a "network" that is
# sure about the corners and unsure in the middle column. The loop version of $E$ over all 15 pairs:

# %%
image = np.array([[[0.0, 0.1, 1.0],
                   [0.1, 0.9, 1.1]]])                    # (C=1, H=2, W=3)
probs = np.array([[[0.9, 0.6, 0.1],
                   [0.8, 0.55, 0.2]],
                  [[0.1, 0.4, 0.9],
                   [0.2, 0.45, 0.8]]])                  # (K=2, H, W): p_i(0), p_i(1)
kernel = dict(w_gauss=1.0, theta_gamma=1.0, w_bilateral=10.0, theta_alpha=2.0, theta_beta=0.5)

h, w = image.shape[1:]
pixels = [(y, x) for y in range(h) for x in range(w)]    # row-major: pixel number i = y*W + x

def k_loop(i, j, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta):
    (yi, xi), (yj, xj) = pixels[i], pixels[j]
    dp2 = (yi - yj) ** 2 + (xi - xj) ** 2
    di2 = ((image[:, yi, xi] - image[:, yj, xj]) ** 2).sum()
    gauss = np.exp(-dp2 / (2 * theta_gamma ** 2))
    bilateral = np.exp(-dp2 / (2 * theta_alpha ** 2) - di2 / (2 * theta_beta ** 2))
    return w_gauss / spatial_mass(theta_gamma) * gauss + w_bilateral / spatial_mass(theta_alpha) * bilateral

def energy_loop(labels):
    x = labels.ravel()
    unary = sum(-np.log(probs[x[i], y_, x_]) for i, (y_, x_) in enumerate(pixels))
    pairwise = sum(k_loop(i, j, **kernel) for i in range(len(pixels)) for j in range(i + 1, len(pixels))
                   if x[i] != x[j])
    return unary + pairwise, unary, pairwise

labels = np.array([[0, 0, 1],
                   [0, 1, 1]])
A = kernel_matrix(image, **kernel)                       # (6, 6), A_ij = k(f_i, f_j), A_ii = 0
A_loop = np.array([[k_loop(i, j, **kernel) if i != j else 0 for j in range(6)] for i in range(6)])
print(f"Z for theta = 1: {spatial_mass(1.0):.4f} (2 pi theta^2 - 1 = {2 * np.pi - 1:.4f})")
print("kernel matrix A:"); print(A)
messages = ExactMessages(image, **kernel)                # computes Q @ A
lib = labelling_energy(unary_from_probs(probs), labels, messages)
print("loop    E = %.6f (unary %.6f + pairwise %.6f)" % energy_loop(labels))
print("library E = %.6f (unary %.6f + pairwise %.6f)" % lib)
assert np.allclose(A, A_loop) and np.allclose(energy_loop(labels), lib)

# %% [markdown]
# With 6 pixels and 2 labels there are only $2^6 = 64$ labellings: we can list them all and find the
# true minimum. For a 64 x 64 image with 4 classes there are $4^{4096}$; that is why we need an
# approximate method (next section).

# %%
all_labellings = [np.array(bits).reshape(h, w) for bits in itertools.product((0, 1), repeat=h * w)]
energies_all = np.array([energy_loop(x)[0] for x in all_labellings])
best = all_labellings[int(energies_all.argmin())]
print("the labelling of lowest energy (brute force over 64):"); print(best)
print(f"E = {energies_all.min():.4f};  the network's argmax {probs.argmax(0).tolist()} has "
      f"E = {energy_loop(probs.argmax(0))[0]:.4f}")
assert probs.argmax(0)[1, 1] == 0 and best[1, 1] == 1

# %% [markdown]
# Alone, the unsure pixel (1, 1) would take label 0 ($p(0) = 0.55$). But it is bright like its right
# neighbours, and the bilateral term pulls it to their label: in the labelling of lowest energy the
# middle column splits by intensity, not by the network's guess.
#
# ## 9.2 Mean-field inference: one step by hand
#
# Mean field looks for the closest *factorised* distribution $Q(x) = \prod_i Q_i(x_i)$ to
# $P(x) \propto e^{-E(x)}$ (closest in the Kullback-Leibler divergence $\mathrm{KL}(Q \,\|\, P)$). Its
# fixed-point update, all pixels at once, starting from $Q_i = p_i$:
#
# $$m_i(l) = \sum_{j \ne i} k(f_i, f_j)\, Q_j(l) \quad\text{(message: a filtering of } Q\text{)},\qquad
#   Q_i(l) \leftarrow \mathrm{softmax}_l\Big(-\Phi_i(l) - \sum_{l' \ne l} m_i(l')\Big).$$
#
# The Potts term charges label $l$ with the kernel-weighted probability that the neighbours take *another*
# label. The loop version of one step against `dense_crf(..., iterations=1)`:

# %%
q = probs.copy()                                          # Q at the start: the network's softmax
q_loop = np.zeros_like(q)
for i, (yi, xi) in enumerate(pixels):
    cost = np.zeros(2)
    for l in range(2):
        message = [sum(k_loop(i, j, **kernel) * q[lab, yj, xj] for j, (yj, xj) in enumerate(pixels) if j != i)
                   for lab in range(2)]
        cost[l] = -np.log(probs[l, yi, xi]) + sum(message[lab] for lab in range(2) if lab != l)
    q_loop[:, yi, xi] = np.exp(-cost) / np.exp(-cost).sum()
q_lib = dense_crf(probs, image, iterations=1, method="exact", **kernel)
print("Q(1) after one step, loop:"); print(q_loop[1])
print("library:"); print(q_lib[1])
assert np.allclose(q_loop, q_lib, atol=1e-6)

q10 = dense_crf(probs, image, iterations=10, method="exact", **kernel)
print("argmax Q after 10 steps:", q10.argmax(0).tolist(), " brute-force minimum:", best.tolist())
assert np.array_equal(q10.argmax(0), best)

# %% [markdown]
# ## 9.3 The kernels as pictures
#
# Row $i$ of the kernel matrix, reshaped to the image, shows whom pixel $i$ listens to. On a noisy
# piecewise-constant scene (background, a disc, a rectangle), for a pixel inside the disc next to its
# edge: the Gaussian kernel is a round blob that crosses the edge; the bilateral kernel is cut off by it.

# %%
scene, scene_truth = piecewise_scene(32, 32, seed=0)
ys, xs = np.nonzero(boundaries(scene_truth) & (scene_truth == 1))
pixel = (ys[len(ys) // 2], xs[len(xs) // 2])              # a disc pixel on the disc's edge
i = pixel[0] * 32 + pixel[1]
gauss_row = kernel_matrix(scene, w_gauss=1.0, theta_gamma=3.0, w_bilateral=0.0)[i].reshape(32, 32)
bilat_row = kernel_matrix(scene, w_gauss=0.0, w_bilateral=1.0, theta_alpha=8.0, theta_beta=0.5)[i].reshape(32, 32)

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
for ax, picture, title in zip(axes, (to_display(scene), colorize(scene_truth), gauss_row, bilat_row),
                              ("image", "truth", "Gaussian row, theta_gamma = 3",
                               "bilateral row, theta_alpha = 8, theta_beta = 0.5")):
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 and ax is axes[0] else "magma")
    ax.plot(pixel[1], pixel[0], "c+", markersize=12)
    ax.set_title(title, fontsize=9); ax.set_axis_off()
plt.show()
inside = scene_truth == 1
for name, row in (("Gaussian", gauss_row), ("bilateral", bilat_row)):
    print(f"{name:9s}: share of the row's mass inside the disc {row[inside].sum() / row.sum():.3f}")

# %% [markdown]
# ## 9.4 Mean field, with the energy printed per iteration
#
# `dense_crf(..., verbose=True)` prints the lecture's energy $E(x)$ of the current labelling
# $x_i = \mathrm{argmax}_l Q_i(l)$ before the first step and after each one. The input is the blocky,
# noisy "FCN-32s-like" guess of `coarse_prediction` (right on average over 8 x 8 blocks, noisy per pixel).

# %%
scene_probs = coarse_prediction(scene_truth, num_classes=3, factor=8, seed=0)
refined, energies = dense_crf(scene_probs, scene, iterations=6, method="exact", verbose=True,
                              return_energies=True)

# %% [markdown]
# The energy falls, but **mean field minimises $\mathrm{KL}(Q\,\|\,P)$, not $E$**, and the library
# updates all pixels at once (the parallel update, which is not even guaranteed to decrease the KL;
# updating one pixel at a time is). So $E$ of the argmax labelling is *not* promised to go down at every
# step. Over a few scenes and coarser guesses:

# %%
rises = 0
for seed in range(6):
    s_image, s_truth = piecewise_scene(32, 32, seed=seed)
    s_probs = coarse_prediction(s_truth, num_classes=3, factor=8, seed=seed, confidence=2.0, noise=1.5)
    _, e = dense_crf(s_probs, s_image, iterations=6, method="exact", return_energies=True)
    steps = np.diff(e)
    rises += int((steps > 1e-9).sum())
    print(f"scene {seed}: E {e[0]:8.1f} -> {e[-1]:8.1f}   largest rise in one step {max(steps.max(), 0):6.2f}")
print(f"steps where E went up: {rises} of {6 * 6}")

# %% [markdown]
# ## 9.5 Exact (all pairs) vs fast (filtering)
#
# The exact method builds the $(HW) \times (HW)$ kernel matrix: $64 \cdot 64 = 4096$ pixels give a matrix
# of 16.8 million entries, so it stops there (`MAX_EXACT_PIXELS`). The fast method never builds it:
#
# * the Gaussian kernel is **separable**, $e^{-(dy^2 + dx^2)/2\theta^2} = e^{-dy^2/2\theta^2}\, e^{-dx^2/2\theta^2}$:
#   two 1-D filterings, exact up to the tails cut at $4\theta$;
# * the bilateral kernel is not separable; it is approximated on a **bilateral grid** of intensity
#   levels (a spatial Gaussian filter per level, then interpolation between the two levels around each
#   pixel's intensity).
#
# On a 48 x 48 scene with the default kernels:

# %%
big, big_truth = piecewise_scene(48, 48, seed=1)
big_probs = coarse_prediction(big_truth, num_classes=3, factor=8, seed=1)
q_exact_msg = ExactMessages(big, 1.0, 3.0, 20.0, 8.0, 0.5)(big_probs)
q_fast_msg = FastMessages(big, 1.0, 3.0, 20.0, 8.0, 0.5)(big_probs)
print(f"messages: largest |exact - fast| {np.abs(q_exact_msg - q_fast_msg).max():.2e} "
      f"(largest message {np.abs(q_exact_msg).max():.2f})")

timings, results = {}, {}
for method in ("exact", "fast"):
    t0 = time.perf_counter()
    results[method] = dense_crf(big_probs, big, iterations=5, method=method)
    timings[method] = time.perf_counter() - t0
gauss_only = dict(w_bilateral=0.0, iterations=5)
diff_gauss = np.abs(dense_crf(big_probs, big, method="exact", **gauss_only)
                    - dense_crf(big_probs, big, method="fast", truncate=20, **gauss_only)).max()
print(f"Q after 5 steps: max |exact - fast| = {np.abs(results['exact'] - results['fast']).max():.2e}, "
      f"labels that differ: {(results['exact'].argmax(0) != results['fast'].argmax(0)).sum()} of {48 * 48}")
print(f"Gaussian kernel only, no truncation: max |exact - fast| = {diff_gauss:.1e}")
print(f"time: exact {timings['exact']:.2f} s, fast {timings['fast']:.2f} s")
assert diff_gauss < 1e-8

# %% [markdown]
# ## 9.6 Network + CRF on held-out images
#
# The lecture's post-processing ("Постобработка: DL + CRF"): the network's softmax is the unary term.
# A small FCN-8s (notebook 4) is trained through the library's `train` for 96 steps (3 epochs of 256
# `Shapes` images, 64 x 64); at this budget FCN-32s still paints mostly background (notebook 4), which
# gives the CRF little to work with (exercise 3). The CRF settings are chosen on 8 **validation** images,
# and the before/after mIoU is reported on 16 **test** images the choice never saw (`crf_refine_eval`).
# (Trained with the command line's budget, FCN-32s does give the CRF something to work with:
# `python -m minimal_seg evaluate runs/compare/fcn32s/checkpoint.npz --split test --crf` measured
# mIoU 0.523 -> 0.613 on 64 test images; see the results page of the docs.)

# %%
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    config = TrainConfig(model="fcn8s", image_size=64, num_train=256, num_val=16, epochs=3, batch_size=8,
                         base_channels=8, lr=3e-3, seed=0, out=out)
    result = train(config, progress=False, log=lambda line: None)
net = result["model"].eval()
print(f"trained in {time.perf_counter() - t0:.1f} s, val mIoU per epoch "
      f"{[round(row['val_miou'], 3) for row in result['history']]}")

val = Shapes(8, image_size=64, seed=1_000_000)           # the validation split (seed + 1,000,000)
test = Shapes(16, image_size=64, seed=2_000_000)         # the test split

def miou(labels, masks):
    matrix = ConfusionMatrix(4)
    matrix.update(labels, masks)
    return matrix.miou()

val_probs, _ = F.softmax_forward(net(val.images), axis=1)
print(f"validation mIoU without CRF {miou(val_probs.argmax(1), val.masks):.3f}")
grid = [dict(w_bilateral=wb, theta_alpha=ta) for wb in (5.0, 20.0) for ta in (2.0, 4.0)]
scores = []
for options in grid:
    refined_val = dense_crf(val_probs, val.images, method="fast", **options)
    scores.append(miou(refined_val.argmax(1), val.masks))
    print(f"  {options}: validation mIoU {scores[-1]:.3f}")
chosen = grid[int(np.argmax(scores))]
report = crf_refine_eval(net, test.images, test.masks, num_classes=4, method="fast", **chosen)
print(f"test, {chosen}: mIoU {report['miou_before']:.3f} -> {report['miou_after']:.3f}, "
      f"pixel accuracy {report['pixel_accuracy_before']:.3f} -> {report['pixel_accuracy_after']:.3f}")

# %%
test_probs, _ = F.softmax_forward(net(test.images), axis=1)           # all 16 test images, for 9.8 too
test_crf = dense_crf(test_probs, test.images, method="fast", **chosen)
fig, axes = plt.subplots(3, 4, figsize=(10, 7.5))
for c in range(4):
    for r, (picture, title) in enumerate(((colorize(test.masks[c]), "truth"),
                                          (colorize(test_probs[c].argmax(0)), "FCN-8s"),
                                          (colorize(test_crf[c].argmax(0)), "FCN-8s + CRF"))):
        axes[r, c].imshow(picture); axes[r, c].set_axis_off()
        axes[r, c].set_title(title, fontsize=9)
plt.show()

# %% [markdown]
# The CRF moves boundaries onto intensity edges and removes speckles, which raises the pixel accuracy;
# it cannot fix a shape that the network calls by the wrong class (a square called a circle stays a
# circle: the unary term says so over the whole shape). A weak network gains little, and a network
# that mostly predicts background (try `fcn32s` with this budget, exercise 3) can even lose small shapes
# to the smoothing. That is why the settings are chosen on validation images and the result is reported
# on others.
#
# ## 9.7 SLIC superpixels, step by step
#
# SLIC (Achanta et al., 2012) is k-means on the points (intensity, $y$, $x$), with two tricks:
#
# 1. **Start on a grid** with step $S = \sqrt{HW / K}$ for $K$ superpixels, and move each centre to the
#    lowest gradient $G = |I(y, x{+}1) - I(y, x{-}1)|^2 + |I(y{+}1, x) - I(y{-}1, x)|^2$ in its 3 x 3
#    neighbourhood (not on an edge).
# 2. **Assign locally**: a centre only competes for pixels in its $2S \times 2S$ window, with the distance
#    $$D = \sqrt{d_c^2 + \left(\frac{d_s}{S}\right)^2 m^2},\qquad d_c = |I_i - I_k|,\quad d_s = |p_i - p_k|,$$
#    where the **compactness** $m$ trades colour against space (the image is rescaled to [0, 100]).
# 3. **Update**: every centre moves to the mean (intensity, $y$, $x$) of its pixels. Repeat 2-3.
# 4. **Connectivity**: split labels into connected pieces and merge the small pieces into a neighbour.
#
# The loop version of step 2 (every pixel, every centre whose window reaches it) against
# `assign_pixels`, on a 24 x 24 crop with 9 centres:

# %%
shapes = Shapes(8, image_size=64, seed=2_000_000)         # the test images again
crop = shapes.images[0, :, 20:44, 20:44].astype(np.float64)
img = (crop - crop.min()) * 100 / (crop.max() - crop.min())   # SLIC's units: [0, 100]
centres, S = grid_centres(24, 24, n_segments=9)
centres = move_to_lowest_gradient(img, centres)
colours = img[:, centres[:, 0].astype(int), centres[:, 1].astype(int)].T
m = 20.0

labels_loop = np.full((24, 24), -1)
for y in range(24):
    for x in range(24):
        best_d2 = np.inf
        for k, ((cy, cx), colour) in enumerate(zip(centres, colours)):
            if not (max(int(cy - S), 0) <= y <= np.ceil(cy + S) and max(int(cx - S), 0) <= x <= np.ceil(cx + S)):
                continue                                  # outside this centre's 2S x 2S window
            d2 = ((img[:, y, x] - colour) ** 2).sum() + (m / S) ** 2 * ((y - cy) ** 2 + (x - cx) ** 2)
            if d2 < best_d2:
                best_d2, labels_loop[y, x] = d2, k
labels_lib, _ = assign_pixels(img, centres, colours, S, m)
print(f"S = {S:.1f}; labels from the loop == assign_pixels: {np.array_equal(labels_loop, labels_lib)}")
assert np.array_equal(labels_loop, labels_lib)

# %% [markdown]
# The four steps on a whole 64 x 64 image, $K = 64$ ($S = 8$), $m = 20$:

# %%
image0 = shapes.images[0]
img = (image0 - image0.min()) * 100.0 / (image0.max() - image0.min())
img = img.astype(np.float64)
grid0, S = grid_centres(64, 64, n_segments=64)
centres = move_to_lowest_gradient(img, grid0)
colours = img[:, centres[:, 0].astype(int), centres[:, 1].astype(int)].T
snapshots = {}
for it in range(10):
    labels_it, _ = assign_pixels(img, centres, colours, S, 20.0)
    centres, colours = update_centres(img, labels_it, centres, colours)
    if it in (0, 9):
        snapshots[f"after assignment {it + 1}"] = labels_it
final = enforce_connectivity(labels_it, int(0.25 * S * S))
assert np.array_equal(final, slic(image0, n_segments=64, compactness=20.0))   # = the library's slic

fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
axes[0].imshow(to_display(image0), cmap="gray")
axes[0].plot(grid0[:, 1], grid0[:, 0], "r.", label="grid")
start = move_to_lowest_gradient(img, grid0)
axes[0].plot(start[:, 1], start[:, 0], "c.", label="moved")
axes[0].set_title("1. grid centres, moved"); axes[0].legend(fontsize=7, loc="lower right")
for ax, (title, lab) in zip(axes[1:], list(snapshots.items()) + [("4. connected", final)]):
    ax.imshow(to_display(image0), cmap="gray")
    ax.imshow(np.ma.masked_where(~boundaries(lab), lab), cmap="autumn")
    ax.set_title(f"{title}: {len(np.unique(lab))} labels")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The compactness $m$ on a Shapes image and on the real nuclei crop of notebook 1: small $m$ follows the
# intensity (and the noise), large $m$ gives squares.

# %%
nuclei = Nuclei("all")
nuclei_crop = nuclei.images[0, :, 176:256, 40:120]
fig, axes = plt.subplots(2, 3, figsize=(10, 6.8))
for r, picture in enumerate((image0, nuclei_crop)):
    for c, m in enumerate((5.0, 20.0, 60.0)):
        lab = slic(picture, n_segments=100, compactness=m)
        axes[r, c].imshow(overlay(picture, boundaries(lab).astype(int), alpha=0.8))
        axes[r, c].set_title(f"m = {m:g}: {lab.max() + 1} superpixels", fontsize=9)
        axes[r, c].set_axis_off()
plt.show()

# %% [markdown]
# **How good are the superpixels?** Two standard numbers against the true segmentation:
#
# * **boundary recall**: the share of true boundary pixels with a superpixel boundary within 2 pixels;
# * **achievable segmentation accuracy**: the pixel accuracy if every superpixel took its majority true
#   label, the best any per-superpixel vote can do.

# %%
counts = (16, 32, 64, 128, 256)
recall, achievable, found = [], [], []
for n in counts:
    labs = [slic(shapes.images[k], n_segments=n) for k in range(8)]
    recall.append(np.mean([boundary_recall(lab, shapes.masks[k]) for k, lab in enumerate(labs)]))
    achievable.append(np.mean([achievable_accuracy(lab, shapes.masks[k]) for k, lab in enumerate(labs)]))
    found.append(np.mean([lab.max() + 1 for lab in labs]))
for n, f, r, a in zip(counts, found, recall, achievable):
    print(f"K = {n:3d}: {f:6.1f} superpixels, boundary recall {r:.3f}, achievable accuracy {a:.4f}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(found, recall, "o-", label="boundary recall")
ax.plot(found, achievable, "s-", label="achievable accuracy")
ax.set_xscale("log"); ax.set_xlabel("superpixels per image"); ax.legend(); ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 9.8 Superpixel voting as post-processing
#
# Average the network's probabilities over each superpixel: every pixel gets its superpixel's mean
# distribution (still a distribution), and the argmax is constant on every superpixel. On the 16 test
# images, with the FCN-8s of section 9.6:

# %%
sp = np.stack([slic(im, n_segments=100) for im in test.images])
voted = superpixel_vote(test_probs, sp)
assert np.allclose(voted.sum(axis=1), 1, atol=1e-5)
both = superpixel_vote(test_crf, sp)
reachable = np.mean([achievable_accuracy(s, t) for s, t in zip(sp, test.masks)])
print(f"test mIoU: FCN-8s {miou(test_probs.argmax(1), test.masks):.3f}, "
      f"+ superpixel vote {miou(voted.argmax(1), test.masks):.3f}, "
      f"+ CRF + vote {miou(both.argmax(1), test.masks):.3f}  "
      f"(the best pixel accuracy a vote could reach: {reachable:.3f})")

fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, picture, title in zip(axes, (overlay(test.images[1], boundaries(sp[1]).astype(int), alpha=0.8),
                                     colorize(test.masks[1]), colorize(test_probs[1].argmax(0)),
                                     colorize(voted[1].argmax(0))),
                              ("superpixels", "truth", "FCN-8s", "+ superpixel vote")):
    ax.imshow(picture); ax.set_title(title); ax.set_axis_off()
plt.show()

# %% [markdown]
# ## Summary
#
# * A CRF scores a labelling by $E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j)$: the unary
#   term from the network's softmax, the pairwise Potts term weighted by a Gaussian (smoothness) and a
#   bilateral (appearance) kernel. The best labelling has the *lowest* energy.
# * Exact minimisation is hopeless ($K^{HW}$ labellings); mean field updates a factorised $Q$ by
#   filtering it with the kernel. It minimises the KL divergence, not $E$: the energy usually falls, not
#   always.
# * Filtering with the full kernel matrix costs $(HW)^2$; separable Gaussians and a bilateral grid make it
#   linear in $HW$, with a small, measurable error.
# * As post-processing the CRF snaps boundaries to edges; it does not fix wrong classes. Choose its
#   settings on validation images, report on others.
# * SLIC is local k-means in (intensity, $y$, $x$) with compactness $m$; boundary recall and achievable
#   accuracy say how much a superpixel segmentation loses; voting network probabilities per superpixel is
#   the cheapest post-processing.
#
# ## Exercises
#
# 1. In the hand example of 9.1, find the smallest $w_b$ for which the labelling of lowest energy gives
#    pixel (1, 1) label 1. Does mean field switch at the same $w_b$?
# 2. Write the *sequential* mean-field update (one pixel at a time, using the newest $Q$) and check on the
#    scenes of 9.4 whether $E$ still rises.
# 3. Train `fcn32s` instead of `fcn8s` in 9.6 with the same budget, tune and report the CRF again. Why
#    does the CRF lose mIoU on a network that mostly predicts background?
# 4. Plot the largest $|Q_\text{exact} - Q_\text{fast}|$ of 9.5 against `range_step` (the spacing of the
#    bilateral grid). Does it fall like $\Delta^2$?
# 5. Run SLIC on the 512 x 512 nuclei image and time it against the number of superpixels. Why does the
#    time hardly depend on $K$?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. Loop over $w_b$ on a fine grid, recompute the brute-force minimum of 9.1 each time, and note where
#    pixel (1, 1)'s label changes; run `dense_crf(..., method="exact")` with the same kernels and compare where *its* argmax
#    changes. They need not agree: mean field minimises a different objective.
# 2. Update $Q_i$ for one pixel with the current $Q$ of all the others, then move on; print $E$ after each
#    sweep. Sequential (coordinate) updates cannot increase the mean-field free energy, but $E$ of the
#    argmax labelling is still not guaranteed to fall.
# 3. Same settings, `model="fcn32s"`. The pairwise term rewards agreeing with the neighbours; when most
#    neighbours are background, the CRF spreads background over the few shape pixels the network did find.
# 4. Loop over `range_step`, keep the largest absolute difference, and plot it on log-log axes: the slope
#    tells the order.
# 5. Each iteration compares every pixel with the centres in a fixed window around it ($2S \times 2S$,
#    $S = \sqrt{HW/K}$): about $4HW$ distances whatever $K$ is.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** The CRF energy is $E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j)$. Which term comes
# from the network, and which one makes neighbouring pixels agree? Is the best labelling the one with the
# largest or the smallest $E$?
#
# <details><summary>Answer</summary>
#
# The unary $\Phi_i(l) = -\log p_i(l)$ comes from the network's softmax; the pairwise Potts term,
# weighted by the Gaussian and bilateral kernels, makes (similar, nearby) pixels agree. The best labelling
# has the **smallest** energy (the largest probability $e^{-E}$).
#
# </details>
#
# **2.** How many labellings does brute-force minimisation try for a 2 x 3 image with 2 labels, and for a
# 32 x 32 image with 4 labels?
#
# <details><summary>Answer</summary>
#
# $2^6 = 64$; $4^{1024} \approx 10^{617}$. That is why mean field replaces the search by a few filtering
# steps.
#
# </details>
#
# **3.** The bilateral kernel includes the intensity difference $|I_i - I_j|$. What would a CRF with the
# Gaussian kernel only do to the boundary between a shape and the background?
#
# <details><summary>Answer</summary>
#
# It would only smooth: labels would spread across the boundary regardless of the edge in the image,
# rounding corners and eroding thin parts. The bilateral term makes disagreeing cheap where the intensity
# changes, so the boundary snaps to the image's edge.
#
# </details>
#
# **4.** SLIC with compactness $m$ very large, and very small: what do the superpixels look like?
#
# <details><summary>Answer</summary>
#
# Large $m$: the spatial distance dominates, and the superpixels become a regular grid of squares that
# ignore edges. Small $m$: intensity dominates, and they follow edges closely but get irregular and
# scattered shapes.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Classical segmentation: superpixels and CRFs](../concepts/crf_superpixels.md)
#   (`docs/concepts/crf_superpixels.md`).
# * API: [`minimal_seg.classical`](../api/classical.rst) (`dense_crf`, `labelling_energy`, `slic`,
#   `boundary_recall`, `superpixel_vote`), [`minimal_seg.models`](../api/models.rst) (the FCN-8s under the CRF).
# * Assignment: none for this notebook.
# * Next: [notebook 10, sliding windows and NMS](10_sliding_window_and_nms.ipynb).
