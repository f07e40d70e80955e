"""The autograder's checks: one module per assignment, named like the assignment's file.

Each module holds ``CHECKS``, a ``grader.Checklist`` in the order the checks
run: shapes and dtypes, the lecture's hand examples, the float64 gradient
check, the comparison with ``minimal_seg.functional``. This module holds what
they share: the lecture's worked examples, typed in exactly as the slides give
them, and random inputs with fixed seeds (every run sees the same numbers).
"""
from __future__ import annotations

import numpy

# float32 against the float64 reference: a correct solution gives ~1e-7 (relative to the largest value)
F32_TOL = 1e-5

# Max pooling 2x2, stride 2 (seed 000): the input, the output, and where each maximum was.
POOL_X = numpy.array([[4, 3, 1, 5], [1, 3, 4, 8], [4, 5, 4, 3], [6, 5, 9, 4]], dtype=numpy.float64)
POOL_OUT = numpy.array([[4, 8], [6, 9]], dtype=numpy.float64)
POOL_INDICES = numpy.array([[0, 7], [12, 14]])  # flat h*W + w: (0,0), (1,3), (3,0), (3,2)

# Transposed convolution (seed 003): the 3x3 kernel, its 4x16 convolution matrix
# on a 4x4 input (stride 1, no padding), and C^T applied to a 2x2 input.
KERNEL = numpy.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=numpy.float64)
CONV_MATRIX = numpy.array([
    [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
    [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
    [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1],
], dtype=numpy.float64)
TCONV_X = numpy.array([[2, 1], [4, 4]], dtype=numpy.float64)
TCONV_OUT = numpy.array([[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]], dtype=numpy.float64)


def rng(seed: int) -> numpy.random.Generator:
    return numpy.random.default_rng(seed)


def randn(seed: int, *shape) -> numpy.ndarray:
    """Standard normal float64 numbers of ``shape``, the same for every run with this seed."""
    return rng(seed).standard_normal(shape)


def tie_free(seed: int, *shape) -> numpy.ndarray:
    """Distinct values 0.1 apart, shuffled: no window has two maxima, even after a 1e-5 nudge."""
    return rng(seed).permutation(numpy.arange(int(numpy.prod(shape))) * 0.1).reshape(shape)


def conv_case(case) -> str:
    """The name of a conv case (x shape, w shape, stride, padding), for the messages."""
    x_shape, w_shape, stride, padding = case
    return f"x {x_shape}, w {w_shape}, stride {stride}, padding {padding}"


def conv_inputs(case, seed: int, bias_axis: int = 0):
    """Random x, w, b of a conv case (x shape, w shape, ...); b has w.shape[bias_axis] entries
    (1 for a transposed conv's C_out, w being (C_in, C_out, KH, KW))."""
    x_shape, w_shape = case[:2]
    return randn(seed, *x_shape), randn(seed + 1, *w_shape), randn(seed + 2, w_shape[bias_axis])
