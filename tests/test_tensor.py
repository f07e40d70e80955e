"""Ops that only move numbers (functional/tensor.py): concat, pad_to_multiple, crop.

Hand examples, float64 gradient checks, the PyTorch oracle (torch.cat,
F.pad), the adjoint test <A x, y> = <x, A^T y> (all three are linear), the
pad and the crop undoing each other, and the errors.
"""
import numpy as np
import pytest
from helpers import assert_close, dot, to_torch, torch_or_skip

from minimal_seg import functional as F
from minimal_seg.backend import to_numpy
from minimal_seg.gradcheck import gradcheck


def _x(xp, shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


# ----------------------------------------------------------------------------------------------
# 1. hand examples
# ----------------------------------------------------------------------------------------------

def test_concat_picture(xp):
    a, b = xp.ones((1, 2, 2, 2)), 2 * xp.ones((1, 3, 2, 2))
    out, cache = F.concat_forward([a, b])
    assert out.shape == (1, 5, 2, 2) and to_numpy(out[0, :, 0, 0]).tolist() == [1, 1, 2, 2, 2]
    da, db = F.concat_backward(xp.arange(20.0).reshape(1, 5, 2, 2), cache)
    assert to_numpy(da[0, :, 0, 0]).tolist() == [0, 4] and to_numpy(db[0, :, 0, 0]).tolist() == [8, 12, 16]


def test_pad_and_crop_pictures(xp):
    x = xp.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    padded, pad = F.pad_to_multiple_forward(x, 4)
    np.testing.assert_array_equal(to_numpy(padded)[0, 0], [[1, 2, 3, 0], [4, 5, 6, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert pad.size == (2, 3)
    cropped, crop = F.crop_forward(padded, (2, 3))
    np.testing.assert_array_equal(to_numpy(cropped), to_numpy(x))
    assert crop.size == (4, 4) and cropped.flags.c_contiguous
    np.testing.assert_array_equal(to_numpy(F.crop_backward(cropped, crop)), to_numpy(padded))
    np.testing.assert_array_equal(to_numpy(F.pad_to_multiple_backward(padded, pad)), to_numpy(x))


@pytest.mark.parametrize("multiple", [1, 2, 8])
def test_nothing_to_pad_or_crop_returns_the_same_array(xp, multiple):
    """A size that already divides: no copy forward, no copy backward (the models rely on it being free)."""
    x = _x(xp, (2, 3, 8, 16))
    padded, pad = F.pad_to_multiple_forward(x, multiple)
    cropped, crop = F.crop_forward(padded, (8, 16))
    assert padded is x and cropped is x
    assert F.crop_backward(x, crop) is x and F.pad_to_multiple_backward(x, pad) is x


# ----------------------------------------------------------------------------------------------
# 2. float64 gradient checks, the PyTorch oracle, the adjoint test
# ----------------------------------------------------------------------------------------------

def test_concat_gradcheck(xp):
    report = gradcheck(lambda a, b: F.concat_forward([a, b]), lambda d, c: tuple(F.concat_backward(d, c)),
                       {"a": _x(xp, (2, 2, 3, 4)), "b": _x(xp, (2, 3, 3, 4), seed=1)}, label="concat")
    assert report.passed and report.max_rel_error < 1e-9, str(report)


@pytest.mark.parametrize("shape, multiple", [((2, 3, 5, 7), 4), ((1, 2, 8, 3), 8), ((2, 1, 4, 4), 2)])
def test_pad_to_multiple_gradcheck_and_torch(xp, shape, multiple):
    x = _x(xp, shape)
    report = gradcheck(F.pad_to_multiple_forward, F.pad_to_multiple_backward, {"x": x}, kwargs={"multiple": multiple})
    assert report.passed and report.max_rel_error < 1e-9, str(report)
    torch = torch_or_skip()
    h, w = shape[2:]
    tx = to_torch(x, requires_grad=True)
    tout = torch.nn.functional.pad(tx, (0, -w % multiple, 0, -h % multiple))
    out, cache = F.pad_to_multiple_forward(x, multiple)
    assert_close(out, tout)
    dout = _x(xp, out.shape, seed=1)
    tout.backward(to_torch(dout))
    assert_close(F.pad_to_multiple_backward(dout, cache), tx.grad)


@pytest.mark.parametrize("size", [(5, 7), (1, 1), (3, 8)])
def test_crop_gradcheck_and_adjoint(xp, size):
    x = _x(xp, (2, 3, 6, 8))
    report = gradcheck(F.crop_forward, F.crop_backward, {"x": x}, kwargs={"size": size})
    assert report.passed and report.max_rel_error < 1e-9, str(report)
    out, cache = F.crop_forward(x, size)
    y = _x(xp, out.shape, seed=1)
    assert dot(out, y) == pytest.approx(dot(x, F.crop_backward(y, cache)), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# 3. errors
# ----------------------------------------------------------------------------------------------

def test_errors_name_the_argument(xp):
    x = _x(xp, (1, 1, 4, 4))
    for bad in (0, -2):
        with pytest.raises(ValueError, match="multiple must be an integer >= 1"):
            F.pad_to_multiple_forward(x, bad)
    for bad in (2.0, True):  # the wrong type: TypeError, as for every integer option
        with pytest.raises(TypeError, match="multiple must be an integer >= 1"):
            F.pad_to_multiple_forward(x, bad)
    with pytest.raises(ValueError, match=r"size must be a crop \(H, W\) of x's \(4, 4\), got \(5, 4\)"):
        F.crop_forward(x, (5, 4))
    with pytest.raises(ValueError, match="size must be >= 1"):
        F.crop_forward(x, (0, 4))
    _, cache = F.crop_forward(x, (2, 3))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 1, 2, 3\)"):
        F.crop_backward(_x(xp, (1, 1, 3, 3)), cache)
    with pytest.raises(ValueError, match="x must be 4-D"):
        F.crop_forward(_x(xp, (4, 4)), (2, 2))
