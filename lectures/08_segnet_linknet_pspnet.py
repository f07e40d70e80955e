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
# # 8. SegNet, LinkNet, PSPNet
#
# *Lecture 000 ("SegNet", "SegNet, результаты", "Linknet", "PS-Net"; "Минусы U-Net: сложнее с
# многоклассовой сегментацией. FPN and PSPNet более приспособлены").*
#
# U-Net (notebook 5) is one answer to "the decoder must recover what the encoder threw away": send the
# encoder's feature maps across and concatenate them. Three other answers from the lecture:
#
# | model | what crosses from encoder to decoder | decoder |
# |---|---|---|
# | **SegNet** | only the max-pooling **indices** (where each maximum was) | max unpooling + convolutions |
# | **LinkNet** | the feature maps, **added** (not concatenated) | 1 x 1 → transposed 3 x 3 (stride 2) → 1 x 1 |
# | **PSPNet** | nothing: a **pyramid pooling** head sees the deepest map at 1 x 1, 2 x 2, 3 x 3 and 6 x 6 | bilinear upsampling |
#
# We check the piece that makes each one different, then train all of them (and U-Net and DeepLab)
# with the same small budget.
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
from minimal_seg.data import Shapes
from minimal_seg.gradcheck import gradcheck, gradcheck_layer
from minimal_seg.models import LinkNet, PSPNet, SegNet, UNet
from minimal_seg.train import TrainConfig, predict, train
from minimal_seg.viz import colorize, plot_matrix, to_display


# %% [markdown]
# ## 8.1 SegNet: the decoder unpools with the encoder's indices
#
#     x ─ enc0 ─ pool0 ─ enc1 ─ pool1 ─ enc2 ─ pool2 ─┐
#                  ┊              ┊              ┊     │  indices (where each max was)
#     logits ─ head ─ dec0 ─ unpool0 ─ dec1 ─ unpool1 ─ dec2 ─ unpool2
#
# Each 2 x 2 max pool remembers, for every window, the flat position $h W + w$ of its maximum; the
# decoder's max unpooling of the same level writes each value back at exactly that position and zeros
# elsewhere. Notebook 3 did this on the lecture's 4 x 4 example. Here: on the real feature maps of a
# SegNet, and why it matters for *where* things are.
#
# **The loop version** of the indices: for every 2 x 2 window, the position of its maximum.

# %%
def pool_indices_loop(fmap):
    H, W = fmap.shape
    idx = np.zeros((H // 2, W // 2), dtype=np.int64)
    for p in range(H // 2):
        for q in range(W // 2):
            window = fmap[2 * p:2 * p + 2, 2 * q:2 * q + 2]
            i, j = np.unravel_index(np.argmax(window), (2, 2))    # first maximum, row-major
            idx[p, q] = (2 * p + i) * W + (2 * q + j)
    return idx

shapes = Shapes(4, image_size=32, seed=3)
segnet = SegNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
e0 = segnet.enc[0](shapes.images)                    # the encoder's level-0 features (4, 8, 32, 32)
p0 = segnet.pools[0](e0)                             # (4, 8, 16, 16); the pool keeps its indices
u0 = segnet.unpools[0](p0)                           # unpool0 reads pool0's indices: back to 32 x 32
loop = np.stack([[pool_indices_loop(e0[n, c]) for c in range(8)] for n in range(4)])
assert (segnet.pools[0].indices == loop).all()
print("indices of image 0, channel 0, top-left 3 x 3 windows:\n", loop[0, 0, :3, :3])

# %% [markdown]
# The unpooled map has each window's maximum **exactly where the encoder had it**: at the saved
# position $u_0 = e_0$, everywhere else $u_0 = 0$. Nearest-neighbour upsampling (notebook 3) copies
# the maximum to all four pixels of the window instead, so it is right at one of four positions:

# %%
at_max = np.zeros(e0.shape, dtype=bool).reshape(4, 8, -1)
np.put_along_axis(at_max, segnet.pools[0].indices.reshape(4, 8, -1), True, axis=2)
at_max = at_max.reshape(e0.shape)                    # True at the saved position of every window
assert (u0[at_max] == e0[at_max]).all() and (u0[~at_max] == 0).all()
nearest, _ = F.unpool_nearest_forward(p0, 2)
assert (nearest[at_max] == e0[at_max]).all()         # nearest is right at the max too ...
print(f"pixels that are not a window's max: {(~at_max).sum():,}; nearest writes the max there too, "
      f"and differs from the encoder at {(nearest[~at_max] != e0[~at_max]).sum():,} of them")

# the 4 x 4 block of image 0, channel 0 with the most varied values
spread = e0[0, 0].reshape(8, 4, 8, 4).std(axis=(1, 3))
r0, c0 = (4 * k for k in np.unravel_index(np.argmax(spread), spread.shape))
crop = (0, 0, slice(r0, r0 + 4), slice(c0, c0 + 4))
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
panels = [(e0[crop], "encoder e0 (saved max framed)"), (p0[0, 0, r0 // 2:r0 // 2 + 2, c0 // 2:c0 // 2 + 2], "pooled p0"),
          (u0[crop], "max unpooled (indices)"), (nearest[crop], "nearest upsampled")]
for ax, (m, title) in zip(axes, panels):
    plot_matrix(m, ax=ax, fmt="{:.2f}", title=title, highlight=at_max[crop] if m.shape == (4, 4) else None)
plt.show()

# %% [markdown]
# **Why positions matter: a one-pixel line.** A thin vertical line at an odd column (5) is pooled into
# column 2 of the half-size map. Max unpooling puts it back in column 5: only one pixel of every
# 2 x 2 window survives (the maximum; of two equal ones the first), so the line comes back dotted,
# but never in the wrong place. Nearest upsampling fills columns 4 and 5: twice as thick and half a
# pixel off. The decoder's convolutions after the unpooling can fill in dots; a decoder without the
# indices has to guess which of the two columns the line came from.

# %%
line = np.zeros((1, 1, 12, 12))
line[0, 0, 2:10, 5] = 1.0                             # a thin line at column 5
pooled, cache = F.max_pool2d_forward(line, 2)
back, _ = F.max_unpool2d_forward(pooled, cache.indices, kernel_size=2)
smeared, _ = F.unpool_nearest_forward(pooled, 2)
assert (back[line == 0] == 0).all()                   # nothing where there was nothing
assert back[0, 0, :, 5].sum() == 4                    # rows 2, 4, 6, 8: one per 2 x 2 window
assert (smeared[0, 0, 2:10, 4:6] == 1).all()          # nearest: columns 4 and 5
fig, axes = plt.subplots(1, 4, figsize=(11, 3))
for ax, m, title in zip(axes, (line, pooled, back, smeared),
                        ("encoder: line at column 5", "max pooled (6 x 6)", "max unpooled (indices)",
                         "nearest upsampled")):
    ax.imshow(m[0, 0], cmap="Blues", vmin=0, vmax=1); ax.set_title(title, fontsize=10)
    ax.set_xticks(range(0, m.shape[3], 2 if m.shape[3] > 6 else 1))
plt.show()

# %% [markdown]
# In the model the unpooling layers are *tied* to their pools: `unpools[l]` reads `pools[l].indices`
# of the last forward pass. After a forward through the whole SegNet, values sent through each
# unpool land exactly at the positions its pool saved for this batch, and nowhere else:

# %%
logits = segnet(shapes.images)
rng = np.random.default_rng(0)
for level in range(3):
    pool, unpool = segnet.pools[level], segnet.unpools[level]
    assert unpool.pool is pool                            # tied when the model was built
    idx = pool.indices                                    # saved by this forward, (N, C, h, w)
    n, c, h, w = idx.shape
    values = rng.uniform(1, 2, idx.shape)                 # anything nonzero, to see where it lands
    up = unpool(values)                                   # (N, C, 2h, 2w)
    landed = np.take_along_axis(up.reshape(n, c, -1), idx.reshape(n, c, -1), axis=2)
    assert (landed == values.reshape(n, c, -1)).all() and np.count_nonzero(up) == values.size
    print(f"level {level}: {idx.size:>6,} indices cross (ints), where U-Net's skip sends the whole "
          f"feature map: {4 * idx.size:>6,} floats")
print("logits", logits.shape)

# %% [markdown]
# SegNet carries a quarter as many numbers across as U-Net, and only positions: the decoder gets
# *where* the strong responses were, not *what* they were. That makes it light (no concatenation, so
# its decoder convolutions are as narrow as the encoder's), but the decoder starts from sparse maps
# (three zeros in every 2 x 2 block) that its convolutions must fill in.
#
# ## 8.2 LinkNet: additive skips and transposed-convolution decoder blocks
#
#     x ─ stage0 ─ f0 ────────────────── + ─ head ─ logits
#                   └ pool ─ stage1 ─ f1 ── + ─ dec0 ┘
#                               └ pool ─ stage2 ─ f2 ── + ─ dec1 ┘
#                                           └ pool ─ stage3 ─ f3 ─ dec2 ┘
#
# The encoder feature of each level is **added** to the decoder's output of that level:
# $d_l = f_l + \mathrm{dec}_l(d_{l+1})$. A sum needs equal shapes, so each decoder block brings the
# channels down to the level's width: 1 x 1 conv ($C \to C/4$), 3 x 3 transposed conv with stride 2
# ($C/4 \to C/4$, twice the size, notebook 3), 1 x 1 conv ($C/4 \to C_l$). The shapes through the
# deepest block for a 32 x 32 input and 8 base channels:

# %%
linknet = LinkNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
unet = UNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
rows = linknet.summary((1, 1, 32, 32), print_fn=lambda line: None)
for name, kind, shape, params in rows:
    if name.startswith("dec2") and kind in ("Conv2d", "ConvTranspose2d"):
        print(f"{name:<10}{kind:<17}-> {str(shape):<16}{params:>7,} parameters")
assert F.conv_transpose_output_size(4, 3, stride=2, padding=1, output_padding=1) == 8


# %% [markdown]
# **Sum vs concatenation.** U-Net's decoder block at level $l$ reads $2 C_l$ channels (the upsampled
# features and the skip, concatenated); its first 3 x 3 convolution has $9 \cdot 2C_l \cdot C_l$
# weights. LinkNet's decoder sees only $C_l$ channels, and works at $C/4$ in its middle. Per level:

# %%
def params_of(model, prefix):
    return sum(int(v.size) for name, v in model.named_parameters() if name.startswith(prefix))

unet_weights = dict(unet.named_parameters())
print(f"{'level':<7}{'U-Net: conv reads':>19}{'up + dec params':>17}{'LinkNet: skip adds':>20}{'dec params':>12}")
for level in range(3):
    c_l = 8 * 2 ** level
    reads = unet_weights[f"dec{level}.0.0.w"].shape[1]      # input channels of the first 3 x 3 conv
    assert reads == 2 * c_l
    print(f"{level:<7}{f'{reads} ch (cat)':>19}{params_of(unet, f'up{level}.') + params_of(unet, f'dec{level}.'):>17,}"
          f"{f'{c_l} ch (sum)':>20}{params_of(linknet, f'dec{level}.'):>12,}")
print(f"whole model: U-Net {unet.num_parameters():,}, LinkNet {linknet.num_parameters():,} parameters "
      f"(the same encoder: {params_of(linknet, 'encoder.'):,})")

# %% [markdown]
# In the backward pass a sum copies the gradient unchanged to both terms, so $f_l$ receives
# $\partial L / \partial d_l$ from the skip plus what comes back through the pool below it (summed,
# never overwritten). A tiny LinkNet in float64 passes the gradient check on its input and every
# parameter:

# %%
tiny = LinkNet(in_channels=1, num_classes=3, base_channels=4, depth=2, seed=0).astype(np.float64)
report = gradcheck_layer(tiny, np.random.default_rng(0).standard_normal((2, 1, 8, 8)), directions=3)
print(f"LinkNet: passed = {report.passed}, worst relative error {report.max_rel_error:.1e}")
assert report.passed


# %% [markdown]
# ## 8.3 PSPNet: pyramid pooling
#
# PSPNet gives every pixel of the deepest map a summary of the whole image at several scales.
# **Adaptive average pooling** to $b \times b$ bins averages over a grid of $b$ bins per axis,
# whatever the input size. Bin $i$ (of $b$) along an axis of $H$ pixels covers the rows
#
# $$\text{start}_i = \left\lfloor \frac{i\,H}{b} \right\rfloor, \qquad
# \text{end}_i = \left\lceil \frac{(i+1)\,H}{b} \right\rceil \qquad (\text{rows start}_i, \dots, \text{end}_i - 1).$$
#
# When $b$ divides $H$ the bins tile the map; otherwise neighbouring bins overlap by a row, and when
# $b > H$ several bins read the same row. **The loop version:**

# %%
def bins(H, b):
    return [(i * H // b, -(-(i + 1) * H // b)) for i in range(b)]     # (start, end); -(-a // b) = ceil

def adaptive_avg_pool_loop(x, b):
    out = np.zeros((b, b))
    for i, (r0, r1) in enumerate(bins(x.shape[0], b)):
        for j, (c0, c1) in enumerate(bins(x.shape[1], b)):
            out[i, j] = x[r0:r1, c0:c1].mean()
    return out

print("H = 5, b = 3:", bins(5, 3), "   H = 6, b = 3:", bins(6, 3), "   H = 4, b = 6:", bins(4, 6))

# %% [markdown]
# **Hand example.** $x = 0, 1, \dots, 24$ as a 5 x 5 map, $b = 3$: the bins are rows (and columns)
# 0-1, 1-3, 3-4. Bin (0, 0) averages $0, 1, 5, 6$, that is $3$; bin (1, 1) is the centre 3 x 3 block,
# whose mean is its middle value $12$; bin (2, 2) averages $18, 19, 23, 24$, that is $21$.

# %%
x5 = np.arange(25, dtype=np.float64).reshape(5, 5)
out_loop = adaptive_avg_pool_loop(x5, 3)
print(out_loop)
assert out_loop[0, 0] == 3 and out_loop[1, 1] == 12 and out_loop[2, 2] == 21
checked = 0
rng = np.random.default_rng(0)
for H, W in [(5, 5), (6, 6), (4, 4), (7, 9)]:
    xr = rng.standard_normal((H, W))
    for b in (1, 2, 3, 6):
        lib, _ = F.adaptive_avg_pool2d_forward(xr[None, None], b)
        assert np.allclose(lib[0, 0], adaptive_avg_pool_loop(xr, b))
        checked += 1
print(f"{checked} (size, bins) settings agree with the library")

# %% [markdown]
# **The matrix view.** Along one axis, adaptive pooling is a $b \times H$ matrix $P$ whose row $i$ holds
# $1 / (\text{end}_i - \text{start}_i)$ on the bin's columns (`F.adaptive_pool_matrix`); the 2-D pooling
# is $P_h\, x\, P_w^\top$. Overlapping bins show up as columns with two nonzeros:

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 2.6))
for ax, (H, b) in zip(axes, [(6, 3), (5, 3), (4, 6)]):
    P = F.adaptive_pool_matrix(H, b)
    assert np.allclose(P.sum(axis=1), 1)                  # every bin is an average
    plot_matrix(P, ax=ax, fmt="{:.2f}", title=f"P for H = {H}, b = {b}")
plt.show()


# %% [markdown]
# **The backward pass.** The pooling is linear, so its gradient is the transpose: $dx = P_h^\top\, dout\,
# P_w$. In words: each input pixel receives, from every bin that contains it, that bin's gradient
# divided by the bin's size, summed over those bins. The loop version of exactly that sentence,
# against the library and against central differences:

# %%
def adaptive_avg_pool_backward_loop(dout, H, W):
    b = dout.shape[0]
    dx = np.zeros((H, W))
    for i, (r0, r1) in enumerate(bins(H, b)):
        for j, (c0, c1) in enumerate(bins(W, b)):
            dx[r0:r1, c0:c1] += dout[i, j] / ((r1 - r0) * (c1 - c0))   # += : overlapping bins add up
    return dx

for H, W, b in [(5, 5, 3), (4, 4, 6), (7, 9, 2)]:
    xr = rng.standard_normal((2, 3, H, W))
    out, cache = F.adaptive_avg_pool2d_forward(xr, b)
    dout = rng.standard_normal(out.shape)
    dx = F.adaptive_avg_pool2d_backward(dout, cache)
    assert np.allclose(dx[1, 2], adaptive_avg_pool_backward_loop(dout[1, 2], H, W))
    report = gradcheck(F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward, {"x": xr},
                       kwargs={"output_size": b})
    assert report.passed
    print(f"H x W = {H} x {W}, b = {b}: loop == library, gradcheck max rel. error "
          f"{report.max_rel_error:.1e}")
dx_ones = adaptive_avg_pool_backward_loop(np.ones((3, 3)), 5, 5)
assert np.isclose(dx_ones[1, 1], (1 / 2 + 1 / 3) ** 2)     # row 1: in bins of 2 and 3 rows; column 1 too
print("dout = 1 everywhere, H = 5, b = 3 (rows and columns 1 and 3 are in two bins):\n", dx_ones)

# %% [markdown]
# **The PSP head.** PSPNet pools the deepest encoder map (here 64 channels at 1/8 of the input) to
# 1 x 1, 2 x 2, 3 x 3 and 6 x 6, reduces each to $64 / 4 = 16$ channels with a 1 x 1 convolution,
# upsamples each back bilinearly, and concatenates them with the map itself: $64 + 4 \cdot 16 = 128$
# channels, projected by a 3 x 3 convolution. For a 48 x 48 input (a 6 x 6 deepest map):

# %%
pspnet = PSPNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
psp_rows = pspnet.summary((1, 1, 48, 48), print_fn=lambda line: None)
for name, kind, shape, params in psp_rows:
    if name.startswith("pyramid") or name in ("head", "up_out") or name == "encoder.stage3.1.2":
        print(f"{name:<30}{kind:<19}{str(shape):<18}{params:>7,}")
shapes_of = {name: shape for name, kind, shape, params in psp_rows}
for b in (1, 2, 3, 6):
    assert shapes_of[f"pyramid.branches.bins{b}.pool"] == (1, 64, b, b)
    assert shapes_of[f"pyramid.branches.bins{b}.up"] == (1, 16, 6, 6)
assert shapes_of["pyramid.project.0"] == (1, 32, 6, 6)


# %% [markdown]
# The 1 x 1 bin is the image-level feature DeepLab's ASPP also has (notebook 7): every pixel learns
# what is in the whole image, the context that U-Net's local windows lack when many classes look alike
# ("Минусы U-Net: сложнее с многоклассовой сегментацией").
#
# ## 8.4 The same small budget for all of them
#
# U-Net, SegNet, LinkNet, PSPNet and DeepLab, 8 base channels, depth 3, trained by the library's
# `train` on the same 192 `Shapes` images of 32 x 32 with the same seed, schedule and budget:
# 3 epochs of 24 steps (batch 8, Adam), 72 steps each, evaluated on 48 validation images.

# %%
def run(model):
    settings = dict(model=model, image_size=32, num_train=192, num_val=48, epochs=3, batch_size=8,
                    base_channels=8, lr=3e-3, seed=0)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = train(TrainConfig(**settings, out=out), progress=False, log=lambda line: None)
    result["seconds"] = time.perf_counter() - t0
    return result

runs = {name: run(name) for name in ("unet", "segnet", "linknet", "pspnet", "deeplab")}
print(f"{'model':<9}{'parameters':>11}{'val mIoU':>10}{'seconds':>9}   IoU per class (bg, circle, square, triangle)")
for name, result in runs.items():
    last = result["history"][-1]
    print(f"{name:<9}{result['model'].num_parameters():>11,}{last['val_miou']:>10.3f}{result['seconds']:>9.1f}"
          f"   {[round(last[f'val_iou_{k}'], 2) for k in range(4)]}")

# %%
val_set = runs["unet"]["val_set"]
show = [0, 1, 2]
fig, axes = plt.subplots(len(show), 2 + len(runs), figsize=(2.1 * (2 + len(runs)), 2.2 * len(show)))
preds = {name: predict(result["model"], val_set.images[show]) for name, result in runs.items()}
for r, i in enumerate(show):
    panels = [to_display(val_set.images[i]), colorize(val_set.masks[i])] + [colorize(p[r]) for p in preds.values()]
    for ax, picture, title in zip(axes[r], panels, ["input", "truth"] + list(runs)):
        ax.imshow(picture, cmap="gray"); ax.set_axis_off()
        if r == 0:
            ax.set_title(title)
plt.show()

# %% [markdown]
# **What this small budget shows, and what it does not.**
#
# * It shows the **costs**: the parameter counts are exact. SegNet is the smallest (no concatenation,
#   no level below its last pool, a decoder as narrow as its encoder); LinkNet's additive skips cut
#   U-Net's decoder to about a tenth of its parameters (8.2). The seconds are real CPU times on this
#   machine, but they move with its load.
# * It shows the **character** of the masks. U-Net, LinkNet and SegNet decode to full resolution with
#   skips or indices: their outlines follow the shapes, but inside a shape the class flips from pixel
#   to pixel, because each pixel's label is decided from a local window (LinkNet's speckle has the
#   regular texture of its stride-2 transposed convolutions, notebook 3). PSPNet and DeepLab compute
#   their logits on a 4 x 4 or 8 x 8 grid with image-level context and upsample them bilinearly: one
#   label per blob, but blobby (too smooth) outlines. That is the lecture's trade-off in miniature:
#   context for many classes (PSPNet) against boundaries (U-Net).
# * It does **not** rank the architectures. 72 steps on 32 x 32 images is far from convergence, the
#   mIoU values differ by amounts that another seed or learning rate can reverse, and the pyramid
#   heads read a 4 x 4 map, where 6 x 6 bins overlap and dilation rates above 3 degenerate
#   (notebook 7). The lecture's claim that PSPNet and FPN handle many classes better is about long
#   training on real images with far more context; testing it needs larger images and many more
#   steps (`python -m minimal_seg train --model pspnet ...`).
#
# ## Summary
#
# * **SegNet**: the decoder's max unpooling writes each value back at the position its encoder pool
#   saved: exact positions (a one-pixel line comes back where it was), a quarter of U-Net's transfer,
#   and no concatenation.
# * **LinkNet**: additive skips $d_l = f_l + \mathrm{dec}_l(d_{l+1})$ keep the decoder narrow (fewer
#   parameters than U-Net); decoder blocks are 1 x 1 → transposed 3 x 3 stride 2 → 1 x 1; the gradient
#   of a sum goes unchanged to both terms.
# * **PSPNet**: adaptive average pooling to 1, 2, 3, 6 bins per axis (start $= \lfloor iH/b \rfloor$,
#   end $= \lceil (i+1)H/b \rceil$), 1 x 1 reduction, upsampling and concatenation give every pixel
#   the context of the whole image; the backward pass spreads each bin's gradient evenly over its
#   pixels, and overlapping bins add up.
# * At a tiny budget all of them land close together; the costs are what differ.
#
# ## Exercises
#
# 1. SegNet's unpool writes into a zero map. What goes wrong with max unpooling when the pooling
#    windows overlap (kernel 3, stride 2)? Try it with `F.max_pool2d_forward` and
#    `F.max_unpool2d_forward`.
# 2. Turn LinkNet's additive skips into concatenation on paper: which layer's shape must change, and by
#    how many parameters does the model grow?
# 3. Show that $\sum_{h,w} dx[h, w] = \sum_{i,j} dout[i, j]$ for adaptive average pooling. Which pixels
#    of a 4 x 4 map get the largest gradient for $b = 3$, and why?
# 4. PSPNet with `bins=(1,)` is a single image-level branch. Train it and compare with the default
#    bins at 64 x 64 images.
# 5. Repeat the comparison of 8.4 with three seeds (`seed=0, 1, 2`) and report the mean and spread of
#    the mIoU per model. Which differences survive?
#
# <details><summary>Hints for the exercises</summary>
#
# 1. With kernel 3 and stride 2 neighbouring windows share a row or column, and one large pixel can win
#    both: two pooled values carry the same index, unpooling writes them to the same place (one
#    overwrites the other) and leaves the other position zero.
# 2. With concatenation the layer that reads the merged map gets $C_\text{enc} + C_\text{dec}$ input
#    channels instead of $C$: its weight grows by $C \cdot C_\text{out} \cdot k^2$ at every level. Compare
#    with `params_of` from 8.2.
# 3. Each bin spreads its gradient $g$ evenly, $g/\text{area}$ on each of its pixels: the pixels of a bin
#    receive $g$ in all. For $b = 3$ on 4 pixels per axis the bins are 0..1, 1..2 and 2..3: pixels 1 and 2
#    lie in two bins per axis, so the central 2 x 2 pixels (in four bins) get the most.
# 4. `TrainConfig(model="pspnet", image_size=64, model_options={"bins": (1,)}, ...)` against the default
#    `bins=(1, 2, 3, 6)`.
# 5. Loop `run` over `seed=0, 1, 2`; report `np.mean` and `np.std` per model; a difference smaller than
#    the spread is not a result.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** What does SegNet pass from each encoder level to its decoder, and what does U-Net pass? Which
# costs more memory?
#
# <details><summary>Answer</summary>
#
# SegNet passes the max-pooling indices (one integer per pooled value); U-Net passes the whole encoder
# feature map, which the decoder concatenates. U-Net's transfer is larger (every channel at full
# resolution) and makes its decoder convolutions wider.
#
# </details>
#
# **2.** LinkNet's skip is $d = f + \mathrm{dec}(d')$. The gradient $\partial L / \partial d$ arrives.
# What reaches $f$, and what reaches $\mathrm{dec}(d')$?
#
# <details><summary>Answer</summary>
#
# The same $\partial L / \partial d$, unchanged, to both: the derivative of a sum with respect to each
# term is 1. (And $f$, used twice, adds it to the gradient from its own encoder path.)
#
# </details>
#
# **3.** Adaptive average pooling of a 6-pixel axis into $b = 4$ bins: which pixels does each bin
# average?
#
# <details><summary>Answer</summary>
#
# Bin $i$ runs from $\lfloor 6i/4 \rfloor$ to $\lceil 6(i+1)/4 \rceil$ (exclusive): pixels 0..1,
# 1..2, 3..4, 4..5. Bins 0 and 1 share pixel 1, bins 2 and 3 share pixel 4.
#
# </details>
#
# **4.** Which PSPNet bin is the same as ASPP's image-level branch?
#
# <details><summary>Answer</summary>
#
# $b = 1$: one bin per axis is the global average pooling of the whole map, reduced by a 1 x 1
# convolution and broadcast back to every pixel.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Dilated convolution, ASPP, SegNet, LinkNet, PSPNet](../concepts/architectures.md)
#   (`docs/concepts/architectures.md`).
# * API: [`minimal_seg.models`](../api/models.rst) (`SegNet`, `LinkNet`, `PSPNet`),
#   [`functional.pool`](../api/functional/pool.rst) (max pooling with indices, max unpooling),
#   [`functional.adaptive_pool`](../api/functional/adaptive_pool.rst),
#   [`minimal_seg.compare`](../api/compare.rst) (every architecture with one budget).
# * Assignments: none for this notebook alone; [a3](../assignments.md#assignment-a3) (max pooling and unpooling, SegNet's
#   two halves) and [a6](../assignments.md#assignment-a6) (gradients through skips) are the closest.
# * Next: [notebook 9, CRFs and superpixels](09_crf_and_superpixels.ipynb).
