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
# # 2. Convolution arithmetic
#
# *Lecture 001 ("Свёртка со страйдом", "Дилатационная свёртка"), lecture 003 ("Convolution Matrix").*
#
# A convolution layer has four numbers besides its weights: kernel size $K$, **padding** $P$,
# **stride** $S$ and **dilation** $D$. Together they fix the output size and which input pixels each
# output pixel sees (its **receptive field**). At the end we write the whole convolution as one
# matrix, the lecture's 4 x 16 example, which is the key to the transposed convolution of notebook 3.
#
# Along one axis, for an input of $H$ pixels (PyTorch's rule, with a floor):
#
# $$O = \left\lfloor \frac{H + 2P - D\,(K - 1) - 1}{S} \right\rfloor + 1 .$$
#
# The dilated kernel spans $D(K-1) + 1$ pixels; the window starts at $0, S, 2S, \dots$ in the padded
# input and must fit inside it.

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
from minimal_seg import nn
from minimal_seg.conv_arithmetic import draw_conv
from minimal_seg.functional.shapes import conv2d_output_shape, conv_output_size, receptive_field
from minimal_seg.viz import plot_matrix


# %% [markdown]
# ## 2.1 The loop version
#
# Deep-learning "convolution" is a cross-correlation (the kernel is not flipped). With zero padding
# $x_{\text{pad}}$,
#
# $$\text{out}[p, q] = \sum_{i=0}^{K-1} \sum_{j=0}^{K-1} w[i, j]\; x_{\text{pad}}[pS + iD,\; qS + jD].$$
#
# Four loops, straight from the formula, for one channel:

# %%
def conv_loop(x, w, stride=1, padding=0, dilation=1):
    H, W = x.shape
    K = w.shape[0]
    xpad = np.zeros((H + 2 * padding, W + 2 * padding))
    xpad[padding:padding + H, padding:padding + W] = x
    OH = (H + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    OW = (W + 2 * padding - dilation * (K - 1) - 1) // stride + 1
    out = np.zeros((OH, OW))
    for p in range(OH):
        for q in range(OW):
            for i in range(K):
                for j in range(K):
                    out[p, q] += w[i, j] * xpad[p * stride + i * dilation, q * stride + j * dilation]
    return out


# %% [markdown]
# **Hand example** (lecture 003's kernel). A 4 x 4 input and a 3 x 3 kernel, no padding, stride 1:
# $O = 4 - 3 + 1 = 2$, so the output is 2 x 2. The top-left output is the sum of the kernel times the
# top-left 3 x 3 block: $1\cdot0 + 4\cdot1 + 1\cdot2 + 1\cdot4 + 4\cdot5 + 3\cdot6 + 3\cdot8 + 3\cdot9 + 1\cdot10 = 109$.

# %%
kernel = np.array([[1, 4, 1],
                   [1, 4, 3],
                   [3, 3, 1]], dtype=np.float64)
x = np.arange(16, dtype=np.float64).reshape(4, 4)
out_loop = conv_loop(x, kernel)
out_lib, _ = F.conv2d_forward(x[None, None], kernel[None, None])     # NCHW and (OC, C, KH, KW)
print(out_loop)
assert out_loop[0, 0] == 109
assert np.allclose(out_lib[0, 0], out_loop)

# %% [markdown]
# The library computes the same numbers for every setting, including sizes that do not divide evenly
# (7 x 6 inputs below), and its output shape always follows the formula:

# %%
rng = np.random.default_rng(0)
x76 = rng.standard_normal((7, 6))
w3 = rng.standard_normal((3, 3))
checked = 0
for stride in (1, 2, 3):
    for padding in (0, 1, 2):
        for dilation in (1, 2):
            lib, _ = F.conv2d_forward(x76[None, None], w3[None, None], stride=stride, padding=padding,
                                      dilation=dilation)
            loop = conv_loop(x76, w3, stride, padding, dilation)
            assert lib.shape[2:] == loop.shape == conv2d_output_shape((7, 6), 3, stride, padding, dilation)
            assert np.allclose(lib[0, 0], loop)
            checked += 1
print(f"{checked} settings agree")

# %% [markdown]
# ## 2.2 Pictures: padding, stride, dilation
#
# Blue: the input; dashed white: the zero padding; dark: the $K \times K$ pixels that one output pixel
# reads; green: the output, with that pixel dark. Under each picture, the output-size formula with the
# numbers filled in. The pictures come from `minimal_seg.conv_arithmetic`, which takes every size from
# the library's `conv2d_output_shape` and every window from im2col's formula, so they cannot disagree
# with the code.

# %%
settings = [dict(input_size=5, kernel_size=3),                         # "valid": 5 -> 3
            dict(input_size=5, kernel_size=3, padding=1),              # "same":  5 -> 5
            dict(input_size=5, kernel_size=3, padding=1, stride=2),    # strided: 5 -> 3
            dict(input_size=7, kernel_size=3, dilation=2)]             # dilated: 7 -> 3
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
for ax, s in zip(axes, settings):
    draw_conv(**s, ax=ax)
plt.tight_layout(); plt.show()

# %% [markdown]
# **Stride** ("Шаг окна: 1" vs "Шаг окна: 2") moves the window by $S$ pixels, so the output shrinks by
# about $S$ per axis. Three neighbouring outputs of the strided case:

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, position in zip(axes, [(0, 0), (0, 1), (1, 1)]):
    draw_conv(5, 3, stride=2, padding=1, step=position, ax=ax)
plt.tight_layout(); plt.show()

# %% [markdown]
# **The floor.** When the window does not fit a whole number of times, the last pixels are never read.
# A 6 x 6 input, kernel 3, stride 2, no padding: $O = \lfloor 3/2 \rfloor + 1 = 2$, and the last
# column and row of the input are dropped:

# %%
print("O =", conv_output_size(6, kernel=3, stride=2))
fig, ax = plt.subplots(figsize=(4.5, 3.6))
draw_conv(6, 3, stride=2, step=(1, 1), ax=ax)
plt.show()

# %% [markdown]
# **Try it: kernel, stride, padding, dilation.** One setting per picture, each drawn by `draw_conv`
# from the library's `conv2d_output_shape` (a setting whose dilated kernel does not fit in the padded
# input is refused with the library's own error message). First a fixed grid: the first picture is
# the plain 3 x 3 convolution, and each of the others changes one or two of the four numbers.

# %%
def draw_setting(kernel=3, stride=1, padding=0, dilation=1, input_size=7, ax=None):
    """Draw one convolution setting on ax; a setting the library refuses is shown with its reason."""
    try:
        return draw_conv(input_size, kernel, stride=stride, padding=padding, dilation=dilation, ax=ax)
    except ValueError as error:                           # the dilated kernel does not fit
        ax.text(0.5, 0.5, f"K={kernel}, S={stride}, P={padding}, D={dilation}:\n{error}",
                ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
        ax.set_axis_off()


grid = [dict(kernel=3), dict(kernel=5), dict(kernel=3, padding=1), dict(kernel=3, stride=2),
        dict(kernel=3, dilation=2), dict(kernel=3, stride=2, padding=1), dict(kernel=3, dilation=2, padding=2),
        dict(kernel=3, stride=3, padding=1)]
fig, axes = plt.subplots(2, 4, figsize=(16, 7.6))
for ax, setting in zip(axes.ravel(), grid):
    drawing = draw_setting(**setting, ax=ax)
    assert drawing.output_shape == conv2d_output_shape(7, setting["kernel"], setting.get("stride", 1),
                                                       setting.get("padding", 0), setting.get("dilation", 1))
plt.tight_layout(); plt.show()

# %% [markdown]
# In a live Jupyter session with [ipywidgets](https://ipywidgets.readthedocs.io) installed
# (`pip install ipywidgets`; it is optional), the next cell gives one slider per number and redraws the
# picture as you move them. Without ipywidgets it says so, and the grid above stands in for it; the
# documentation site, rendered without a live kernel, hides the cell's output.

# %% tags=["remove-output"]
try:
    import ipywidgets as widgets
except ImportError:
    widgets = None

if widgets is None:
    print("ipywidgets is not installed: `pip install ipywidgets` for the sliders (the grid above shows 8 settings)")
else:
    def show_setting(kernel, stride, padding, dilation, input_size):
        fig, ax = plt.subplots(figsize=(7, 5))
        draw_setting(kernel, stride, padding, dilation, input_size, ax=ax)
        plt.show()

    sliders = dict(kernel=widgets.IntSlider(3, 1, 7, description="kernel K"),
                   stride=widgets.IntSlider(1, 1, 4, description="stride S"),
                   padding=widgets.IntSlider(0, 0, 4, description="padding P"),
                   dilation=widgets.IntSlider(1, 1, 4, description="dilation D"),
                   input_size=widgets.IntSlider(7, 3, 11, description="input H = W"))
    widgets.interact(show_setting, **sliders)

# %% [markdown]
# ## 2.3 Dilation and the receptive field
#
# Lecture 001: a dilated ("atrous") 3 x 3 convolution still has $3 \times 3$ weights, but with
# $d = 2$ they are spread over a $5 \times 5$ field, and over $7 \times 7$ with $d = 3$:
# the kernel spans $D(K-1)+1$ pixels.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, d in zip(axes, (1, 2, 3)):
    draw_conv(7, 3, dilation=d, ax=ax)
    assert receptive_field([3], dilations=[d]) == 2 * d + 1
plt.tight_layout(); plt.show()


# %% [markdown]
# For a **stack** of layers with kernels $K_l$, strides $S_l$ and dilations $D_l$, layer $l$ widens the
# field by $D_l (K_l - 1)$ pixels *of its own input*, and one pixel of that input spans
# $\prod_{m<l} S_m$ pixels of the image:
#
# $$r = 1 + \sum_{l} D_l\,(K_l - 1) \prod_{m < l} S_m .$$
#
# We can *see* the receptive field with the backward pass: send a gradient of 1 from the centre
# output pixel back through the stack; the input pixels that receive a nonzero gradient are exactly
# the ones that output depends on. (All weights are set to 1, so nothing cancels.)

# %%
def receptive_map(kernels, strides, dilations, size=41):
    layers = []
    for k, s, d in zip(kernels, strides, dilations):
        conv = nn.Conv2d(1, 1, k, stride=s, dilation=d, bias=False)
        conv.params["w"][...] = 1.0
        layers.append(conv)
    net = nn.Sequential(*layers)
    out = net(np.zeros((1, 1, size, size), dtype=np.float32))
    dout = np.zeros_like(out)
    dout[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1.0        # one output pixel
    dx = net.backward(dout)[0, 0]
    rows, cols = np.nonzero(dx)
    return dx, rows.max() - rows.min() + 1

stacks = {"3 x conv3": ([3, 3, 3], [1, 1, 1], [1, 1, 1]),
          "conv3 s2, conv3, conv3": ([3, 3, 3], [2, 1, 1], [1, 1, 1]),
          "dilations 1, 2, 4": ([3, 3, 3], [1, 1, 1], [1, 2, 4]),
          "dilations 2, 2, 2": ([3, 3, 3], [1, 1, 1], [2, 2, 2])}
fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
for ax, (name, (k, s, d)) in zip(axes, stacks.items()):
    dx, width = receptive_map(k, s, d)
    formula = receptive_field(k, s, d)
    assert width == formula
    ax.imshow(dx[8:-8, 8:-8] > 0, cmap="Blues")             # the central 25 x 25 pixels
    ax.set_title(f"{name}\nr = {formula} (formula), {width} (backward)", fontsize=9)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# Strides multiply the effect of every later layer; dilations 1, 2, 4 grow the field exponentially
# with the number of layers at no extra weights. But dilations 2, 2, 2 leave **holes**: every pixel
# the output sees sits at an even offset ("gridding"), which is why dilated stacks mix rates.
#
# ## 2.4 Convolution as a matrix
#
# A convolution is linear in its input, so for a fixed kernel it *is* a matrix: flatten the input
# (row-major) into a vector $\mathbf{x}$ of length $H W$ and the output into $\mathbf{y}$ of length
# $O_H O_W$; then $\mathbf{y} = C\,\mathbf{x}$. Row $(p, q)$ of $C$ holds the kernel at the input pixels
# that window reads, and zeros elsewhere.
#
# Lecture 003's example: the 3 x 3 kernel above on a 4 x 4 input gives a 2 x 2 output, so $C$ is
# $4 \times 16$. Here it is, typed from the slide:

# %%
C_lecture = np.array([
    [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
    [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
    [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1]], dtype=np.float64)


# %% [markdown]
# The loop version builds it one output pixel (one row) at a time: put the kernel where that window
# sits, then flatten. The library's `conv_matrix` does the same for any stride, padding, dilation and
# number of channels.

# %%
def conv_matrix_loop(w, H, W):
    K = w.shape[0]
    OH, OW = H - K + 1, W - K + 1
    C = np.zeros((OH * OW, H * W))
    for p in range(OH):
        for q in range(OW):
            window = np.zeros((H, W))
            window[p:p + K, q:q + K] = w                 # the kernel where window (p, q) sits
            C[p * OW + q] = window.ravel()
    return C

C_loop = conv_matrix_loop(kernel, 4, 4)
C_lib = F.conv_matrix(kernel[None, None], (4, 4))
assert C_lib.shape == (4, 16)
assert (C_loop == C_lecture).all() and (C_lib == C_lecture).all()
y = C_lecture @ x.ravel()                                # the convolution as a product
print("C @ x =", y, "  conv2d =", out_lib.ravel())
assert np.allclose(y, out_lib.ravel())

# %%
fig = plt.figure(figsize=(13, 4.2))
ax = fig.add_axes([0.02, 0.45, 0.96, 0.5])
plot_matrix(C_lecture, ax=ax, fmt="{:.0f}", fontsize=10, title="C (4 x 16): one row per output pixel, one column per input pixel")
for r in range(4):
    ax_r = fig.add_axes([0.1 + 0.22 * r, 0.02, 0.16, 0.36])
    plot_matrix(C_lecture[r].reshape(4, 4), ax=ax_r, fmt="{:.0f}", title=f"row {r} as a 4 x 4 image")
plt.show()

# %% [markdown]
# $C$ is mostly zeros: $O_H O_W \times H W$ entries for only $K^2$ weights, repeated along shifted
# diagonals. Nobody stores it for a real image (a 256 x 256 input gives a 65 536 x 65 536 matrix);
# it is the *view* that explains the transposed convolution. What the library actually runs is
# **im2col**: copy every window into one column, then one dense matrix product
# $\text{out} = w_{\text{flat}} \cdot \text{cols}$ does all the windows at once.

# %%
cols = F.im2col(x[None, None], 3)                        # (C*K*K, N*OH*OW) = (9, 4)
print("cols shape", cols.shape)
assert np.allclose(kernel.ravel() @ cols, out_lib.ravel())
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [4, 4]})
plot_matrix(x, ax=axes[0], fmt="{:.0f}", title="input x (4 x 4)")
plot_matrix(cols, ax=axes[1], fmt="{:.0f}", title="im2col: one window per column")
plt.show()

# %% [markdown]
# ## Summary
#
# * Output size: $O = \lfloor (H + 2P - D(K-1) - 1)/S \rfloor + 1$; the floor silently drops pixels
#   when the window does not fit a whole number of times.
# * Padding keeps the size ("same" for $P = (K-1)/2$), stride $S$ divides it by about $S$, dilation
#   spreads $K \times K$ weights over $D(K-1)+1$ pixels.
# * Receptive field of a stack: $r = 1 + \sum_l D_l (K_l - 1)\prod_{m<l} S_m$, and the backward pass of a
#   one-pixel gradient draws it.
# * A convolution is a matrix $C$ ($O_H O_W \times H W$): the lecture's $4 \times 16$ example. The
#   library computes the same product with im2col.
#
# ## Exercises
#
# 1. Which padding keeps the size for kernel 5 and dilation 3? Check with `conv2d_output_shape`.
# 2. Build `F.conv_matrix` for a 5 x 5 input, kernel 3, stride 2, padding 1 and plot it. How many
#    nonzeros has each row, and why do some rows have fewer than 9?
# 3. VGG-16 has five blocks of 3 x 3 convolutions (2, 2, 3, 3, 3 of them), each block followed by a
#    2 x 2 max pool with stride 2. Compute the receptive field of one pixel after the last pool with
#    `receptive_field` (treat a pool as a kernel-2, stride-2 layer).
# 4. Which three dilation rates for three 3 x 3 layers cover a 13 x 13 field without holes? Use
#    `receptive_map` to check.
# 5. For a 256 x 256 image and a 3 x 3 kernel, compare the memory of the dense $C$ with that of the
#    im2col matrix (float32).
#
# <details><summary>Hints for the exercises</summary>
#
# 1. "Same" needs $2P = D(K - 1)$: $P = 3 \cdot 4 / 2 = 6$;
#    `conv2d_output_shape((32, 32), 5, padding=6, dilation=3)` gives (32, 32).
# 2. Each row holds at most $K^2 = 9$ nonzeros; a window that overlaps the padding multiplies zeros
#    there, and those taps have no column in $C$ (the padding is not part of $x$).
# 3. Pools are layers with kernel 2 and stride 2: `receptive_field([3, 3, 2, 3, 3, 2, 3, 3, 3, 2, 3, 3, 3, 2,
#    3, 3, 3, 2], [1, 1, 2, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2])` (212 pixels).
# 4. $r = 1 + 2(d_1 + d_2 + d_3) = 13$ needs $d_1 + d_2 + d_3 = 6$: 1, 2, 3 fills it; 2, 2, 2 has the
#    same size but holes.
# 5. Dense: $(256^2)^2 \cdot 4$ bytes $= 16$ GiB; im2col: $9 \cdot 256^2 \cdot 4$ bytes $\approx 2.3$ MB
#    (stride 1, "same" padding).
#
# </details>
#

# %% [markdown]
# ## Check your understanding
#
# **1.** A 32 x 32 input, kernel 3, stride 2, padding 1, dilation 1. What is the output size? And
# with dilation 2 and padding 2?
#
# <details><summary>Answer</summary>
#
# $\lfloor (32 + 2 - 2 - 1)/2 \rfloor + 1 = 15 + 1 = 16$. With $D = 2$, $P = 2$:
# $\lfloor (32 + 4 - 4 - 1)/2 \rfloor + 1 = 16$ again (`conv2d_output_shape(32, 3, 2, 2, 2)`).
#
# </details>
#
# **2.** Two layers of 3 x 3 convolutions with stride 1 see a 5 x 5 field. Which field does a 3 x 3
# convolution with stride 2 followed by a 3 x 3 convolution with stride 1 see?
#
# <details><summary>Answer</summary>
#
# $r = 1 + 2 \cdot 1 + 2 \cdot 2 = 7$: the second layer's two extra pixels on each side are pixels of the
# strided map, each two input pixels apart.
#
# </details>
#
# **3.** The convolution matrix $C$ of a 3 x 3 kernel on a 5 x 5 input (stride 1, no padding): what is
# its shape, and how many of its entries can be nonzero?
#
# <details><summary>Answer</summary>
#
# The output is 3 x 3, so $C$ is $9 \times 25$; each row holds the 9 weights, so at most 81 of its 225
# entries are nonzero.
#
# </details>
#
# **4.** Why does a 6 x 6 input with kernel 3 and stride 2 (no padding) lose its last row and column?
#
# <details><summary>Answer</summary>
#
# The windows start at 0 and 2 (the next one, at 4, would need pixels 4..6, and pixel 6 does not
# exist), so pixel 5 is never read: $O = \lfloor 3/2 \rfloor + 1 = 2$.
#
# </details>
#

# %% [markdown]
# ## Where next
#
# * Concept page: [Convolution arithmetic](../concepts/conv_arithmetic.md) (`docs/concepts/conv_arithmetic.md`).
# * API: [`functional.shapes`](../api/functional/shapes.rst) (the output-size formulas),
#   [`functional.conv`](../api/functional/conv.rst) (`conv2d_forward`, `im2col`),
#   [`functional.conv_matrix`](../api/functional/conv_matrix.rst) and
#   [`conv_arithmetic`](../api/conv_arithmetic.rst) (the pictures).
# * Assignments: [a1, convolution by im2col](../assignments.md#assignment-a1) (`a1_conv_im2col.py`: `im2col`, `col2im`,
#   the forward and backward pass) and [a4, dilated convolution](../assignments.md#assignment-a4) (`a4_dilated_conv.py`,
#   with notebook 7). `python -m minimal_seg make-student my_assignments` writes your copy,
#   `python -m minimal_seg check a1 --impl my_assignments/a1_conv_im2col.py` grades it.
# * Next: [notebook 3, going down and up](03_down_and_up.ipynb).
