"""PSPNet (models/pspnet.py): the pyramid keeps the features and adds one branch per bin size.

The pyramid's gradient, entry by entry, and the PyTorch oracle: test_blocks.py
(it is a SpatialPyramid). The whole-model gradient checks, and the planted
overwrite at the pyramid's branch sum: test_models.py.
"""
from minimal_seg.models import PSPNet


def test_pyramid_keeps_the_features_and_one_branch_per_bin_size():
    pyramid = PSPNet(1, 2, base_channels=4, depth=3, bins=(1, 2, 3, 6)).pyramid
    assert list(pyramid.branches.branches) == ["features", "bins1", "bins2", "bins3", "bins6"]
    # the deepest features have 32 channels; each of the 4 bins branches gets 32 // 4 = 8: 32 + 4 * 8 in
    assert pyramid.project[0].params["w"].shape == (16, 64, 3, 3)
    assert [branch.pool.output_size for branch in list(pyramid.branches.branches.values())[1:]] == [1, 2, 3, 6]
