"""Figures of convolution arithmetic: what is drawn must be what the library computes.

Every test reads the drawing back from the Axes (each cell is a Rectangle
whose gid says what it is: "in", "pad", "window", "out", ...), so a figure
that disagreed with ``shapes.py`` or with ``im2col`` would fail here.
"""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from minimal_seg.conv_arithmetic import (  # noqa: E402
    animate_conv,
    animate_transposed_conv,
    conv_window,
    draw_conv,
    draw_transposed_conv,
    transposed_as_direct_conv,
)
from minimal_seg.functional import (  # noqa: E402
    conv2d_forward,
    conv2d_output_shape,
    conv_transpose2d_forward,
    conv_transpose2d_output_shape,
    im2col,
)

# (input_size, kernel_size, stride, padding, dilation): squares, rectangles, every option.
CONV_CASES = [
    (5, 3, 1, 0, 1), (5, 3, 1, 1, 1), (5, 3, 1, 2, 1), (5, 3, 2, 1, 1), (6, 3, 2, 0, 1), (7, 3, 1, 0, 2),
    (7, 3, 1, 0, 3), (7, 3, 2, 2, 2), (4, 2, 2, 0, 1), (5, 4, 3, 1, 1), (1, 1, 1, 0, 1), (3, 3, 1, 0, 1),
    ((4, 6), (3, 2), (1, 2), (1, 0), (1, 2)), ((5, 3), (2, 3), (2, 1), (0, 1), (2, 1)), (6, 1, 2, 0, 1),
]
# (input_size, kernel_size, stride, padding, output_padding, dilation)
TRANSPOSED_CASES = [
    (2, 3, 1, 0, 0, 1), (3, 3, 2, 1, 1, 1), (2, 2, 2, 0, 0, 1), (3, 4, 2, 1, 0, 1), (3, 3, 2, 0, 1, 1),
    (2, 3, 1, 1, 0, 2), (3, 3, 3, 2, 2, 2), ((2, 3), (3, 2), (2, 1), (1, 0), (1, 0), (1, 2)), (1, 3, 2, 0, 0, 1),
]


@pytest.fixture(scope="module")
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


def fresh(ax):
    """Remove the previous drawing (cheaper than ax.clear())."""
    for artist in list(ax.patches) + list(ax.texts):
        artist.remove()
    return ax


def cells(ax, kind):
    """(row, col) of the drawn cells of one kind, in drawing order, from the Rectangles' gids."""
    found = []
    for patch in ax.patches:
        name, r, c = (patch.get_gid() or "::").split(":")
        if name == kind:
            found.append((int(r), int(c)))
    return found


def grid_shape(coords):
    rows, cols = {r for r, _ in coords}, {c for _, c in coords}
    assert rows == set(range(len(rows))) and cols == set(range(len(cols))), "the grid has holes"
    assert len(coords) == len(rows) * len(cols)
    return len(rows), len(cols)


def pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("case", CONV_CASES)
def test_drawn_output_grid_is_conv2d_output_shape(ax, case):
    fresh(ax)
    drawing = draw_conv(*case, ax=ax)
    expected = conv2d_output_shape(*case)
    assert grid_shape(cells(ax, "out") + cells(ax, "out-current")) == expected
    assert drawing.output_shape == expected
    (h, w), (ph, pw) = pair(case[0]), pair(case[3])
    assert grid_shape(cells(ax, "in") + cells(ax, "pad")) == (h + 2 * ph, w + 2 * pw)
    assert len(cells(ax, "in")) == h * w


@pytest.mark.parametrize("case", [c for c in CONV_CASES if np.prod(conv2d_output_shape(*c)) <= 16])
def test_every_drawn_window_is_an_im2col_column(ax, case):
    """Column (oh, ow) of im2col on an arange image holds exactly the highlighted pixels, in order."""
    size, k, s, p, d = case
    h, w = pair(size)
    ph, pw = pair(p)
    x = np.arange(1, h * w + 1, dtype=np.float64).reshape(1, 1, h, w)  # 0 only in the padding
    xpad = np.pad(x[0, 0], ((ph, ph), (pw, pw)))
    cols = im2col(x, k, s, p, d)
    oh, ow = conv2d_output_shape(size, k, s, p, d)
    for step in range(oh * ow):
        fresh(ax)
        drawing = draw_conv(size, k, s, p, d, step=step, ax=ax)
        window = cells(ax, "window")
        assert window == drawing.window == conv_window(divmod(step, ow), k, s, d)
        assert cells(ax, "out-current") == [divmod(step, ow)]
        np.testing.assert_array_equal([xpad[r, c] for r, c in window], cols[:, step])


@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_transposed_scatter_windows_are_conv_transpose2d(ax, case):
    """A one-hot input pixel writes the kernel exactly into the drawn window (minus the cropped border)."""
    size, k, s, p, op, d = case
    (h, w), (kh, kw), (ph, pw) = pair(size), pair(k), pair(p)
    out = conv_transpose2d_output_shape(size, k, s, p, op, d)
    weight = np.arange(1, kh * kw + 1, dtype=np.float64).reshape(1, 1, kh, kw)
    for step in range(h * w):
        fresh(ax)
        drawing = draw_transposed_conv(size, k, s, p, op, d, step=step, ax=ax)
        assert grid_shape(cells(ax, "in") + cells(ax, "in-current")) == (h, w)
        assert cells(ax, "in-current") == [divmod(step, w)]
        # The output grid: the canvas without the hatched (cropped) cells.
        top, left, rows, cols = drawing.grids["output"]
        shown = [(r - ph, c - pw) for r, c in cells(ax, "out")]
        assert grid_shape(shown) == out == drawing.output_shape == (rows, cols)

        x = np.zeros((1, 1, h, w))
        x[0, 0][divmod(step, w)] = 1.0
        y = conv_transpose2d_forward(x, weight, stride=s, padding=p, output_padding=op, dilation=d)[0][0, 0]
        expected = np.zeros(out)
        for (r, c), value in zip(cells(ax, "window"), weight.ravel()):
            if 0 <= r - ph < out[0] and 0 <= c - pw < out[1]:
                expected[r - ph, c - pw] = value
        np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_transposed_direct_view_computes_conv_transpose2d(ax, case, rng):
    """Zeros inserted, padded, a stride-1 conv with the flipped kernel: conv_transpose2d's numbers."""
    size, k, s, p, op, d = case
    plan = transposed_as_direct_conv(size, k, s, p, op, d)
    (h, w), (sh, sw) = pair(size), pair(s)
    x = rng.standard_normal((2, 3, h, w))
    weight = rng.standard_normal((3, 4) + pair(k))
    big = np.zeros((2, 3) + plan["inserted"])
    big[:, :, ::sh, ::sw] = x
    (bh, bw), (ah, aw) = plan["pad_before"], plan["pad_after"]
    big = np.pad(big, ((0, 0), (0, 0), (bh, ah), (bw, aw)))
    flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy()
    direct, _ = conv2d_forward(big, flipped, stride=1, dilation=d)
    expected, _ = conv_transpose2d_forward(x, weight, stride=s, padding=p, output_padding=op, dilation=d)
    np.testing.assert_allclose(direct, expected, atol=1e-12)

    fresh(ax)
    drawing = draw_transposed_conv(size, k, s, p, op, d, step=0, ax=ax, view="direct")
    assert grid_shape(cells(ax, "out") + cells(ax, "out-current")) == expected.shape[2:] == drawing.output_shape
    assert grid_shape(cells(ax, "in") + cells(ax, "inserted") + cells(ax, "pad")) == big.shape[2:]
    assert sorted(cells(ax, "in")) == sorted((bh + i * sh, bw + j * sw) for i in range(h) for j in range(w))


def test_direct_view_needs_padding_at_most_the_dilated_kernel():
    with pytest.raises(ValueError, match="view='scatter'"):
        transposed_as_direct_conv(3, 3, 3, 3, 2, 1)


def test_step_out_of_range_says_so(ax):
    with pytest.raises(ValueError, match=r"step must lie in \[0, 9\)"):
        draw_conv(5, 3, 2, 1, step=9, ax=ax)
    with pytest.raises(ValueError, match="larger than the padded input"):
        draw_conv(3, 5, ax=ax)


def test_lecture_example_sizes(ax):
    # A 3x3 kernel takes 4x4 to 2x2, and its transpose 2x2 back to 4x4 (seed 003).
    assert draw_conv(4, 3, ax=ax).output_shape == (2, 2)
    fresh(ax)
    assert draw_transposed_conv(2, 3, ax=ax).output_shape == (4, 4)


def test_gifs_have_one_frame_per_window(tmp_path):
    from PIL import Image

    path = animate_conv(4, 3, 2, 1, path=tmp_path / "conv.gif", dpi=30)
    with Image.open(path) as gif:
        assert gif.n_frames == np.prod(conv2d_output_shape(4, 3, 2, 1))  # 2x2 = 4
    path = animate_transposed_conv((2, 3), 3, 2, 1, 1, path=tmp_path / "t.gif", dpi=30)
    with Image.open(path) as gif:
        assert gif.n_frames == 2 * 3
    path = animate_transposed_conv(1, 2, 1, path=tmp_path / "d.gif", dpi=30, view="direct")
    with Image.open(path) as gif:
        assert gif.n_frames == 2 * 2
