"""Bad input to the functional ops: one TypeError/ValueError that names the argument.

The cases come from the probe table in docs/robustness.md: each row here
was a traceback from deep inside NumPy, or a silent wrong answer, before
the check existed. (The losses' checks are in test_loss.py.)
"""
import numpy as np
import pytest

import minimal_seg.functional as F

X = np.random.default_rng(0).standard_normal((2, 3, 4, 4))


CASES = [
    # float16 is refused wherever a float is expected (the messages say float32 or float64)
    (lambda: F.relu_forward(X.astype(np.float16)), TypeError, r"x must be .*float32 or float64.*float16"),
    (lambda: F.upsample_bilinear_forward(X.astype(np.float16), scale=2), TypeError, "float16"),
    # options
    (lambda: F.softmax_forward(X, axis=4), ValueError, r"axis must lie in \[-4, 4\)"),
    (lambda: F.log_softmax(X, axis=1.0), TypeError, "axis must be an int"),
    (lambda: F.batch_norm2d_forward(X, *[np.ones(3)] * 4, training="yes"), TypeError, "training must be True or False"),
    (lambda: F.batch_norm2d_forward(X, *[np.ones(3)] * 4, training=True, momentum=2), ValueError,
     r"momentum must be a finite number >= 0 and <= 1"),
    (lambda: F.batch_norm2d_forward(X, *[np.ones(3)] * 4, training=True, eps=-1), ValueError, "eps must be"),
    (lambda: F.batch_norm2d_forward(X, np.ones(3, dtype=int), *[np.ones(3)] * 3, training=True), TypeError, "gamma"),
    (lambda: F.pad_to_multiple_forward(X, 0), ValueError, "multiple must be an integer >= 1, got 0"),
    (lambda: F.crop_forward(X, 0), ValueError, "size must be >= 1"),
    (lambda: F.crop_forward(X, (5, 4)), ValueError, r"size must be a crop \(H, W\) of x's"),
    (lambda: F.crop_forward(X[0], (2, 2)), ValueError, r"x must be 4-D"),
    (lambda: F.crop_forward(X.tolist(), (2, 2)), TypeError, "x must be a NumPy or CuPy array"),
    (lambda: F.crop_backward(X, F.crop_forward(X, (2, 2))[1]), ValueError, "dout must have the forward output's shape"),
    (lambda: F.concat_forward(X), TypeError, "xs must be a non-empty list"),
    (lambda: F.conv2d_forward(X, np.ones((0, 3, 3, 3))), ValueError, r"w must have at least one channel.*\(0, 3, 3, 3\)"),
    (lambda: F.conv_transpose2d_forward(X, np.ones((3, 2, 0, 3))), ValueError, "w must have at least one"),
    (lambda: F.concat_forward([X, X], axis=float("nan")), TypeError, "axis must be an int"),
    (lambda: F.adaptive_pool_matrix(0, 2), ValueError, "in_size must be an integer >= 1"),
    (lambda: F.linear_interpolation_matrix(4, 0), ValueError, "out_size must be an integer >= 1"),
    (lambda: F.linear_interpolation_matrix(4, float("nan")), TypeError, "out_size must be an integer"),
]


@pytest.mark.parametrize("call, error, message", CASES, ids=range(len(CASES)))
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


BACKWARD = [
    (F.relu_forward, F.relu_backward, ()),
    (F.sigmoid_forward, F.sigmoid_backward, ()),
    (F.softmax_forward, F.softmax_backward, ()),
    (lambda x: F.batch_norm2d_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True),
     lambda d, c: F.batch_norm2d_backward(d, c)[0], ()),
    (F.flatten_forward, F.flatten_backward, ()),
    (lambda x: F.pad_to_multiple_forward(x, 3), F.pad_to_multiple_backward, ()),
    (lambda x: F.concat_forward([x, x]), F.concat_backward, ()),
]


@pytest.mark.parametrize("forward, backward, _", BACKWARD, ids=range(len(BACKWARD)))
def test_backward_refuses_a_dout_of_another_shape_or_dtype(forward, backward, _):
    """A wrong-shaped dout used to broadcast silently (relu, sigmoid, softmax, batch norm)."""
    out, cache = forward(X)
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        backward(np.ones((1,) + out.shape[1:]), cache)
    with pytest.raises(TypeError, match="dout must be a floating-point array"):
        backward(np.ones(out.shape, dtype=np.float16), cache)
    with pytest.raises(TypeError, match="dout must be a NumPy or CuPy array"):
        backward(out.tolist(), cache)
    assert backward(np.ones(out.shape), cache) is not None  # the right dout still works
