"""im2col and col2im: columns are the windows, col2im is the adjoint, the options become pairs once."""
import numpy as np
import pytest
from helpers import dot, rand

from minimal_seg.backend import to_numpy
from minimal_seg.functional.im2col import (
    ConvOptions,
    batch_first,
    channels_first,
    col2im,
    conv_options,
    conv_weight_grad,
    im2col,
)

# (input size, kernel, stride, padding, dilation): odd/even sizes, non-square pairs, windows that overlap,
# that touch, that skip pixels
CASES = [
    ((5, 4), 3, 1, 1, 1),
    ((7, 9), 3, 2, 0, 2),
    ((6, 6), 2, 2, 0, 1),  # windows that never overlap: col2im writes instead of adding
    ((8, 7), (3, 2), (3, 1), (2, 0), (1, 3)),
    ((3, 5), (1, 3), (2, 2), (0, 1), 1),
]


def test_im2col_columns_are_windows(xp):
    # cols is (C*KH*KW, N*OH*OW): column (n, p, q) is the window of image n at output (p, q),
    # flattened in (c, i, j) order, the order of w.reshape(OC, C*KH*KW).
    x = np.arange(2 * 2 * 5 * 5, dtype=np.float64).reshape(2, 2, 5, 5)
    cols = to_numpy(im2col(xp.asarray(x), 3, stride=2, padding=1))
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert cols.shape == (2 * 9, 2 * 9)
    for n in range(2):
        for p in range(3):
            for q in range(3):
                window = xpad[n, :, 2 * p:2 * p + 3, 2 * q:2 * q + 3].ravel()
                np.testing.assert_array_equal(cols[:, n * 9 + p * 3 + q], window)


@pytest.mark.parametrize("size,k,s,p,d", CASES)
def test_im2col_col2im_adjoint(xp, rng, size, k, s, p, d):
    x = xp.asarray(rand(rng, (2, 3) + size))
    cols = im2col(x, k, s, p, d)
    y = xp.asarray(rand(rng, cols.shape))
    assert dot(cols, y) == pytest.approx(dot(x, col2im(y, x.shape, k, s, p, d)), rel=1e-12)


def test_col2im_sums_overlapping_windows(xp):
    # 3x3 windows, stride 1, on a 4x4 image of ones: each pixel is counted once per window that reads it
    x = xp.ones((1, 1, 4, 4))
    counts = to_numpy(col2im(im2col(x, 3), x.shape, 3))[0, 0]
    np.testing.assert_array_equal(counts, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_col2im_checks_the_shape_of_cols(xp):
    with pytest.raises(ValueError, match=r"cols must have shape \(9, 4\)"):
        col2im(xp.zeros((9, 5)), (1, 1, 4, 4), 3)


def test_conv_options_are_pairs():
    assert conv_options(3, 2, (1, 0)) == ConvOptions((3, 3), (2, 2), (1, 0), (1, 1))
    with pytest.raises(ValueError, match="stride"):
        conv_options(3, 0)
    with pytest.raises(TypeError, match="padding"):
        conv_options(3, 1, 1.5)


def test_layouts_and_weight_grad(xp, rng):
    """channels_first and batch_first undo each other; conv_weight_grad is dout @ cols.T."""
    a = xp.asarray(rand(rng, (2, 3, 4, 5)))
    m = channels_first(a)
    assert m.shape == (3, 2 * 4 * 5)
    back = xp.empty_like(a)
    batch_first(m, back)
    np.testing.assert_array_equal(to_numpy(back), to_numpy(a))
    dout, cols = xp.asarray(rand(rng, (4, 7))), xp.asarray(rand(rng, (6, 7)))
    np.testing.assert_allclose(to_numpy(conv_weight_grad(dout, cols)), to_numpy(dout @ cols.T), rtol=1e-12)
