"""Pictures: colour masks, overlays, learning curves.

Everything here runs on the host (matplotlib); pass NumPy arrays, or call
``to_numpy`` first on CuPy arrays.
"""
from __future__ import annotations

import numpy

# Background black, then clearly distinct colours (tab10 order, without grey).
PALETTE = numpy.array([
    [0, 0, 0], [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [188, 189, 34], [23, 190, 207], [255, 255, 255],
], dtype=numpy.uint8)


def colorize(mask) -> numpy.ndarray:
    """Class map (H, W) of ints -> RGB image (H, W, 3) uint8 (colours repeat after 11 classes)."""
    mask = numpy.asarray(mask)
    return PALETTE[mask % len(PALETTE)]


def to_display(image) -> numpy.ndarray:
    """Image (C, H, W) (any scale) -> (H, W) or (H, W, 3) floats in [0, 1] for imshow."""
    image = numpy.asarray(image, dtype=numpy.float64)
    image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    lo, hi = numpy.percentile(image, [1, 99])
    return numpy.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)


def overlay(image, mask, alpha=0.45) -> numpy.ndarray:
    """RGB (H, W, 3) floats: the image in grey with the coloured mask blended on (background left clear)."""
    shown = to_display(image)
    if shown.ndim == 2:
        shown = numpy.repeat(shown[..., None], 3, axis=2)
    colour = colorize(mask) / 255.0
    weight = alpha * (numpy.asarray(mask) > 0)[..., None]
    return shown * (1 - weight) + colour * weight


def plot_predictions(images, truth, pred, path=None, max_rows=4, class_names=None, on_image=True):
    """Rows of input / truth / prediction(s); saved to ``path`` if given. Returns the figure.

    ``pred`` is one (N, H, W) label array, or a dict {title: (N, H, W) array} to
    compare several models side by side. ``on_image=False`` shows the colour
    masks alone instead of overlaid on the input.
    """
    import matplotlib.pyplot as plt

    preds = pred if isinstance(pred, dict) else {"prediction": pred}
    show = (lambda i, m: overlay(images[i], m)) if on_image else (lambda i, m: colorize(m))
    rows, cols = min(max_rows, len(images)), 2 + len(preds)
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.5 * rows), squeeze=False)
    for r in range(rows):
        panels = [to_display(images[r]), show(r, truth[r])] + [show(r, p[r]) for p in preds.values()]
        for ax, picture, title in zip(axes[r], panels, ["input", "truth", *preds]):
            ax.imshow(picture, cmap="gray")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title)
    if class_names:
        handles = [plt.Rectangle((0, 0), 1, 1, color=colorize(numpy.array(k)) / 255.0)
                   for k in range(len(class_names))]
        fig.legend(handles, class_names, loc="lower center", ncol=len(class_names), frameon=False)
    fig.tight_layout(rect=(0, 0.05 if class_names else 0, 1, 1))
    if path:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


SEGMENTATION_CURVES = (("val_miou", "mIoU"), ("val_pixel_accuracy", "pixel accuracy"))


def plot_history(history, path=None, metrics=SEGMENTATION_CURVES, loss_label="training loss",
                 metrics_title=None):
    """Learning curves: training loss per step (or per epoch) and validation metrics per epoch.

    ``history`` is ``fit``'s list of per-epoch dicts; ``metrics`` the (key, label) pairs of the
    right panel, each a score in [0, 1] (default: mIoU and pixel accuracy; the detector passes
    its mAPs). Returns the figure, or saves and closes it when ``path`` is given.
    """
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metrics) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = [v for row in history for v in row.get("step_losses", [])]
    epochs = [r["epoch"] for r in history]
    if steps:
        ax_loss.plot(numpy.arange(1, len(steps) + 1), steps, lw=1)
        ax_loss.set_xlabel("step")
    else:
        ax_loss.plot(epochs, [r["train_loss"] for r in history], marker="o")
        ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(loss_label)
    ax_loss.set_yscale("log")
    for (key, label), marker in zip(metrics, "osd^v"):
        ax_metrics.plot(epochs, [r[key] for r in history], marker=marker, label=label)
    ax_metrics.set(xlabel="epoch", ylim=(0, 1), title=metrics_title)
    ax_metrics.legend()
    ax_metrics.grid(alpha=0.3)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


# ----------------------------------------------------------------------------------------------
# Small pictures for the lecture notebooks: numbers in a grid, boxes
# ----------------------------------------------------------------------------------------------

def plot_matrix(values, ax=None, title=None, fmt="{:g}", cmap="Blues", highlight=None, fontsize=None,
                vmin=None, vmax=None):
    """A small 2-D array as coloured cells with its numbers written in (the lecture's grids).

    values (H, W) (a 1-D array is shown as one row); ``highlight`` an optional
    boolean (H, W) mask whose cells get a red frame (e.g. the max-pool winners);
    ``fmt`` formats each number (``None``: no numbers). Returns the axes.
    """
    import matplotlib.pyplot as plt

    values = numpy.asarray(values, dtype=numpy.float64)
    if values.ndim == 1:
        values = values[None, :]
    h, w = values.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(max(1.5, 0.45 * w), max(1.2, 0.45 * h)))
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    if fmt is not None:
        lo, hi = numpy.nanmin(values), numpy.nanmax(values)
        lo, hi = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
        size = fontsize or (10 if max(h, w) <= 8 else 7)
        for i in range(h):
            for j in range(w):
                dark = hi > lo and (values[i, j] - lo) / (hi - lo) > 0.6
                ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=size,
                        color="white" if dark else "black")
    if highlight is not None:
        for i, j in zip(*numpy.nonzero(numpy.asarray(highlight))):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def draw_boxes(ax, boxes, labels=None, color="tab:orange", linewidth=2, linestyle="-"):
    """Draw (M, 4) boxes (x1, y1, x2, y2) on an ``imshow`` axes; returns the axes.

    Box coordinates are continuous, with pixel (r, c) covering [c, c+1] x [r, r+1]
    (the convention of ``metrics.box_iou``); imshow centres pixel (r, c) at (c, r),
    so the rectangles are shifted by half a pixel. ``labels``: optional strings.
    """
    import matplotlib.pyplot as plt

    for k, (x1, y1, x2, y2) in enumerate(numpy.asarray(boxes, dtype=numpy.float64)):
        ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                                   linewidth=linewidth, linestyle=linestyle))
        if labels is not None:
            ax.text(x1 - 0.5, y1 - 1, str(labels[k]), color=color, fontsize=8, va="bottom")
    return ax
