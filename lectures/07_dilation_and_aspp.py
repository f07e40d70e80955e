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
# # 7. Dilated (atrous) convolution and ASPP
#
# *Lecture 001 ("Дилатационная свёртка (dilated, atrous)": "Количество параметров: 3 × 3",
# "Рецептивное поле: 5 × 5"; $d = 1, 2, 3$; "Atrous spatial pyramid pooling": Encoder → ASPP → Decoder).*
#
# A segmentation network needs a large receptive field (to know *what* a pixel belongs to) and a
# fine output (to know *where* the boundary is). Pooling buys the first and loses the second.
# A **dilated** ("atrous", *à trous*: with holes) convolution spreads the same $3 \times 3$ weights
# over a larger window, so the field grows without pooling and without more weights. **ASPP** runs
# several dilation rates side by side, which is the head of DeepLab.
#
# This notebook checks a loop version against the library, shows that a dilated kernel *is* a larger
# kernel with zeros in it, measures receptive fields with the backward pass (and the holes a bad
# choice of rates leaves), takes apart the library's ASPP block, checks its gradient, and trains a
# small DeepLab.

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
from minimal_seg import nn
from minimal_seg.conv_arithmetic import draw_conv
from minimal_seg.functional.shapes import conv2d_output_shape, receptive_field
from minimal_seg.gradcheck import gradcheck, gradcheck_layer
from minimal_seg.models import DeepLab
from minimal_seg.models.deeplab import ASPP
from minimal_seg.train import TrainConfig, predict, train
from minimal_seg.viz import colorize, plot_matrix, to_display


# %% [markdown]
# ## 7.1 The loop version and the lecture's example
#
# With dilation $d$ the kernel taps are $d$ pixels apart (zero padding $P$ around $x$):
#
# $$\text{out}[p, q] = \sum_{i=0}^{K-1} \sum_{j=0}^{K-1} w[i, j]\; x_{\text{pad}}[p + i\,d,\; q + j\,d].$$
#
# $d = 1$ is the ordinary convolution. The window spans $d(K-1) + 1$ pixels: for $K = 3$ that is
# 3, 5, 7 for $d = 1, 2, 3$.

# %%
def dilated_conv_loop(x, w, dilation=1, padding=0):
    H, W = x.shape
    K = w.shape[0]
    xpad = np.zeros((H + 2 * padding, W + 2 * padding))
    xpad[padding:padding + H, padding:padding + W] = x
    span = dilation * (K - 1) + 1                         # pixels one window covers
    out = np.zeros((H + 2 * padding - span + 1, W + 2 * padding - span + 1))
    for p in range(out.shape[0]):
        for q in range(out.shape[1]):
            for i in range(K):
                for j in range(K):
                    out[p, q] += w[i, j] * xpad[p + i * dilation, q + j * dilation]
    return out


# %% [markdown]
# **Hand example.** The 3 x 3 kernel of lecture 003 on a 7 x 7 input $x = 0, 1, \dots, 48$ (row by
# row), $d = 2$, no padding. The window is 5 x 5, so the output is $7 - 5 + 1 = 3$ pixels wide.
# The top-left output reads rows 0, 2, 4 and columns 0, 2, 4, i.e. the values 0, 2, 4, 14, 16, 18,
# 28, 30, 32:
# $1\cdot0 + 4\cdot2 + 1\cdot4 + 1\cdot14 + 4\cdot16 + 3\cdot18 + 3\cdot28 + 3\cdot30 + 1\cdot32 = 350$.

# %%
kernel = np.array([[1, 4, 1],
                   [1, 4, 3],
                   [3, 3, 1]], dtype=np.float64)
x = np.arange(49, dtype=np.float64).reshape(7, 7)
out_loop = dilated_conv_loop(x, kernel, dilation=2)
out_lib, _ = F.conv2d_forward(x[None, None], kernel[None, None], dilation=2)
print(out_loop)
assert out_loop[0, 0] == 350
assert np.allclose(out_lib[0, 0], out_loop)


# %% [markdown]
# ### "Количество параметров: 3 × 3, рецептивное поле: 5 × 5"
#
# The dilated 3 x 3 kernel is the same operation as a **dense 5 x 5 kernel with zeros inserted**
# between its weights: put $w[i, j]$ at $(2i, 2j)$ and zeros elsewhere. Nine numbers are learned,
# 25 pixels are covered. The same holds for every $d$ (a $(2d+1) \times (2d+1)$ kernel with $d - 1$
# zeros between the taps), for many channels, with padding and with stride:

# %%
def with_zeros(w, d):
    """(OC, C, K, K) -> (OC, C, d(K-1)+1, d(K-1)+1): the taps d pixels apart, zeros between."""
    oc, c, k, _ = w.shape
    big = np.zeros((oc, c, d * (k - 1) + 1, d * (k - 1) + 1))
    big[:, :, ::d, ::d] = w
    return big

print(with_zeros(kernel[None, None], 2)[0, 0])
rng = np.random.default_rng(0)
xs = rng.standard_normal((2, 3, 11, 12))
ws = rng.standard_normal((4, 3, 3, 3))
for d in (1, 2, 3):
    for stride in (1, 2):
        dilated, _ = F.conv2d_forward(xs, ws, stride=stride, padding=d, dilation=d)
        dense, _ = F.conv2d_forward(xs, with_zeros(ws, d), stride=stride, padding=d)
        assert np.allclose(dilated, dense)
    print(f"d = {d}: {ws[0, 0].size} weights per channel pair, a {2 * d + 1} x {2 * d + 1} window "
          f"({(2 * d + 1) ** 2} pixels); dilated == dense-with-zeros for stride 1 and 2")

# %% [markdown]
# The matrix view of notebook 2 says the same: the convolution matrices of the two kernels are
# identical, entry by entry. Each row holds 9 nonzeros spread over a 5 x 5 window of the 7 x 7 input.

# %%
C_dilated = F.conv_matrix(kernel[None, None], (7, 7), dilation=2)
C_dense = F.conv_matrix(with_zeros(kernel[None, None], 2), (7, 7))
assert C_dilated.shape == (9, 49) and (C_dilated == C_dense).all()
assert ((C_dilated != 0).sum(axis=1) == 9).all()
fig = plt.figure(figsize=(13, 3.6))
plot_matrix(with_zeros(kernel[None, None], 2)[0, 0], ax=fig.add_axes([0.0, 0.1, 0.2, 0.8]), fmt="{:.0f}",
            title="d = 2 as a 5 x 5 kernel")
plot_matrix(C_dilated[0].reshape(7, 7), ax=fig.add_axes([0.22, 0.1, 0.22, 0.8]), fmt="{:.0f}",
            title="row 0 of C as a 7 x 7 image")
plot_matrix(C_dilated, ax=fig.add_axes([0.47, 0.25, 0.53, 0.5]), fmt="{:.0f}", fontsize=5,
            title="C (9 x 49) of the dilated convolution")
plt.show()

# %% [markdown]
# The backward pass of a dilated convolution is again a dilated convolution (the transposed one, with
# the same $d$); the library's hand-written backward passes the float64 gradient check:

# %%
report = gradcheck(F.conv2d_forward, F.conv2d_backward,
                   {"x": rng.standard_normal((2, 2, 9, 8)), "w": rng.standard_normal((3, 2, 3, 3)),
                    "b": rng.standard_normal(3)}, kwargs={"padding": 2, "dilation": 2})
print(report)
assert report.passed

# %% [markdown]
# ## 7.2 Pictures: $d = 1, 2, 3$
#
# The lecture's three pictures, drawn by `minimal_seg.conv_arithmetic` from the library's own
# output-size formula. Here with padding $P = d$, as in ASPP: the output keeps the input's size for
# every $d$, and the window of the output pixel at (1, 1) reaches into the zero padding as $d$ grows.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, d in zip(axes, (1, 2, 3)):
    drawing = draw_conv(7, 3, padding=d, dilation=d, step=(1, 1), ax=ax)
    rows = [r for r, c in drawing.window]
    assert drawing.output_shape == (7, 7)                 # P = d keeps the size
    assert len(drawing.window) == 9 and max(rows) - min(rows) + 1 == 2 * d + 1
    ax.set_title(f"d = {d}: 9 weights, {2 * d + 1} x {2 * d + 1} field", fontsize=10)
plt.tight_layout(); plt.show()

# %% [markdown]
# "Same" padding for a 3 x 3 kernel with dilation $d$ is $P = d$, whatever the input size, even when
# the window is larger than the input (then most taps only ever see zeros; see 7.5):

# %%
for size in (4, 7, 16, 33):
    for d in range(1, 9):
        assert conv2d_output_shape((size, size), 3, padding=d, dilation=d) == (size, size)
print("3 x 3, padding d, dilation d keeps 4, 7, 16 and 33 pixels for d = 1..8")


# %% [markdown]
# ## 7.3 Receptive fields: the formula and the backward pass
#
# A stack of layers with kernels $K_l$, strides $S_l$ and dilations $D_l$ sees
#
# $$r = 1 + \sum_{l} (K_l - 1)\, D_l \prod_{m < l} S_m$$
#
# pixels along each axis (one layer: $r = D(K-1) + 1$). Notebook 2 drew this for strided stacks; here
# we *measure* it on library layers for many dilation patterns. The gradient of **one** output pixel
# with respect to the input is nonzero exactly on the pixels that output depends on, so one backward
# pass with `dout` = 1 at that pixel draws its receptive field. All weights are made positive so that
# no two paths can cancel.

# %%
def support(layer, x, pixel):
    """The input pixels output ``pixel`` (row, col) of image 0 depends on: where its gradient is nonzero."""
    out = layer(x)
    dout = np.zeros_like(out)
    dout[0, :, pixel[0], pixel[1]] = 1.0                   # one output pixel, all its channels
    dx = layer.backward(dout)
    return np.abs(dx[0]).sum(axis=0) > 0                   # (H, W)

def extent(mask):
    rows, cols = np.nonzero(mask)
    return rows.max() - rows.min() + 1

def dilated_stack(dilations, seed=0):
    rng = np.random.default_rng(seed)
    layers = [nn.Conv2d(1, 1, 3, padding=d, dilation=d, bias=False, rng=rng, dtype=np.float64)
              for d in dilations]
    for layer in layers:
        layer.params["w"][...] = np.abs(layer.params["w"])     # positive: no cancellation
    return nn.Sequential(*layers)

size, centre = 41, (20, 20)
probe = np.zeros((1, 1, size, size))
fields = {}
print(f"{'dilations':<12}{'r (formula)':>12}{'r (backward)':>14}{'pixels seen':>13}{'of r x r':>10}")
for dilations in [(1,), (2,), (3,), (1, 1, 1), (2, 2, 2), (1, 2, 3), (1, 2, 4), (1, 2, 5)]:
    seen = support(dilated_stack(dilations), probe, centre)
    r = receptive_field([3] * len(dilations), dilations=list(dilations))
    assert extent(seen) == r
    fields[dilations] = seen
    print(f"{str(dilations):<12}{r:>12}{extent(seen):>14}{seen.sum():>13}{r * r:>10}")

# %% [markdown]
# The formula and the backward pass agree for every stack. The last two columns tell a second story:
# a single dilated layer reads only 9 of the $r^2$ pixels in its field (it *has* holes, that is the
# point), and stacking does not always fill them. **Dilations 2, 2, 2 see 49 of 169 pixels**: every
# tap of every layer is an even offset, so the sum of three offsets is even too. Dilations 1, 2, 3
# (or 1, 2, 5) have no common factor, and the offsets fill the whole field.
#
# ## 7.4 Gridding: neighbouring pixels that never share an input
#
# The holes have a worse consequence than a sparse field. With 2, 2, 2 an output pixel at an even
# position reads only even input positions and its right-hand neighbour only odd ones: **two
# neighbouring outputs share no input pixel at all**, the image is processed as four interleaved
# sub-images that never meet ("gridding", the checkerboard artefacts of naive dilated stacks).
# Colour each input pixel by *which* of a 2 x 2 block of neighbouring outputs reads it (blue, orange,
# green, red for the four; white where two or more read it):

# %%
block = [(20, 20), (20, 21), (21, 20), (21, 21)]
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
for k, dilations in enumerate([(2, 2, 2), (1, 2, 3)]):
    net = dilated_stack(dilations)
    masks = [support(net, probe, pixel) for pixel in block]
    readers = sum(m.astype(int) for m in masks)
    owner = sum((n + 1) * m for n, m in enumerate(masks))             # 1..4 where one neighbour reads
    owner[readers > 1] = 10                                            # white: shared
    axes[2 * k].imshow(fields[dilations][12:30, 12:30], cmap="Blues")
    axes[2 * k].set_title(f"dilations {dilations}:\nfield of one output pixel", fontsize=10)
    axes[2 * k + 1].imshow(colorize(owner[12:30, 12:30]))
    axes[2 * k + 1].set_title(f"which of 4 neighbouring outputs\nreads each pixel (white: shared)",
                              fontsize=10)
    print(f"dilations {dilations}: input pixels read by 1, 2, 3, 4 of the four neighbours:",
          [int((readers == n).sum()) for n in (1, 2, 3, 4)])
    if dilations == (2, 2, 2):
        assert readers.max() == 1                          # four disjoint sub-grids
    else:
        assert readers.max() == 4
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The cure is the one the numbers suggest: rates without a common factor (the "hybrid dilated
# convolution" rule, e.g. 1, 2, 3 or 1, 2, 5), or an ordinary convolution somewhere in the stack.
# ASPP sidesteps the problem differently: its dilated convolutions are **parallel**, not stacked,
# and every branch reads features that already mix neighbouring pixels.
#
# ## 7.5 ASPP: atrous spatial pyramid pooling
#
# The lecture's picture, Encoder → ASPP → Decoder, is `minimal_seg.models.DeepLab` (v3+ style). The
# ASPP block reads the deepest encoder feature map with five parallel branches and concatenates them:
#
#     f ─┬ 1x1 conv ───────────────────────────────────┐
#        ├ 3x3 conv, dilation 2 ───────────────────────┤
#        ├ 3x3 conv, dilation 4 ───────────────────────┼ cat ─ project (1x1) ─ out
#        ├ 3x3 conv, dilation 6 ───────────────────────┤
#        └ global average pool ─ 1x1 conv ─ broadcast ─┘   (image-level feature)
#
# Each conv is followed by batch norm and ReLU (the image-level branch: ReLU only). The paper's rates 6, 12, 18 are for feature maps of
# about 32 x 32 (a 512-pixel image at 1/16); the library scales them down to 2, 4, 6 for the small
# images of the course. Here is the ASPP of a DeepLab with 8 base channels and depth 3, on the
# 4 x 4 x 64 feature map a 32 x 32 image gives:

# %%
deeplab = DeepLab(in_channels=1, num_classes=4, base_channels=8, depth=3)
aspp = deeplab.aspp
f = np.random.default_rng(1).standard_normal((2, 64, 4, 4)).astype(np.float32)
for name, branch in aspp.branches.branches.items():
    out = branch(f)
    assert out.shape[2:] == f.shape[2:]                     # every branch keeps 4 x 4
    conv = branch[0] if name != "image_pool" else branch.conv[0]
    options = {k: v for k, v in conv.options.items() if k != "stride"}
    print(f"{name:<11} {str(f.shape):>15} -> {str(out.shape):<15} {conv.params['w'].shape}  {options}")
    if name.startswith("rate"):
        assert conv.options["padding"] == conv.options["dilation"] == int(name[4:])
cat = aspp.branches(f)
print(f"concatenated: {cat.shape};  after the 1 x 1 projection: {aspp(f).shape}")
assert cat.shape == (2, 5 * 32, 4, 4)

# %% [markdown]
# Every branch keeps the spatial size (padding = dilation), so they can be concatenated along the
# channels: $5 \times 32 = 160$ channels, projected back to 32 by a 1 x 1 convolution.
#
# **What each branch sees**, measured with the backward pass on the real block (its real, random
# weights; eval mode, so batch norm uses fixed statistics and does not couple the pixels of a batch).
# On a 17 x 17 feature map the rates give fields of 1, 5, 9, 13 pixels and the image-level branch sees
# everything. On the 4 x 4 map of a 32 x 32 image, rates 4 and 6 see only the pixel itself: all their
# off-centre taps fall into the zero padding, and the 3 x 3 filter degenerates into a 1 x 1 one
# (the reason DeepLab v3 added the image-level branch).

# %%
aspp.eval()
big = np.random.default_rng(2).standard_normal((1, 64, 17, 17)).astype(np.float32)
small = f[:1]
print(f"{'branch':<11}{'17 x 17 map: field':>20}{'4 x 4 map: field':>18}{'taps inside (4 x 4)':>22}")
for name, branch in aspp.branches.branches.items():
    seen_big, seen_small = support(branch, big, (8, 8)), support(branch, small, (1, 1))
    if name.startswith("rate"):
        d = int(name[4:])
        assert extent(seen_big) == receptive_field([3], dilations=[d]) == 2 * d + 1
        offsets = np.arange(4)[:, None] + d * np.array([-1, 0, 1])    # the rows the taps of each output row read
        inside = f"{((offsets >= 0) & (offsets < 4)).sum(axis=1).mean() ** 2:.2f} of 9"
    else:
        inside = "1 of 1" if name == "conv1x1" else "all 16 pixels"
    if name == "image_pool":
        assert seen_big.all() and seen_small.all()
    print(f"{name:<11}{extent(seen_big):>14} x {extent(seen_big):<3}{extent(seen_small):>12} x "
          f"{extent(seen_small):<3}{inside:>20}")
assert extent(support(aspp.branches.branches["rate6"], small, (1, 1))) == 1
aspp.train()

# %% [markdown]
# ("taps inside" is the average number of the 9 taps that land on the map rather than the padding.)
# So the rates have to match the size of the feature map they read: a rate-6 branch uses all 9 taps
# somewhere only on maps of 13 x 13 and more, i.e. images of about 100 pixels and up at depth 3
# (the map is 1/8 of the image).
#
# **Parameters.** A dilated 3 x 3 branch covers a $(2d+1) \times (2d+1)$ window with 9 weights per
# channel pair; a dense kernel of the same field needs $(2d+1)^2$:

# %%
print(f"{'branch':<8}{'field':>8}{'dilated 3x3':>14}{'dense kernel':>15}{'ratio':>8}")
for d in (2, 4, 6):
    dilated = aspp.branches.branches[f"rate{d}"][0].num_parameters()
    dense = nn.Conv2d(64, 32, 2 * d + 1, bias=False).num_parameters()
    assert dilated == 9 * 64 * 32 and dense == (2 * d + 1) ** 2 * 64 * 32
    print(f"rate{d:<4}{2 * d + 1:>5} x {2 * d + 1:<3}{dilated:>11,}{dense:>15,}{dense / dilated:>8.1f}")
print(f"the whole ASPP block: {aspp.num_parameters():,} parameters")

# %% [markdown]
# **The gradient.** The input feature map feeds five branches, so its gradient is the **sum** of the
# five branch gradients (`nn.Parallel`, notebook 5's lesson). A small ASPP in float64, checked entry
# by entry against central differences (input and every parameter):

# %%
tiny = ASPP(3, 2, rates=(2, 3), rng=np.random.default_rng(0)).astype(np.float64)
x_tiny = np.random.default_rng(1).standard_normal((2, 3, 7, 7)) + 1.0   # mean 1: the image-level ReLU is active
report = gradcheck_layer(tiny, x_tiny)
print(report)
assert report.passed
assert np.abs(report["branches.image_pool.conv.0.w"].analytic).max() > 0   # so that branch was really checked

# %% [markdown]
# ## 7.6 DeepLab: encoder → ASPP → decoder
#
# The rest of the model is the lecture's diagram. The encoder (VGG-like, three 2 x 2 pools) gives the
# 1/8 map for ASPP; the decoder upsamples ASPP's output bilinearly to the 1/4 map, concatenates a
# 1 x 1-reduced copy of the encoder's 1/4 features (the "low-level" skip), fuses them with a 3 x 3
# convolution and upsamples the logits 4x to the input:

# %%
rows = deeplab.summary((1, 1, 32, 32), print_fn=lambda line: None)
blocks = {}
for name, kind, shape, params in rows:
    block = ".".join(name.split(".")[:2]) if name.startswith("encoder") else name.split(".")[0]
    blocks.setdefault(block, [shape, 0])
    blocks[block][0] = shape
    blocks[block][1] += params
for block, (shape, params) in blocks.items():
    if not block.startswith("encoder.pool"):
        print(f"{block:<16} output {str(shape):<18} parameters {params:>7,}")
print(f"total {deeplab.num_parameters():,}")

# %% [markdown]
# Train it on `Shapes` (192 images of 32 x 32, 4 epochs of 24 steps, batch 8, Adam) through the
# library's `train`, as notebook 5 trained U-Net. The checkpoints go to a temporary folder.

# %%
config = dict(model="deeplab", image_size=32, num_train=192, num_val=48, epochs=4, batch_size=8,
              base_channels=8, lr=3e-3, seed=0)
with tempfile.TemporaryDirectory() as out:
    t0 = time.perf_counter()
    result = train(TrainConfig(**config, out=out), progress=False, log=lambda line: None)
    seconds = time.perf_counter() - t0
last = result["history"][-1]
print(f"DeepLab, {seconds:.1f} s: val mIoU per epoch {[round(row['val_miou'], 3) for row in result['history']]},"
      f" IoU per class {[round(last[f'val_iou_{k}'], 2) for k in range(4)]}")

val_set, model = result["val_set"], result["model"]
show = [0, 1, 2, 3, 4, 5]
pred = predict(model, val_set.images[show])
fig, axes = plt.subplots(3, len(show), figsize=(2 * len(show), 6.2))
for c, i in enumerate(show):
    for r, (picture, title) in enumerate([(to_display(val_set.images[i]), "input"),
                                          (colorize(val_set.masks[i]), "truth"),
                                          (colorize(pred[c]), "DeepLab")]):
        axes[r, c].imshow(picture, cmap="gray"); axes[r, c].set_axis_off()
        if c == 0:
            axes[r, c].set_title(title, loc="left")
plt.show()

# %% [markdown]
# After 96 steps the model finds most of the shapes, but telling a square from a
# triangle is still mostly beyond it (look at the IoU per class): the budget is tiny, and on 32 x 32
# images two of its three dilated branches act as 1 x 1 convolutions (7.5). The masks show the
# decoder's design: the logits are computed on the 8 x 8 grid and upsampled 4x bilinearly, so outlines
# are smooth and corners rounded. Notebook 8 trains DeepLab next to U-Net, SegNet, LinkNet and PSPNet
# with the same budget.
#
# ## Summary
#
# * A 3 x 3 convolution with dilation $d$ has 9 weights and a $(2d+1) \times (2d+1)$ field
#   ("Количество параметров: 3 × 3, рецептивное поле: 5 × 5" for $d = 2$); it equals a dense kernel
#   with $d - 1$ zeros between the taps, and padding $P = d$ keeps the size.
# * Receptive field of a stack: $r = 1 + \sum_l (K_l - 1) D_l \prod_{m<l} S_m$; the backward pass of a
#   one-pixel gradient measures it, and shows which pixels *inside* the field are actually read.
# * Stacked rates with a common factor (2, 2, 2) leave holes and split the image into sub-grids that
#   never meet (gridding); rates like 1, 2, 3 fill the field.
# * ASPP: parallel 1 x 1, dilated 3 x 3 (several rates) and image-level branches, concatenated and
#   projected; all keep the size, the input's gradient is the sum over branches. Rates larger than the
#   feature map degenerate to 1 x 1 convolutions.
#
# ## Exercises
#
# 1. Which receptive field has a stack of a stride-2 3 x 3 convolution followed by a dilation-2 one?
#    Measure it with `support` (give the first `nn.Conv2d` `stride=2`): are there holes? Why?
# 2. Find three rates for three 3 x 3 layers that give a 19 x 19 field without holes, and a set that
#    gives 19 x 19 *with* holes.
# 3. Show on paper that the backward pass of a dilated convolution with respect to $x$ is a transposed
#    convolution with the same dilation; check it with `F.conv_transpose2d_forward`.
# 4. Train DeepLab on 64 x 64 images (deepest map 8 x 8) with rates 2, 4, 6 and with rates 1, 1, 1.
#    Does the larger context pay off there?
# 5. Remove the image-level branch: build an `ASPP` subclass without it and count the parameters.
#    On a 4 x 4 map, which of the remaining branches compute nothing but a 1 x 1 convolution?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. $r = 1 + 2 \cdot 1 + 2 \cdot 2 \cdot 2 = 11$. The second layer reads the strided map at offsets
#    $-2, 0, 2$, that is image offsets $-4, 0, 4$, and the first layer covers $\pm 1$ around each: the
#    offsets $\pm 2$ are never read. Holes.
# 2. $r = 1 + 2(d_1 + d_2 + d_3) = 19$ needs $d_1 + d_2 + d_3 = 9$: 1, 3, 5 fills the field
#    (each rate is at most the width of the field the layers before it cover); 3, 3, 3 has the same size and reads only
#    every third pixel.
# 3. $\partial L / \partial x$ collects, for each input pixel, the output gradients of every window that
#    read it, times the weight that read it: `F.conv_transpose2d_forward(dout, w, padding=P, dilation=d)`
#    equals `conv2d_backward`'s `dx`.
# 4. `TrainConfig(model="deeplab", image_size=64, model_options={"rates": (1, 1, 1)}, ...)` against the
#    default rates; compare with several seeds before trusting a difference of a few hundredths.
# 5. Build the branches without `"image_pool"` (see `ASPP.__init__`) and count with `num_parameters()`. On a
#    4 x 4 map, a dilation of 4 or more puts every tap but the centre into the padding: those branches are
#    1 x 1 convolutions with 8 wasted weights each.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** A 3 x 3 convolution with dilation 3: how many weights, which receptive field, and which padding
# keeps the size?
#
# <details><summary>Answer</summary>
#
# 9 weights; the taps span $D(K - 1) + 1 = 7$ pixels, a 7 x 7 field; padding $P = D = 3$ keeps the size.
#
# </details>
#
# **2.** Three 3 x 3 convolutions with dilations 1, 2, 4, all with stride 1: what is the receptive field?
# Does it have holes?
#
# <details><summary>Answer</summary>
#
# $r = 1 + 2(1 + 2 + 4) = 15$, without holes: each rate is at most the width of the field already covered
# (3, then 7), so the shifted copies of that field touch and leave no gap.
#
# </details>
#
# **3.** Why does an ASPP branch with rate 6 compute the same as a 1 x 1 convolution on a 4 x 4 feature
# map (with padding 6)?
#
# <details><summary>Answer</summary>
#
# Its 8 outer taps are 6 pixels from the centre, beyond the 4 x 4 map for every output pixel: they read
# zero padding only. Only the centre weight ever meets a real pixel.
#
# </details>
#
# **4.** Dilating a 3 x 3 kernel to a 5 x 5 field costs no parameters. What does a dense 5 x 5 kernel
# offer that the dilated one does not?
#
# <details><summary>Answer</summary>
#
# The 16 pixels between the taps: the dilated kernel reads only 9 of the 25, so thin structures that
# fall between its taps are missed (the root of gridding when dilations are stacked).
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Dilated convolution, ASPP, SegNet, LinkNet, PSPNet](../concepts/architectures.md)
#   (`docs/concepts/architectures.md`); receptive fields on
#   [Convolution arithmetic](../concepts/conv_arithmetic.md).
# * API: [`functional.conv`](../api/functional/conv.rst) (`dilation=`),
#   [`functional.shapes`](../api/functional/shapes.rst) (`receptive_field`),
#   [`minimal_seg.models`](../api/models.rst) (`DeepLab`, `ASPP`), [`minimal_seg.nn`](../api/nn.rst).
# * Assignment: [a4, dilated convolution](../assignments.md#assignment-a4) (`a4_dilated_conv.py`: dilated convolution
#   by im2col; the receptive field, computed and measured).
# * Next: [notebook 8, SegNet, LinkNet and PSPNet](08_segnet_linknet_pspnet.ipynb).
