"""U-Net (models/unet.py): every entry of the gradient, the skips, the widths, the summary.

The whole-model checks of every variant, and the planted overwrite at the
skip sum, are in test_models.py.
"""
from model_helpers import EPS, MODEL_TOL, randn, tiny

from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import UNet
from minimal_seg.models.blocks import level_widths


def test_unet_entrywise_gradcheck_odd_size(xp):
    """Every entry of every parameter, on an input that needs padding inside the model."""
    model = tiny("unet", depth=1)
    report = gradcheck_layer(model, randn(xp, (2, 2, 7, 6), seed=3), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def test_skips_change_the_architecture():
    with_skips = UNet(1, 2, base_channels=4, depth=2)
    without = UNet(1, 2, base_channels=4, depth=2, skips=False)
    assert with_skips.num_parameters() > without.num_parameters()
    assert with_skips.dec[0][0][0].params["w"].shape[1] == 8  # 4 from the skip + 4 from below


def test_levels_have_the_widths_of_blocks_level_widths():
    model = UNet(1, 2, base_channels=3, depth=3)
    widths = level_widths(3, 3)  # [3, 6, 12, 24]
    assert [enc[1][0].params["w"].shape[0] for enc in model.enc] == widths[:3]
    assert model.bottleneck[1][0].params["w"].shape[0] == widths[3]
    assert [dec[1][0].params["w"].shape[0] for dec in model.dec] == widths[:3]


def test_summary_lists_every_layer_with_shapes():
    lines = []
    rows = UNet(1, 3, base_channels=4, depth=2).summary((1, 1, 16, 16), print_fn=lines.append)
    names = [r[0] for r in rows]
    assert names[0] == "enc0.0.0" and names[-1] == "head"
    assert dict((r[0], r[2]) for r in rows)["pool1"] == (1, 8, 4, 4)
    assert lines[-1].startswith("total parameters:")
    assert sum(r[3] for r in rows) == UNet(1, 3, base_channels=4, depth=2).num_parameters()
