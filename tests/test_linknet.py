"""LinkNet (models/linknet.py): the decoder block, the additive skips.

The whole-model gradient checks, and the planted overwrite at the encoder's
level sum, are in test_models.py.
"""
import numpy as np
import pytest
from model_helpers import EPS, MODEL_TOL, off_init, randn

from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import LinkNet
from minimal_seg.models.linknet import decoder_block


@pytest.mark.parametrize("batch_norm", [True, False])
def test_decoder_block_doubles_the_size_and_checks_entrywise(xp, batch_norm):
    """1x1 to C/4, 3x3 transposed conv stride 2, 1x1 to C_out: (2, 8, 3, 5) -> (2, 3, 6, 10)."""
    block = off_init(decoder_block(8, 3, np.random.default_rng(0), batch_norm).astype(np.float64))
    x = randn(xp, (2, 8, 3, 5))
    assert block(x).shape == (2, 3, 6, 10)
    assert block[0][0].params["w"].shape == (2, 8, 1, 1)  # C/4 = 2
    report = gradcheck_layer(block, x, eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def test_decoders_take_each_level_to_the_one_above():
    model = LinkNet(1, 2, base_channels=4, depth=3)
    assert [dec[2][0].params["w"].shape[0] for dec in model.dec] == [4, 8, 16]
    assert list(model.children()) == ["encoder", "dec2", "dec1", "dec0", "final", "head"]
