"""minimal_seg.functional.kernels.elementwise: ReLU, softmax cross-entropy and batch norm kernels equal the reference.

Each op runs with the kernels on (the CPU emulator for numpy and strict
arrays, cupy.RawKernel on a GPU) and off (activation.py, loss.py, norm.py as
a student reads them). ReLU and the cross-entropy backward are exact; what
goes through exp / log or may be fused into a multiply-add on a GPU agrees
to 1e-12 (float64) or a few ulp (float32). Launches are counted.
"""
import numpy as np
import pytest
from kernel_checks import assert_close, assert_nvcc_compiles, assert_same, count_launches, needs_nvcc, reference

from minimal_seg.backend import to_numpy
from minimal_seg.functional import kernels
from minimal_seg.functional.activation import relu_backward, relu_forward
from minimal_seg.functional.kernels import elementwise
from minimal_seg.functional.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from minimal_seg.functional.norm import batch_norm2d_backward, batch_norm2d_forward

DTYPES = [np.float32, np.float64]


def only_launch(launches, name, dtype):
    """The block launched kernel ``name`` for ``dtype`` once, and nothing else."""
    assert dict(launches) == {kernels.typed_name(name, np.dtype(dtype)): 1}, dict(launches)


# ----------------------------------------------------------------------------------------------
# ReLU
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_kernels_equal_the_reference(kernel_emulator, xp, rng, dtype):
    x = rng.integers(-2, 3, (2, 3, 5, 7)).astype(dtype)
    x[0, 0, 0, :4] = [-0.0, np.nan, np.inf, -np.inf]
    x = xp.asarray(x).transpose(0, 1, 3, 2)  # not contiguous
    want, want_cache = reference(relu_forward, x)
    with count_launches(xp) as launches:
        out, cache = relu_forward(x)
    only_launch(launches, "relu_forward", dtype)
    assert_same(out, want)
    assert_same(cache.mask, want_cache.mask)

    dout = rng.standard_normal(out.shape).astype(dtype)
    dout[0, 0, :3, 0] = [-0.0, np.inf, np.nan]
    dout = xp.asarray(dout)
    with np.errstate(invalid="ignore"):  # inf * 0
        want_dx = reference(relu_backward, dout, want_cache)
    with count_launches(xp) as launches:
        dx = relu_backward(dout, cache)
    only_launch(launches, "relu_backward", dtype)
    assert_same(dx, want_dx)


# ----------------------------------------------------------------------------------------------
# softmax cross-entropy
# ----------------------------------------------------------------------------------------------

CE_CASES = [
    # label dtype, ignore_index, fraction of pixels ignored
    (np.int64, -100, 0.2),
    (np.uint8, 255, 0.3),
    (np.int32, None, 0.0),
    (np.uint8, -100, 0.0),   # no uint8 label can equal -100
    (np.int64, -100, 1.0),   # all ignored: loss 0, gradient 0
]


def ce_inputs(rng, xp, dtype, label_dtype, ignore_index, ignored, shape=(2, 5, 4, 6)):
    n, k, h, w = shape
    logits = rng.standard_normal(shape) * 4
    logits[0, :, 0, 0] = [-400, 400, 0, 1e-3, 399]  # exp overflows (even in float64) unless shifted by the max
    logits[0, 1, 0, 1] = logits[0, 3, 0, 1]  # a tie for the max
    labels = rng.integers(0, k, (n, h, w))
    if ignore_index is not None:
        labels[rng.random((n, h, w)) < ignored] = ignore_index
    return xp.asarray(logits.astype(dtype)), xp.asarray(labels.astype(label_dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_dtype, ignore_index, ignored", CE_CASES)
def test_softmax_cross_entropy_kernels_equal_the_reference(kernel_emulator, xp, rng, dtype, weighted,
                                                           label_dtype, ignore_index, ignored):
    logits, labels = ce_inputs(rng, xp, dtype, label_dtype, ignore_index, ignored)
    weight = xp.asarray(rng.random(logits.shape[1]) + 0.5) if weighted else None  # float64: cast to the logits'
    want, want_cache = reference(softmax_cross_entropy_forward, logits, labels, weight, ignore_index)
    with count_launches(xp) as launches:
        loss, cache = softmax_cross_entropy_forward(logits, labels, weight, ignore_index)
    only_launch(launches, "softmax_cross_entropy_forward", dtype)
    assert_close(loss, want)
    assert_close(cache.probs, want_cache.probs)
    np.testing.assert_array_equal(to_numpy(cache.labels), to_numpy(want_cache.labels))
    assert_same(cache.scale, want_cache.scale)
    if ignored == 1.0:
        assert float(loss) == 0.0

    for dout in (1.0, xp.asarray(np.float64(0.37))):
        with count_launches(xp) as launches:
            dz = softmax_cross_entropy_backward(dout, cache)
            dz_from_reference_cache = softmax_cross_entropy_backward(dout, want_cache)
        assert dict(launches) == {kernels.typed_name("softmax_cross_entropy_backward", np.dtype(dtype)): 2}
        want_dz = reference(softmax_cross_entropy_backward, dout, want_cache)
        assert_same(dz_from_reference_cache, want_dz)  # the same formula in the same order: exact
        assert_close(dz, want_dz)


def test_softmax_cross_entropy_kernel_still_refuses_bad_labels(kernel_emulator, xp, rng):
    logits, labels = ce_inputs(rng, xp, np.float32, np.int64, None, 0.0)
    labels[0, 0, 0] = 5
    with count_launches(xp) as launches, pytest.raises(ValueError, match="labels must lie in"):
        softmax_cross_entropy_forward(logits, labels)
    assert not launches


# ----------------------------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------------------------

def bn_inputs(rng, xp, dtype, shape=(3, 4, 5, 6)):
    c = shape[1]
    x = xp.asarray((rng.standard_normal(shape) * 3 + 1).astype(dtype))
    gamma, beta = (xp.asarray(rng.standard_normal(c).astype(dtype)) for _ in range(2))
    running_mean, running_var = (xp.asarray(a.astype(dtype)) for a in (rng.standard_normal(c), rng.random(c) + 0.5))
    return x, gamma, beta, running_mean, running_var


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_kernels_equal_the_reference(kernel_emulator, xp, rng, dtype, training):
    x, gamma, beta, running_mean, running_var = bn_inputs(rng, xp, dtype)
    mine = (running_mean.copy(), running_var.copy())
    want, want_cache = reference(batch_norm2d_forward, x, gamma, beta, running_mean, running_var, training)
    with count_launches(xp) as launches:
        out, cache = batch_norm2d_forward(x, gamma, beta, *mine, training)
    only_launch(launches, "batch_norm_forward", dtype)
    assert_close(out, want)
    assert_close(cache.xhat, want_cache.xhat)
    assert_same(cache.inv_std, want_cache.inv_std)
    for ours, theirs in zip(mine, (running_mean, running_var)):
        assert_same(ours, theirs)

    dout = xp.asarray(rng.standard_normal(x.shape).astype(dtype))
    with count_launches(xp) as launches:
        dx, dgamma, dbeta = batch_norm2d_backward(dout, cache)
    if training:  # eval mode's dx is one multiply already: no kernel
        only_launch(launches, "batch_norm_backward", dtype)
    else:
        assert not launches
    want_dx, want_dgamma, want_dbeta = reference(batch_norm2d_backward, dout, want_cache)
    # dx = gamma inv_std / n (n dout - dbeta - xhat dgamma), a difference of terms up to n |dout| (2 + xhat^2):
    # its rounding is relative to them
    largest = [float(to_numpy(xp.abs(a)).max()) for a in (gamma * cache.inv_std, dout, cache.xhat)]
    assert_close(dx, want_dx, scale=max(1.0, largest[0] * largest[1] * (2 + largest[2] ** 2)))
    assert_close(dgamma, want_dgamma)
    assert_same(dbeta, want_dbeta)


def test_batch_norm_backward_with_a_float64_dout_on_float32_takes_the_reference(kernel_emulator, xp, rng):
    x, gamma, beta, running_mean, running_var = bn_inputs(rng, xp, np.float32)
    _, cache = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, True)
    dout = xp.asarray(rng.standard_normal(x.shape))
    with count_launches(xp) as launches:
        got = batch_norm2d_backward(dout, cache)
    assert not launches
    for ours, theirs in zip(got, reference(batch_norm2d_backward, dout, cache)):
        assert_same(ours, theirs)


def test_the_switch_turns_the_elementwise_kernels_off(kernel_emulator, xp, rng):
    logits, labels = ce_inputs(rng, xp, np.float64, np.int64, -100, 0.2)
    x, gamma, beta, running_mean, running_var = bn_inputs(rng, xp, np.float64)
    with count_launches(xp) as launches, kernels.use_kernels(False):
        out, cache = relu_forward(x)
        relu_backward(out, cache)
        _, cache = softmax_cross_entropy_forward(logits, labels)
        softmax_cross_entropy_backward(1.0, cache)
        out, cache = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, True)
        batch_norm2d_backward(out, cache)
    assert not launches


@needs_nvcc
def test_nvcc_compiles_the_elementwise_kernels():
    assert_nvcc_compiles(elementwise.SOURCE)
