"""DeepLab (models/deeplab.py): ASPP's dilated branches, every entry of its gradient, the PyTorch oracle.

The whole-model gradient checks, and the planted overwrite at ASPP's branch
sum, are in test_models.py.
"""
import numpy as np
import pytest
from helpers import torch_or_skip
from model_helpers import EPS, MODEL_TOL, assert_head_matches_torch, off_init, randn

from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import DeepLab
from minimal_seg.models.deeplab import ASPP


def _aspp(batch_norm=True):
    return off_init(ASPP(2, 2, (1, 2), np.random.default_rng(0), batch_norm).astype(np.float64))


def test_aspp_entrywise_gradcheck(xp):
    """Every entry of the input and of every parameter of ASPP on a 2 x 4 x 5 map."""
    report = gradcheck_layer(_aspp(), randn(xp, (2, 2, 4, 5)), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_aspp_matches_torch(xp, rng, batch_norm):
    """The dilated convs, the image pooling, the concatenation and the summed branch gradients, at once."""
    torch_or_skip()
    x = rng.standard_normal((2, 2, 5, 6))
    assert_head_matches_torch(_aspp(batch_norm), x, rng.standard_normal((2, 2, 5, 6)), xp)


def test_aspp_branches_are_dilated_same_size_convs():
    aspp = DeepLab(1, 2, base_channels=2, rates=(2, 4, 6)).aspp
    assert list(aspp.branches.branches) == ["conv1x1", "rate2", "rate4", "rate6", "image_pool"]
    for rate in (2, 4, 6):
        conv = aspp.branches.branches[f"rate{rate}"][0]
        assert conv.options == {"stride": 1, "padding": rate, "dilation": rate}
        assert conv.params["w"].shape[2:] == (3, 3)
