"""Tests for minimal_seg/functional/norm.py: batch_norm2d."""

import numpy as np
import pytest
from helpers import assert_close, rand, to_torch, torch_or_skip

from minimal_seg.functional.norm import batch_norm2d_backward, batch_norm2d_forward
from minimal_seg.gradcheck import gradcheck


def make_inputs(xp, rng, shape=(2, 3, 4, 5), dtype=np.float64):
    """x, gamma, beta, running_mean, running_var (running_var > 0) on backend xp."""
    c = shape[1]
    x = 2 * rand(rng, shape) + 1
    gamma, beta = rand(rng, (c,)), rand(rng, (c,))
    running_mean, running_var = rand(rng, (c,)), rng.uniform(0.5, 2.0, (c,))
    return [xp.asarray(a.astype(dtype)) for a in (x, gamma, beta, running_mean, running_var)]


# ------------------------------------------------------------------ hand example

def test_hand_example_training(xp):
    """One channel holding 1 and 3: mean 2, biased var 1, unbiased var 2."""
    x = xp.asarray([1.0, 3.0]).reshape(2, 1, 1, 1)
    gamma, beta = xp.asarray([2.0]), xp.asarray([1.0])
    running_mean, running_var = xp.asarray([0.0]), xp.asarray([1.0])
    out, cache = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=True, eps=0.0)
    assert out.reshape(-1).tolist() == [-1.0, 3.0]  # 2 * (-1, 1) + 1
    assert running_mean.tolist() == pytest.approx([0.2])  # 0.9 * 0 + 0.1 * 2
    assert running_var.tolist() == pytest.approx([1.1])  # 0.9 * 1 + 0.1 * 2
    dx, dgamma, dbeta = batch_norm2d_backward(xp.asarray([1.0, 1.0]).reshape(2, 1, 1, 1), cache)
    assert dbeta.tolist() == [2.0] and dgamma.tolist() == [0.0]
    assert dx.reshape(-1).tolist() == [0.0, 0.0]  # a shift of the whole channel is normalised away


def test_hand_example_eval(xp):
    x = xp.asarray([1.0, 3.0]).reshape(2, 1, 1, 1)
    running_mean, running_var = xp.asarray([1.0]), xp.asarray([4.0])
    out, cache = batch_norm2d_forward(x, xp.asarray([2.0]), xp.asarray([1.0]), running_mean, running_var,
                                      training=False, eps=0.0)
    assert out.reshape(-1).tolist() == [1.0, 3.0]  # 2 * ((1, 3) - 1) / 2 + 1
    assert running_mean.tolist() == [1.0] and running_var.tolist() == [4.0]  # untouched
    dx, _, _ = batch_norm2d_backward(xp.asarray([1.0, -1.0]).reshape(2, 1, 1, 1), cache)
    assert dx.reshape(-1).tolist() == [1.0, -1.0]  # gamma / sqrt(var) = 1


def test_training_output_is_normalised(xp, rng):
    x, gamma, beta, rm, rv = make_inputs(xp, rng, (4, 3, 5, 5))
    out, _ = batch_norm2d_forward(x, xp.ones(3), xp.zeros(3), rm, rv, training=True)
    assert float(xp.abs(out.mean(axis=(0, 2, 3))).max()) < 1e-12
    assert float(xp.abs(out.var(axis=(0, 2, 3)) - 1).max()) < 1e-3  # eps = 1e-5


# ------------------------------------------------------------------ gradient checks

@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 1)])
def test_gradcheck(xp, rng, training, shape):
    x, gamma, beta, rm, rv = make_inputs(xp, rng, shape)
    report = gradcheck(
        batch_norm2d_forward, batch_norm2d_backward,
        {"x": x, "gamma": gamma, "beta": beta, "running_mean": rm, "running_var": rv},
        kwargs={"training": training}, wrt=("x", "gamma", "beta"),
    )
    assert [c.name for c in report.checks] == ["x", "gamma", "beta"]
    assert report.passed, str(report)


# ------------------------------------------------------------------ PyTorch oracle

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.3, 1e-3)])
def test_against_torch(xp, rng, dtype, training, momentum, eps):
    torch = torch_or_skip()
    x, gamma, beta, rm, rv = make_inputs(xp, rng, (3, 4, 5, 6), dtype)
    dout = xp.asarray(rand(rng, x.shape, dtype))
    x_t, gamma_t, beta_t = (to_torch(a, requires_grad=True) for a in (x, gamma, beta))
    rm_t, rv_t = to_torch(rm).clone(), to_torch(rv).clone()

    out, cache = batch_norm2d_forward(x, gamma, beta, rm, rv, training, momentum=momentum, eps=eps)
    dx, dgamma, dbeta = batch_norm2d_backward(dout, cache)
    out_t = torch.nn.functional.batch_norm(x_t, rm_t, rv_t, gamma_t, beta_t, training=training,
                                           momentum=momentum, eps=eps)
    out_t.backward(to_torch(dout))

    for ours, theirs in [(out, out_t), (dx, x_t.grad), (dgamma, gamma_t.grad), (dbeta, beta_t.grad),
                         (rm, rm_t), (rv, rv_t)]:
        assert ours.dtype == dtype
        assert_close(ours, theirs, dtype)


def test_running_stats_over_several_steps_match_torch(xp, rng):
    torch = torch_or_skip()
    _, gamma, beta, rm, rv = make_inputs(xp, rng, (2, 3, 4, 4))
    rm_t, rv_t = to_torch(rm).clone(), to_torch(rv).clone()
    for _ in range(3):
        x = xp.asarray(rand(rng, (2, 3, 4, 4)) * 3 + 2)
        batch_norm2d_forward(x, gamma, beta, rm, rv, training=True)
        torch.nn.functional.batch_norm(to_torch(x), rm_t, rv_t, to_torch(gamma), to_torch(beta), training=True)
    assert_close(rm, rm_t)
    assert_close(rv, rv_t)


def test_training_without_running_stats(xp, rng):
    x, gamma, beta, rm, rv = make_inputs(xp, rng)
    out, _ = batch_norm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=True)
    out_none, _ = batch_norm2d_forward(x, gamma, beta, None, None, training=True)
    assert float(xp.abs(out - out_none).max()) == 0.0


@pytest.mark.parametrize("training", [True, False])
def test_float32_in_float32_out(xp, rng, training):
    x, gamma, beta, rm, rv = make_inputs(xp, rng, dtype=np.float32)
    out, cache = batch_norm2d_forward(x, gamma, beta, rm, rv, training)
    grads = batch_norm2d_backward(xp.asarray(rand(rng, x.shape, np.float32)), cache)
    assert out.dtype == np.float32
    assert [g.dtype for g in grads] == [np.float32] * 3
    assert rm.dtype == np.float32 and rv.dtype == np.float32


def test_backward_does_not_modify_dout(xp, rng):
    x, gamma, beta, rm, rv = make_inputs(xp, rng)
    _, cache = batch_norm2d_forward(x, gamma, beta, rm, rv, True)
    dout = xp.asarray(rand(rng, x.shape))
    before = dout.copy()
    batch_norm2d_backward(dout, cache)
    assert bool((dout == before).all())


# ------------------------------------------------------------------ errors

def test_errors(xp, rng):
    x, gamma, beta, rm, rv = make_inputs(xp, rng)
    with pytest.raises(ValueError, match="gamma"):
        batch_norm2d_forward(x, gamma[:2], beta, rm, rv, True)
    with pytest.raises(TypeError, match="running_var"):
        batch_norm2d_forward(x, gamma, beta, rm, None, False)
    with pytest.raises(ValueError, match="4-D"):
        batch_norm2d_forward(x[0], gamma, beta, rm, rv, True)
    with pytest.raises(ValueError, match="more than 1 value"):
        batch_norm2d_forward(x[:1, :, :1, :1], gamma, beta, rm, rv, True)
