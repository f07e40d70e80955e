"""Branches over one input (nn/branches.py): Parallel, Identity. (AdaptiveAvgPool2d: test_adaptive_pool.py.)"""
import numpy as np
import pytest
from model_helpers import randn

from minimal_seg import nn
from minimal_seg.backend import to_numpy
from minimal_seg.gradcheck import gradcheck_layer


def _parallel():
    rng = np.random.default_rng(0)
    return nn.Parallel(same=nn.Identity(), conv=nn.Conv2d(2, 3, 3, padding=1, rng=rng),
                       relu=nn.Sequential(nn.Conv2d(2, 1, 1, rng=rng), nn.ReLU())).astype(np.float64)


def test_parallel_concatenates_the_branches_and_sums_their_gradients(xp, monkeypatch):
    model, x = _parallel(), randn(xp, (2, 2, 4, 5))
    out = model(x)
    assert out.shape == (2, 2 + 3 + 1, 4, 5)
    np.testing.assert_array_equal(to_numpy(out[:, :2]), to_numpy(x))  # the Identity branch comes first
    report = gradcheck_layer(model, x)
    assert report.passed, str(report)
    monkeypatch.setattr(nn.Parallel, "_branch_sum", staticmethod(lambda dx, d_branch: d_branch))
    assert gradcheck_layer(model, x)["x"].max_rel_error > 1e-2  # the last branch alone is not the gradient


def test_identity_passes_both_ways(xp):
    x = randn(xp, (1, 2, 3, 3))
    assert nn.Identity()(x) is x and nn.Identity().backward(x) is x


def test_parallel_needs_a_branch_and_a_forward(xp):
    with pytest.raises(ValueError, match="at least one branch"):
        nn.Parallel()
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Parallel(a=nn.Identity()).backward(xp.zeros((1, 1, 2, 2)))
    assert list(_parallel().children()) == ["same", "conv", "relu"]
    assert repr(_parallel()) == "Parallel(same, conv, relu)"
