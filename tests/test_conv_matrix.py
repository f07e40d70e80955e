"""The convolution matrix C: the lecture's 4x16 example, conv == C @ x, transposed conv == C^T @ x."""
import numpy as np
import pytest
from helpers import rand

from minimal_seg.backend import to_numpy
from minimal_seg.functional.conv import conv2d_forward, conv_transpose2d_forward
from minimal_seg.functional.conv_matrix import conv_matrix

KERNEL = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=np.float64)
LECTURE_C = np.array([
    [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
    [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
    [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1],
], dtype=np.float64)


def test_lecture_4x16_matrix(xp):
    C = conv_matrix(xp.asarray(KERNEL[None, None]), 4)
    np.testing.assert_array_equal(to_numpy(C), LECTURE_C)


def test_lecture_transpose_times_vector(xp):
    C = conv_matrix(xp.asarray(KERNEL[None, None]), (4, 4))
    out = C.T @ xp.asarray([2.0, 1.0, 4.0, 4.0])
    expected = [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]
    np.testing.assert_array_equal(to_numpy(out).reshape(4, 4), expected)


def test_transpose_is_not_inverse(xp):
    C = to_numpy(conv_matrix(xp.asarray(KERNEL[None, None]), 4))
    assert not np.allclose(C.T @ C, np.eye(16))
    x = np.array([2.0, 1.0, 4.0, 4.0])
    assert not np.allclose(C @ (C.T @ x), x)  # going up and down again does not give x back


@pytest.mark.parametrize("size,k,s,p,d", [
    ((5, 5), 3, 1, 0, 1), ((6, 7), 3, 2, 1, 1), ((7, 7), 3, 1, 2, 2),
    ((6, 5), (2, 3), (1, 2), (1, 0), (2, 1)), ((8, 6), 3, 3, 1, 2),
])
def test_conv_equals_matrix_product(xp, rng, size, k, s, p, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = xp.asarray(rand(rng, (2, 3) + size))
    w = xp.asarray(rand(rng, (4, 3, kh, kw)))
    out, _ = conv2d_forward(x, w, stride=s, padding=p, dilation=d)
    C = conv_matrix(w, size, s, p, d)
    assert C.shape == (out[0].size, x[0].size)
    by_matrix = (C @ x.reshape(2, -1).T).T.reshape(out.shape)
    np.testing.assert_allclose(to_numpy(by_matrix), to_numpy(out), rtol=1e-12, atol=1e-12)


def test_padding_drops_columns_outside_the_image(xp):
    # 1x1 image, 3x3 kernel, padding 1: the only input pixel meets the kernel centre.
    w = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    C = to_numpy(conv_matrix(xp.asarray(w), 1, padding=1))
    np.testing.assert_array_equal(C, [[4.0]])


def test_matrix_keeps_dtype(xp):
    C = conv_matrix(xp.ones((1, 1, 2, 2), dtype=xp.float32), 3)
    assert C.dtype == xp.float32


def test_matrix_method_equals_fast_path(xp, rng):
    x = xp.asarray(rand(rng, (2, 3, 4, 3)))
    w = xp.asarray(rand(rng, (3, 2, 3, 3)))
    fast, _ = conv_transpose2d_forward(x, w, stride=2, padding=1, output_padding=1)
    slow, _ = conv_transpose2d_forward(x, w, stride=2, padding=1, output_padding=1, method="matrix")
    np.testing.assert_allclose(to_numpy(slow), to_numpy(fast), rtol=1e-12, atol=1e-12)


def test_bad_weight(xp):
    with pytest.raises(ValueError, match="w must be 4-D"):
        conv_matrix(xp.ones((3, 3)), 4)
    with pytest.raises(ValueError, match="kernel_size"):
        conv_matrix(xp.ones((1, 1, 5, 5)), 4)
