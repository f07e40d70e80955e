"""Tests for minimal_seg/functional/activation.py: ReLU, sigmoid, softmax.

Three ways, as everywhere: hand examples, float64 gradient checks, PyTorch oracle.
"""
import warnings

import numpy as np
import pytest
from helpers import assert_close, rand, to_torch, torch_or_skip

from minimal_seg.functional.activation import (
    log_softmax,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
)
from minimal_seg.gradcheck import gradcheck

PAIRS = {
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "softmax": (softmax_forward, softmax_backward),
}


def no_tie_input(rng, shape, gap=1e-3):
    """Random normal numbers, none within ``gap`` of 0 (ReLU's kink)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < gap, x + np.sign(x + 1e-12) * 2 * gap, x)


# ------------------------------------------------------------------ hand examples

def test_relu_hand(xp):
    x = xp.asarray([[-1.0, 0.0, 2.0]])
    out, cache = relu_forward(x)
    assert out.tolist() == [[0.0, 0.0, 2.0]]
    assert relu_backward(xp.asarray([[5.0, 6.0, 7.0]]), cache).tolist() == [[0.0, 0.0, 7.0]]


def test_sigmoid_hand(xp):
    out, cache = sigmoid_forward(xp.asarray([0.0, np.log(3.0)]))
    assert float(out[0]) == 0.5
    assert float(out[1]) == pytest.approx(0.75, abs=1e-15)
    dx = sigmoid_backward(xp.asarray([1.0, 1.0]), cache)
    assert dx.tolist() == pytest.approx([0.25, 0.75 * 0.25], abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_large_inputs_no_overflow(xp, dtype):
    x = xp.asarray([-1000.0, -100.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        out, _ = sigmoid_forward(x)
    assert out.tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0], abs=1e-30)
    assert out.dtype == dtype


def test_softmax_hand(xp):
    out, _ = softmax_forward(xp.asarray([[0.0, np.log(3.0)]]), axis=1)
    assert out.tolist()[0] == pytest.approx([0.25, 0.75], abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_large_logits_stable(xp, dtype):
    x = xp.asarray([[1000.0, 1000.0, -1000.0]], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
        warnings.simplefilter("error")
        out, _ = softmax_forward(x, axis=1)
        logp = log_softmax(x, axis=1)
    assert out.tolist()[0] == pytest.approx([0.5, 0.5, 0.0], abs=1e-7)
    assert bool(xp.isfinite(logp).all())
    assert float(logp[0, 2]) == pytest.approx(-2000.0 - np.log(2.0))


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_softmax_sums_to_one(xp, rng, axis):
    out, _ = softmax_forward(xp.asarray(rand(rng, (2, 3, 4, 5))), axis=axis)
    assert float(xp.abs(out.sum(axis=axis) - 1).max()) < 1e-12


def test_softmax_backward_of_constant_is_zero(xp, rng):
    """Adding a constant to every class does not change p, so an all-ones dout gives dx = 0."""
    _, cache = softmax_forward(xp.asarray(rand(rng, (2, 3, 4, 4))))
    assert float(xp.abs(softmax_backward(xp.ones((2, 3, 4, 4)), cache)).max()) < 1e-15


# ------------------------------------------------------------------ gradient checks

@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("shape", [(2, 3, 3, 4), (5, 7)])
def test_gradcheck(xp, rng, name, shape):
    forward, backward = PAIRS[name]
    x = xp.asarray(no_tie_input(rng, shape))
    report = gradcheck(forward, backward, {"x": x})
    assert report.passed, str(report)


@pytest.mark.parametrize("axis", [0, 2, -1])
def test_gradcheck_softmax_axis(xp, rng, axis):
    x = xp.asarray(rand(rng, (2, 3, 2, 3)))
    report = gradcheck(softmax_forward, softmax_backward, {"x": x}, kwargs={"axis": axis})
    assert report.passed, str(report)


# ------------------------------------------------------------------ PyTorch oracle

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(PAIRS))
def test_against_torch(xp, rng, name, dtype):
    torch = torch_or_skip()
    torch_op = {
        "relu": torch.nn.functional.relu,
        "sigmoid": torch.sigmoid,
        "softmax": lambda t: torch.softmax(t, dim=1),
    }[name]
    forward, backward = PAIRS[name]
    x_np = (3 * no_tie_input(rng, (2, 4, 5, 6))).astype(dtype)
    dout_np = rand(rng, x_np.shape, dtype)

    out, cache = forward(xp.asarray(x_np))
    dx = backward(xp.asarray(dout_np), cache)
    assert out.dtype == dtype and dx.dtype == dtype

    x_t = to_torch(x_np, requires_grad=True)
    out_t = torch_op(x_t)
    out_t.backward(to_torch(dout_np))
    assert_close(out, out_t, dtype)
    assert_close(dx, x_t.grad, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_against_torch(xp, rng, dtype):
    torch = torch_or_skip()
    x_np = (10 * rand(rng, (2, 4, 3, 3))).astype(dtype)
    assert_close(log_softmax(xp.asarray(x_np), axis=1), torch.log_softmax(to_torch(x_np), dim=1), dtype)


@pytest.mark.parametrize("name", list(PAIRS))
def test_rejects_integer_input(xp, name):
    forward, _ = PAIRS[name]
    with pytest.raises(TypeError, match="x"):
        forward(xp.asarray([1, 2, 3]))
