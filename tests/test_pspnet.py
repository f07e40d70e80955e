"""PSPNet (models/pspnet.py): pyramid pooling, every entry of its gradient, the PyTorch oracle.

The whole-model gradient checks, and the planted overwrite at the pyramid's
branch sum, are in test_models.py.
"""
import numpy as np
import pytest
from helpers import torch_or_skip
from model_helpers import EPS, MODEL_TOL, assert_head_matches_torch, off_init, randn

from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import PSPNet
from minimal_seg.models.pspnet import PyramidPooling


def _pyramid(batch_norm=True):
    return off_init(PyramidPooling(4, 2, (1, 2, 3), np.random.default_rng(0), batch_norm).astype(np.float64))


def test_pyramid_pooling_entrywise_gradcheck(xp):
    """Every entry of the input and of every parameter of the pyramid on a 4 x 4 x 5 map."""
    report = gradcheck_layer(_pyramid(), randn(xp, (2, 4, 4, 5)), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_pyramid_pooling_matches_torch(xp, rng, batch_norm):
    """Adaptive pooling, bilinear upsampling, the concatenation and the summed branch gradients, at once."""
    torch_or_skip()
    x = rng.standard_normal((2, 4, 5, 6))
    assert_head_matches_torch(_pyramid(batch_norm), x, rng.standard_normal((2, 2, 5, 6)), xp)


def test_pyramid_keeps_the_features_and_one_branch_per_bin_size():
    pyramid = PSPNet(1, 2, base_channels=4, depth=3, bins=(1, 2, 3, 6)).pyramid
    assert list(pyramid.branches.branches) == ["features", "bins1", "bins2", "bins3", "bins6"]
    # the deepest features have 32 channels; each of the 4 bins branches gets 32 // 4 = 8: 32 + 4 * 8 in
    assert pyramid.project[0].params["w"].shape == (16, 64, 3, 3)
