"""DeepLab (models/deeplab.py): ASPP's branches are dilated same-size convolutions.

ASPP's gradient, entry by entry, and the PyTorch oracle: test_blocks.py
(it is a SpatialPyramid). The whole-model gradient checks, and the planted
overwrite at ASPP's branch sum: test_models.py.
"""
from minimal_seg.models import DeepLab


def test_aspp_branches_are_dilated_same_size_convs():
    aspp = DeepLab(1, 2, base_channels=2, rates=(2, 4, 6)).aspp
    assert list(aspp.branches.branches) == ["conv1x1", "rate2", "rate4", "rate6", "image_pool"]
    for rate in (2, 4, 6):
        conv = aspp.branches.branches[f"rate{rate}"][0]
        assert conv.options == {"stride": 1, "padding": rate, "dilation": rate}
        assert conv.params["w"].shape[2:] == (3, 3)
    assert aspp.project[0].params["w"].shape == (8, 5 * 8, 1, 1)  # five branches of 8 channels -> 8
