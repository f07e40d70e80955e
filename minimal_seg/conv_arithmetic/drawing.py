"""Drawing a convolution and a transposed convolution on a matplotlib Axes, one window at a time.

Every grid size comes from ``functional.shapes`` and every highlighted
window from ``windows.py``, so a picture cannot disagree with the code. See
the package docstring for the two views of the transposed convolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..functional.shapes import conv2d_output_shape, conv_transpose2d_output_shape, nonnegative_pair, positive_pair
from .windows import conv_window, transposed_as_direct_conv, transposed_conv_window, transposed_options

# Colours (ColorBrewer blues and greens): input blue, output green, current window dark.
INPUT = "#9ecae1"
WINDOW = "#08519c"
OUTPUT = "#a1d99b"
CURRENT = "#238b45"
PADDING = "#ffffff"
EDGE = "#404040"
GAP = 1.5  # empty columns between the input and the output grid
FIGURE_CELL_INCHES = 0.4  # one grid cell in a figure of its own (and in the animations)


@dataclass
class Drawing:
    """What one call drew, in grid coordinates (row, column).

    ``output_shape`` is (OH, OW) of the drawn output grid. ``window`` lists
    the highlighted cells: padded-input coordinates for a convolution, canvas
    coordinates for a transposed convolution ("scatter"), coordinates of the
    zero-inserted input for "direct". ``position`` is the output pixel being
    computed (convolution, "direct") or the input pixel being scattered
    ("scatter"). ``grids`` gives each grid's (top, left, rows, cols) in the
    Axes' data units. Every cell is a Rectangle whose gid says what it is
    ("in", "pad", "window", "out", ...) and where (``"window:2:3"``).
    """

    ax: object
    output_shape: tuple[int, int]
    window: list[tuple[int, int]]
    position: tuple[int, int]
    grids: dict = field(default_factory=dict)



# ---- drawing helpers --------------------------------------------------------------


def _axes(ax):
    """(ax, own_figure): the axes given, or new ones in a new figure (own_figure True)."""
    if ax is not None:
        return ax, False
    import matplotlib.pyplot as plt

    return plt.subplots()[1], True


def _cell(ax, top, left, r, c, gid, face, edge=EDGE, style="-", alpha=1.0, hatch=None, lw=1.0, z=1):
    from matplotlib.patches import Rectangle

    # add_artist, not add_patch: the limits are set once at the end (much faster for many cells).
    ax.add_artist(Rectangle((left + c, top + r), 1, 1, facecolor=face, edgecolor=edge, linestyle=style,
                            linewidth=lw, alpha=alpha, hatch=hatch, gid=f"{gid}:{r}:{c}", zorder=z))


def _finish(ax, width, height, top_margin=1.6, bottom_margin=1.8, own_figure=False):
    """Equal aspect, rows downwards, no axes; leaves room for the titles and the formula.

    A figure made here (``own_figure``) is sized to the drawing, without margins.
    """
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(height + bottom_margin, -top_margin)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if own_figure:
        span_x, span_y = width + 1, height + bottom_margin + top_margin
        ax.figure.set_size_inches(span_x * FIGURE_CELL_INCHES, span_y * FIGURE_CELL_INCHES)
        ax.figure.subplots_adjust(left=0, right=1, bottom=0, top=1)


def _size_text(pair_):
    return f"{pair_[0]}×{pair_[1]}"


def _num(pair_):
    """3 when both axes agree, else (3, 2)."""
    return str(pair_[0]) if pair_[0] == pair_[1] else f"({pair_[0]}, {pair_[1]})"


def _conv_formula(h, k, s, p, d):
    o = conv2d_output_shape(h, k, s, p, d)[0]
    return f"O = ⌊({h} + 2·{p} − {d}·({k}−1) − 1) / {s}⌋ + 1 = {o}"


def _transposed_formula(h, k, s, p, op, d):
    o = conv_transpose2d_output_shape(h, k, s, p, op, d)[0]
    return f"O = ({h}−1)·{s} − 2·{p} + {d}·({k}−1) + {op} + 1 = {o}"


def _formulas(fn, per_axis):
    """One line when both axes agree, else one per axis."""
    (h_args, w_args) = per_axis
    if h_args == w_args:
        return fn(*h_args)
    return "OH: " + fn(*h_args) + "\nOW: " + fn(*w_args)


def _step_position(step, shape, what):
    count = shape[0] * shape[1]
    step = 0 if step is None else step
    if isinstance(step, tuple):
        r, c = step
        if not (0 <= r < shape[0] and 0 <= c < shape[1]):
            raise ValueError(f"{what} {step} is outside the grid {shape}")
        return r, c
    if not 0 <= step < count:
        raise ValueError(f"step must lie in [0, {count}) (one per {what}), got {step}")
    return divmod(step, shape[1])


# ---- convolution -------------------------------------------------------------------


def draw_conv(input_size, kernel_size, stride=1, padding=0, dilation=1, step=None, ax=None) -> Drawing:
    """Draw a convolution: the padded input with one window highlighted, the output grid beside it.

    input_size, kernel_size, stride, padding, dilation: an int or an (h, w)
    pair, as for ``conv2d_forward``. ``step`` picks the window: an index in
    row-major order over the output (0 when None) or an (oh, ow) pair.
    Dashed cells are zero padding; the dark cells are the KH*KW pixels the
    window reads, at (oh*SH + i*DH, ow*SW + j*DW) in padded coordinates.
    """
    h, w = positive_pair(input_size, "input_size")
    k = positive_pair(kernel_size, "kernel_size")
    s = positive_pair(stride, "stride")
    p = nonnegative_pair(padding, "padding")
    d = positive_pair(dilation, "dilation")
    oh, ow = conv2d_output_shape((h, w), k, s, p, d)
    position = _step_position(step, (oh, ow), "output position")
    rows, cols = h + 2 * p[0], w + 2 * p[1]
    out_left = cols + GAP
    out_top = (rows - oh) / 2
    width, height = out_left + ow, rows
    ax, own_figure = _axes(ax)

    for r in range(rows):
        for c in range(cols):
            inside = p[0] <= r < p[0] + h and p[1] <= c < p[1] + w
            _cell(ax, 0, 0, r, c, "in" if inside else "pad", INPUT if inside else PADDING,
                  style="-" if inside else "--", edge=EDGE if inside else "#969696")
    window = conv_window(position, k, s, d)
    for r, c in window:
        _cell(ax, 0, 0, r, c, "window", WINDOW, alpha=0.6, lw=2.2, edge="black", z=2)
    for r in range(oh):
        for c in range(ow):
            current = (r, c) == position
            _cell(ax, out_top, out_left, r, c, "out-current" if current else "out", CURRENT if current else OUTPUT)

    ax.text(cols / 2, -0.4, f"input {_size_text((h, w))}, padding {_num(p)}", ha="center", va="bottom",
            fontsize=9)
    ax.text(out_left + ow / 2, out_top - 0.4, f"output {_size_text((oh, ow))}", ha="center", va="bottom",
            fontsize=9)
    detail = f"kernel {_size_text(k)}, stride {_num(s)}, dilation {_num(d)}"
    formula = _formulas(_conv_formula, ((h, k[0], s[0], p[0], d[0]), (w, k[1], s[1], p[1], d[1])))
    ax.text(width / 2, height + 0.3, detail + "\n" + formula, ha="center", va="top", fontsize=8)
    _finish(ax, width, height, bottom_margin=2.2 if "\n" in formula else 1.7, own_figure=own_figure)
    return Drawing(ax=ax, output_shape=(oh, ow), window=window, position=position,
                   grids={"input": (0, 0, rows, cols), "output": (out_top, out_left, oh, ow)})


# ---- transposed convolution ----------------------------------------------------------


def draw_transposed_conv(input_size, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                         step=None, ax=None, view="scatter") -> Drawing:
    """Draw a transposed convolution, as the library computes it (``view="scatter"``) or as a direct conv.

    ``"scatter"``: the input on the left with pixel ``step`` highlighted; on
    the right the canvas it writes into: its window (dark), the count of
    windows written so far in every cell (overlaps sum), the cropped border
    of width PH, PW (hatched) and the output_padding cells (dotted). The
    output is the canvas without the hatched border: conv_transpose2d's size.

    ``"direct"``: the input with SH-1 zeros inserted between pixels (dotted
    cells) and padded by DH*(KH-1)-PH (dashed), a stride-1 window, the
    output beside it; ``step`` indexes the output. See
    ``transposed_as_direct_conv``.
    """
    if view not in ("scatter", "direct"):
        raise ValueError(f"view must be 'scatter' or 'direct', got {view!r}")
    (h, w), k, s, p, op, d, out = transposed_options(input_size, kernel_size, stride, padding, output_padding,
                                                     dilation)
    formula = _formulas(_transposed_formula, ((h, k[0], s[0], p[0], op[0], d[0]),
                                              (w, k[1], s[1], p[1], op[1], d[1])))
    detail = (f"kernel {_size_text(k)}, stride {_num(s)}, padding {_num(p)},\n"
              f"output_padding {_num(op)}, dilation {_num(d)}")
    if view == "direct":
        return _draw_transposed_direct((h, w), k, s, p, op, d, out, step, ax, detail + "\n" + formula)

    # The canvas: every cell some window can write, and the output_padding cells beyond it.
    canvas = tuple((n - 1) * s[a] + d[a] * (k[a] - 1) + 1 for a, n in enumerate((h, w)))
    rows, cols = max(canvas[0], p[0] + out[0]), max(canvas[1], p[1] + out[1])
    pixel = _step_position(step, (h, w), "input pixel")
    out_left = w + GAP
    in_top = (rows - h) / 2
    width, height = out_left + cols, rows
    ax, own_figure = _axes(ax)

    order = [(r, c) for r in range(h) for c in range(w)]
    written = {}
    for earlier in order[: order.index(pixel) + 1]:
        for cell in transposed_conv_window(earlier, k, s, d):
            written[cell] = written.get(cell, 0) + 1
    for r in range(h):
        for c in range(w):
            current = (r, c) == pixel
            _cell(ax, in_top, 0, r, c, "in-current" if current else "in", WINDOW if current else INPUT,
                  alpha=0.8 if current else 1.0)
    for r in range(rows):
        for c in range(cols):
            in_output = p[0] <= r < p[0] + out[0] and p[1] <= c < p[1] + out[1]
            beyond = r >= canvas[0] or c >= canvas[1]
            if not in_output:
                _cell(ax, 0, out_left, r, c, "cropped", PADDING, edge="#969696", style="--", hatch="///")
            elif beyond:
                _cell(ax, 0, out_left, r, c, "out", OUTPUT, style=":")
            else:
                _cell(ax, 0, out_left, r, c, "out", OUTPUT)
            if (r, c) in written:
                ax.text(out_left + c + 0.5, r + 0.5, str(written[(r, c)]), ha="center", va="center", fontsize=7,
                        color="black", zorder=3)
    window = transposed_conv_window(pixel, k, s, d)
    for r, c in window:
        _cell(ax, 0, out_left, r, c, "window", CURRENT, alpha=0.6, lw=2.2, edge="black", z=2)

    ax.text(w / 2, in_top - 0.4, f"input {_size_text((h, w))}", ha="center", va="bottom", fontsize=9)
    ax.text(out_left + cols / 2, -0.4, f"output {_size_text(out)} (hatched: cropped)",
            ha="center", va="bottom", fontsize=9)
    ax.text(width / 2, height + 0.3, detail + "\n" + formula, ha="center", va="top", fontsize=8)
    _finish(ax, width, height, bottom_margin=2.6 if "\n" in formula else 2.2, own_figure=own_figure)
    return Drawing(ax=ax, output_shape=tuple(out), window=window, position=pixel,
                   grids={"input": (in_top, 0, h, w), "canvas": (0, out_left, rows, cols),
                          "output": (p[0], out_left + p[1], out[0], out[1])})


def _draw_transposed_direct(size, k, s, p, op, d, out, step, ax, text) -> Drawing:
    h, w = size
    plan = transposed_as_direct_conv(size, k, s, p, op, d)
    before, after = plan["pad_before"], plan["pad_after"]
    rows = before[0] + plan["inserted"][0] + after[0]
    cols = before[1] + plan["inserted"][1] + after[1]
    position = _step_position(step, out, "output position")
    out_left = cols + GAP
    out_top = (rows - out[0]) / 2
    width, height = out_left + out[1], rows
    ax, own_figure = _axes(ax)
    for r in range(rows):
        for c in range(cols):
            rr, cc = r - before[0], c - before[1]
            inside = 0 <= rr < plan["inserted"][0] and 0 <= cc < plan["inserted"][1]
            if inside and rr % s[0] == 0 and cc % s[1] == 0:
                _cell(ax, 0, 0, r, c, "in", INPUT)
            elif inside:
                _cell(ax, 0, 0, r, c, "inserted", PADDING, style=":", edge="#737373")
            else:
                _cell(ax, 0, 0, r, c, "pad", PADDING, style="--", edge="#969696")
    window = conv_window(position, k, 1, d)
    for r, c in window:
        _cell(ax, 0, 0, r, c, "window", WINDOW, alpha=0.6, lw=2.2, edge="black", z=2)
    for r in range(out[0]):
        for c in range(out[1]):
            current = (r, c) == position
            _cell(ax, out_top, out_left, r, c, "out-current" if current else "out", CURRENT if current else OUTPUT)
    ax.text(cols / 2, -0.4, f"input {_size_text((h, w))}: zeros inserted, padded",
            ha="center", va="bottom", fontsize=9)
    ax.text(out_left + out[1] / 2, out_top - 0.4, f"output {_size_text(out)}", ha="center", va="bottom",
            fontsize=9)
    ax.text(width / 2, height + 0.3, text, ha="center", va="top", fontsize=8)
    _finish(ax, width, height, bottom_margin=3.0 if text.count("\n") > 2 else 2.6, own_figure=own_figure)
    return Drawing(ax=ax, output_shape=tuple(out), window=window, position=position,
                   grids={"input": (0, 0, rows, cols), "output": (out_top, out_left, out[0], out[1])})

