"""Build the lecture notebooks from the readable cell sources below.

    python lectures/_build_notebooks.py            # rewrite every lectures/NN_*.ipynb
    python lectures/_build_notebooks.py 03         # only the notebooks whose name starts with 03

Edit a notebook here, not in Jupyter: the stored .ipynb files are generated,
without outputs, and ``tests/test_notebooks.py`` checks that they match this
file and that each one runs top to bottom. Every notebook follows one arc:
a tiny loop version checked on the lecture's hand example -> the library call
-> the matrix or picture view -> a short summary -> exercises.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}


def md(text: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(text).strip("\n")


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip("\n")


SETUP = code("""
    import os
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before NumPy loads: these small matrix products
    os.environ.setdefault("MKL_NUM_THREADS", "1")        # run fastest on one BLAS thread (see README.md)

    %matplotlib inline
    import numpy as np
    import matplotlib.pyplot as plt

    np.set_printoptions(precision=4, suppress=True)
""")

# =====================================================================================================
# 1. Vision tasks and metrics
# =====================================================================================================

NOTEBOOKS["01_vision_tasks_and_metrics"] = [
    md(r"""
    # 1. Vision tasks and metrics

    *Lectures 001, 002 and 004 ("Задачи в компьютерном зрении"), 003 (Dice), 004 (IoU, mIoU, NMS).*

    The same picture can be asked five different questions. This notebook shows one image under each
    task, then the numbers we use to grade an answer: **IoU** and **Dice** of two masks, the
    **confusion matrix** and **mIoU** for many classes, and **IoU of boxes** with
    **non-maximum suppression** for detection.

    | task | answer for one image |
    |---|---|
    | classification ("Классификация") | one label |
    | localization ("Локализация") | one label + one box $(x, y, w, h)$ |
    | detection ("Детектирование объектов") | a label and a box for *every* object |
    | semantic segmentation ("Семантическая сегментация") | a class for every pixel |
    | instance segmentation ("Сегментация объектов") | a class *and an object id* for every pixel |
    """),
    SETUP,
    code("""
    from minimal_seg import metrics
    from minimal_seg.data import Nuclei, Shapes
    from minimal_seg.viz import colorize, draw_boxes, overlay, plot_matrix, to_display
    """),
    md(r"""
    ## 1.1 One image, five tasks

    A crop of the real fluorescence image that ships with the library (`Nuclei`, lecture 001's
    "медицинские изображения"). Besides the nucleus/background mask it stores an *instance* map:
    every annotated nucleus has its own id. Everything else we derive from it with a few loops.
    A box is written as in lecture 002: $(x, y, w, h)$, the top-left corner, the width and the height.
    """),
    code("""
    nuclei = Nuclei("all")                                   # the whole 512 x 512 image
    top, left, size = 176, 40, 80
    image = nuclei.images[0, :, top:top + size, left:left + size]          # (1, 80, 80)
    instances = nuclei.instances[0, top:top + size, left:left + size]      # 0 = background, else an id
    semantic = (instances > 0).astype(np.int64)                            # 1 = nucleus

    # Boxes (x, y, w, h) from the instance map: the tiny loop version.
    ids = [int(i) for i in np.unique(instances) if i > 0]
    boxes_xywh = []
    for i in ids:
        ys, xs = np.nonzero(instances == i)
        boxes_xywh.append((xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()))
    boxes_xywh = np.array(boxes_xywh, dtype=np.float64)
    boxes = metrics.xywh_to_xyxy(boxes_xywh)                # (x1, y1, x2, y2) for the library
    largest = int(np.argmax(metrics.box_area(boxes)))
    print(f"{len(ids)} nuclei in the crop; the largest has (x, y, w, h) = {boxes_xywh[largest]}")
    """),
    code("""
    shown = to_display(image)
    relabelled = np.searchsorted([0] + ids, instances)       # ids -> 0, 1, 2, ... for colouring
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
    for ax in axes:
        ax.imshow(shown, cmap="gray")
        ax.set_axis_off()
    axes[0].set_title('classification:\\n"nuclei"')
    draw_boxes(axes[1], boxes[largest:largest + 1], ["nucleus"])
    axes[1].set_title("localization:\\none box (x, y, w, h)")
    draw_boxes(axes[2], boxes, ["nucleus"] * len(ids), color="yellow", linewidth=1.5)
    axes[2].set_title(f"detection:\\n{len(ids)} boxes")
    axes[3].imshow(overlay(image, semantic, alpha=0.6))
    axes[3].set_title("semantic segmentation:\\nclass per pixel")
    axes[4].imshow(colorize(relabelled))
    axes[4].set_title("instance segmentation:\\nobject id per pixel")
    plt.show()
    """),
    md(r"""
    Semantic segmentation does not separate touching objects: in the mask, nuclei that touch merge into
    one blob of class "nucleus" (compare the last two panels). Counting the connected pieces shows it:
    """),
    code("""
    from minimal_seg.classical import connected_components

    pieces = connected_components(semantic)                  # 4-connected regions of equal label
    blobs = len(np.unique(pieces[semantic == 1]))
    print(f"{len(ids)} nuclei, but only {blobs} connected blobs in the semantic mask")
    assert blobs < len(ids)
    """),
    md(r"""
    ## 1.2 IoU and Dice of two masks

    For two sets of pixels $A$ (prediction) and $B$ (truth), lectures 003 and 004 define

    $$\mathrm{IoU}(A, B) = J(A, B) = \frac{|A \cap B|}{|A \cup B|} = \frac{|A \cap B|}{|A| + |B| - |A \cap B|},
    \qquad
    \mathrm{Dice}(A, B) = \frac{2\,|A \cap B|}{|A| + |B|}.$$

    IoU is also called the **Jaccard** coefficient, Dice the **Sørensen** coefficient.

    **Hand example.** On an 8 x 8 grid, $A$ is the 4 x 4 square with corner (1, 1) and $B$ the 4 x 4
    square with corner (2, 3). They share 3 rows x 2 columns = 6 pixels, so
    $|A \cup B| = 16 + 16 - 6 = 26$, $\mathrm{IoU} = 6/26 \approx 0.231$ and
    $\mathrm{Dice} = 12/32 = 0.375$. First the loop version, pixel by pixel:
    """),
    code("""
    A = np.zeros((8, 8), dtype=np.int64)
    B = np.zeros((8, 8), dtype=np.int64)
    A[1:5, 1:5] = 1
    B[2:6, 3:7] = 1

    def iou_dice_loop(a, b):
        inter = union = size_a = size_b = 0
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                inter += bool(a[i, j] and b[i, j])
                union += bool(a[i, j] or b[i, j])
                size_a += bool(a[i, j])
                size_b += bool(b[i, j])
        return inter / union, 2 * inter / (size_a + size_b)

    iou_loop, dice_loop = iou_dice_loop(A, B)
    print(f"loop:    IoU = {iou_loop:.4f}   Dice = {dice_loop:.4f}")
    print(f"library: IoU = {metrics.iou(A, B):.4f}   Dice = {metrics.dice(A, B):.4f}")
    assert iou_loop == metrics.iou(A, B) == 6 / 26
    assert dice_loop == metrics.dice(A, B) == 12 / 32
    """),
    code("""
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
    for ax, m, title in zip(axes, (A, B, A & B, A | B), ("A (prediction)", "B (truth)",
                                                        f"A ∩ B: {(A & B).sum()} px", f"A ∪ B: {(A | B).sum()} px")):
        plot_matrix(m, ax=ax, fmt="{:.0f}", cmap="Greys", vmin=0, vmax=1.6, fontsize=8, title=title)
    plt.show()
    """),
    md(r"""
    The two scores measure the same overlap on different scales. Because
    $|A| + |B| = |A \cup B| + |A \cap B|$,

    $$\mathrm{Dice} = \frac{2\,\mathrm{IoU}}{1 + \mathrm{IoU}} \ge \mathrm{IoU},$$

    with equality only at 0 and 1: Dice is the more generous number, so always say which one you report.
    """),
    code("""
    assert np.isclose(metrics.dice_from_iou(metrics.iou(A, B)), metrics.dice(A, B))
    t = np.linspace(0, 1, 101)
    plt.figure(figsize=(3.6, 3.2))
    plt.plot(t, metrics.dice_from_iou(t), label="Dice")
    plt.plot(t, t, "--", label="IoU")
    plt.scatter([metrics.iou(A, B)], [metrics.dice(A, B)], color="red", zorder=3, label="hand example")
    plt.xlabel("IoU"); plt.ylabel("score"); plt.legend(); plt.grid(alpha=0.3)
    plt.show()
    """),
    md(r"""
    ## 1.3 Many classes: confusion matrix, per-class IoU, mIoU

    With $K$ classes we count pixels in a $K \times K$ **confusion matrix**: $M_{ij}$ = number of pixels
    of true class $i$ predicted as class $j$. For class $c$

    $$TP_c = M_{cc}, \quad FP_c = \sum_i M_{ic} - M_{cc}, \quad FN_c = \sum_j M_{cj} - M_{cc}, \qquad
    \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c},$$

    and lecture 004's **mean IoU** is the average over classes,
    $\mathrm{mIoU} = \frac1K \sum_c \mathrm{IoU}_c$. Pixel accuracy is $\operatorname{tr} M / \sum M$.

    A `Shapes` image (background, circle, square, triangle; drawn black, blue, orange, green) and a
    made-up prediction: the truth shifted 2 pixels to the right, with triangles mistaken for squares.
    """),
    code("""
    shapes = Shapes(64, image_size=64, seed=3)
    K = shapes.num_classes
    index = next(i for i, m in enumerate(shapes.masks) if len(np.unique(m)) == K)   # all four classes
    truth = shapes.masks[index]
    pred = np.roll(truth, 2, axis=1)
    pred[pred == 3] = 2                                      # triangles called squares

    # The loop version: one pixel at a time.
    M = np.zeros((K, K), dtype=np.int64)
    for t, p in zip(truth.ravel(), pred.ravel()):
        M[t, p] += 1

    cm = metrics.ConfusionMatrix(K)
    cm.update(pred[None], truth[None])                       # batches (N, H, W)
    assert (cm.to_numpy() == M).all()
    tp = np.diag(M)
    iou_loop = tp / (M.sum(0) + M.sum(1) - tp)
    assert np.allclose(iou_loop, cm.iou())
    for name, v in zip(shapes.class_names, cm.iou()):
        print(f"IoU {name:<11} {v:.3f}")
    print(f"mIoU {cm.miou():.3f}    pixel accuracy {cm.pixel_accuracy():.3f}")
    """),
    code("""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    axes[0].imshow(colorize(truth)); axes[0].set_title("truth")
    axes[1].imshow(colorize(pred)); axes[1].set_title("prediction")
    axes[2].imshow(truth != pred, cmap="Reds"); axes[2].set_title(f"errors: {(truth != pred).sum()} px")
    for ax in axes[:3]:
        ax.set_axis_off()
    plot_matrix(M, ax=axes[3], fmt="{:.0f}", title="confusion matrix (rows: truth)")
    axes[3].set_xticks(range(K), shapes.class_names, rotation=45, fontsize=8)
    axes[3].set_yticks(range(K), shapes.class_names, fontsize=8)
    plt.tight_layout(); plt.show()
    """),
    md(r"""
    **Why not pixel accuracy?** The background is most of the picture. A "model" that answers
    *background* everywhere is right on most pixels of the whole data set, yet it finds nothing:
    """),
    code("""
    lazy = metrics.ConfusionMatrix(K)
    lazy.update(np.zeros_like(shapes.masks), shapes.masks)
    print("class frequencies:", np.round(shapes.class_frequencies(), 3))
    print(f"all-background:  pixel accuracy {lazy.pixel_accuracy():.3f}   mIoU {lazy.miou():.3f}")
    print("per-class IoU:", np.round(lazy.iou(), 3))
    """),
    md(r"""
    ## 1.4 Boxes: IoU and non-maximum suppression

    For boxes (lecture 004, "если работаем с боксами") IoU is the same ratio of areas. The
    intersection of two boxes is again a box, from the larger top-left corner to the smaller
    bottom-right corner.

    **Hand example.** $A = (x, y, w, h) = (0, 0, 4, 4)$ and $B = (2, 2, 4, 4)$ overlap in a 2 x 2 square:
    $\mathrm{IoU} = 4 / (16 + 16 - 4) = 1/7$. The loop version counts unit cells, so $\cap$ and $\cup$
    are literally set operations:
    """),
    code("""
    def box_iou_loop(a, b):
        def cells(box):
            x, y, w, h = box
            return {(i, j) for i in range(x, x + w) for j in range(y, y + h)}
        return len(cells(a) & cells(b)) / len(cells(a) | cells(b))

    a, b = (0, 0, 4, 4), (2, 2, 4, 4)
    lib = metrics.box_iou(metrics.xywh_to_xyxy(np.array([a], float)), metrics.xywh_to_xyxy(np.array([b], float)))
    print(f"loop {box_iou_loop(a, b):.4f}   library {lib[0, 0]:.4f}   1/7 = {1 / 7:.4f}")
    assert box_iou_loop(a, b) == 1 / 7 and np.isclose(lib[0, 0], 1 / 7)
    """),
    md(r"""
    A detector proposes many overlapping boxes for the same object. **Non-maximum suppression**, as
    lecture 004 states it, for a list $S$ of boxes with confidences:

    1. pick the box with the highest confidence and remove it from $S$ (keep it);
    2. compute its IoU with every other box;
    3. remove the boxes with IoU above a threshold (often 0.5) from $S$;
    4. repeat 1-3 while $S$ is not empty.

    Below, every nucleus gets four copies of its box, each corner moved by up to 10 % of the box size,
    with random scores.
    """),
    code("""
    rng = np.random.default_rng(0)
    copies = 4
    wh = np.repeat(boxes_xywh[:, 2:], copies, axis=0)
    proposals = np.repeat(boxes, copies, axis=0) + 0.1 * np.tile(wh, 2) * rng.uniform(-1, 1, (len(wh), 4))
    scores = rng.uniform(0.3, 1.0, len(proposals))
    keep = metrics.nms(proposals, scores, iou_threshold=0.5)
    print(f"{len(proposals)} proposals -> {len(keep)} kept (the crop has {len(ids)} nuclei)")
    assert len(keep) == len(ids)

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    for ax in axes:
        ax.imshow(shown, cmap="gray"); ax.set_axis_off()
    draw_boxes(axes[0], proposals, color="yellow", linewidth=1)
    axes[0].set_title(f"before NMS: {len(proposals)} boxes")
    draw_boxes(axes[1], proposals[keep], [f"{s:.2f}" for s in scores[keep]], color="yellow", linewidth=1.5)
    axes[1].set_title(f"after NMS: {len(keep)} boxes (with their scores)")
    plt.show()
    """),
    md(r"""
    Detection is graded by **mAP** (mean average precision), built from box IoU: a detection counts as
    correct when its IoU with a true box exceeds a threshold. It is mentioned in lecture 004 and left
    for the practice.

    ## Summary

    * Classification, localization, detection, semantic and instance segmentation answer ever more
      detailed questions; semantic segmentation cannot tell touching objects of one class apart.
    * $\mathrm{IoU} = |A\cap B| / |A \cup B|$ and $\mathrm{Dice} = 2|A \cap B|/(|A| + |B|)$ measure the
      same overlap: $\mathrm{Dice} = 2\,\mathrm{IoU}/(1 + \mathrm{IoU})$.
    * With many classes, count a confusion matrix and average the per-class IoU (mIoU); pixel accuracy
      rewards predicting the background.
    * Box IoU uses areas; NMS keeps the best box and drops the ones that overlap it by more than a threshold.

    ## Exercises

    1. Prove $\mathrm{Dice} = 2\,\mathrm{IoU}/(1 + \mathrm{IoU})$. For which masks are Dice and IoU equal?
    2. `metrics.iou` returns 1.0 for two empty masks, while `ConfusionMatrix` gives NaN for a class that is
       absent from truth and prediction and leaves it out of the mean. Argue for each convention.
       What would mIoU over the 64 Shapes images be if absent classes counted as 0 instead?
    3. Compute the confusion matrix of section 1.3 with a single `np.bincount` (hint: the pair
       (true $i$, predicted $j$) is bin $K i + j$). Check it against the loop.
    4. Run NMS on the proposals with thresholds 0.3 and 0.7. Which one merges the two touching nuclei,
       which one keeps duplicates? Plot both.
    5. Shift the prediction of section 1.3 by 1, 2, ..., 8 pixels and plot the IoU of each class against
       the shift. Why do small shapes lose IoU fastest?
    """),
]


# =====================================================================================================
# 2. Convolution arithmetic
# =====================================================================================================

NOTEBOOKS["02_convolution_arithmetic"] = [
    md(r"""
    # 2. Convolution arithmetic

    *Lecture 001 ("Свёртка со страйдом", "Дилатационная свёртка"), lecture 003 ("Convolution Matrix").*

    A convolution layer has four numbers besides its weights: kernel size $K$, **padding** $P$,
    **stride** $S$ and **dilation** $D$. Together they fix the output size and which input pixels each
    output pixel sees (its **receptive field**). At the end we write the whole convolution as one
    matrix, the lecture's 4 x 16 example, which is the key to the transposed convolution of notebook 3.

    Along one axis, for an input of $H$ pixels (PyTorch's rule, with a floor):

    $$O = \left\lfloor \frac{H + 2P - D\,(K - 1) - 1}{S} \right\rfloor + 1 .$$

    The dilated kernel spans $D(K-1) + 1$ pixels; the window starts at $0, S, 2S, \dots$ in the padded
    input and must fit inside it.
    """),
    SETUP,
    code("""
    from minimal_seg import functional as F
    from minimal_seg import nn
    from minimal_seg.conv_arithmetic import draw_conv
    from minimal_seg.functional.shapes import conv2d_output_shape, conv_output_size, receptive_field
    from minimal_seg.viz import plot_matrix
    """),
    md(r"""
    ## 2.1 The loop version

    Deep-learning "convolution" is a cross-correlation (the kernel is not flipped). With zero padding
    $x_{\text{pad}}$,

    $$\text{out}[p, q] = \sum_{i=0}^{K-1} \sum_{j=0}^{K-1} w[i, j]\; x_{\text{pad}}[pS + iD,\; qS + jD].$$

    Four loops, straight from the formula, for one channel:
    """),
    code("""
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
    """),
    md(r"""
    **Hand example** (lecture 003's kernel). A 4 x 4 input and a 3 x 3 kernel, no padding, stride 1:
    $O = 4 - 3 + 1 = 2$, so the output is 2 x 2. The top-left output is the sum of the kernel times the
    top-left 3 x 3 block: $1\cdot0 + 4\cdot1 + 1\cdot2 + 1\cdot4 + 4\cdot5 + 3\cdot6 + 3\cdot8 + 3\cdot9 + 1\cdot10 = 109$.
    """),
    code("""
    kernel = np.array([[1, 4, 1],
                       [1, 4, 3],
                       [3, 3, 1]], dtype=np.float64)
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    out_loop = conv_loop(x, kernel)
    out_lib, _ = F.conv2d_forward(x[None, None], kernel[None, None])     # NCHW and (OC, C, KH, KW)
    print(out_loop)
    assert out_loop[0, 0] == 109
    assert np.allclose(out_lib[0, 0], out_loop)
    """),
    md(r"""
    The library computes the same numbers for every setting, including sizes that do not divide evenly
    (7 x 6 inputs below), and its output shape always follows the formula:
    """),
    code("""
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
    """),
    md(r"""
    ## 2.2 Pictures: padding, stride, dilation

    Blue: the input; dashed white: the zero padding; dark: the $K \times K$ pixels that one output pixel
    reads; green: the output, with that pixel dark. Under each picture, the output-size formula with the
    numbers filled in. The pictures come from `minimal_seg.conv_arithmetic`, which takes every size from
    the library's `conv2d_output_shape` and every window from im2col's formula, so they cannot disagree
    with the code.
    """),
    code("""
    settings = [dict(input_size=5, kernel_size=3),                         # "valid": 5 -> 3
                dict(input_size=5, kernel_size=3, padding=1),              # "same":  5 -> 5
                dict(input_size=5, kernel_size=3, padding=1, stride=2),    # strided: 5 -> 3
                dict(input_size=7, kernel_size=3, dilation=2)]             # dilated: 7 -> 3
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, s in zip(axes, settings):
        draw_conv(**s, ax=ax)
    plt.tight_layout(); plt.show()
    """),
    md(r"""
    **Stride** ("Шаг окна: 1" vs "Шаг окна: 2") moves the window by $S$ pixels, so the output shrinks by
    about $S$ per axis. Three neighbouring outputs of the strided case:
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, position in zip(axes, [(0, 0), (0, 1), (1, 1)]):
        draw_conv(5, 3, stride=2, padding=1, step=position, ax=ax)
    plt.tight_layout(); plt.show()
    """),
    md(r"""
    **The floor.** When the window does not fit a whole number of times, the last pixels are never read.
    A 6 x 6 input, kernel 3, stride 2, no padding: $O = \lfloor 3/2 \rfloor + 1 = 2$, and the last
    column and row of the input are dropped:
    """),
    code("""
    print("O =", conv_output_size(6, kernel=3, stride=2))
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    draw_conv(6, 3, stride=2, step=(1, 1), ax=ax)
    plt.show()
    """),
    md(r"""
    ## 2.3 Dilation and the receptive field

    Lecture 001: a dilated ("atrous") 3 x 3 convolution still has $3 \times 3$ weights, but with
    $d = 2$ they are spread over a $5 \times 5$ field, and over $7 \times 7$ with $d = 3$:
    the kernel spans $D(K-1)+1$ pixels.
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, d in zip(axes, (1, 2, 3)):
        draw_conv(7, 3, dilation=d, ax=ax)
        assert receptive_field([3], dilations=[d]) == 2 * d + 1
    plt.tight_layout(); plt.show()
    """),
    md(r"""
    For a **stack** of layers with kernels $K_l$, strides $S_l$ and dilations $D_l$, layer $l$ widens the
    field by $D_l (K_l - 1)$ pixels *of its own input*, and one pixel of that input spans
    $\prod_{m<l} S_m$ pixels of the image:

    $$r = 1 + \sum_{l} D_l\,(K_l - 1) \prod_{m < l} S_m .$$

    We can *see* the receptive field with the backward pass: send a gradient of 1 from the centre
    output pixel back through the stack; the input pixels that receive a nonzero gradient are exactly
    the ones that output depends on. (All weights are set to 1, so nothing cancels.)
    """),
    code("""
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
        ax.set_title(f"{name}\\nr = {formula} (formula), {width} (backward)", fontsize=9)
        ax.set_axis_off()
    plt.show()
    """),
    md(r"""
    Strides multiply the effect of every later layer; dilations 1, 2, 4 grow the field exponentially
    with the number of layers at no extra weights. But dilations 2, 2, 2 leave **holes**: every pixel
    the output sees sits at an even offset ("gridding"), which is why dilated stacks mix rates.

    ## 2.4 Convolution as a matrix

    A convolution is linear in its input, so for a fixed kernel it *is* a matrix: flatten the input
    (row-major) into a vector $\mathbf{x}$ of length $H W$ and the output into $\mathbf{y}$ of length
    $O_H O_W$; then $\mathbf{y} = C\,\mathbf{x}$. Row $(p, q)$ of $C$ holds the kernel at the input pixels
    that window reads, and zeros elsewhere.

    Lecture 003's example: the 3 x 3 kernel above on a 4 x 4 input gives a 2 x 2 output, so $C$ is
    $4 \times 16$. Here it is, typed from the slide:
    """),
    code("""
    C_lecture = np.array([
        [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
        [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
        [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1]], dtype=np.float64)
    """),
    md(r"""
    The loop version builds it one output pixel (one row) at a time: put the kernel where that window
    sits, then flatten. The library's `conv_matrix` does the same for any stride, padding, dilation and
    number of channels.
    """),
    code("""
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
    """),
    code("""
    fig = plt.figure(figsize=(13, 4.2))
    ax = fig.add_axes([0.02, 0.45, 0.96, 0.5])
    plot_matrix(C_lecture, ax=ax, fmt="{:.0f}", fontsize=10, title="C (4 x 16): one row per output pixel, one column per input pixel")
    for r in range(4):
        ax_r = fig.add_axes([0.1 + 0.22 * r, 0.02, 0.16, 0.36])
        plot_matrix(C_lecture[r].reshape(4, 4), ax=ax_r, fmt="{:.0f}", title=f"row {r} as a 4 x 4 image")
    plt.show()
    """),
    md(r"""
    $C$ is mostly zeros: $O_H O_W \times H W$ entries for only $K^2$ weights, repeated along shifted
    diagonals. Nobody stores it for a real image (a 256 x 256 input gives a 65 536 x 65 536 matrix);
    it is the *view* that explains the transposed convolution. What the library actually runs is
    **im2col**: copy every window into one column, then one dense matrix product
    $\text{out} = w_{\text{flat}} \cdot \text{cols}$ does all the windows at once.
    """),
    code("""
    cols = F.im2col(x[None, None], 3)                        # (C*K*K, N*OH*OW) = (9, 4)
    print("cols shape", cols.shape)
    assert np.allclose(kernel.ravel() @ cols, out_lib.ravel())
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), gridspec_kw={"width_ratios": [4, 4]})
    plot_matrix(x, ax=axes[0], fmt="{:.0f}", title="input x (4 x 4)")
    plot_matrix(cols, ax=axes[1], fmt="{:.0f}", title="im2col: one window per column")
    plt.show()
    """),
    md(r"""
    ## Summary

    * Output size: $O = \lfloor (H + 2P - D(K-1) - 1)/S \rfloor + 1$; the floor silently drops pixels
      when the window does not fit a whole number of times.
    * Padding keeps the size ("same" for $P = (K-1)/2$), stride $S$ divides it by about $S$, dilation
      spreads $K \times K$ weights over $D(K-1)+1$ pixels.
    * Receptive field of a stack: $r = 1 + \sum_l D_l (K_l - 1)\prod_{m<l} S_m$, and the backward pass of a
      one-pixel gradient draws it.
    * A convolution is a matrix $C$ ($O_H O_W \times H W$): the lecture's $4 \times 16$ example. The
      library computes the same product with im2col.

    ## Exercises

    1. Which padding keeps the size for kernel 5 and dilation 3? Check with `conv2d_output_shape`.
    2. Build `F.conv_matrix` for a 5 x 5 input, kernel 3, stride 2, padding 1 and plot it. How many
       nonzeros has each row, and why do some rows have fewer than 9?
    3. VGG-16 has five blocks of 3 x 3 convolutions (2, 2, 3, 3, 3 of them), each block followed by a
       2 x 2 max pool with stride 2. Compute the receptive field of one pixel after the last pool with
       `receptive_field` (treat a pool as a kernel-2, stride-2 layer).
    4. Which three dilation rates for three 3 x 3 layers cover a 13 x 13 field without holes? Use
       `receptive_map` to check.
    5. For a 256 x 256 image and a 3 x 3 kernel, compare the memory of the dense $C$ with that of the
       im2col matrix (float32).
    """),
]


# =====================================================================================================
# 3. Going down and up
# =====================================================================================================

NOTEBOOKS["03_down_and_up"] = [
    md(r"""
    # 3. Going down and up: pooling, unpooling, transposed convolution, bilinear upsampling

    *Lecture 000 ("МаксПуллинг2D"), lecture 001 ("Слои для повышения разрешения", "Unpooling",
    "Max unpooling", "Транспонированная свёртка"), lecture 002 ("Learnable unpooling"),
    lecture 003 ("Transposed Convolution", "Convolution Matrix"), lecture 004 (indices kept for
    max unpooling).*

    A segmentation network goes **down** (pooling, strided convolution: cheaper, larger receptive
    field) and must come back **up** to one prediction per pixel. This notebook reproduces the
    lectures' two worked examples exactly: max pooling of a 4 x 4 map, and the transposed convolution
    of a 2 x 2 input into a 4 x 4 output as multiplication by the transposed 4 x 16 matrix.
    """),
    SETUP,
    code("""
    from minimal_seg import functional as F
    from minimal_seg.conv_arithmetic import draw_transposed_conv
    from minimal_seg.viz import plot_matrix
    """),
    md(r"""
    ## 3.1 Max pooling, and the indices of the winners

    "Слой МаксПуллинг2D осуществляет операцию сжатия ... путем выбора максимального значения в блоке
    пикселей": with a 2 x 2 window and stride 2,

    $$\text{out}[p, q] = \max_{0 \le i, j < 2} x[2p + i,\; 2q + j].$$

    The lecture's feature map, first with a loop:
    """),
    code("""
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
    """),
    md(r"""
    The library also keeps **where** each maximum was, as a flat index $h W + w$ into the input plane
    (as PyTorch does). Max unpooling and the backward pass need exactly this.
    """),
    code("""
    indices = cache.indices[0, 0]
    print("indices:\\n", indices)
    print("as (row, col):", [divmod(int(i), 4) for i in indices.ravel()])
    assert (indices == [[0, 7], [12, 14]]).all()

    winners = np.zeros((4, 4), dtype=bool)
    winners.ravel()[indices.ravel()] = True
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    plot_matrix(fmap, ax=axes[0], highlight=winners, title="feature map, winners framed")
    plot_matrix(pooled[0, 0], ax=axes[1], vmin=0, vmax=9, title="max pooled")
    plot_matrix(indices, ax=axes[2], cmap="Greys", vmin=0, vmax=40, title="indices h*W + w")
    plt.show()
    """),
    md(r"""
    The gradient of max pooling goes only to the winners ("the max was chosen by that pixel alone"):
    """),
    code("""
    dout = np.array([[[[10., 20.], [30., 40.]]]])
    dx = F.max_pool2d_backward(dout, cache)
    print(dx[0, 0])
    assert dx[0, 0][winners].tolist() == [10, 20, 30, 40] and dx[0, 0][~winners].sum() == 0
    """),
    md(r"""
    ## 3.2 Unpooling: bed of nails, nearest neighbour, max unpooling

    Three ways to make a 2 x 2 map 4 x 4 without learned weights (lecture 001: "Разреженный unpooling",
    "Ближайший сосед", "Max unpooling"):

    * **bed of nails**: each value goes to the top-left corner of its 2 x 2 block, zeros elsewhere;
    * **nearest neighbour**: each value fills its whole block;
    * **max unpooling** (SegNet): each value goes back to where max pooling found it, using the saved
      indices (lecture 004: "индексы максимальных значений после Max Pooling сохраняются и используются
      при Max Unpooling").
    """),
    code("""
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
    """),
    md(r"""
    Max unpooling puts every value back in its place (framed), but everything that was not a maximum is
    lost: it is not an inverse of pooling either. The decoder's convolutions have to fill the zeros in.

    ## 3.3 Transposed convolution: the lecture's 2 x 2 -> 4 x 4 example

    Lecture 002: "Input gives weight for filter". Each input value multiplies a copy of the kernel;
    the copies are placed $S$ pixels apart and **summed where they overlap**:

    $$\text{out}[aS + i,\; bS + j] \mathrel{+}= x[a, b]\; w[i, j].$$

    Lecture 003's numbers: kernel
    $\begin{smallmatrix}1&4&1\\1&4&3\\3&3&1\end{smallmatrix}$, input
    $\begin{smallmatrix}2&1\\4&4\end{smallmatrix}$, stride 1:
    """),
    code("""
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
    """),
    md(r"""
    **The matrix view.** In notebook 2 the convolution of a 4 x 4 input with this kernel was
    $\mathbf{y} = C\mathbf{x}$ with the $4 \times 16$ matrix $C$. Multiplying by its transpose
    $C^{\mathsf T}$ ($16 \times 4$) maps a 2 x 2 image back to a 4 x 4 one: that *is* the transposed
    convolution, hence the name. The library offers both ways to compute it:
    `method="im2col"` (fast: col2im of $W^{\mathsf T}x$, exactly the convolution's input gradient) and
    `method="matrix"` (builds $C$ and multiplies by $C^{\mathsf T}$).
    """),
    code("""
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
    """),
    md(r"""
    **Stride 2: the "upconv".** Lecture 002: "каждую клетку надо распаковать в 4 клетки ⇒ свёртка 3 x 3
    со сдвигом 2". With stride $S$ the copies are placed $S$ pixels apart, and the output size inverts
    the convolution's formula:

    $$O = (H - 1)\,S - 2P + D(K - 1) + P_{\text{out}} + 1,$$

    where $P_{\text{out}} < S$ is the `output_padding` argument.

    With $K = 3$, $S = 2$, $P = 0$ a 2 x 2 input becomes 5 x 5; `padding=1` crops one pixel from every
    side of that and `output_padding=1` gives one row and column back at the bottom/right, so 2 x 2 ->
    4 x 4, an exact doubling. And it is still the transpose of a convolution matrix: that of the
    stride-2 convolution that maps 5 x 5 back to 2 x 2.
    """),
    code("""
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
    """),
    md(r"""
    The same thing one input pixel at a time (`minimal_seg.conv_arithmetic`): each pixel writes a
    3 x 3 window of the canvas, the numbers count how many windows have written each cell so far, and
    the hatched border is what `padding=1` crops away.
    """),
    code("""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for step, ax in enumerate(axes):
        draw_transposed_conv(2, 3, stride=2, padding=1, output_padding=1, step=step, ax=ax)
    plt.tight_layout(); plt.show()
    """),
    md(r"""
    ## 3.4 Transpose is not inverse

    $C$ maps 16 numbers to 4, so no matrix can undo it; $C^{\mathsf T}$ only has the right *shape*.
    Convolve and transpose-convolve the 4 x 4 input of notebook 2: we do not get it back.
    """),
    code("""
    x4 = np.arange(16, dtype=np.float64).reshape(4, 4)
    y = C @ x4.ravel()
    back = (C.T @ y).reshape(4, 4)
    print("C C^T =\\n", C @ C.T)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    plot_matrix(x4, ax=axes[0], fmt="{:.0f}", title="x")
    plot_matrix(y.reshape(2, 2), ax=axes[1], fmt="{:.0f}", title="C x")
    plot_matrix(back, ax=axes[2], fmt="{:.0f}", title="C^T C x  (not x!)")
    plt.show()
    assert not np.allclose(back, x4) and np.linalg.matrix_rank(C.T @ C) == 4
    """),
    md(r"""
    What the transpose *does* guarantee is the **adjoint identity**
    $\langle C\mathbf{x}, \mathbf{y}\rangle = \langle \mathbf{x}, C^{\mathsf T}\mathbf{y}\rangle$
    for every $\mathbf{x}, \mathbf{y}$. It is why the transposed convolution's forward pass is the
    convolution's backward pass (and vice versa). Checked for a strided, padded, multi-channel case:
    """),
    code("""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, 3, 3))                    # conv: 2 -> 3 channels
    xa = rng.standard_normal((1, 2, 9, 8))
    opts = dict(stride=2, padding=1)
    cx, _ = F.conv2d_forward(xa, w, **opts)                  # (1, 3, 5, 4)
    yb = rng.standard_normal(cx.shape)
    cty, _ = F.conv_transpose2d_forward(yb, w, **opts, output_padding=(0, 1))   # back to (1, 2, 9, 8)
    print(f"<Cx, y> = {np.sum(cx * yb):.10f}\\n<x, C^T y> = {np.sum(xa * cty):.10f}")
    assert cty.shape == xa.shape and np.isclose(np.sum(cx * yb), np.sum(xa * cty))
    """),
    md(r"""
    ## 3.5 The checkerboard effect, seen in the overlap map

    With kernel 3 and stride 2 the copies of the kernel overlap *unevenly*: some output pixels get
    one copy, some two, some four. Transposed-convolving an all-ones input with an all-ones kernel counts
    the copies at each pixel (the **overlap map**). Whatever a trained kernel learns, it has to fight
    this pattern, and the result often shows a checkerboard. When the kernel size is a multiple of the
    stride the overlap is even (away from the border).
    """),
    code("""
    ones = np.ones((1, 1, 6, 6))
    cases = [(3, 2), (4, 2), (2, 2)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (k, s) in zip(axes, cases):
        overlap, _ = F.conv_transpose2d_forward(ones, np.ones((1, 1, k, k)), stride=s)
        plot_matrix(overlap[0, 0], ax=ax, fmt="{:.0f}", vmin=0, vmax=4, fontsize=7,
                    title=f"kernel {k}, stride {s}: overlap map")
    plt.show()
    """),
    md(r"""
    The overlap map is the worst case, an all-ones kernel. A kernel whose shifted copies add up to a
    constant turns a flat input into a flat output: the **bilinear kernel** below is one, and FCN
    initialises its transposed convolutions with it (training may move them away from it again).

    ## 3.6 Bilinear upsampling and the bilinear kernel

    Bilinear upsampling (PyTorch's `align_corners=False`) interpolates linearly along each axis.
    Output pixel $o$ of an axis reads the input at the real coordinate
    $u = \max\big((o + \tfrac12)\,\tfrac{H_\text{in}}{H_\text{out}} - \tfrac12,\; 0\big)$:

    $$\text{out}[o] = (1 - t)\,x[i_0] + t\,x[i_1], \qquad i_0 = \lfloor u \rfloor,\;
    i_1 = \min(i_0 + 1, H_\text{in} - 1),\; t = u - i_0 .$$

    One axis is a matrix $A$ ($H_\text{out} \times H_\text{in}$); the image is $A_h X A_w^{\mathsf T}$.
    """),
    code("""
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
    """),
    md(r"""
    Upsampling by an integer factor $s$ is also a transposed convolution with kernel $2s$, stride $s$,
    padding $s/2$ and the **bilinear kernel**
    $w[i, j] = f(i) f(j)$, $f(i) = 1 - |i - c| / s$ (a tent; `F.bilinear_kernel`). Away from the
    border (where bilinear upsampling repeats the edge and the transposed convolution sees zeros) the
    two agree exactly; this is how FCN starts its learned upsampling layers.
    """),
    code("""
    s = 2
    tent = F.bilinear_kernel(2 * s)
    print("bilinear kernel 4 x 4:\\n", tent)
    img = np.random.default_rng(1).standard_normal((1, 1, 6, 6))
    by_conv, _ = F.conv_transpose2d_forward(img, tent[None, None], stride=s, padding=s // 2)
    by_interp, _ = F.upsample_bilinear_forward(img, scale=s)
    assert np.allclose(by_conv[0, 0, 1:-1, 1:-1], by_interp[0, 0, 1:-1, 1:-1])

    overlap, _ = F.conv_transpose2d_forward(np.ones((1, 1, 4, 4)), tent[None, None], stride=s, padding=s // 2)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    axes[0].imshow(img[0, 0], cmap="viridis"); axes[0].set_title("input 6 x 6")
    axes[1].imshow(by_interp[0, 0], cmap="viridis"); axes[1].set_title("bilinear upsampling x2")
    axes[2].imshow(by_conv[0, 0], cmap="viridis"); axes[2].set_title("transposed conv, bilinear kernel")
    plot_matrix(overlap[0, 0], ax=axes[3], fmt="{:.2f}", fontsize=7, title="its overlap map (4 x 4 input)")
    for ax in axes[:3]:
        ax.set_axis_off()
    plt.show()
    """),
    md(r"""
    ## Summary

    * Max pooling keeps the largest value of each window and (in the library) the flat index $hW + w$
      of the winner; its gradient flows to the winners only.
    * Unpooling without weights: bed of nails, nearest neighbour, and max unpooling with the saved
      indices (SegNet).
    * The transposed convolution adds a copy of the kernel, weighted by each input value, $S$ pixels
      apart. It is multiplication by $C^{\mathsf T}$: the lecture's 2 x 2 -> 4 x 4 example is
      $C^{\mathsf T}$ (16 x 4) times the input.
    * $C^{\mathsf T}$ is not $C^{-1}$; what holds is $\langle Cx, y\rangle = \langle x, C^{\mathsf T}y\rangle$,
      so a transposed convolution's forward pass is a convolution's backward pass.
    * Uneven overlap (kernel size not a multiple of the stride) is the source of checkerboard artefacts;
      the bilinear kernel is a transposed convolution that upsamples smoothly.

    ## Exercises

    1. Max pooling with kernel 3, stride 1, padding 1 keeps the size. What does it do to a binary mask?
       Look at `cache.indices`: which pixels win several windows?
    2. For non-overlapping windows, show that `max_pool2d_backward(dout)` equals
       `max_unpool2d_forward(dout, indices)`. Why does this fail when stride < kernel?
    3. *Transpose is not inverse.* Find a nonzero 4 x 4 input $x$ with $Cx = 0$ (hint: the null space of
       $C$ from `np.linalg.svd`). What is $C^{\mathsf T} C x$? Compare $C^{\mathsf T}$ with the
       pseudo-inverse `np.linalg.pinv(C)`.
    4. Draw the overlap maps of (kernel, stride) = (5, 2), (6, 3), (4, 3). State the rule.
    5. Build the 2-D bilinear matrix as `np.kron(A_h, A_w)` and check it against
       `upsample_bilinear_forward` on a 3 x 5 input upsampled to 7 x 9.
    """),
]


# =====================================================================================================
# 4. From classifier to FCN
# =====================================================================================================

NOTEBOOKS["04_classifier_to_fcn"] = [
    md(r"""
    # 4. From a classifier to a fully convolutional network

    *Lecture 001 ("Скользящее окно", "Тепловая карта", "Маска класса", "ФС слои: фиксированный размер",
    "Свёртка 1 x 1", "Полносвёрточная сеть (FCN)", "FCN + argmax", "FCN + upscale + argmax",
    "Обучение FCN", "Постобработка: DL + CRF"), lecture 004 (sliding window).*

    The lecture's path from image classification to segmentation:

    1. run a classifier on every window of the image (**sliding window**) -> a class **heatmap**;
    2. notice that the fully connected (FC) layers are convolutions in disguise: rewrite them as
       $h \times w$ and **1 x 1 convolutions**, and the classifier runs on a whole image in one pass;
    3. **FCN + upscale + argmax**: upsample the coarse heatmap back to the image and take the best
       class per pixel;
    4. train it end to end with a **per-pixel softmax cross-entropy**; add skips from earlier layers
       (**FCN-32s vs FCN-8s**).

    The classifier and its conversion live in `minimal_seg.classical.sliding_window`.
    """),
    SETUP,
    code("""
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
    """),
    md(r"""
    ## 4.1 Sliding window -> heatmap -> class mask

    A small classifier for 16 x 16 windows: two unpadded convolutions with max pooling, then
    `Flatten` and two fully connected layers. A window's label is the class of its centre pixel
    (background, circle, square, triangle; black, blue, orange, green in the masks). We train it on 4000
    random windows of 128 `Shapes` images.
    """),
    code("""
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
    """),
    md(r"""
    Now slide it over a new image, one window at a time, with a step of 4 pixels: the loop version.
    Every window gives 4 class scores, so the result is a heatmap (4, 9, 9): cell $(i, j)$ belongs to the
    window with top-left corner $(4i, 4j)$. The library's `sliding_window_heatmap` does the same with
    the windows batched.
    """),
    code("""
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
    """),
    md(r"""
    ## 4.2 FC layers need a fixed size

    The first FC layer multiplies a flattened feature map of exactly $16 \cdot 2 \cdot 2 = 64$ numbers
    ("ФС слои: фиксированный размер"). A whole 48 x 48 image gives a larger map, and the classifier refuses:
    """),
    code("""
    try:
        classifier(image[None])
    except Exception as error:
        print(type(error).__name__, ":", error)
    """),
    md(r"""
    ## 4.3 FC layers are convolutions: $h \times w$ and 1 x 1

    The first FC layer sees a feature map $(C, h, w)$ flattened row-major, so its weight matrix
    $W \in \mathbb{R}^{D \times C h w}$ *is* a convolution kernel of shape $(D, C, h, w)$: on a map of
    exactly $h \times w$ it has one output position, and that output equals $W\,\mathrm{vec}(\cdot)$.
    Every later FC layer sees a $1 \times 1$ "map" and becomes a **1 x 1 convolution**
    ("Свёртка 1 x 1"; "Conv H x W", then "Conv 1 x 1" on the slide):

    $$\text{Linear}\; W\,(D, C h w) \;\to\; \text{Conv2d}\; W.\mathrm{reshape}(D, C, h, w), \qquad
    \text{Linear}\; W\,(D', D) \;\to\; \text{Conv2d}\; W.\mathrm{reshape}(D', D, 1, 1).$$
    """),
    code("""
    conv_part = nn.Sequential(*classifier.layers[:6])        # conv, ReLU, pool, conv, ReLU, pool
    features = conv_part(val_crops[:5])                      # 5 windows -> (5, 16, 2, 2)
    fc1 = classifier[7]                                      # Linear(64, 32), after Flatten
    by_linear = fc1(features.reshape(5, -1))                 # (5, 32)
    conv1 = linear_to_conv(fc1, features.shape[1:])          # Conv2d(16, 32, kernel (2, 2))
    by_conv = conv1(features)                                # (5, 32, 1, 1)
    print(conv1, " weight", conv1.params["w"].shape)
    assert np.allclose(by_linear, by_conv[:, :, 0, 0], atol=1e-5)
    """),
    md(r"""
    `fc_to_conv` converts the whole classifier. The converted network accepts **any** image size and
    returns the whole heatmap in **one pass**: overlapping windows share their convolutions instead of
    recomputing them. The stride between heatmap cells is the product of the pooling strides, $2 \cdot 2 = 4$.
    """),
    code("""
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
    """),
    md(r"""
    ## 4.4 FCN + argmax, FCN + upscale + argmax

    The argmax of the heatmap is a 9 x 9 class map, 4 pixels per cell. "FCN + upscale + argmax":
    upsample the *scores* bilinearly first and take the argmax per pixel: the boundaries stop being
    blocky. (Cell $i$ is centred on pixel $4i + 7.5$; after x4 upsampling it sits at $4i + 1.5$, so the
    upsampled map is shifted by 6 pixels, and the 6-pixel border no window centre reaches is filled with
    the nearest value.)
    """),
    code("""
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
    """),
    md(r"""
    ## 4.5 Training an FCN: per-pixel softmax cross-entropy

    Instead of training on windows, train the fully convolutional network on whole images against the
    ground-truth mask ("Обучение FCN": input $X$, prediction $F(X)$, ground truth $Y$). With logits
    $z_i \in \mathbb{R}^K$ at pixel $i$, $p_i = \mathrm{softmax}(z_i)$ and the true class $y_i$, the loss
    averages a classification loss over all $N$ pixels:

    $$L = -\frac{1}{N}\sum_{i} \log p_{i, y_i}, \qquad
    \frac{\partial L}{\partial z_{i,k}} = \frac{1}{N}\big(p_{i,k} - [k = y_i]\big).$$

    The loop version on a 2 x 2 image with 3 classes, against the library:
    """),
    code("""
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
    """),
    md(r"""
    ## 4.6 FCN-32s vs FCN-8s

    The library's FCN has a VGG-like encoder of five stages (two 3 x 3 conv + BN + ReLU, then a 2 x 2
    max pool), the FC layers as convolutions (`fc6` 3 x 3, `fc7` 1 x 1), a 1 x 1 `score` layer and
    transposed convolutions initialised to bilinear upsampling (notebook 3):

    $$\text{FCN-32s:}\quad \text{up}_{32}\big(\text{score}(\text{pool}_5)\big)$$
    $$\text{FCN-8s:}\quad \text{up}_{8}\Big(\text{up}_2\big(\text{up}_2(\text{score}(\text{pool}_5)) +
    \text{score}_4(\text{pool}_4)\big) + \text{score}_3(\text{pool}_3)\Big)$$

    On a 64 x 64 image `pool5` is 2 x 2: FCN-32s has to paint the whole mask from four score vectors,
    FCN-8s adds the 8 x 8 scores of `pool3` ("FCN + upscale" with the outputs of the pooling layers).
    Both are trained below with the same budget: 60 steps of 8 images, Adam, cosine schedule.
    """),
    code("""
    shapes_train = Shapes(256, image_size=64, seed=0)
    shapes_val = Shapes(64, image_size=64, seed=1_000_000)

    def fit(model, data, steps, batch_size=8, lr=3e-3, seed=0):
        \"\"\"The training loop of the lecture, built from the library's pieces; returns the step losses.\"\"\"
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
    """),
    code("""
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
    """),
    md(r"""
    At this tiny budget neither network is good, but the direction is the lecture's: FCN-32s can only
    paint smooth blobs from its 2 x 2 score map ("слишком резкий upsampling - границы не чёткие") and mostly
    predicts background, while FCN-8s, which adds scores from the 1/16 and 1/8 resolution maps, finds the
    shapes and their outlines. (FCN-32s is also the *slower* of the two here: its final transposed
    convolution has a 64 x 64 kernel.)

    ## 4.7 Post-processing: network + CRF

    Lecture 001 ends the classical part with a **conditional random field**: the network's softmax
    gives the unary term, and a pairwise term rewards neighbouring pixels of similar colour for
    taking the same label,

    $$E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j), \qquad \Phi = -\log p_i(x_i), \quad
    \Psi = [x_i \ne x_j]\, k(f_i, f_j).$$

    `dense_crf` minimises it approximately by mean-field iterations. On a blocky, noisy,
    FCN-32s-like prediction of a simple scene it snaps the boundaries to the image edges:
    """),
    code("""
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
    """),
    md(r"""
    ## Summary

    * A classifier slid over the image gives a class heatmap; its argmax is a (coarse) class mask.
    * FC layers need a fixed input size, but they are convolutions: the first one an $h \times w$
      convolution, the rest 1 x 1. Converted, the classifier runs on any image in one pass, with the
      same numbers as the sliding window.
    * FCN + upscale + argmax: upsample the scores (bilinearly), then take the argmax per pixel.
    * Train end to end with the per-pixel softmax cross-entropy, whose gradient is $(p - g)/N$.
    * Skips from higher-resolution layers (FCN-8s) give much better masks than one 32x upsampling
      (FCN-32s); a CRF can clean boundaries afterwards.

    ## Exercises

    1. Slide the classifier with stride 1 (`sliding_window_heatmap(..., stride=1)`). Can the converted
       network produce this heatmap in one pass? (Hint: the pools fix the stride; try shifted inputs.)
    2. Why must the classifier's convolutions be unpadded for `fc_to_conv` to reproduce the sliding
       window exactly? Build a padded variant and measure the difference.
    3. Count the multiply-adds of the window loop and of the one-pass FCN for a 48 x 48 image.
    4. Train FCN-16s with the same budget and place it between FCN-32s and FCN-8s.
    5. Run `dense_crf` on the softmax of the trained FCN-32s for a validation image
       (`method="fast"`). Does it help a prediction that is wrong on most shapes? Why not?
    """),
]


# =====================================================================================================
# 5. Encoder-decoder and skip connections: U-Net
# =====================================================================================================

NOTEBOOKS["05_unet_and_skips"] = [
    md(r"""
    # 5. Encoder-decoder and skip connections: U-Net

    *Lecture 000 ("U-Net", "Плюсы U-Net", "Минусы U-Net"), lecture 001 ("Skipped connections", "U-Net"),
    lecture 002 ("свернули в скрытое представление, развернули, спрогнозировали"; "можно добавить связи
    между слоями, отражающими одинаковую абстракцию"), lecture 004 (hourglass, "песочные часы").*

    An **encoder-decoder** ("hourglass") squeezes the image into a small, deep representation and
    expands it back. What the encoder threw away (exact positions, thin structures) the decoder cannot
    invent. **Skip connections** hand each decoder level the encoder's features of the same resolution:
    that is U-Net. We build it, check that its hand-written backward pass is right, train it with and
    without skips, and test the lecture's list of pros and cons by experiment.

    Colours in the masks: background black, circle blue, square orange, triangle green.
    """),
    SETUP,
    code("""
    import tempfile
    import time

    from minimal_seg import functional as F
    from minimal_seg.classical import boundaries
    from minimal_seg.gradcheck import gradcheck_layer
    from minimal_seg.metrics import ConfusionMatrix, iou
    from minimal_seg.models import UNet
    from minimal_seg.train import TrainConfig, predict, train
    from minimal_seg.viz import colorize, plot_matrix, plot_predictions
    """),
    md(r"""
    ## 5.1 The architecture

        x ─ enc0 ─────────────────────────────── cat ─ dec0 ─ head ─ logits
              └ pool ─ enc1 ───────────── cat ─ dec1 ┘ up0
                          └ pool ─ enc2 ─ cat ─ dec2 ┘ up1
                                     └ pool ─ bottleneck ┘ up2

    Every `enc`/`dec` block is two 3 x 3 convolutions (+ batch norm + ReLU); level $l$ has
    $b \cdot 2^l$ channels; `up` is a 2 x 2 transposed convolution with stride 2 (notebook 3); `cat`
    concatenates the encoder's features with the upsampled ones along the channel axis. With
    `skips=False` the `cat`s disappear: the plain hourglass. Shapes for a 32 x 32 input, $b = 8$:
    """),
    code("""
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
    """),
    md(r"""
    ## 5.2 A tensor used twice: its gradient is the sum

    The output of `enc0` feeds two paths: the pool (down the encoder) and the skip (to `dec0`). In the
    backward pass both paths send a gradient back, and by the chain rule
    $\frac{\partial L}{\partial e} = \frac{\partial L}{\partial e}\big|_{\text{pool path}} +
    \frac{\partial L}{\partial e}\big|_{\text{skip path}}$: **add, never overwrite** (the micrograd lesson).
    Concatenation's backward simply splits the gradient into the two inputs' channels:
    """),
    code("""
    a = np.ones((1, 2, 2, 2)); b = 2 * np.ones((1, 3, 2, 2))
    cat, cache = F.concat_forward([a, b])                    # (1, 5, 2, 2)
    da, db = F.concat_backward(np.arange(20.0).reshape(1, 5, 2, 2), cache)
    print("cat", cat.shape, "-> gradients", da.shape, db.shape)
    """),
    md(r"""
    `gradcheck_layer` compares the hand-written backward of a whole (tiny, float64) U-Net with central
    differences along random directions, for the input and every parameter. Then we break it on purpose:
    keep only the skip path's gradient at the encoder, as a tempting `d = d_skip` would.
    """),
    code("""
    tiny = UNet(in_channels=1, num_classes=3, base_channels=2, depth=1, seed=0).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    report = gradcheck_layer(tiny, x, directions=3)
    print(f"correct U-Net: passed = {report.passed}, worst relative error {report.max_rel_error:.1e}")
    assert report.passed

    tiny._skip_sum = lambda d_pool, d_skip: d_skip           # overwrite instead of add
    broken = gradcheck_layer(tiny, x, directions=3)
    print(f"overwriting:   passed = {broken.passed}")
    print("\\n".join(line for line in str(broken).splitlines() if "FAIL" in line))
    assert not broken.passed
    """),
    md(r"""
    Everything *after* the skip (bottleneck, decoder, head) is still right; every tensor before it
    (the encoder and the input) gets a wrong gradient, and training would quietly get worse.

    ## 5.3 Training with and without skips

    Both networks get the same data (192 `Shapes` images of 32 x 32), the same budget (4 epochs of
    24 steps, batch 8, Adam, cosine schedule) and the same seed, through the library's `train`
    (what `python -m minimal_seg train` runs). The checkpoints go to a temporary folder.
    """),
    code("""
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
    """),
    code("""
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
    """),
    md(r"""
    Without skips the decoder has to rebuild every boundary from the 4 x 4 bottleneck: the masks come out
    as rounded blobs, the background IoU drops, and the blobs carry the regular texture of the 2 x 2,
    stride-2 transposed convolutions (each input pixel stamps one copy of the kernel, notebook 3). With skips the outlines come straight from the
    full-resolution encoder features. (At this budget neither model tells the three shapes apart well;
    that is the next point.)

    ## 5.4 The lecture's pros and cons, by experiment

    **Pros** ("Плюсы U-Net"): computationally efficient; trains on a small data set; made for
    biomedical images (notebook 6 trains it on the nuclei image).

    **Cheap.** The model above has about 120 thousand parameters and segments a batch in milliseconds
    on a CPU:
    """),
    code("""
    model = runs["with skips"]["model"]
    t0 = time.perf_counter()
    predict(model, val_set.images)
    print(f"{model.num_parameters():,} parameters; {len(val_set)} images of 32 x 32 in "
          f"{1000 * (time.perf_counter() - t0):.0f} ms")
    """),
    md(r"""
    **Small data.** Train the same U-Net on only 24 images (each repeated 8 times per epoch, so the
    number of steps stays the same) and compare with the 192-image run:
    """),
    code("""
    small = run(num_train=24, repeat=8)
    print(f"val mIoU after training on 24 images: {small['history'][-1]['val_miou']:.3f},   "
          f"on 192 images: {runs['with skips']['history'][-1]['val_miou']:.3f}")
    """),
    md(r"""
    **Cons** ("Минусы U-Net"): multi-class segmentation is harder (FPN and PSPNet, with their
    multi-scale context, do better); and **boundaries**. Both show up in the errors of the trained model.

    *Multi-class.* Merge the three shapes into one "object" class: the object/background mask is
    almost right, and most of the remaining errors are confusions *between* shapes, which need the
    context of a whole shape rather than local evidence.
    """),
    code("""
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
    """),
    md(r"""
    Within this budget 24 images are about as good as 192: the network does not memorise a small set
    quickly, because every image holds hundreds of labelled pixels, not one label. (Train much longer
    and it will; augmentation, notebook 6, is the usual remedy.)

    *Boundaries.* Where are the object/background mistakes? Measure how far each pixel is from the
    nearest true object boundary. The distance map comes from growing the boundary map one pixel at a
    time, and a 3 x 3 max pool with stride 1 (notebook 3) is exactly one step of that growth
    (a morphological dilation).
    """),
    code("""
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
    axes[2].imshow(wrong[i], cmap="Reds"); axes[2].set_title("object/background\\nerrors")
    axes[3].imshow(distance[i], cmap="viridis"); axes[3].set_title("distance to a boundary\\n(capped at 5)")
    for ax in axes:
        ax.set_axis_off()
    plt.show()
    """),
    md(r"""
    Nearly all object/background errors sit on or next to a boundary: the interior of shapes and the
    open background are easy, the outline is where U-Net hesitates.

    ## Summary

    * Encoder-decoder ("hourglass"): down to a small deep representation, then back up.
      U-Net adds skip connections that concatenate encoder features to the decoder level of the same size.
    * A tensor used by two paths receives the **sum** of their gradients; overwriting it breaks every
      gradient before the skip, which `gradcheck_layer` catches at once.
    * With the same budget, skips give sharper masks and higher mIoU than the plain hourglass.
    * U-Net is cheap and learns from few images (augmentation helps); its weak points are telling many
      classes apart (context) and the pixels at boundaries.

    ## Exercises

    1. Replace the transposed-convolution `up` by `up="nearest"` or `up="bilinear"` (a 1 x 1 conv after
       the upsampling). Compare mIoU and look for checkerboard patterns in the logits.
    2. LinkNet adds the skip instead of concatenating it (`build_model("linknet", ...)`). Write down the
       backward pass of an additive skip. What changes in the parameter count?
    3. Train with `depth=2` and `depth=4`. How does the receptive field (notebook 2) of the bottleneck
       relate to telling circles from squares?
    4. Plot the error rate against the distance to a boundary for the model *without* skips.
    5. Train on 8 and on 4 images. Where does "trains on a small data set" stop being true here?
    """),
]


# =====================================================================================================
# 6. Losses and practice
# =====================================================================================================

NOTEBOOKS["06_losses_and_practice"] = [
    md(r"""
    # 6. Losses and practice

    *Lecture 000 ("Loss": binary cross-entropy, categorical cross-entropy, Sørensen-Dice, Jaccard;
    "Приёмы": the training set can be smaller, augmentation, training on crops), lecture 003 (Dice).*

    Four losses, each with its gradient, checked by a loop on a hand example and by a numerical
    gradient check. Then what they do about **class imbalance**, and the lecture's practical tricks:
    **augmentation**, **training on crops and predicting whole images**, on the real nuclei image.

    Notation: logits $z$ (N, K, H, W); $p = \mathrm{softmax}(z)$ over the class axis; labels $y$;
    one-hot $g$; the sums run over all pixels $i$ of the batch.
    """),
    SETUP,
    code("""
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
    """),
    md(r"""
    ## 6.1 Binary cross-entropy

    One logit per pixel, a target $t \in \{0, 1\}$, $s = \sigma(z)$:

    $$\ell = -\big(t \log s + (1 - t)\log(1 - s)\big), \qquad \frac{\partial \ell}{\partial z} = s - t .$$

    The library computes it from the logits without ever forming $\log 0$:
    $\ell = (1 - t)\,z + \log(1 + e^{-z})$, with the softplus evaluated stably. The loss is the mean over
    pixels. Hand example: four pixels.
    """),
    code("""
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
    """),
    md(r"""
    ## 6.2 Categorical cross-entropy, Dice and Jaccard

    **Categorical cross-entropy** (notebook 4): $L = -\frac1N \sum_i \log p_{i, y_i}$, gradient
    $\frac1N (p - g)$.

    **Dice** and **Jaccard** are the metrics of notebook 1 made differentiable: replace the hard
    masks by the probabilities. Per class $k$, with $I_k = \sum_i p_{ik} g_{ik}$ (soft intersection),
    $P_k = \sum_i p_{ik}$, $G_k = \sum_i g_{ik}$ and a small smoothing constant $s$:

    $$\mathrm{Dice}_k = \frac{2 I_k + s}{P_k + G_k + s}, \qquad
    J_k = \frac{I_k + s}{P_k + G_k - I_k + s}, \qquad L = 1 - \frac{1}{K}\sum_k (\cdot)_k .$$

    By the quotient rule, for every pixel,

    $$\frac{\partial\,\mathrm{Dice}_k}{\partial p_{ik}} = \frac{2 g_{ik} - \mathrm{Dice}_k}{P_k + G_k + s},
    \qquad
    \frac{\partial J_k}{\partial p_{ik}} = \frac{g_{ik}(1 + J_k) - J_k}{U_k + s}, \quad U_k = P_k + G_k - I_k,$$

    and the softmax's backward takes it from $p$ to $z$. Note the denominators: a class's gradient is
    divided by its own size. The loop version of the soft Dice and Jaccard on a 2 x 2 image:
    """),
    code("""
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
    """),
    md(r"""
    The gradients are checked numerically (central differences along every entry of the logits,
    float64, a random upstream gradient; a correct backward gives about $10^{-9}$):
    """),
    code("""
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
    """),
    md(r"""
    ## 6.3 Class imbalance: who gets the gradient?

    In `Shapes` most pixels are background and triangles are the rarest class. Cross-entropy gives
    every *pixel* the same weight, so the total push towards a class is proportional to its area.
    Two remedies:

    * **class weights**: $L = \sum_i w_{y_i}(-\log p_{i, y_i}) / \sum_i w_{y_i}$ with, e.g.,
      $w_k \propto 1 / f_k$ ($f_k$ = the class's pixel frequency);
    * **Dice / Jaccard**: every class's score is a ratio, so each class counts $1/K$ however small it is.

    The total gradient magnitude that each class's pixels receive, for the same mediocre prediction
    (the truth plus noise):
    """),
    code("""
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
    """),
    md(r"""
    Does it change what a network learns? Three small U-Nets (depth 2), the same 256 images, the same
    150 steps, differing only in the loss. Besides IoU we look at each class's **recall** (the fraction
    of its pixels found) and at how much of the image the network *predicts* as that class.
    """),
    code("""
    val = Shapes(64, image_size=32, seed=1_000_000)

    def fit(model, data, steps, loss_fns, batch_size=8, lr=3e-3, seed=0, crop_size=None, transform=None):
        \"\"\"The training loop, from the library's pieces (as in notebook 4); returns the step losses.\"\"\"
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
    """),
    md(r"""
    With plain cross-entropy the network hardly ever says "triangle": it predicts a small fraction of
    the triangles' true area and finds few of them, while pixel accuracy looks fine. Class weights make
    it predict the rare class more often (higher recall, lower pixel accuracy: the price is paid in
    the frequent classes). Dice, which scores each class as a ratio, gives the rarest class the best IoU
    here. Exact numbers move with the seed at this tiny budget; the direction is what to look at.

    ## 6.4 Augmentation

    "Можно делать аугментацию": flips and quarter turns change the image and its mask *in the same way*
    and create no new pixel values, so the mask stays exact. Together they are the 8 symmetries of a
    square (`default_augmentation` draws one at random per sample):
    """),
    code("""
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
    """),
    md(r"""
    ## 6.5 Training on crops, predicting whole images: the nuclei image

    "Не всегда размер картинки умещается в память: обучаемся на кропах картинки". The library's nuclei
    data is one real 512 x 512 fluorescence image (2018 Data Science Bowl): three 256 x 256 quadrants
    for training, the fourth for testing. A convolution's im2col matrix grows with the image; for the
    first 3 x 3 layer of our U-Net (8 channels) in float32:
    """),
    code("""
    nuclei_train, nuclei_test = Nuclei("train"), Nuclei("test")
    for side in (512, 256, 48):
        print(f"{side:>3} x {side:<3} image: im2col of one 8-channel 3 x 3 conv = {8 * 9 * side * side * 4 / 2**20:7.2f} MiB")
    print("nucleus pixels in the training quadrants:", np.round(nuclei_train.class_frequencies()[1], 3))
    """),
    md(r"""
    So we train on random 48 x 48 crops (with random flips and turns) and, because the network is
    fully convolutional, predict the whole 256 x 256 test quadrant in one pass. The baseline to beat is
    **Otsu's threshold**: one global intensity threshold chosen per image, no learning at all.
    """),
    code("""
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
    """),
    code("""
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
    axes[0].plot(history); axes[0].set_yscale("log"); axes[0].set_xlabel("step"); axes[0].set_title("training loss")
    axes[0].grid(alpha=0.3)
    panels = [(to_display(test_image), "test quadrant (never seen)"), (overlay(test_image, test_mask), "truth"),
              (overlay(test_image, pred), f"U-Net, Dice {dice_unet:.3f}"),
              (overlay(test_image, otsu.astype(int)), f"Otsu, Dice {dice_otsu:.3f}")]
    for ax, (picture, title) in zip(axes[1:], panels):
        ax.imshow(picture, cmap="gray"); ax.set_title(title); ax.set_axis_off()
    plt.show()
    """),
    md(r"""
    After a few seconds of CPU training on crops the U-Net is at or above Otsu's Dice on the unseen
    quadrant (at this budget the margin is small and moves with the seed). Otsu is a strong baseline
    here because the nuclei are bright on a dark background; it fails where nuclei are dim, which is
    where learning pays off. Longer training (`python -m minimal_seg train --data nuclei`) widens the gap.

    ## Summary

    | loss | formula | gradient w.r.t. the scores |
    |---|---|---|
    | BCE | $-(t\log s + (1-t)\log(1-s))$ | $s - t$ (per pixel, / N) |
    | categorical CE | $-\log p_{y}$ | $p - g$ (per pixel, / N) |
    | Dice | $1 - \frac1K\sum_k \frac{2I_k + s}{P_k + G_k + s}$ | $-\frac1K \frac{2g - \mathrm{Dice}_k}{P_k + G_k + s}$ w.r.t. $p$ |
    | Jaccard | $1 - \frac1K\sum_k \frac{I_k + s}{U_k + s}$ | $-\frac1K \frac{g(1 + J_k) - J_k}{U_k + s}$ w.r.t. $p$ |

    * Cross-entropy weighs pixels, so large classes dominate; class weights or a Dice/Jaccard loss
      (which weigh classes) help the rare ones, at some cost in pixel accuracy.
    * Augment with transforms that move pixels without inventing them (flips, turns, crops), applied to
      image and mask alike.
    * A fully convolutional network trains on crops and predicts whole images of any size.

    ## Exercises

    1. Derive $\partial \ell / \partial z = s - t$ for BCE, and the Dice gradient from the quotient rule.
    2. What does `smooth` do to the Dice loss of a class that is absent from both the truth and the
       prediction? Try `smooth=0` on a batch without triangles.
    3. Train with `make_loss("ce+dice")` (the sum) and add it to the table of section 6.3.
    4. Use median-frequency weights $w_k = \mathrm{median}(f) / f_k$. How do they differ from $1/f_k$
       after normalisation?
    5. Train the nuclei U-Net on 32 x 32 and on 96 x 96 crops with the same number of pixels per step.
       Which works better, and why might the crop size matter for a U-Net of depth 3?
    6. Predict the test quadrant tile by tile (four 128 x 128 tiles) and compare with the one-pass
       prediction. Where do they differ, and why?
    """),
]


# =====================================================================================================
# 7. Dilated convolution and ASPP
# =====================================================================================================

NOTEBOOKS["07_dilation_and_aspp"] = [
    md(r"""
    # 7. Dilated (atrous) convolution and ASPP

    *Lecture 001 ("Дилатационная свёртка (dilated, atrous)": "Количество параметров: 3 × 3",
    "Рецептивное поле: 5 × 5"; $d = 1, 2, 3$; "Atrous spatial pyramid pooling": Encoder → ASPP → Decoder).*

    A segmentation network needs a large receptive field (to know *what* a pixel belongs to) and a
    fine output (to know *where* the boundary is). Pooling buys the first and loses the second.
    A **dilated** ("atrous", *à trous*: with holes) convolution spreads the same $3 \times 3$ weights
    over a larger window, so the field grows without pooling and without more weights. **ASPP** runs
    several dilation rates side by side, which is the head of DeepLab.

    This notebook checks a loop version against the library, shows that a dilated kernel *is* a larger
    kernel with zeros in it, measures receptive fields with the backward pass (and the holes a bad
    choice of rates leaves), takes apart the library's ASPP block, checks its gradient, and trains a
    small DeepLab.
    """),
    SETUP,
    code("""
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
    """),
    md(r"""
    ## 7.1 The loop version and the lecture's example

    With dilation $d$ the kernel taps are $d$ pixels apart (zero padding $P$ around $x$):

    $$\text{out}[p, q] = \sum_{i=0}^{K-1} \sum_{j=0}^{K-1} w[i, j]\; x_{\text{pad}}[p + i\,d,\; q + j\,d].$$

    $d = 1$ is the ordinary convolution. The window spans $d(K-1) + 1$ pixels: for $K = 3$ that is
    3, 5, 7 for $d = 1, 2, 3$.
    """),
    code("""
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
    """),
    md(r"""
    **Hand example.** The 3 x 3 kernel of lecture 003 on a 7 x 7 input $x = 0, 1, \dots, 48$ (row by
    row), $d = 2$, no padding. The window is 5 x 5, so the output is $7 - 5 + 1 = 3$ pixels wide.
    The top-left output reads rows 0, 2, 4 and columns 0, 2, 4, i.e. the values 0, 2, 4, 14, 16, 18,
    28, 30, 32:
    $1\cdot0 + 4\cdot2 + 1\cdot4 + 1\cdot14 + 4\cdot16 + 3\cdot18 + 3\cdot28 + 3\cdot30 + 1\cdot32 = 350$.
    """),
    code("""
    kernel = np.array([[1, 4, 1],
                       [1, 4, 3],
                       [3, 3, 1]], dtype=np.float64)
    x = np.arange(49, dtype=np.float64).reshape(7, 7)
    out_loop = dilated_conv_loop(x, kernel, dilation=2)
    out_lib, _ = F.conv2d_forward(x[None, None], kernel[None, None], dilation=2)
    print(out_loop)
    assert out_loop[0, 0] == 350
    assert np.allclose(out_lib[0, 0], out_loop)
    """),
    md(r"""
    ### "Количество параметров: 3 × 3, рецептивное поле: 5 × 5"

    The dilated 3 x 3 kernel is the same operation as a **dense 5 x 5 kernel with zeros inserted**
    between its weights: put $w[i, j]$ at $(2i, 2j)$ and zeros elsewhere. Nine numbers are learned,
    25 pixels are covered. The same holds for every $d$ (a $(2d+1) \times (2d+1)$ kernel with $d - 1$
    zeros between the taps), for many channels, with padding and with stride:
    """),
    code("""
    def with_zeros(w, d):
        \"\"\"(OC, C, K, K) -> (OC, C, d(K-1)+1, d(K-1)+1): the taps d pixels apart, zeros between.\"\"\"
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
    """),
    md(r"""
    The matrix view of notebook 2 says the same: the convolution matrices of the two kernels are
    identical, entry by entry. Each row holds 9 nonzeros spread over a 5 x 5 window of the 7 x 7 input.
    """),
    code("""
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
    """),
    md(r"""
    The backward pass of a dilated convolution is again a dilated convolution (the transposed one, with
    the same $d$); the library's hand-written backward passes the float64 gradient check:
    """),
    code("""
    report = gradcheck(F.conv2d_forward, F.conv2d_backward,
                       {"x": rng.standard_normal((2, 2, 9, 8)), "w": rng.standard_normal((3, 2, 3, 3)),
                        "b": rng.standard_normal(3)}, kwargs={"padding": 2, "dilation": 2})
    print(report)
    assert report.passed
    """),
    md(r"""
    ## 7.2 Pictures: $d = 1, 2, 3$

    The lecture's three pictures, drawn by `minimal_seg.conv_arithmetic` from the library's own
    output-size formula. Here with padding $P = d$, as in ASPP: the output keeps the input's size for
    every $d$, and the window of the output pixel at (1, 1) reaches into the zero padding as $d$ grows.
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, d in zip(axes, (1, 2, 3)):
        drawing = draw_conv(7, 3, padding=d, dilation=d, step=(1, 1), ax=ax)
        rows = [r for r, c in drawing.window]
        assert drawing.output_shape == (7, 7)                 # P = d keeps the size
        assert len(drawing.window) == 9 and max(rows) - min(rows) + 1 == 2 * d + 1
        ax.set_title(f"d = {d}: 9 weights, {2 * d + 1} x {2 * d + 1} field", fontsize=10)
    plt.tight_layout(); plt.show()
    """),
    md(r"""
    "Same" padding for a 3 x 3 kernel with dilation $d$ is $P = d$, whatever the input size, even when
    the window is larger than the input (then most taps only ever see zeros; see 7.5):
    """),
    code("""
    for size in (4, 7, 16, 33):
        for d in range(1, 9):
            assert conv2d_output_shape((size, size), 3, padding=d, dilation=d) == (size, size)
    print("3 x 3, padding d, dilation d keeps 4, 7, 16 and 33 pixels for d = 1..8")
    """),
    md(r"""
    ## 7.3 Receptive fields: the formula and the backward pass

    A stack of layers with kernels $K_l$, strides $S_l$ and dilations $D_l$ sees

    $$r = 1 + \sum_{l} (K_l - 1)\, D_l \prod_{m < l} S_m$$

    pixels along each axis (one layer: $r = D(K-1) + 1$). Notebook 2 drew this for strided stacks; here
    we *measure* it on library layers for many dilation patterns. The gradient of **one** output pixel
    with respect to the input is nonzero exactly on the pixels that output depends on, so one backward
    pass with `dout` = 1 at that pixel draws its receptive field. All weights are made positive so that
    no two paths can cancel.
    """),
    code("""
    def support(layer, x, pixel):
        \"\"\"The input pixels output ``pixel`` (row, col) of image 0 depends on: where its gradient is nonzero.\"\"\"
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
    """),
    md(r"""
    The formula and the backward pass agree for every stack. The last two columns tell a second story:
    a single dilated layer reads only 9 of the $r^2$ pixels in its field (it *has* holes, that is the
    point), and stacking does not always fill them. **Dilations 2, 2, 2 see 49 of 169 pixels**: every
    tap of every layer is an even offset, so the sum of three offsets is even too. Dilations 1, 2, 3
    (or 1, 2, 5) have no common factor, and the offsets fill the whole field.

    ## 7.4 Gridding: neighbouring pixels that never share an input

    The holes have a worse consequence than a sparse field. With 2, 2, 2 an output pixel at an even
    position reads only even input positions and its right-hand neighbour only odd ones: **two
    neighbouring outputs share no input pixel at all**, the image is processed as four interleaved
    sub-images that never meet ("gridding", the checkerboard artefacts of naive dilated stacks).
    Colour each input pixel by *which* of a 2 x 2 block of neighbouring outputs reads it (blue, orange,
    green, red for the four; white where two or more read it):
    """),
    code("""
    block = [(20, 20), (20, 21), (21, 20), (21, 21)]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for k, dilations in enumerate([(2, 2, 2), (1, 2, 3)]):
        net = dilated_stack(dilations)
        masks = [support(net, probe, pixel) for pixel in block]
        readers = sum(m.astype(int) for m in masks)
        owner = sum((n + 1) * m for n, m in enumerate(masks))             # 1..4 where one neighbour reads
        owner[readers > 1] = 10                                            # white: shared
        axes[2 * k].imshow(fields[dilations][12:30, 12:30], cmap="Blues")
        axes[2 * k].set_title(f"dilations {dilations}:\\nfield of one output pixel", fontsize=10)
        axes[2 * k + 1].imshow(colorize(owner[12:30, 12:30]))
        axes[2 * k + 1].set_title(f"which of 4 neighbouring outputs\\nreads each pixel (white: shared)",
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
    """),
    md(r"""
    The cure is the one the numbers suggest: rates without a common factor (the "hybrid dilated
    convolution" rule, e.g. 1, 2, 3 or 1, 2, 5), or an ordinary convolution somewhere in the stack.
    ASPP sidesteps the problem differently: its dilated convolutions are **parallel**, not stacked,
    and every branch reads features that already mix neighbouring pixels.

    ## 7.5 ASPP: atrous spatial pyramid pooling

    The lecture's picture, Encoder → ASPP → Decoder, is `minimal_seg.models.DeepLab` (v3+ style). The
    ASPP block reads the deepest encoder feature map with five parallel branches and concatenates them:

        f ─┬ 1x1 conv ───────────────────────────────────┐
           ├ 3x3 conv, dilation 2 ───────────────────────┤
           ├ 3x3 conv, dilation 4 ───────────────────────┼ cat ─ project (1x1) ─ out
           ├ 3x3 conv, dilation 6 ───────────────────────┤
           └ global average pool ─ 1x1 conv ─ broadcast ─┘   (image-level feature)

    Each conv is followed by batch norm and ReLU (the image-level branch: ReLU only). The paper's rates 6, 12, 18 are for feature maps of
    about 32 x 32 (a 512-pixel image at 1/16); the library scales them down to 2, 4, 6 for the small
    images of the course. Here is the ASPP of a DeepLab with 8 base channels and depth 3, on the
    4 x 4 x 64 feature map a 32 x 32 image gives:
    """),
    code("""
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
    """),
    md(r"""
    Every branch keeps the spatial size (padding = dilation), so they can be concatenated along the
    channels: $5 \times 32 = 160$ channels, projected back to 32 by a 1 x 1 convolution.

    **What each branch sees**, measured with the backward pass on the real block (its real, random
    weights; eval mode, so batch norm uses fixed statistics and does not couple the pixels of a batch).
    On a 17 x 17 feature map the rates give fields of 1, 5, 9, 13 pixels and the image-level branch sees
    everything. On the 4 x 4 map of a 32 x 32 image, rates 4 and 6 see only the pixel itself: all their
    off-centre taps fall into the zero padding, and the 3 x 3 filter degenerates into a 1 x 1 one
    (the reason DeepLab v3 added the image-level branch).
    """),
    code("""
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
    """),
    md(r"""
    ("taps inside" is the average number of the 9 taps that land on the map rather than the padding.)
    So the rates have to match the size of the feature map they read: a rate-6 branch uses all 9 taps
    somewhere only on maps of 13 x 13 and more, i.e. images of about 100 pixels and up at depth 3
    (the map is 1/8 of the image).

    **Parameters.** A dilated 3 x 3 branch covers a $(2d+1) \times (2d+1)$ window with 9 weights per
    channel pair; a dense kernel of the same field needs $(2d+1)^2$:
    """),
    code("""
    print(f"{'branch':<8}{'field':>8}{'dilated 3x3':>14}{'dense kernel':>15}{'ratio':>8}")
    for d in (2, 4, 6):
        dilated = aspp.branches.branches[f"rate{d}"][0].num_parameters()
        dense = nn.Conv2d(64, 32, 2 * d + 1, bias=False).num_parameters()
        assert dilated == 9 * 64 * 32 and dense == (2 * d + 1) ** 2 * 64 * 32
        print(f"rate{d:<4}{2 * d + 1:>5} x {2 * d + 1:<3}{dilated:>11,}{dense:>15,}{dense / dilated:>8.1f}")
    print(f"the whole ASPP block: {aspp.num_parameters():,} parameters")
    """),
    md(r"""
    **The gradient.** The input feature map feeds five branches, so its gradient is the **sum** of the
    five branch gradients (`nn.Parallel`, notebook 5's lesson). A small ASPP in float64, checked entry
    by entry against central differences (input and every parameter):
    """),
    code("""
    tiny = ASPP(3, 2, rates=(2, 3), rng=np.random.default_rng(0)).astype(np.float64)
    x_tiny = np.random.default_rng(1).standard_normal((2, 3, 7, 7)) + 1.0   # mean 1: the image-level ReLU is active
    report = gradcheck_layer(tiny, x_tiny)
    print(report)
    assert report.passed
    assert np.abs(report["branches.image_pool.conv.0.w"].analytic).max() > 0   # so that branch was really checked
    """),
    md(r"""
    ## 7.6 DeepLab: encoder → ASPP → decoder

    The rest of the model is the lecture's diagram. The encoder (VGG-like, three 2 x 2 pools) gives the
    1/8 map for ASPP; the decoder upsamples ASPP's output bilinearly to the 1/4 map, concatenates a
    1 x 1-reduced copy of the encoder's 1/4 features (the "low-level" skip), fuses them with a 3 x 3
    convolution and upsamples the logits 4x to the input:
    """),
    code("""
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
    """),
    md(r"""
    Train it on `Shapes` (192 images of 32 x 32, 4 epochs of 24 steps, batch 8, Adam) through the
    library's `train`, as notebook 5 trained U-Net. The checkpoints go to a temporary folder.
    """),
    code("""
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
    """),
    md(r"""
    After 96 steps the model finds most of the shapes, but telling a square from a
    triangle is still mostly beyond it (look at the IoU per class): the budget is tiny, and on 32 x 32
    images two of its three dilated branches act as 1 x 1 convolutions (7.5). The masks show the
    decoder's design: the logits are computed on the 8 x 8 grid and upsampled 4x bilinearly, so outlines
    are smooth and corners rounded. Notebook 8 trains DeepLab next to U-Net, SegNet, LinkNet and PSPNet
    with the same budget.

    ## Summary

    * A 3 x 3 convolution with dilation $d$ has 9 weights and a $(2d+1) \times (2d+1)$ field
      ("Количество параметров: 3 × 3, рецептивное поле: 5 × 5" for $d = 2$); it equals a dense kernel
      with $d - 1$ zeros between the taps, and padding $P = d$ keeps the size.
    * Receptive field of a stack: $r = 1 + \sum_l (K_l - 1) D_l \prod_{m<l} S_m$; the backward pass of a
      one-pixel gradient measures it, and shows which pixels *inside* the field are actually read.
    * Stacked rates with a common factor (2, 2, 2) leave holes and split the image into sub-grids that
      never meet (gridding); rates like 1, 2, 3 fill the field.
    * ASPP: parallel 1 x 1, dilated 3 x 3 (several rates) and image-level branches, concatenated and
      projected; all keep the size, the input's gradient is the sum over branches. Rates larger than the
      feature map degenerate to 1 x 1 convolutions.

    ## Exercises

    1. Which receptive field has a stack of a stride-2 3 x 3 convolution followed by a dilation-2 one?
       Measure it with `support` (give the first `nn.Conv2d` `stride=2`): are there holes? Why?
    2. Find three rates for three 3 x 3 layers that give a 19 x 19 field without holes, and a set that
       gives 19 x 19 *with* holes.
    3. Show on paper that the backward pass of a dilated convolution with respect to $x$ is a transposed
       convolution with the same dilation; check it with `F.conv_transpose2d_forward`.
    4. Train DeepLab on 64 x 64 images (deepest map 8 x 8) with rates 2, 4, 6 and with rates 1, 1, 1.
       Does the larger context pay off there?
    5. Remove the image-level branch: build an `ASPP` subclass without it and count the parameters.
       On a 4 x 4 map, which of the remaining branches compute nothing but a 1 x 1 convolution?
    """),
]


# =====================================================================================================
# 8. SegNet, LinkNet, PSPNet
# =====================================================================================================

NOTEBOOKS["08_segnet_linknet_pspnet"] = [
    md(r"""
    # 8. SegNet, LinkNet, PSPNet

    *Lecture 000 ("SegNet", "SegNet, результаты", "Linknet", "PS-Net"; "Минусы U-Net: сложнее с
    многоклассовой сегментацией. FPN and PSPNet более приспособлены").*

    U-Net (notebook 5) is one answer to "the decoder must recover what the encoder threw away": send the
    encoder's feature maps across and concatenate them. Three other answers from the lecture:

    | model | what crosses from encoder to decoder | decoder |
    |---|---|---|
    | **SegNet** | only the max-pooling **indices** (where each maximum was) | max unpooling + convolutions |
    | **LinkNet** | the feature maps, **added** (not concatenated) | 1 x 1 → transposed 3 x 3 (stride 2) → 1 x 1 |
    | **PSPNet** | nothing: a **pyramid pooling** head sees the deepest map at 1 x 1, 2 x 2, 3 x 3 and 6 x 6 | bilinear upsampling |

    We check the piece that makes each one different, then train all of them (and U-Net and DeepLab)
    with the same small budget.

    Colours in the masks: background black, circle blue, square orange, triangle green.
    """),
    SETUP,
    code("""
    import tempfile
    import time

    from minimal_seg import functional as F
    from minimal_seg.data import Shapes
    from minimal_seg.gradcheck import gradcheck, gradcheck_layer
    from minimal_seg.models import LinkNet, PSPNet, SegNet, UNet
    from minimal_seg.train import TrainConfig, predict, train
    from minimal_seg.viz import colorize, plot_matrix, to_display
    """),
    md(r"""
    ## 8.1 SegNet: the decoder unpools with the encoder's indices

        x ─ enc0 ─ pool0 ─ enc1 ─ pool1 ─ enc2 ─ pool2 ─┐
                     ┊              ┊              ┊     │  indices (where each max was)
        logits ─ head ─ dec0 ─ unpool0 ─ dec1 ─ unpool1 ─ dec2 ─ unpool2

    Each 2 x 2 max pool remembers, for every window, the flat position $h W + w$ of its maximum; the
    decoder's max unpooling of the same level writes each value back at exactly that position and zeros
    elsewhere. Notebook 3 did this on the lecture's 4 x 4 example. Here: on the real feature maps of a
    SegNet, and why it matters for *where* things are.

    **The loop version** of the indices: for every 2 x 2 window, the position of its maximum.
    """),
    code("""
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
    print("indices of image 0, channel 0, top-left 3 x 3 windows:\\n", loop[0, 0, :3, :3])
    """),
    md(r"""
    The unpooled map has each window's maximum **exactly where the encoder had it**: at the saved
    position $u_0 = e_0$, everywhere else $u_0 = 0$. Nearest-neighbour upsampling (notebook 3) copies
    the maximum to all four pixels of the window instead, so it is right at one of four positions:
    """),
    code("""
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
    """),
    md(r"""
    **Why positions matter: a one-pixel line.** A thin vertical line at an odd column (5) is pooled into
    column 2 of the half-size map. Max unpooling puts it back in column 5: only one pixel of every
    2 x 2 window survives (the maximum; of two equal ones the first), so the line comes back dotted,
    but never in the wrong place. Nearest upsampling fills columns 4 and 5: twice as thick and half a
    pixel off. The decoder's convolutions after the unpooling can fill in dots; a decoder without the
    indices has to guess which of the two columns the line came from.
    """),
    code("""
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
    """),
    md(r"""
    In the model the unpooling layers are *tied* to their pools: `unpools[l]` reads `pools[l].indices`
    of the last forward pass. After a forward through the whole SegNet, values sent through each
    unpool land exactly at the positions its pool saved for this batch, and nowhere else:
    """),
    code("""
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
    """),
    md(r"""
    SegNet carries a quarter as many numbers across as U-Net, and only positions: the decoder gets
    *where* the strong responses were, not *what* they were. That makes it light (no concatenation, so
    its decoder convolutions are as narrow as the encoder's), but the decoder starts from sparse maps
    (three zeros in every 2 x 2 block) that its convolutions must fill in.

    ## 8.2 LinkNet: additive skips and transposed-convolution decoder blocks

        x ─ stage0 ─ f0 ────────────────── + ─ head ─ logits
                      └ pool ─ stage1 ─ f1 ── + ─ dec0 ┘
                                  └ pool ─ stage2 ─ f2 ── + ─ dec1 ┘
                                              └ pool ─ stage3 ─ f3 ─ dec2 ┘

    The encoder feature of each level is **added** to the decoder's output of that level:
    $d_l = f_l + \mathrm{dec}_l(d_{l+1})$. A sum needs equal shapes, so each decoder block brings the
    channels down to the level's width: 1 x 1 conv ($C \to C/4$), 3 x 3 transposed conv with stride 2
    ($C/4 \to C/4$, twice the size, notebook 3), 1 x 1 conv ($C/4 \to C_l$). The shapes through the
    deepest block for a 32 x 32 input and 8 base channels:
    """),
    code("""
    linknet = LinkNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
    unet = UNet(in_channels=1, num_classes=4, base_channels=8, depth=3)
    rows = linknet.summary((1, 1, 32, 32), print_fn=lambda line: None)
    for name, kind, shape, params in rows:
        if name.startswith("dec2") and kind in ("Conv2d", "ConvTranspose2d"):
            print(f"{name:<10}{kind:<17}-> {str(shape):<16}{params:>7,} parameters")
    assert F.conv_transpose_output_size(4, 3, stride=2, padding=1, output_padding=1) == 8
    """),
    md(r"""
    **Sum vs concatenation.** U-Net's decoder block at level $l$ reads $2 C_l$ channels (the upsampled
    features and the skip, concatenated); its first 3 x 3 convolution has $9 \cdot 2C_l \cdot C_l$
    weights. LinkNet's decoder sees only $C_l$ channels, and works at $C/4$ in its middle. Per level:
    """),
    code("""
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
    """),
    md(r"""
    In the backward pass a sum copies the gradient unchanged to both terms, so $f_l$ receives
    $\partial L / \partial d_l$ from the skip plus what comes back through the pool below it (summed,
    never overwritten). A tiny LinkNet in float64 passes the gradient check on its input and every
    parameter:
    """),
    code("""
    tiny = LinkNet(in_channels=1, num_classes=3, base_channels=4, depth=2, seed=0).astype(np.float64)
    report = gradcheck_layer(tiny, np.random.default_rng(0).standard_normal((2, 1, 8, 8)), directions=3)
    print(f"LinkNet: passed = {report.passed}, worst relative error {report.max_rel_error:.1e}")
    assert report.passed
    """),
    md(r"""
    ## 8.3 PSPNet: pyramid pooling

    PSPNet gives every pixel of the deepest map a summary of the whole image at several scales.
    **Adaptive average pooling** to $b \times b$ bins averages over a grid of $b$ bins per axis,
    whatever the input size. Bin $i$ (of $b$) along an axis of $H$ pixels covers the rows

    $$\text{start}_i = \left\lfloor \frac{i\,H}{b} \right\rfloor, \qquad
    \text{end}_i = \left\lceil \frac{(i+1)\,H}{b} \right\rceil \qquad (\text{rows start}_i, \dots, \text{end}_i - 1).$$

    When $b$ divides $H$ the bins tile the map; otherwise neighbouring bins overlap by a row, and when
    $b > H$ several bins read the same row. **The loop version:**
    """),
    code("""
    def bins(H, b):
        return [(i * H // b, -(-(i + 1) * H // b)) for i in range(b)]     # (start, end); -(-a // b) = ceil

    def adaptive_avg_pool_loop(x, b):
        out = np.zeros((b, b))
        for i, (r0, r1) in enumerate(bins(x.shape[0], b)):
            for j, (c0, c1) in enumerate(bins(x.shape[1], b)):
                out[i, j] = x[r0:r1, c0:c1].mean()
        return out

    print("H = 5, b = 3:", bins(5, 3), "   H = 6, b = 3:", bins(6, 3), "   H = 4, b = 6:", bins(4, 6))
    """),
    md(r"""
    **Hand example.** $x = 0, 1, \dots, 24$ as a 5 x 5 map, $b = 3$: the bins are rows (and columns)
    0-1, 1-3, 3-4. Bin (0, 0) averages $0, 1, 5, 6$, that is $3$; bin (1, 1) is the centre 3 x 3 block,
    whose mean is its middle value $12$; bin (2, 2) averages $18, 19, 23, 24$, that is $21$.
    """),
    code("""
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
    """),
    md(r"""
    **The matrix view.** Along one axis, adaptive pooling is a $b \times H$ matrix $P$ whose row $i$ holds
    $1 / (\text{end}_i - \text{start}_i)$ on the bin's columns (`F.adaptive_pool_matrix`); the 2-D pooling
    is $P_h\, x\, P_w^\top$. Overlapping bins show up as columns with two nonzeros:
    """),
    code("""
    fig, axes = plt.subplots(1, 3, figsize=(13, 2.6))
    for ax, (H, b) in zip(axes, [(6, 3), (5, 3), (4, 6)]):
        P = F.adaptive_pool_matrix(H, b)
        assert np.allclose(P.sum(axis=1), 1)                  # every bin is an average
        plot_matrix(P, ax=ax, fmt="{:.2f}", title=f"P for H = {H}, b = {b}")
    plt.show()
    """),
    md(r"""
    **The backward pass.** The pooling is linear, so its gradient is the transpose: $dx = P_h^\top\, dout\,
    P_w$. In words: each input pixel receives, from every bin that contains it, that bin's gradient
    divided by the bin's size, summed over those bins. The loop version of exactly that sentence,
    against the library and against central differences:
    """),
    code("""
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
    print("dout = 1 everywhere, H = 5, b = 3 (rows and columns 1 and 3 are in two bins):\\n", dx_ones)
    """),
    md(r"""
    **The PSP head.** PSPNet pools the deepest encoder map (here 64 channels at 1/8 of the input) to
    1 x 1, 2 x 2, 3 x 3 and 6 x 6, reduces each to $64 / 4 = 16$ channels with a 1 x 1 convolution,
    upsamples each back bilinearly, and concatenates them with the map itself: $64 + 4 \cdot 16 = 128$
    channels, projected by a 3 x 3 convolution. For a 48 x 48 input (a 6 x 6 deepest map):
    """),
    code("""
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
    """),
    md(r"""
    The 1 x 1 bin is the image-level feature DeepLab's ASPP also has (notebook 7): every pixel learns
    what is in the whole image, the context that U-Net's local windows lack when many classes look alike
    ("Минусы U-Net: сложнее с многоклассовой сегментацией").

    ## 8.4 The same small budget for all of them

    U-Net, SegNet, LinkNet, PSPNet and DeepLab, 8 base channels, depth 3, trained by the library's
    `train` on the same 192 `Shapes` images of 32 x 32 with the same seed, schedule and budget:
    3 epochs of 24 steps (batch 8, Adam), 72 steps each, evaluated on 48 validation images.
    """),
    code("""
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
    """),
    code("""
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
    """),
    md(r"""
    **What this small budget shows, and what it does not.**

    * It shows the **costs**: the parameter counts are exact. SegNet is the smallest (no concatenation,
      no level below its last pool, a decoder as narrow as its encoder); LinkNet's additive skips cut
      U-Net's decoder to about a tenth of its parameters (8.2). The seconds are real CPU times on this
      machine, but they move with its load.
    * It shows the **character** of the masks. U-Net, LinkNet and SegNet decode to full resolution with
      skips or indices: their outlines follow the shapes, but inside a shape the class flips from pixel
      to pixel, because each pixel's label is decided from a local window (LinkNet's speckle has the
      regular texture of its stride-2 transposed convolutions, notebook 3). PSPNet and DeepLab compute
      their logits on a 4 x 4 or 8 x 8 grid with image-level context and upsample them bilinearly: one
      label per blob, but blobby (too smooth) outlines. That is the lecture's trade-off in miniature:
      context for many classes (PSPNet) against boundaries (U-Net).
    * It does **not** rank the architectures. 72 steps on 32 x 32 images is far from convergence, the
      mIoU values differ by amounts that another seed or learning rate can reverse, and the pyramid
      heads read a 4 x 4 map, where 6 x 6 bins overlap and dilation rates above 3 degenerate
      (notebook 7). The lecture's claim that PSPNet and FPN handle many classes better is about long
      training on real images with far more context; testing it needs larger images and many more
      steps (`python -m minimal_seg train --model pspnet ...`).

    ## Summary

    * **SegNet**: the decoder's max unpooling writes each value back at the position its encoder pool
      saved: exact positions (a one-pixel line comes back where it was), a quarter of U-Net's transfer,
      and no concatenation.
    * **LinkNet**: additive skips $d_l = f_l + \mathrm{dec}_l(d_{l+1})$ keep the decoder narrow (fewer
      parameters than U-Net); decoder blocks are 1 x 1 → transposed 3 x 3 stride 2 → 1 x 1; the gradient
      of a sum goes unchanged to both terms.
    * **PSPNet**: adaptive average pooling to 1, 2, 3, 6 bins per axis (start $= \lfloor iH/b \rfloor$,
      end $= \lceil (i+1)H/b \rceil$), 1 x 1 reduction, upsampling and concatenation give every pixel
      the context of the whole image; the backward pass spreads each bin's gradient evenly over its
      pixels, and overlapping bins add up.
    * At a tiny budget all of them land close together; the costs are what differ.

    ## Exercises

    1. SegNet's unpool writes into a zero map. What goes wrong with max unpooling when the pooling
       windows overlap (kernel 3, stride 2)? Try it with `F.max_pool2d_forward` and
       `F.max_unpool2d_forward`.
    2. Turn LinkNet's additive skips into concatenation on paper: which layer's shape must change, and by
       how many parameters does the model grow?
    3. Show that $\sum_{h,w} dx[h, w] = \sum_{i,j} dout[i, j]$ for adaptive average pooling. Which pixels
       of a 4 x 4 map get the largest gradient for $b = 3$, and why?
    4. PSPNet with `bins=(1,)` is a single image-level branch. Train it and compare with the default
       bins at 64 x 64 images.
    5. Repeat the comparison of 8.4 with three seeds (`seed=0, 1, 2`) and report the mean and spread of
       the mIoU per model. Which differences survive?
    """),
]

# =====================================================================================================
# 9. CRF and superpixels
# =====================================================================================================

NOTEBOOKS["09_crf_and_superpixels"] = [
    md(r"""
    # 9. Classical segmentation: CRF and superpixels

    *Lecture 001 ("Классическая сегментация", "Суперпиксели", "Условные случайные поля (CRF)",
    "Постобработка: DL + CRF").*

    Before the networks, segmentation was built from two classical ideas, and both survive as
    **post-processing** of a network's output:

    * a **conditional random field** (CRF): hidden labels $x_i$ ("скрытые значения (искомые метки)"),
      observed values $y_i$ that give each label a cost ("наблюдаемые значения (унарный потенциал)")
      and links between the labels ("связи между элементами (парный потенциал)"):

      $$E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j);$$

    * **superpixels**: small compact regions of similar pixels (SLIC), over which a label is voted.

    Everything here lives in `minimal_seg.classical` (`crf.py`, `slic.py`). Notebook 4 (section 4.7)
    showed a dense CRF cleaning a synthetic prediction; here we open it up.
    """),
    SETUP,
    code("""
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
    """),
    md(r"""
    ## 9.1 The energy, by hand

    Pixel $i$ has a position $p_i$ and an intensity $I_i$; a labelling $x$ gives it a label $x_i$.
    The library's (dense) CRF, after Krähenbühl & Koltun (2011):

    * **unary** $\Phi_i(l) = -\log p_i(l)$, where $p_i$ is the network's softmax at pixel $i$;
    * **pairwise** between *every* pair of pixels, the Potts penalty $[x_i \ne x_j]$ times a kernel

    $$k(f_i, f_j) = \frac{w_g}{Z_\gamma} e^{-\frac{|p_i - p_j|^2}{2\theta_\gamma^2}}
      + \frac{w_b}{Z_\alpha} e^{-\frac{|p_i - p_j|^2}{2\theta_\alpha^2} - \frac{|I_i - I_j|^2}{2\theta_\beta^2}},$$

    a **Gaussian** (smoothness: near pixels should agree) plus a **bilateral** kernel (appearance: near
    pixels *of similar intensity* should agree). $Z_\theta = \sum_{d \ne 0} e^{-|d|^2/2\theta^2}$ sums the
    spatial Gaussian over all integer offsets, so $w$ is the cost of disagreeing with a whole neighbourhood.

    The slide writes $x^* = \mathrm{argmax}_x E(x, y)$: read it as the most *probable* labelling,
    $P(x \mid y) \propto e^{-E(x, y)}$, i.e. the labelling of **lowest** energy, $x^* = \mathrm{argmin}_x E$.

    **Hand example.** A 2 x 3 image: a dark left part and a bright right part, and a "network" that is
    sure about the corners and unsure in the middle column. The loop version of $E$ over all 15 pairs:
    """),
    code("""
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
    """),
    md(r"""
    With 6 pixels and 2 labels there are only $2^6 = 64$ labellings: we can list them all and find the
    true minimum. For a 64 x 64 image with 4 classes there are $4^{4096}$; that is why we need an
    approximate method (next section).
    """),
    code("""
    all_labellings = [np.array(bits).reshape(h, w) for bits in itertools.product((0, 1), repeat=h * w)]
    energies_all = np.array([energy_loop(x)[0] for x in all_labellings])
    best = all_labellings[int(energies_all.argmin())]
    print("the labelling of lowest energy (brute force over 64):"); print(best)
    print(f"E = {energies_all.min():.4f};  the network's argmax {probs.argmax(0).tolist()} has "
          f"E = {energy_loop(probs.argmax(0))[0]:.4f}")
    assert probs.argmax(0)[1, 1] == 0 and best[1, 1] == 1
    """),
    md(r"""
    Alone, the unsure pixel (1, 1) would take label 0 ($p(0) = 0.55$). But it is bright like its right
    neighbours, and the bilateral term pulls it to their label: in the labelling of lowest energy the
    middle column splits by intensity, not by the network's guess.

    ## 9.2 Mean-field inference: one step by hand

    Mean field looks for the closest *factorised* distribution $Q(x) = \prod_i Q_i(x_i)$ to
    $P(x) \propto e^{-E(x)}$ (closest in the Kullback-Leibler divergence $\mathrm{KL}(Q \,\|\, P)$). Its
    fixed-point update, all pixels at once, starting from $Q_i = p_i$:

    $$m_i(l) = \sum_{j \ne i} k(f_i, f_j)\, Q_j(l) \quad\text{(message: a filtering of } Q\text{)},\qquad
      Q_i(l) \leftarrow \mathrm{softmax}_l\Big(-\Phi_i(l) - \sum_{l' \ne l} m_i(l')\Big).$$

    The Potts term charges label $l$ with the kernel-weighted probability that the neighbours take *another*
    label. The loop version of one step against `dense_crf(..., iterations=1)`:
    """),
    code("""
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
    """),
    md(r"""
    ## 9.3 The kernels as pictures

    Row $i$ of the kernel matrix, reshaped to the image, shows whom pixel $i$ listens to. On a noisy
    piecewise-constant scene (background, a disc, a rectangle), for a pixel inside the disc next to its
    edge: the Gaussian kernel is a round blob that crosses the edge; the bilateral kernel is cut off by it.
    """),
    code("""
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
    """),
    md(r"""
    ## 9.4 Mean field, with the energy printed per iteration

    `dense_crf(..., verbose=True)` prints the lecture's energy $E(x)$ of the current labelling
    $x_i = \mathrm{argmax}_l Q_i(l)$ before the first step and after each one. The input is the blocky,
    noisy "FCN-32s-like" guess of `coarse_prediction` (right on average over 8 x 8 blocks, noisy per pixel).
    """),
    code("""
    scene_probs = coarse_prediction(scene_truth, num_classes=3, factor=8, seed=0)
    refined, energies = dense_crf(scene_probs, scene, iterations=6, method="exact", verbose=True,
                                  return_energies=True)
    """),
    md(r"""
    The energy falls, but **mean field minimises $\mathrm{KL}(Q\,\|\,P)$, not $E$**, and the library
    updates all pixels at once (the parallel update, which is not even guaranteed to decrease the KL;
    updating one pixel at a time is). So $E$ of the argmax labelling is *not* promised to go down at every
    step. Over a few scenes and coarser guesses:
    """),
    code("""
    rises = 0
    for seed in range(6):
        s_image, s_truth = piecewise_scene(32, 32, seed=seed)
        s_probs = coarse_prediction(s_truth, num_classes=3, factor=8, seed=seed, confidence=2.0, noise=1.5)
        _, e = dense_crf(s_probs, s_image, iterations=6, method="exact", return_energies=True)
        steps = np.diff(e)
        rises += int((steps > 1e-9).sum())
        print(f"scene {seed}: E {e[0]:8.1f} -> {e[-1]:8.1f}   largest rise in one step {max(steps.max(), 0):6.2f}")
    print(f"steps where E went up: {rises} of {6 * 6}")
    """),
    md(r"""
    ## 9.5 Exact (all pairs) vs fast (filtering)

    The exact method builds the $(HW) \times (HW)$ kernel matrix: $64 \cdot 64 = 4096$ pixels give a matrix
    of 16.8 million entries, so it stops there (`MAX_EXACT_PIXELS`). The fast method never builds it:

    * the Gaussian kernel is **separable**, $e^{-(dy^2 + dx^2)/2\theta^2} = e^{-dy^2/2\theta^2}\, e^{-dx^2/2\theta^2}$:
      two 1-D filterings, exact up to the tails cut at $4\theta$;
    * the bilateral kernel is not separable; it is approximated on a **bilateral grid** of intensity
      levels (a spatial Gaussian filter per level, then interpolation between the two levels around each
      pixel's intensity).

    On a 48 x 48 scene with the default kernels:
    """),
    code("""
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
    """),
    md(r"""
    ## 9.6 Network + CRF on held-out images

    The lecture's post-processing ("Постобработка: DL + CRF"): the network's softmax is the unary term.
    A small FCN-8s (notebook 4) is trained through the library's `train` for 96 steps (3 epochs of 256
    `Shapes` images, 64 x 64); at this budget FCN-32s still paints mostly background (notebook 4), which
    gives the CRF little to work with (exercise 3). The CRF settings are chosen on 8 **validation** images,
    and the before/after mIoU is reported on 16 **test** images the choice never saw (`crf_refine_eval`).
    (Trained with the command line's budget, FCN-32s does give the CRF something to work with:
    `python -m minimal_seg evaluate runs/compare/fcn32s/checkpoint.npz --split test --crf` measured
    mIoU 0.523 -> 0.613 on 64 test images; see the results page of the docs.)
    """),
    code("""
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
    """),
    code("""
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
    """),
    md(r"""
    The CRF moves boundaries onto intensity edges and removes speckles, which raises the pixel accuracy;
    it cannot fix a shape that the network calls by the wrong class (a square called a circle stays a
    circle: the unary term says so over the whole shape). A weak network gains little, and a network
    that mostly predicts background (try `fcn32s` with this budget, exercise 3) can even lose small shapes
    to the smoothing. That is why the settings are chosen on validation images and the result is reported
    on others.

    ## 9.7 SLIC superpixels, step by step

    SLIC (Achanta et al., 2012) is k-means on the points (intensity, $y$, $x$), with two tricks:

    1. **Start on a grid** with step $S = \sqrt{HW / K}$ for $K$ superpixels, and move each centre to the
       lowest gradient $G = |I(y, x{+}1) - I(y, x{-}1)|^2 + |I(y{+}1, x) - I(y{-}1, x)|^2$ in its 3 x 3
       neighbourhood (not on an edge).
    2. **Assign locally**: a centre only competes for pixels in its $2S \times 2S$ window, with the distance
       $$D = \sqrt{d_c^2 + \left(\frac{d_s}{S}\right)^2 m^2},\qquad d_c = |I_i - I_k|,\quad d_s = |p_i - p_k|,$$
       where the **compactness** $m$ trades colour against space (the image is rescaled to [0, 100]).
    3. **Update**: every centre moves to the mean (intensity, $y$, $x$) of its pixels. Repeat 2-3.
    4. **Connectivity**: split labels into connected pieces and merge the small pieces into a neighbour.

    The loop version of step 2 (every pixel, every centre whose window reaches it) against
    `assign_pixels`, on a 24 x 24 crop with 9 centres:
    """),
    code("""
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
    """),
    md(r"""
    The four steps on a whole 64 x 64 image, $K = 64$ ($S = 8$), $m = 20$:
    """),
    code("""
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
    """),
    md(r"""
    The compactness $m$ on a Shapes image and on the real nuclei crop of notebook 1: small $m$ follows the
    intensity (and the noise), large $m$ gives squares.
    """),
    code("""
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
    """),
    md(r"""
    **How good are the superpixels?** Two standard numbers against the true segmentation:

    * **boundary recall**: the share of true boundary pixels with a superpixel boundary within 2 pixels;
    * **achievable segmentation accuracy**: the pixel accuracy if every superpixel took its majority true
      label, the best any per-superpixel vote can do.
    """),
    code("""
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
    """),
    md(r"""
    ## 9.8 Superpixel voting as post-processing

    Average the network's probabilities over each superpixel: every pixel gets its superpixel's mean
    distribution (still a distribution), and the argmax is constant on every superpixel. On the 16 test
    images, with the FCN-8s of section 9.6:
    """),
    code("""
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
    """),
    md(r"""
    ## Summary

    * A CRF scores a labelling by $E(x, y) = \sum_i \Phi(x_i, y_i) + \sum_{i<j} \Psi(x_i, x_j)$: the unary
      term from the network's softmax, the pairwise Potts term weighted by a Gaussian (smoothness) and a
      bilateral (appearance) kernel. The best labelling has the *lowest* energy.
    * Exact minimisation is hopeless ($K^{HW}$ labellings); mean field updates a factorised $Q$ by
      filtering it with the kernel. It minimises the KL divergence, not $E$: the energy usually falls, not
      always.
    * Filtering with the full kernel matrix costs $(HW)^2$; separable Gaussians and a bilateral grid make it
      linear in $HW$, with a small, measurable error.
    * As post-processing the CRF snaps boundaries to edges; it does not fix wrong classes. Choose its
      settings on validation images, report on others.
    * SLIC is local k-means in (intensity, $y$, $x$) with compactness $m$; boundary recall and achievable
      accuracy say how much a superpixel segmentation loses; voting network probabilities per superpixel is
      the cheapest post-processing.

    ## Exercises

    1. In the hand example of 9.1, find the smallest $w_b$ for which the labelling of lowest energy gives
       pixel (1, 1) label 1. Does mean field switch at the same $w_b$?
    2. Write the *sequential* mean-field update (one pixel at a time, using the newest $Q$) and check on the
       scenes of 9.4 whether $E$ still rises.
    3. Train `fcn32s` instead of `fcn8s` in 9.6 with the same budget, tune and report the CRF again. Why
       does the CRF lose mIoU on a network that mostly predicts background?
    4. Plot the largest $|Q_\text{exact} - Q_\text{fast}|$ of 9.5 against `range_step` (the spacing of the
       bilateral grid). Does it fall like $\Delta^2$?
    5. Run SLIC on the 512 x 512 nuclei image and time it against the number of superpixels. Why does the
       time hardly depend on $K$?
    """),
]

# =====================================================================================================
# 10. Sliding window and non-maximum suppression
# =====================================================================================================

NOTEBOOKS["10_sliding_window_and_nms"] = [
    md(r"""
    # 10. Sliding window and non-maximum suppression

    *Lecture 001 ("Скользящее окно", "Классификатор"), lecture 004 ("Детекция объектов (Object Detection)",
    "Non-maximum suppression", "IoU – Intersection over Union").*

    Lecture 004 starts detection with "the simplest way": look at small parts of the image and for each one
    predict whether there is an object or not ("рассматривать небольшие части изображения и для каждого из
    них делать предсказание, есть ли объект или нет"). This notebook builds that detector end to end:

    1. a small classifier with fully connected layers, run on **every window**;
    2. the same classifier with its FC layers turned into **convolutions**, one pass over the image;
    3. windows with a high score become **boxes** $(x_1, y_1, x_2, y_2, \text{confidence})$;
    4. overlapping boxes of one object are merged by **non-maximum suppression** (NMS), exactly as the
       lecture states it, then by the library's vectorised `metrics.nms`;
    5. **box IoU** and **mask IoU** grade the result.

    Notebook 4 used the same classifier for *segmentation* (heatmap -> class mask); notebook 1 (section 1.4)
    ran NMS on jittered nuclei boxes.
    """),
    SETUP,
    code("""
    import time
    from fractions import Fraction

    from minimal_seg import functional as F
    from minimal_seg import metrics
    from minimal_seg.classical import (FCClassifier, connected_components, fc_to_conv, sliding_window_heatmap,
                                       train_classifier, window_crops)
    from minimal_seg.data import Shapes
    from minimal_seg.viz import colorize, draw_boxes, plot_matrix, to_display
    """),
    md(r"""
    ## 10.1 A window classifier

    The classifier of notebook 4: 16 x 16 windows, two unpadded convolutions with 2 x 2 max pooling, then
    `Flatten` and two fully connected layers. A window's label is the class of its centre pixel
    (background, circle, square, triangle), so "is there an object here?" becomes "is the window centred on
    a shape, and which one?". Trained on 4000 random windows of 128 `Shapes` images (48 x 48) for 4 epochs.
    """),
    code("""
    train_set = Shapes(128, image_size=48, seed=0)
    test_set = Shapes(8, image_size=48, seed=2_000_000)
    names = train_set.class_names
    window, stride = 16, 4
    crops, labels = window_crops(train_set.images, train_set.masks, window, count=4000, seed=0)
    classifier = FCClassifier(in_channels=1, num_classes=4, window=window, seed=0)
    t0 = time.perf_counter()
    history = train_classifier(classifier, crops, labels, epochs=4, batch_size=64, lr=3e-3)
    classifier.eval()
    test_crops, test_labels = window_crops(test_set.images, test_set.masks, window, count=1000, seed=1)
    accuracy = (classifier(test_crops).argmax(axis=1) == test_labels).mean()
    print(f"trained in {time.perf_counter() - t0:.1f} s; loss per epoch {np.round(history, 3)}; "
          f"window accuracy on test images {accuracy:.3f}")
    """),
    md(r"""
    ## 10.2 Every window, then one pass

    The loop version: cut every 16 x 16 window with a step of 4 pixels and classify it. Then `fc_to_conv`
    rewrites the first FC layer as a 2 x 2 convolution and the second as a 1 x 1 convolution (notebook 4,
    section 4.3), and the converted network computes the whole heatmap in one pass. Cell $(i, j)$ of the
    heatmap must be the classifier's output on the window with top-left corner $(4i, 4j)$, cell by cell:
    """),
    code("""
    image, truth = test_set[0]                                 # (1, 48, 48), (48, 48)
    positions = range(0, 48 - window + 1, stride)              # 0, 4, ..., 32: 9 positions per axis
    t0 = time.perf_counter()
    heat_loop = np.zeros((4, len(positions), len(positions)), dtype=np.float32)
    for i, y in enumerate(positions):
        for j, x in enumerate(positions):
            heat_loop[:, i, j] = classifier(image[None, :, y:y + window, x:x + window])[0]
    t_loop = time.perf_counter() - t0

    fcn = fc_to_conv(classifier)
    t0 = time.perf_counter()
    heat = fcn(image[None])[0]                                 # (4, 9, 9), one pass
    t_fcn = time.perf_counter() - t0
    for i in range(len(positions)):
        for j in range(len(positions)):
            assert np.allclose(heat[:, i, j], heat_loop[:, i, j], atol=1e-4), (i, j)
    print(f"heatmap {heat.shape}: largest difference, one pass vs window loop {np.abs(heat - heat_loop).max():.1e}")
    print(f"time: {len(positions) ** 2} windows one by one {1000 * t_loop:.1f} ms, one pass {1000 * t_fcn:.1f} ms")

    big = Shapes(1, image_size=96, seed=7).images[0]            # any image size, same identity
    assert np.allclose(fcn(big[None])[0], sliding_window_heatmap(classifier, big, stride=stride), atol=1e-4)
    print("96 x 96 image: heatmap", fcn(big[None]).shape[1:], "equal to the sliding window too")
    """),
    md(r"""
    ## 10.3 Windows become boxes

    Window $(i, j)$ covers the pixels $4j \le x < 4j + 16$, $4i \le y < 4i + 16$: the box
    $(x_1, y_1, x_2, y_2) = (4j, 4i, 4j + 16, 4i + 16)$ (pixel $(r, c)$ covers $[c, c+1] \times [r, r+1]$).
    Its confidence is the lecture's "windmill or background" question, the probability that the window
    holds an object, $1 - p(\text{background})$; its class is the most probable shape. A window becomes a
    detection when the confidence is above 0.5. The loop version, then the same with arrays:
    """),
    code("""
    probs, _ = F.softmax_forward(heat[None], axis=1)
    probs = probs[0]                                           # (4, 9, 9)
    threshold = 0.5
    detections = []                                            # (x1, y1, x2, y2, confidence, class)
    for i, y in enumerate(positions):
        for j, x in enumerate(positions):
            confidence = 1 - probs[0, i, j]                    # P(object)
            if confidence > threshold:
                k = 1 + int(probs[1:, i, j].argmax())          # which shape
                detections.append((x, y, x + window, y + window, float(confidence), k))

    conf_map, cls_map = 1 - probs[0], 1 + probs[1:].argmax(axis=0)
    ii, jj = np.nonzero(conf_map > threshold)
    boxes = np.stack([stride * jj, stride * ii, stride * jj + window, stride * ii + window], axis=1).astype(np.float64)
    scores, classes = conf_map[ii, jj].astype(np.float64), cls_map[ii, jj]
    assert np.array_equal(boxes, np.array([d[:4] for d in detections], dtype=np.float64))
    assert np.allclose(scores, [d[4] for d in detections]) and np.array_equal(classes, [d[5] for d in detections])

    # The true objects: connected pieces of each shape class, and their boxes.
    pieces = connected_components(truth)
    objects = [p for p in np.unique(pieces) if truth[pieces == p][0] > 0]
    true_masks = np.stack([pieces == p for p in objects])
    true_classes = np.array([truth[pieces == p][0] for p in objects])
    true_boxes = []
    for mask in true_masks:
        ys, xs = np.nonzero(mask)
        true_boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    true_boxes = np.array(true_boxes, dtype=np.float64)
    print(f"{len(boxes)} windows above {threshold}, for {len(objects)} objects: "
          f"{[names[k] for k in true_classes]}")
    """),
    md(r"""
    ## 10.4 Box IoU

    $$\mathrm{IoU}(A, B) = \frac{\text{площадь пересечения}}{\text{площадь объединения}}
      = \frac{|A \cap B|}{|A \cup B|},\qquad |A \cap B| = \max(0, \min(x_2^A, x_2^B) - \max(x_1^A, x_1^B))
      \cdot \max(0, \min(y_2^A, y_2^B) - \max(y_1^A, y_1^B)).$$

    **Hand example** (notebook 1 has another): a 16 x 16 window and its neighbours on the stride-4 grid.
    Moved by 4 to the right, they share a 12 x 16 strip: $192 / (256 + 256 - 192) = 3/5$. Moved by 4 right
    and 4 down: $144 / 368 = 9/23$. Moved by 8 right: $128 / 384 = 1/3$.
    """),
    code("""
    def box_iou_loop(a, b):
        iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    a = (0, 0, 16, 16)
    for shifted, expected in (((4, 0, 20, 16), Fraction(3, 5)), ((4, 4, 20, 20), Fraction(9, 23)),
                              ((8, 0, 24, 16), Fraction(1, 3))):
        lib = metrics.box_iou(np.array([a], float), np.array([shifted], float))[0, 0]
        print(f"{a} vs {shifted}: loop {box_iou_loop(a, shifted):.4f}, library {lib:.4f}, expected {expected}")
        assert box_iou_loop(a, shifted) == float(expected) and lib == float(expected)
    """),
    md(r"""
    The matrix view: the IoU of the window at (0, 0) with the window moved by $(4a, 4b)$. With threshold 0.5,
    NMS can only suppress the four direct neighbours (IoU 0.6); the diagonal neighbours (0.39) and windows
    8 pixels away survive. The threshold decides how far apart two detections of one object may be.
    """),
    code("""
    steps = np.arange(5)
    shifted = np.array([(4 * b, 4 * a, 4 * b + 16, 4 * a + 16) for a in steps for b in steps], dtype=np.float64)
    table = metrics.box_iou(np.array([[0, 0, 16, 16]], float), shifted).reshape(5, 5)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    plot_matrix(np.round(table, 2), ax=ax, title="IoU with the window moved by (4b right, 4a down)",
                highlight=table > 0.5)
    ax.set_xlabel("b"); ax.set_ylabel("a")
    plt.show()
    """),
    md(r"""
    ## 10.5 Non-maximum suppression, as lecture 004 states it

    Let $S$ be the list of boxes, each $(x_1, y_1, x_2, y_2, \text{confidence})$:

    1. take the box with the largest confidence and remove it from $S$ ("выбрать бокс с наибольшим
       confidence и удалить его из S");
    2. compute its IoU with all the others;
    3. remove from $S$ the boxes with IoU above the threshold (often 0.5);
    4. repeat 1-3 while $S$ has boxes.

    The boxes taken in step 1 are the result. Plain Python, printing $S$ after each round:
    """),
    code("""
    def nms_lecture(S, threshold=0.5, verbose=False):
        S = list(S)
        kept = []
        while S:                                               # 4. while S has boxes
            best = max(S, key=lambda box: box[4])              # 1. the largest confidence (first one on a tie)
            S.remove(best)
            kept.append(best)
            ious = [box_iou_loop(best, box) for box in S]      # 2. its IoU with all the others
            S = [box for box, v in zip(S, ious) if v <= threshold]   # 3. remove IoU > threshold
            if verbose:
                print(f"round {len(kept)}: keep {best}, IoU {[round(float(v), 3) for v in ious]}")
                print(f"         S = {S}")
        return kept

    A = (10, 10, 50, 50, 0.9)
    B = (12, 12, 52, 52, 0.8)      # A moved by 2: IoU 0.82 with A
    C = (30, 30, 70, 70, 0.7)      # overlaps A a little: IoU 0.14
    D = (32, 28, 72, 68, 0.6)      # C moved: IoU 0.82 with C
    E = (100, 100, 130, 130, 0.75) # far from the others
    F_ = (105, 98, 133, 128, 0.5)  # E moved: IoU 0.67 with E
    S = [A, B, C, D, E, F_]
    kept = nms_lecture(S, 0.5, verbose=True)
    assert kept == [A, E, C]
    """),
    code("""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, chosen, title in zip(axes, (S, kept), ("S: 6 boxes", "after NMS: 3 boxes")):
        ax.imshow(np.ones((150, 150)), cmap="gray", vmin=0, vmax=1)
        draw_boxes(ax, [b[:4] for b in chosen], [f"{'ABCDEF'[S.index(b)]} {b[4]}" for b in chosen], linewidth=1.5)
        ax.set_title(title); ax.set_axis_off()
    plt.show()
    """),
    md(r"""
    The library's `metrics.nms` sorts the boxes by confidence once and compares each kept box with all the
    remaining ones in one vectorised `box_iou` call. It must return the same boxes in the same order:
    checked on random boxes, three thresholds, with float coordinates and with integer coordinates and
    rounded scores (so that IoU can hit the threshold exactly and confidences tie).
    """),
    code("""
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(6):
        n = 300
        corner = rng.uniform(0, 100, (n, 2))
        size = rng.uniform(5, 40, (n, 2))
        boxes_r = np.concatenate([corner, corner + size], axis=1)
        scores_r = rng.uniform(0, 1, n)
        if trial % 2:                                          # integers and ties
            boxes_r, scores_r = np.round(boxes_r), np.round(scores_r, 1)
        for thr in (0.3, 0.5, 0.7):
            S_r = [(*box, score, index) for index, (box, score) in enumerate(zip(boxes_r.tolist(), scores_r.tolist()))]
            by_loop = [box[5] for box in nms_lecture(S_r, thr)]
            by_library = metrics.nms(boxes_r, scores_r, iou_threshold=thr).tolist()
            assert by_loop == by_library, (trial, thr)
            checked += 1
    print(f"{checked} random cases of 300 boxes: the lecture's loop and metrics.nms keep the same boxes, "
          "in the same order")
    """),
    md(r"""
    (The loop carries the box's index as a sixth element only to compare with the library's indices. Its
    IoU uses the same floating-point operations as `box_iou`, so an IoU that lands exactly on the threshold
    goes the same way in both. With exact fractions it would not: an IoU of exactly $3/10$ is *above* the
    float `0.3`, which is $0.29999999999999998...$, and the integer boxes with threshold 0.3 would differ.)

    ## 10.6 NMS on the sliding-window detections

    Before NMS every object is covered by a cloud of windows; after it, a few boxes per object remain, and
    how few depends on the threshold (the IoU table of 10.4). The lecture's loop and `metrics.nms` agree
    here too.
    """),
    code("""
    kept_05 = metrics.nms(boxes, scores, iou_threshold=0.5)
    kept_03 = metrics.nms(boxes, scores, iou_threshold=0.3)
    S_det = [(*box, score, index) for index, (box, score) in enumerate(zip(boxes.tolist(), scores.tolist()))]
    assert [box[5] for box in nms_lecture(S_det, 0.5)] == kept_05.tolist()
    colours = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}

    fig, axes = plt.subplots(1, 4, figsize=(15, 4))
    panels = ((np.arange(len(boxes)), f"all {len(boxes)} windows above {threshold}"),
              (kept_05, f"NMS 0.5: {len(kept_05)} boxes"), (kept_03, f"NMS 0.3: {len(kept_03)} boxes"))
    for ax, (keep, title) in zip(axes, panels):
        ax.imshow(to_display(image), cmap="gray")
        for k in (1, 2, 3):
            sel = keep[classes[keep] == k]
            draw_boxes(ax, boxes[sel], [f"{scores[i]:.2f}" for i in sel] if len(keep) <= 8 else None,
                       color=colours[k], linewidth=1.2)
        ax.set_title(title); ax.set_axis_off()
    axes[3].imshow(colorize(truth))
    draw_boxes(axes[3], true_boxes, [names[k] for k in true_classes], color="white", linewidth=1.2)
    axes[3].set_title(f"truth: {len(objects)} objects"); axes[3].set_axis_off()
    plt.show()

    for name, keep in (("NMS 0.5", kept_05), ("NMS 0.3", kept_03)):
        best_iou = metrics.box_iou(true_boxes, boxes[keep]).max(axis=1)
        print(f"{name}: {len(keep)} boxes for {len(objects)} objects; best IoU of each true box with a kept box "
              f"{np.round(best_iou, 2)}; true box sizes {(true_boxes[:, 2:] - true_boxes[:, :2]).astype(int).tolist()}")
    """),
    md(r"""
    The windows have one size, 16 x 16, and the objects do not: a fixed window cannot fit a large shape, and
    the best IoU with the true box stays low for it. The lecture's remedy is to look at thousands of windows
    of different scales ("тысячи таких областей разного масштаба"), which is what makes the plain sliding
    window slow.

    ## 10.7 Mask IoU

    Segmentation grades masks, not boxes: the same ratio over pixels, $|A \cap B| / |A \cup B|$.
    `metrics.mask_iou` flattens masks to 0/1 rows and gets every intersection as one matrix product. On two
    squares it agrees with box IoU (notebook 1's $1/7$); a disc and its own bounding box differ, by the
    corners the box covers and the disc does not, about $\pi/4$:
    """),
    code("""
    def box_mask(box, size):
        mask = np.zeros(size, dtype=bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        mask[y1:y2, x1:x2] = True
        return mask

    sq_a, sq_b = box_mask((0, 0, 4, 4), (8, 8)), box_mask((2, 2, 6, 6), (8, 8))
    m_iou = metrics.mask_iou(sq_a[None], sq_b[None])[0, 0]
    b_iou = metrics.box_iou(np.array([[0, 0, 4, 4]], float), np.array([[2, 2, 6, 6]], float))[0, 0]
    print(f"two squares: mask IoU {m_iou:.4f}, box IoU {b_iou:.4f}, 1/7 = {1 / 7:.4f}")
    assert np.isclose(m_iou, 1 / 7) and np.isclose(b_iou, 1 / 7)

    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 < 30 ** 2
    disc_vs_box = metrics.mask_iou(disc[None], box_mask((2, 2, 62, 62), (64, 64))[None])[0, 0]
    print(f"a disc of radius 30 and its bounding box: mask IoU {disc_vs_box:.4f}, pi / 4 = {np.pi / 4:.4f}")
    """),
    md(r"""
    The detections kept by NMS 0.3 as masks (the window filled) against the true object masks: even a
    well placed box scores a modest mask IoU with a circle or a triangle. That is the gap between detection
    and segmentation.
    """),
    code("""
    det_masks = np.stack([box_mask(boxes[i], truth.shape) for i in kept_03])
    table = metrics.mask_iou(true_masks, det_masks)               # (objects, detections)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(kept_03), 0.8 + 0.6 * len(objects)))
    plot_matrix(np.round(table, 2), ax=ax, title="mask IoU: true objects (rows) x kept boxes (columns)")
    ax.set_yticks(range(len(objects)), [names[k] for k in true_classes])
    ax.set_xticks(range(len(kept_03)), [names[k] for k in classes[kept_03]], rotation=45)
    plt.show()
    print("best mask IoU per object:", np.round(table.max(axis=1), 2))
    """),
    md(r"""
    ## 10.8 Beyond the sliding window (lecture 004, for context)

    * **Region proposals.** Instead of all windows of all sizes, an algorithm such as Selective Search
      proposes a few thousand regions that may contain an object.
    * **R-CNN** ("Regions with CNN features") classifies every proposal with a CNN; about a minute per image.
      **Fast R-CNN** runs the CNN once and pools each region from its feature map (2-3 s per image; now the
      proposals take most of the time). **Faster R-CNN** predicts the proposals too, with a Region Proposal
      Network (about 0.2 s per image). These are **two-stage** detectors: better quality, slower.
    * **YOLO** ("You Only Look Once") skips the proposals: it divides the image into an $S \times S$ grid, and
      each cell predicts $B$ boxes with a confidence each and $C$ class probabilities, an
      $S \times S \times (B \cdot 5 + C)$ tensor. A **one-stage** detector (like SSD, RetinaNet): faster,
      lower quality.

    Our one-pass heatmap is a YOLO-like grid without the box regression: $S = 9$ cells per side, $C = 4$
    class scores per cell, and one *fixed* 16 x 16 box per cell where YOLO predicts $B$ boxes of any size.
    All of them end with the same NMS.

    ## Summary

    * Sliding window detection: classify every window; windows with a high score become boxes
      $(x_1, y_1, x_2, y_2, \text{confidence})$.
    * With its FC layers turned into $h \times w$ and 1 x 1 convolutions, the classifier computes all windows
      in one pass, with the same numbers cell by cell.
    * Box IoU is intersection over union of areas; neighbouring windows on a stride-4 grid overlap with IoU
      0.6, 0.39, 0.33, ..., so the NMS threshold decides which duplicates survive.
    * NMS: take the most confident box, drop the boxes that overlap it by more than the threshold, repeat.
      The vectorised library version keeps exactly the boxes of the lecture's loop.
    * Mask IoU grades pixels: a box around a round object is far from its mask.

    ## Exercises

    1. Add a second window size (24 x 24, a second `FCClassifier`) and run NMS over the boxes of both sizes.
       Does the best IoU with the large true boxes improve?
    2. Run NMS on the detections of 10.6 with confidence thresholds 0.5, 0.7, 0.9 and count the boxes
       kept. Then run it *per class* (a circle box never suppresses a square box). What changes?
    3. *Soft-NMS* multiplies the scores of overlapping boxes by $1 - \mathrm{IoU}$ instead of removing them.
       Write it as a variant of `nms_lecture` and compare on the hand example.
    4. Prove that the result of NMS does not depend on the order of $S$ when all confidences differ. Find a
       small example with a tie where it does.
    5. Count the multiply-adds of classifying the 81 windows one by one and of the one-pass network, and
       compare with the measured times of 10.2.
    """),
]


# =====================================================================================================
# writing
# =====================================================================================================

def build_notebook(cells) -> nbformat.NotebookNode:
    """A v4 notebook without outputs, with stable cell ids (so a rebuild changes nothing)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for k, (kind, source) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{k:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def build(names=None) -> dict[str, nbformat.NotebookNode]:
    """The notebooks by file stem (all, or those whose stem starts with one of ``names``)."""
    return {name: build_notebook(cells) for name, cells in NOTEBOOKS.items()
            if not names or any(name.startswith(n) for n in names)}


def main(argv=None):
    for name, nb in build(argv).items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])
