"""Animations of the drawings (GIFs, one frame per window) and the documentation's figure set."""
from __future__ import annotations

from pathlib import Path

from ..functional.shapes import conv2d_output_shape, conv_transpose2d_output_shape, positive_pair, receptive_field
from .drawing import draw_conv, draw_transposed_conv

CELL_INCHES = 0.32  # one grid cell in the multi-panel figures


# ---- animations --------------------------------------------------------------------


def _animate(draw, frames, path, fps, dpi):
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    first = draw(step=0, ax=None)
    ax = first.ax
    fig = ax.figure

    def frame(index):
        ax.clear()
        draw(step=index, ax=ax)
        return []

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        animation = FuncAnimation(fig, frame, frames=frames, blit=False, repeat=False)
        animation.save(str(path), writer=PillowWriter(fps=fps), dpi=dpi)
    finally:
        plt.close(fig)
    return path


def animate_conv(input_size, kernel_size, stride=1, padding=0, dilation=1, path="conv.gif", fps=2, dpi=100):
    """Write a GIF of ``draw_conv``: one frame per output pixel (OH*OW frames), row by row. Returns the path."""
    oh, ow = conv2d_output_shape(input_size, kernel_size, stride, padding, dilation)
    return _animate(lambda step, ax: draw_conv(input_size, kernel_size, stride, padding, dilation, step, ax),
                    oh * ow, path, fps, dpi)


def animate_transposed_conv(input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                            path="transposed_conv.gif", fps=2, dpi=100, view="scatter"):
    """Write a GIF of ``draw_transposed_conv``: one frame per input pixel ("scatter", H*W frames)
    or per output pixel ("direct", OH*OW frames). Returns the path."""
    if view == "scatter":
        h, w = positive_pair(input_size, "input_size")
        frames = h * w
    else:
        oh, ow = conv_transpose2d_output_shape(input_size, kernel_size, stride, padding, output_padding, dilation)
        frames = oh * ow
    return _animate(lambda step, ax: draw_transposed_conv(input_size, kernel_size, stride, padding,
                                                          output_padding, dilation, step, ax, view),
                    frames, path, fps, dpi)


# ---- the documentation's figure set ------------------------------------------------------


def _panels(path, draws, titles, dpi=150):
    """Several drawings side by side in one PNG, each panel as wide as its grids."""
    import matplotlib.pyplot as plt

    # Draw once on throwaway axes to learn each panel's width, then lay them out.
    widths, heights = [], []
    for draw in draws:
        probe = draw(plt.figure().add_subplot())
        (left, right), (bottom, top) = probe.ax.get_xlim(), probe.ax.get_ylim()
        widths.append(right - left)
        heights.append(bottom - top)
        plt.close(probe.ax.figure)
    # One scale for every panel: equal heights (top-aligned), widths in proportion.
    fig, axes = plt.subplots(1, len(draws), figsize=(sum(widths) * CELL_INCHES, max(heights) * CELL_INCHES + 0.4),
                             gridspec_kw={"width_ratios": widths, "wspace": 0.15}, squeeze=False)
    for ax, draw, title in zip(axes[0], draws, titles):
        draw(ax)
        top = ax.get_ylim()[1]
        ax.set_ylim(top + max(heights), top)
        ax.set_title(title, fontsize=10, fontweight="bold")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


# The figure set of the documentation: file name -> what it shows. ``render_all`` writes exactly these.
DOC_FIGURES = {
    "padding.png": "no padding, half (same) padding, full padding: a 3x3 kernel on a 5x5 input",
    "stride.png": "stride 1 and stride 2 (the lecture's step 1 vs step 2)",
    "dilation.png": "dilation 1, 2, 3: 3x3 weights that see 3x3, 5x5, 7x7 pixels",
    "transposed.png": "the lecture's 2x2 -> 4x4 transposed conv (3x3 kernel) and the stride-2 upconv, scatter view",
    "transposed_direct.png": "the same two as stride-1 convolutions over a zero-inserted input",
    "conv.gif": "animation: a 3x3 kernel, stride 2, padding 1 sweeping a 5x5 input",
    "transposed_conv.gif": "animation: the stride-2 transposed conv scattering a 3x3 input",
}


def render_all(folder) -> list[Path]:
    """Write the documentation's figures (``DOC_FIGURES``) into ``folder``; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        _panels(folder / "padding.png",
                [lambda ax, p=p: draw_conv(5, 3, 1, p, 1, step=0, ax=ax) for p in (0, 1, 2)],
                ["no padding\n(valid)", "half padding\n(same)", "full padding\n"]),
        _panels(folder / "stride.png",
                [lambda ax, s=s: draw_conv(5, 3, s, 0, 1, step=1, ax=ax) for s in (1, 2)],
                ["stride 1\n", "stride 2\n"]),
        _panels(folder / "dilation.png",
                [lambda ax, d=d: draw_conv(7, 3, 1, 0, d, step=0, ax=ax) for d in (1, 2, 3)],
                [f"dilation {d}\n3×3 weights see {receptive_field([3], dilations=[d])}×"
                 f"{receptive_field([3], dilations=[d])} pixels" for d in (1, 2, 3)]),
        _panels(folder / "transposed.png",
                [lambda ax: draw_transposed_conv(2, 3, 1, 0, step=1, ax=ax),
                 lambda ax: draw_transposed_conv(3, 3, 2, 1, 1, step=4, ax=ax)],
                ["the lecture's example\n2×2 → 4×4, kernel 3×3", "stride 2 (upconv)\n3×3 → 6×6"]),
        _panels(folder / "transposed_direct.png",
                [lambda ax: draw_transposed_conv(2, 3, 1, 0, step=1, ax=ax, view="direct"),
                 lambda ax: draw_transposed_conv(3, 3, 2, 1, 1, step=4, ax=ax, view="direct")],
                ["the lecture's example\nas a direct convolution", "stride 2 (upconv)\nas a direct convolution"]),
        animate_conv(5, 3, 2, 1, path=folder / "conv.gif", fps=1.5),
        animate_transposed_conv(3, 3, 2, 1, 1, path=folder / "transposed_conv.gif", fps=1.5),
    ]
    assert sorted(p.name for p in paths) == sorted(DOC_FIGURES), "DOC_FIGURES must list what render_all writes"
    return paths
