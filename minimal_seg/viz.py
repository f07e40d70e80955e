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


def plot_predictions(images, truth, pred, path=None, max_rows=4, class_names=None):
    """Rows of input / truth overlay / prediction overlay; saved to ``path`` if given. Returns the figure."""
    import matplotlib.pyplot as plt

    rows = min(max_rows, len(images))
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows), squeeze=False)
    for r in range(rows):
        for ax, picture, title in zip(axes[r], (to_display(images[r]), overlay(images[r], truth[r]),
                                                overlay(images[r], pred[r])), ("input", "truth", "prediction")):
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


def plot_history(history, path=None):
    """Learning curves: training loss per step and validation mIoU per epoch. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = [v for row in history for v in row.get("step_losses", [])]
    if steps:
        ax_loss.plot(numpy.arange(1, len(steps) + 1), steps, lw=1)
        ax_loss.set_xlabel("step")
    else:
        ax_loss.plot([r["epoch"] for r in history], [r["train_loss"] for r in history], marker="o")
        ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_iou.plot([r["epoch"] for r in history], [r["val_miou"] for r in history], marker="o", label="mIoU")
    ax_iou.plot([r["epoch"] for r in history], [r["val_pixel_accuracy"] for r in history], marker="s",
                label="pixel accuracy")
    ax_iou.set_xlabel("epoch")
    ax_iou.set_ylim(0, 1)
    ax_iou.legend()
    ax_iou.grid(alpha=0.3)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
