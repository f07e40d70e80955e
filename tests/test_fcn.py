"""FCN-32s/16s/8s (models/fcn.py): the bilinear start of the upsampling, the layers of each variant.

The whole-model gradient checks of the three variants are in test_models.py.
"""
import numpy as np

from minimal_seg import functional as F
from minimal_seg.backend import to_numpy
from minimal_seg.models import FCN


def test_fcn_starts_as_bilinear_upsampling_of_its_scores():
    """FCN-32s's final transposed conv is initialised to bilinear upsampling by 32."""
    model = FCN(1, 2, "32s", base_channels=2)
    w = to_numpy(model.up_final.params["w"])
    assert w.shape == (2, 2, 64, 64)
    np.testing.assert_allclose(w[0, 0], to_numpy(F.bilinear_kernel(64, dtype=np.float32)))
    assert np.abs(w[0, 1]).max() == 0


def test_each_variant_adds_its_skip_layers():
    layers = {variant: list(FCN(1, 2, variant, base_channels=2).children()) for variant in ("32s", "16s", "8s")}
    assert layers["32s"][-4:] == ["fc6", "fc7", "score", "up_final"]
    assert layers["16s"][-3:] == ["score_pool4", "up2_a", "up_final"]
    assert layers["8s"][-5:] == ["score_pool4", "up2_a", "score_pool3", "up2_b", "up_final"]
    assert FCN(1, 2, "16s", base_channels=2).up_final.params["w"].shape[2:] == (32, 32)
