"""kernels/optimizers.py: SGD's and Adam's update in one launch per parameter, equal to optim.py's array code."""
import numpy as np
import pytest
from kernel_checks import assert_nvcc_compiles, assert_same, count_launches, needs_nvcc, reference

from minimal_seg.functional import kernels
from minimal_seg.functional.kernels import optimizers
from minimal_seg.optim import SGD, Adam

OPTIMIZERS = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    (Adam, {"lr": 3e-3}),
    (Adam, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2}),
]


def _run(xp, cls, settings, dtype, steps=3):
    """Three steps of ``cls`` on two parameters with fixed gradients; the parameters and the state after them."""
    rng = np.random.default_rng(0)
    params = {"w": xp.asarray(rng.standard_normal((4, 3, 3, 3)).astype(dtype)), "b": xp.asarray(np.zeros(4, dtype))}
    grads = {"w": xp.asarray(rng.standard_normal((4, 3, 3, 3)).astype(dtype)),
             "b": xp.asarray(rng.standard_normal(4).astype(dtype))}
    opt = cls([(params, grads)], **settings)
    for _ in range(steps):
        opt.step()
    return params, opt.state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, settings", OPTIMIZERS)
def test_the_fused_update_is_the_array_code_bit_for_bit(kernel_emulator, xp, cls, settings, dtype):
    want_params, want_state = reference(_run, xp, cls, settings, dtype)
    with count_launches(xp) as launches:
        params, state = _run(xp, cls, settings, dtype)
    kernel = "sgd_update" if cls is SGD else "adam_update"
    assert launches == {f"{kernel}_{'float' if dtype == np.float32 else 'double'}": 3 * 2}  # a launch per parameter
    for key in want_params:
        assert_same(params[key], want_params[key])
    for name in want_state:
        for slot in want_state[name]:
            assert_same(state[name][slot], want_state[name][slot])


def test_a_non_contiguous_parameter_takes_the_array_code(kernel_emulator):
    p = np.zeros((4, 6), np.float32)[:, ::2]
    g = np.ones((4, 3), np.float32)
    assert not optimizers.fusable(p, g) and optimizers.fusable(np.zeros(3, np.float32), np.ones(3, np.float32))
    assert not optimizers.fusable(np.zeros(3, np.float32), np.ones(3, np.float64))
    with count_launches(np) as launches:
        SGD([({"p": p}, {"p": g})], lr=0.5).step()
    assert launches == {} and np.all(p == -0.5)


def test_without_kernels_nothing_is_launched(kernel_emulator):
    with count_launches(np) as launches, kernels.use_kernels(False):
        _run(np, Adam, {"lr": 1e-3}, np.float32)
    assert launches == {}


@needs_nvcc
def test_nvcc_compiles_the_optimizer_kernels():
    assert_nvcc_compiles(optimizers.SOURCE)
