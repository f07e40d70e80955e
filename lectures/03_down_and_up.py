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
# # 3. Going down and up: pooling, unpooling, transposed convolution, bilinear upsampling
#
# *Lecture 000 ("МаксПуллинг2D"), lecture 001 ("Слои для повышения разрешения", "Unpooling",
# "Max unpooling", "Транспонированная свёртка"), lecture 002 ("Learnable unpooling"),
# lecture 003 ("Transposed Convolution", "Convolution Matrix"), lecture 004 (indices kept for
# max unpooling).*
#
# A segmentation network goes **down** (pooling, strided convolution: cheaper, larger receptive
# field) and must come back **up** to one prediction per pixel. This notebook reproduces the
# lectures' two worked examples exactly: max pooling of a 4 x 4 map, and the transposed convolution
# of a 2 x 2 input into a 4 x 4 output as multiplication by the transposed 4 x 16 matrix.

# %%
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

# %matplotlib inline
import numpy as np
import matplotlib.pyplot as plt

np.set_printoptions(precision=4, suppress=True)

# %%
from minimal_seg import functional as F
from minimal_seg.conv_arithmetic import draw_transposed_conv
from minimal_seg.viz import plot_matrix

# %% [markdown]
# ## 3.1 Max pooling, and the indices of the winners
#
# "Слой МаксПуллинг2D осуществляет операцию сжатия ... путем выбора максимального значения в блоке
# пикселей": with a 2 x 2 window and stride 2,
#
# $$\text{out}[p, q] = \max_{0 \le i, j < 2} x[2p + i,\; 2q + j].$$
#
# The lecture's feature map, first with a loop:

# %%
fmap = np.array([[4, 3, 1, 5],
                 [1, 3, 4, 8],
                 [4, 5, 4, 3],
                 [6, 5, 9, 4]], dtype=np.float64)

def max_pool_loop(x, k=2):
    out = np.zeros((x.shape[0] // k, x.shape[1] // k))
    for p in range(out.shape[0]):
        for q in range(out.shape[1]):
            out[p, q] = x[k * p:k * p + k, k * q:k * q + k].max()
    return out

pooled_loop = max_pool_loop(fmap)
pooled, cache = F.max_pool2d_forward(fmap[None, None], kernel_size=2)   # stride defaults to the kernel
print(pooled[0, 0])
assert (pooled_loop == [[4, 8], [6, 9]]).all()
assert (pooled[0, 0] == [[4, 8], [6, 9]]).all()

# %% [markdown]
# The library also keeps **where** each maximum was, as a flat index $h W + w$ into the input plane
# (as PyTorch does). Max unpooling and the backward pass need exactly this.

# %%
indices = cache.indices[0, 0]
print("indices:\n", indices)
print("as (row, col):", [divmod(int(i), 4) for i in indices.ravel()])
assert (indices == [[0, 7], [12, 14]]).all()

winners = np.zeros((4, 4), dtype=bool)
winners.ravel()[indices.ravel()] = True
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
plot_matrix(fmap, ax=axes[0], highlight=winners, title="feature map, winners framed")
plot_matrix(pooled[0, 0], ax=axes[1], vmin=0, vmax=9, title="max pooled")
plot_matrix(indices, ax=axes[2], cmap="Greys", vmin=0, vmax=40, title="indices h*W + w")
plt.show()

# %% [markdown]
# The gradient of max pooling goes only to the winners ("the max was chosen by that pixel alone"):

# %%
dout = np.array([[[[10., 20.], [30., 40.]]]])
dx = F.max_pool2d_backward(dout, cache)
print(dx[0, 0])
assert dx[0, 0][winners].tolist() == [10, 20, 30, 40] and dx[0, 0][~winners].sum() == 0

# %% [markdown]
# ## 3.2 Unpooling: bed of nails, nearest neighbour, max unpooling
#
# Three ways to make a 2 x 2 map 4 x 4 without learned weights (lecture 001: "Разреженный unpooling",
# "Ближайший сосед", "Max unpooling"):
#
# * **bed of nails**: each value goes to the top-left corner of its 2 x 2 block, zeros elsewhere;
# * **nearest neighbour**: each value fills its whole block;
# * **max unpooling** (SegNet): each value goes back to where max pooling found it, using the saved
#   indices (lecture 004: "индексы максимальных значений после Max Pooling сохраняются и используются
#   при Max Unpooling").

# %%
small = pooled[0, 0]

def unpool_loop(x, mode, s=2):
    out = np.zeros((x.shape[0] * s, x.shape[1] * s))
    for p in range(x.shape[0]):
        for q in range(x.shape[1]):
            if mode == "nails":
                out[s * p, s * q] = x[p, q]
            else:                                       # nearest
                out[s * p:s * p + s, s * q:s * q + s] = x[p, q]
    return out

nails, _ = F.unpool_bed_of_nails_forward(pooled, 2)
nearest, _ = F.unpool_nearest_forward(pooled, 2)
unpooled, _ = F.max_unpool2d_forward(pooled, cache.indices, kernel_size=2)
assert (nails[0, 0] == unpool_loop(small, "nails")).all()
assert (nearest[0, 0] == unpool_loop(small, "nearest")).all()
assert (unpooled[0, 0] == [[4, 0, 0, 0],
                           [0, 0, 0, 8],
                           [0, 0, 0, 0],
                           [6, 0, 9, 0]]).all()

fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, m, title in zip(axes, (fmap, nails[0, 0], nearest[0, 0], unpooled[0, 0]),
                        ("before pooling", "bed of nails", "nearest neighbour", "max unpooling")):
    plot_matrix(m, ax=ax, vmin=0, vmax=9, highlight=winners if title != "nearest neighbour" else None,
                title=title)
plt.show()

# %% [markdown]
# Max unpooling puts every value back in its place (framed), but everything that was not a maximum is
# lost: it is not an inverse of pooling either. The decoder's convolutions have to fill the zeros in.
#
# ## 3.3 Transposed convolution: the lecture's 2 x 2 -> 4 x 4 example
#
# Lecture 002: "Input gives weight for filter". Each input value multiplies a copy of the kernel;
# the copies are placed $S$ pixels apart and **summed where they overlap**:
#
# $$\text{out}[aS + i,\; bS + j] \mathrel{+}= x[a, b]\; w[i, j].$$
#
# Lecture 003's numbers: kernel
# $\begin{smallmatrix}1&4&1\\1&4&3\\3&3&1\end{smallmatrix}$, input
# $\begin{smallmatrix}2&1\\4&4\end{smallmatrix}$, stride 1:

# %%
kernel = np.array([[1, 4, 1],
                   [1, 4, 3],
                   [3, 3, 1]], dtype=np.float64)
x2 = np.array([[2, 1],
               [4, 4]], dtype=np.float64)
expected = np.array([[ 2,  9,  6,  1],
                     [ 6, 29, 30,  7],
                     [10, 29, 33, 13],
                     [12, 24, 16,  4]], dtype=np.float64)

def conv_transpose_loop(x, w, stride=1):
    K = w.shape[0]
    out = np.zeros(((x.shape[0] - 1) * stride + K, (x.shape[1] - 1) * stride + K))
    copies = []
    for a in range(x.shape[0]):
        for b in range(x.shape[1]):
            copy = np.zeros_like(out)
            copy[a * stride:a * stride + K, b * stride:b * stride + K] = x[a, b] * w
            copies.append(copy)
            out += copy
    return out, copies

out_loop, copies = conv_transpose_loop(x2, kernel)
assert (out_loop == expected).all()

fig, axes = plt.subplots(1, 5, figsize=(15, 3))
for ax, c, (a, b) in zip(axes, copies, [(0, 0), (0, 1), (1, 0), (1, 1)]):
    plot_matrix(c, ax=ax, vmin=0, vmax=33, fmt="{:.0f}", title=f"x[{a},{b}] = {x2[a, b]:.0f} times w")
plot_matrix(out_loop, ax=axes[4], vmin=0, vmax=33, fmt="{:.0f}", title="sum = the lecture's output")
plt.show()

# %% [markdown]
# **The matrix view.** In notebook 2 the convolution of a 4 x 4 input with this kernel was
# $\mathbf{y} = C\mathbf{x}$ with the $4 \times 16$ matrix $C$. Multiplying by its transpose
# $C^{\mathsf T}$ ($16 \times 4$) maps a 2 x 2 image back to a 4 x 4 one: that *is* the transposed
# convolution, hence the name. The library computes it by name:
# `method="reference"` (col2im of $W^{\mathsf T}x$, exactly the convolution's input gradient; `"fast"`,
# the default, is the same numbers with speed tricks) and `method="matrix"` (builds $C$ and multiplies
# by $C^{\mathsf T}$).

# %%
C = F.conv_matrix(kernel[None, None], (4, 4))                           # (4, 16), notebook 2
assert (C == np.array([
    [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
    [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
    [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1]])).all()
by_matrix = (C.T @ x2.ravel()).reshape(4, 4)
fast, _ = F.conv_transpose2d_forward(x2[None, None], kernel[None, None])
slow, _ = F.conv_transpose2d_forward(x2[None, None], kernel[None, None], method="matrix")
assert (by_matrix == expected).all()
assert np.allclose(fast[0, 0], expected) and np.allclose(slow[0, 0], expected)
print(by_matrix)

fig = plt.figure(figsize=(6, 5.6))
cell = 0.3 / 6, 0.3 / 5.6                                # one matrix entry: 0.3 inch
for left, m, title in ((0.1, C.T, "C^T (16 x 4)"), (0.45, x2.reshape(4, 1), "x"),
                       (0.7, by_matrix.reshape(16, 1), "C^T x")):
    rows, cols = m.shape
    ax = fig.add_axes([left, 0.92 - rows * cell[1], cols * cell[0], rows * cell[1]])
    plot_matrix(m, ax=ax, fmt="{:.0f}", fontsize=9, title=title)
fig.text(0.37, 0.75, "x", fontsize=16); fig.text(0.58, 0.75, "=", fontsize=16)
plt.show()

# %% [markdown]
# **Stride 2: the "upconv".** Lecture 002: "каждую клетку надо распаковать в 4 клетки ⇒ свёртка 3 x 3
# со сдвигом 2". With stride $S$ the copies are placed $S$ pixels apart, and the output size inverts
# the convolution's formula:
#
# $$O = (H - 1)\,S - 2P + D(K - 1) + P_{\text{out}} + 1,$$
#
# where $P_{\text{out}} < S$ is the `output_padding` argument.
#
# With $K = 3$, $S = 2$, $P = 0$ a 2 x 2 input becomes 5 x 5; `padding=1` crops one pixel from every
# side of that and `output_padding=1` gives one row and column back at the bottom/right, so 2 x 2 ->
# 4 x 4, an exact doubling. And it is still the transpose of a convolution matrix: that of the
# stride-2 convolution that maps 5 x 5 back to 2 x 2.

# %%
full, _ = conv_transpose_loop(x2, kernel, stride=2)                     # 5 x 5
up, _ = F.conv_transpose2d_forward(x2[None, None], kernel[None, None], stride=2)
up4, _ = F.conv_transpose2d_forward(x2[None, None], kernel[None, None], stride=2, padding=1,
                                    output_padding=1)
C2 = F.conv_matrix(kernel[None, None], (5, 5), stride=2)                # (4, 25)
assert np.allclose(up[0, 0], full) and np.allclose((C2.T @ x2.ravel()).reshape(5, 5), full)
assert up4.shape == (1, 1, 4, 4) and np.allclose(up4[0, 0], full[1:5, 1:5])

fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
plot_matrix(x2, ax=axes[0], fmt="{:.0f}", title="input 2 x 2")
plot_matrix(full, ax=axes[1], fmt="{:.0f}", title="stride 2: 5 x 5")
plot_matrix(up4[0, 0], ax=axes[2], fmt="{:.0f}", title="padding 1, output_padding 1: 4 x 4")
plt.show()

# %% [markdown]
# The same thing one input pixel at a time (`minimal_seg.conv_arithmetic`): each pixel writes a
# 3 x 3 window of the canvas, the numbers count how many windows have written each cell so far, and
# the hatched border is what `padding=1` crops away.

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
for step, ax in enumerate(axes):
    draw_transposed_conv(2, 3, stride=2, padding=1, output_padding=1, step=step, ax=ax)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3.4 Transpose is not inverse
#
# $C$ maps 16 numbers to 4, so no matrix can undo it; $C^{\mathsf T}$ only has the right *shape*.
# Convolve and transpose-convolve the 4 x 4 input of notebook 2: we do not get it back.

# %%
x4 = np.arange(16, dtype=np.float64).reshape(4, 4)
y = C @ x4.ravel()
back = (C.T @ y).reshape(4, 4)
print("C C^T =\n", C @ C.T)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
plot_matrix(x4, ax=axes[0], fmt="{:.0f}", title="x")
plot_matrix(y.reshape(2, 2), ax=axes[1], fmt="{:.0f}", title="C x")
plot_matrix(back, ax=axes[2], fmt="{:.0f}", title="C^T C x  (not x!)")
plt.show()
assert not np.allclose(back, x4) and np.linalg.matrix_rank(C.T @ C) == 4

# %% [markdown]
# What the transpose *does* guarantee is the **adjoint identity**
# $\langle C\mathbf{x}, \mathbf{y}\rangle = \langle \mathbf{x}, C^{\mathsf T}\mathbf{y}\rangle$
# for every $\mathbf{x}, \mathbf{y}$. It is why the transposed convolution's forward pass is the
# convolution's backward pass (and vice versa). Checked for a strided, padded, multi-channel case:

# %%
rng = np.random.default_rng(0)
w = rng.standard_normal((3, 2, 3, 3))                    # conv: 2 -> 3 channels
xa = rng.standard_normal((1, 2, 9, 8))
opts = dict(stride=2, padding=1)
cx, _ = F.conv2d_forward(xa, w, **opts)                  # (1, 3, 5, 4)
yb = rng.standard_normal(cx.shape)
cty, _ = F.conv_transpose2d_forward(yb, w, **opts, output_padding=(0, 1))   # back to (1, 2, 9, 8)
print(f"<Cx, y> = {np.sum(cx * yb):.10f}\n<x, C^T y> = {np.sum(xa * cty):.10f}")
assert cty.shape == xa.shape and np.isclose(np.sum(cx * yb), np.sum(xa * cty))

# %% [markdown]
# ## 3.5 The checkerboard effect, seen in the overlap map
#
# With kernel 3 and stride 2 the copies of the kernel overlap *unevenly*: some output pixels get
# one copy, some two, some four. Transposed-convolving an all-ones input with an all-ones kernel counts
# the copies at each pixel (the **overlap map**). Whatever a trained kernel learns, it has to fight
# this pattern, and the result often shows a checkerboard. When the kernel size is a multiple of the
# stride the overlap is even (away from the border).

# %%
ones = np.ones((1, 1, 6, 6))
cases = [(3, 2), (4, 2), (2, 2)]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
for ax, (k, s) in zip(axes, cases):
    overlap, _ = F.conv_transpose2d_forward(ones, np.ones((1, 1, k, k)), stride=s)
    plot_matrix(overlap[0, 0], ax=ax, fmt="{:.0f}", vmin=0, vmax=4, fontsize=7,
                title=f"kernel {k}, stride {s}: overlap map")
plt.show()


# %% [markdown]
# The overlap map is the worst case, an all-ones kernel. A kernel whose shifted copies add up to a
# constant turns a flat input into a flat output: the **bilinear kernel** below is one, and FCN
# initialises its transposed convolutions with it (training may move them away from it again).
#
# ## 3.6 Bilinear upsampling and the bilinear kernel
#
# Bilinear upsampling (PyTorch's `align_corners=False`) interpolates linearly along each axis.
# Output pixel $o$ of an axis reads the input at the real coordinate
# $u = \max\big((o + \tfrac12)\,\tfrac{H_\text{in}}{H_\text{out}} - \tfrac12,\; 0\big)$:
#
# $$\text{out}[o] = (1 - t)\,x[i_0] + t\,x[i_1], \qquad i_0 = \lfloor u \rfloor,\;
# i_1 = \min(i_0 + 1, H_\text{in} - 1),\; t = u - i_0 .$$
#
# One axis is a matrix $A$ ($H_\text{out} \times H_\text{in}$); the image is $A_h X A_w^{\mathsf T}$.

# %%
def linear_upsample_loop(v, out_size):
    n = len(v)
    out = np.zeros(out_size)
    for o in range(out_size):
        u = max((o + 0.5) * n / out_size - 0.5, 0.0)
        i0 = int(np.floor(u)); i1 = min(i0 + 1, n - 1); t = u - i0
        out[o] = (1 - t) * v[i0] + t * v[i1]
    return out

v = np.array([0.0, 4.0, 2.0, 6.0])
A = F.linear_interpolation_matrix(4, 8)                  # (8, 4)
assert np.allclose(A @ v, linear_upsample_loop(v, 8))

X = fmap[None, None]
bil, _ = F.upsample_bilinear_forward(X, scale=2)
assert np.allclose(bil[0, 0], A @ fmap @ A.T)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [4, 3, 8]})
plot_matrix(A, ax=axes[0], fmt="{:.2f}", fontsize=7, title="A (8 x 4): rows sum to 1")
centres = np.arange(4) * 2 + 0.5                         # input pixel centres, in output pixels
axes[1].plot(np.linspace(-0.5, 7.5, 200), np.interp(np.linspace(-0.5, 7.5, 200), centres, v), "--",
             color="grey", lw=1)
axes[1].plot(centres, v, "o", label="input (at its pixel centres)")
axes[1].plot(np.arange(8), A @ v, "s", label="bilinear x2")
axes[1].legend(fontsize=7, loc="lower right"); axes[1].set_title("one axis")
plot_matrix(bil[0, 0], ax=axes[2], fmt="{:.1f}", fontsize=7, title="the 4 x 4 feature map, x2")
plt.show()


# %% [markdown]
# Upsampling by an integer factor $s$ is also a transposed convolution with stride $s$ and the
# **bilinear kernel** $w[i, j] = f(i) f(j)$, a tent $f(i) = 1 - |i - c| / s$ centred at $c = (k - 1)/2$.
# The kernel size $k$ and the padding $p$ must give the output size $(H - 1)s - 2p + k = sH$ *and*
# put the tent's centre where bilinear interpolation samples:
#
# | $s$ | kernel $k$ | padding $p$ |
# |---|---|---|
# | even | $2s$ | $s/2$ |
# | odd | $2s - 1$ | $(s - 1)/2$ |
#
# (in one line: $k = 2s - (s mod 2)$, $p = \lfloor s/2 
# floor$). The "kernel $2s$, padding
# $s/2$" often quoted for every $s$ is wrong for odd $s$: with $s = 3$ (kernel 6, padding 1) a
# 6 x 7 map becomes 19 x 22 instead of 18 x 21, and its samples sit half a pixel off the bilinear
# ones. Away from the border (where bilinear upsampling repeats the edge and the transposed
# convolution sees zeros) the right kernel agrees with `F.upsample_bilinear_forward` exactly; this is
# how FCN starts its learned upsampling layers. The cell builds the kernel from the formula above
# and checks $s = 2 \ldots 5$.

# %%
def upsampling_kernel(s):
    """(k, p, w): kernel size, padding and the bilinear kernel of a transposed conv that upsamples by s."""
    k = 2 * s - s % 2                                    # 2s for even s, 2s - 1 for odd s
    p = s // 2                                           # s/2 for even s, (s - 1)/2 for odd s
    f = 1 - np.abs(np.arange(k) - (k - 1) / 2) / s       # the tent, centred in the kernel
    return k, p, np.outer(f, f)

img = np.random.default_rng(1).standard_normal((1, 1, 6, 7))
for s in range(2, 6):
    k, p, w = upsampling_kernel(s)
    by_conv, _ = F.conv_transpose2d_forward(img, w[None, None], stride=s, padding=p)
    by_interp, _ = F.upsample_bilinear_forward(img, scale=s)
    b = s // 2                                           # border pixels where the two differ
    inner = (slice(None), slice(None), slice(b, by_conv.shape[2] - b), slice(b, by_conv.shape[3] - b))
    too_big, _ = F.conv_transpose2d_forward(img, np.ones((1, 1, 2 * s, 2 * s)), stride=s, padding=p)  # size only
    print(f"s = {s}: kernel {k}, padding {p} -> {by_conv.shape[2]} x {by_conv.shape[3]} "
          f"(bilinear: {by_interp.shape[2]} x {by_interp.shape[3]}), max difference inside "
          f"{np.abs(by_conv - by_interp)[inner].max():.1e};   kernel {2 * s} would give "
          f"{too_big.shape[2]} x {too_big.shape[3]}")
    assert by_conv.shape == by_interp.shape == (1, 1, 6 * s, 7 * s)
    assert np.allclose(by_conv[inner], by_interp[inner])

# %% [markdown]
# For $s = 2$ the kernel is the 4 x 4 tent below (`F.bilinear_kernel(4)` gives the same one).
# Its overlap map shows why it upsamples smoothly: the shifted copies add up to 1 everywhere except
# at the border.

# %%
s = 2
k, p, tent = upsampling_kernel(s)
assert np.allclose(tent, F.bilinear_kernel(k))
print(f"bilinear kernel {k} x {k}:\n", tent)
by_conv, _ = F.conv_transpose2d_forward(img, tent[None, None], stride=s, padding=p)
by_interp, _ = F.upsample_bilinear_forward(img, scale=s)

overlap, _ = F.conv_transpose2d_forward(np.ones((1, 1, 4, 4)), tent[None, None], stride=s, padding=p)
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
axes[0].imshow(img[0, 0], cmap="viridis"); axes[0].set_title("input 6 x 7")
axes[1].imshow(by_interp[0, 0], cmap="viridis"); axes[1].set_title("bilinear upsampling x2")
axes[2].imshow(by_conv[0, 0], cmap="viridis"); axes[2].set_title("transposed conv, bilinear kernel")
plot_matrix(overlap[0, 0], ax=axes[3], fmt="{:.2f}", fontsize=7, title="its overlap map (4 x 4 input)")
for ax in axes[:3]:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## Summary
#
# * Max pooling keeps the largest value of each window and (in the library) the flat index $hW + w$
#   of the winner; its gradient flows to the winners only.
# * Unpooling without weights: bed of nails, nearest neighbour, and max unpooling with the saved
#   indices (SegNet).
# * The transposed convolution adds a copy of the kernel, weighted by each input value, $S$ pixels
#   apart. It is multiplication by $C^{\mathsf T}$: the lecture's 2 x 2 -> 4 x 4 example is
#   $C^{\mathsf T}$ (16 x 4) times the input.
# * $C^{\mathsf T}$ is not $C^{-1}$; what holds is $\langle Cx, y\rangle = \langle x, C^{\mathsf T}y\rangle$,
#   so a transposed convolution's forward pass is a convolution's backward pass.
# * Uneven overlap (kernel size not a multiple of the stride) is the source of checkerboard artefacts;
#   the bilinear kernel is a transposed convolution that upsamples smoothly: stride $s$, kernel $2s$ and
#   padding $s/2$ for even $s$, kernel $2s - 1$ and padding $(s - 1)/2$ for odd $s$.
#
# ## Exercises
#
# 1. Max pooling with kernel 3, stride 1, padding 1 keeps the size. What does it do to a binary mask?
#    Look at `cache.indices`: which pixels win several windows?
# 2. For non-overlapping windows, show that `max_pool2d_backward(dout)` equals
#    `max_unpool2d_forward(dout, indices)`. Why does this fail when stride < kernel?
# 3. *Transpose is not inverse.* Find a nonzero 4 x 4 input $x$ with $Cx = 0$ (hint: the null space of
#    $C$ from `np.linalg.svd`). What is $C^{\mathsf T} C x$? Compare $C^{\mathsf T}$ with the
#    pseudo-inverse `np.linalg.pinv(C)`.
# 4. Draw the overlap maps of (kernel, stride) = (5, 2), (6, 3), (4, 3). State the rule.
# 5. Build the 2-D bilinear matrix as `np.kron(A_h, A_w)` and check it against
#    `upsample_bilinear_forward` on a 3 x 5 input upsampled to 7 x 9.
#
# <details><summary>Hints for the exercises</summary>
#
# 1. It is a morphological dilation: every object grows by one pixel on each side. A pixel wins every
#    window in which it is the largest value, so the maxima of the image are written into many
#    positions of `cache.indices`.
# 2. With non-overlapping windows each input pixel lies in one window, so "send `dout` to the winner" and
#    "write the value back at the saved index" are the same map. With overlap a pixel can win two
#    windows: the backward pass adds both gradients, unpooling writes one value over the other.
# 3. $C$ is $4 \times 16$, so its null space has dimension 12: the last 12 rows of `Vt` from
#    `np.linalg.svd(C)` are such inputs, and $C^{\mathsf T} C x = 0$ for them. `np.linalg.pinv(C)` is
#    $C^{\mathsf T}(C C^{\mathsf T})^{-1}$, not $C^{\mathsf T}$.
# 4. The map is even (away from the border) exactly when the stride divides the kernel size: (6, 3) is
#    even, (5, 2) and (4, 3) are not.
# 5. `A_h = F.linear_interpolation_matrix(3, 7)`, `A_w = F.linear_interpolation_matrix(5, 9)`; then
#    `np.kron(A_h, A_w) @ x.ravel()` equals `upsample_bilinear_forward(x, size=(7, 9))` flattened.
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** Max pooling 2 x 2 with stride 2 of the window $\begin{pmatrix}1 & 2\\ 3 & 4\end{pmatrix}$ gives 4.
# An upstream gradient of 1 arrives at that output. Which input pixels receive what, and which flat
# index does the library save?
#
# <details><summary>Answer</summary>
#
# The pixel that held 4 gets 1, the other three get 0. Its flat index is $hW + w = 1 \cdot 2 + 1 = 3$
# (row 1, column 1 of a 2 x 2 input).
#
# </details>
#
# **2.** A transposed convolution with a 3 x 3 kernel and stride 2 takes a 2 x 2 input. What size is the
# output with padding 0? Which padding and `output_padding` give the lecture's 4 x 4?
#
# <details><summary>Answer</summary>
#
# $(H - 1) S - 2P + K + P_\text{out} = 1 \cdot 2 + 3 = 5$ with no padding; padding 1 and
# `output_padding` 1 give $2 - 2 + 3 + 1 = 4$ (`conv_transpose2d_output_shape(2, 3, 2, 1, 1)`).
#
# </details>
#
# **3.** The lecture's convolution $C$ maps 4 x 4 to 2 x 2, and $C^{\mathsf T}$ maps 2 x 2 back to 4 x 4.
# Does $C^{\mathsf T} C x$ give back $x$?
#
# <details><summary>Answer</summary>
#
# No: $C^{\mathsf T} C$ is $16 \times 16$ of rank at most 4, so it cannot be the identity. The transposed
# convolution restores the *shape*, not the values; what holds is
# $\langle Cx, y\rangle = \langle x, C^{\mathsf T} y\rangle$.
#
# </details>
#
# **4.** You want a transposed convolution that upsamples by 3 exactly like bilinear interpolation
# (away from the border). Which kernel size and padding, and what goes wrong with kernel 6?
#
# <details><summary>Answer</summary>
#
# Kernel $2s - 1 = 5$, padding $(s - 1)/2 = 1$: $(H - 1) \cdot 3 - 2 + 5 = 3H$. Kernel 6 with padding 1
# gives $3H + 1$ pixels, and its tent is centred half a pixel away from where bilinear interpolation
# samples.
#
# </details>
#
# **5.** Which of bed of nails, nearest-neighbour and max unpooling needs information from the encoder,
# and which?
#
# <details><summary>Answer</summary>
#
# Only max unpooling: it needs the indices that the matching max pooling saved (SegNet passes them from
# encoder to decoder). The other two put each value at a fixed place.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Pooling, unpooling and transposed convolution](../concepts/pooling_upsampling.md)
#   (`docs/concepts/pooling_upsampling.md`); the transposed convolution's arithmetic is on
#   [Convolution arithmetic](../concepts/conv_arithmetic.md).
# * API: [`functional.pool`](../api/functional/pool.rst) (max pooling, max unpooling),
#   [`functional.conv`](../api/functional/conv.rst) (`conv_transpose2d_forward`),
#   [`functional.conv_matrix`](../api/functional/conv_matrix.rst),
#   [`functional.upsample`](../api/functional/upsample.rst) (bed of nails, nearest, bilinear,
#   `bilinear_kernel`).
# * Assignments: [a2, transposed convolution](../assignments.md#assignment-a2) (`a2_transposed_conv.py`: the matrix $C$
#   and $C^{\mathsf T} x$) and [a3, max pooling and unpooling](../assignments.md#assignment-a3) (`a3_max_pool_unpool.py`).
# * Next: [notebook 4, from a classifier to an FCN](04_classifier_to_fcn.ipynb).
