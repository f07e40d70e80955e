"""Models: shapes, whole-model float64 gradient checks, skip sums, summary, errors."""
import numpy as np
import pytest

from minimal_seg import functional as F
from minimal_seg.backend import to_numpy
from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import FCN, UNet, build_model

# ReLU and max pooling have kinks: a central difference that straddles one is
# wrong, not the backward pass, so eps = 1e-6 (not 1e-5) keeps the straddles away.
# Training-mode BatchNorm on small maps divides by small standard deviations,
# which amplifies rounding noise to ~1e-7 of the gradient's scale; a wrong
# backward pass is off by ~1e-2 or more (see test_missing_skip_sum_is_caught).
EPS, MODEL_TOL = 1e-6, 1e-5


def _tiny(name, **kw):
    return build_model(name, in_channels=2, num_classes=3, base_channels=2, seed=1, **kw).astype(np.float64)


def _x(xp, shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("name,kw", [
    ("unet", {}), ("unet", {"up": "nearest"}), ("unet", {"up": "bilinear"}), ("unet", {"skips": False}),
    ("unet", {"batch_norm": False, "depth": 2}),
    ("fcn32s", {}), ("fcn16s", {}), ("fcn8s", {}),
])
def test_whole_model_gradcheck(xp, name, kw):
    model = _tiny(name, **kw)
    size = 64 if name.startswith("fcn") else 32  # FCN's fc6 BatchNorm needs more than 1 pixel at 1/32
    report = gradcheck_layer(model, _x(xp, (2, 2, size, size)), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)
    # every parameter tensor was checked, and the input
    assert {c.name for c in report.checks} == {"x"} | {n for n, _ in model.named_parameters()}


def test_unet_entrywise_gradcheck_odd_size(xp):
    """Every entry of every parameter, on an input that needs padding inside the model."""
    model = _tiny("unet", depth=1)
    report = gradcheck_layer(model, _x(xp, (2, 2, 7, 6), seed=3), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def test_missing_skip_sum_is_caught(xp, monkeypatch):
    """If backward overwrote the skip gradient instead of adding it, the check must fail."""
    model = _tiny("unet", depth=2)

    def overwrite(d_pool, d_skip):
        return d_skip  # the bug: the path through the pool is lost

    monkeypatch.setattr(UNet, "_skip_sum", staticmethod(overwrite))
    report = gradcheck_layer(model, _x(xp, (2, 2, 8, 8)), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.max_rel_error > 1e-2, str(report)
    monkeypatch.undo()
    assert gradcheck_layer(model, _x(xp, (2, 2, 8, 8)), eps=EPS, tol=MODEL_TOL, directions=2).passed


@pytest.mark.parametrize("name", ["unet", "fcn32s", "fcn8s"])
@pytest.mark.parametrize("size", [(32, 32), (37, 50), (9, 17)])
def test_output_has_input_size(xp, name, size):
    model = build_model(name, in_channels=1, num_classes=4, base_channels=4)
    x = xp.zeros((2, 1) + size, dtype=xp.float32)
    out = model(x)
    assert out.shape == (2, 4) + size and out.dtype == xp.float32
    dx = model.backward(xp.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == xp.float32


def test_float32_everywhere(xp):
    model = build_model("unet", in_channels=1, num_classes=4, base_channels=4)
    out = model(xp.zeros((1, 1, 16, 16), dtype=xp.float32))
    model.backward(xp.ones_like(out))
    for name, g in model.named_grads():
        assert g.dtype == xp.float32, name
    for name, p in model.named_parameters():
        assert p.dtype == xp.float32, name


def test_fcn_starts_as_bilinear_upsampling_of_its_scores():
    """FCN-32s's final transposed conv is initialised to bilinear upsampling by 32."""
    model = FCN(1, 2, "32s", base_channels=2)
    w = to_numpy(model.up_final.params["w"])
    assert w.shape == (2, 2, 64, 64)
    np.testing.assert_allclose(w[0, 0], to_numpy(F.bilinear_kernel(64, dtype=np.float32)))
    assert np.abs(w[0, 1]).max() == 0


def test_skips_change_the_architecture():
    with_skips = UNet(1, 2, base_channels=4, depth=2)
    without = UNet(1, 2, base_channels=4, depth=2, skips=False)
    assert with_skips.num_parameters() > without.num_parameters()
    assert with_skips.dec[0][0][0].params["w"].shape[1] == 8  # 4 from the skip + 4 from below


def test_summary_lists_every_layer_with_shapes():
    lines = []
    rows = UNet(1, 3, base_channels=4, depth=2).summary((1, 1, 16, 16), print_fn=lines.append)
    names = [r[0] for r in rows]
    assert names[0] == "enc0.0.0" and names[-1] == "head"
    assert dict((r[0], r[2]) for r in rows)["pool1"] == (1, 8, 4, 4)
    assert lines[-1].startswith("total parameters:")
    assert sum(r[3] for r in rows) == UNet(1, 3, base_channels=4, depth=2).num_parameters()


def test_models_are_reproducible_by_seed():
    a, b = UNet(1, 2, seed=5).state_dict(), UNet(1, 2, seed=5).state_dict()
    c = UNet(1, 2, seed=6).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_unknown_names():
    with pytest.raises(ValueError, match="valid models: deeplab, fcn16s, fcn32s, fcn8s, fpn, linknet, pspnet, segnet, unet"):
        build_model("segformer")
    with pytest.raises(ValueError, match="up must be one of"):
        UNet(up="pixelshuffle")
    with pytest.raises(ValueError, match="variant"):
        FCN(variant="4s")


def test_wrong_channel_count_names_it(xp):
    model = UNet(3, 2, base_channels=4)
    with pytest.raises(ValueError, match="channel mismatch: x has 1 channels"):
        model(xp.zeros((1, 1, 16, 16), dtype=xp.float32))
