"""FPN: whole-model and pyramid float64 gradient checks, the top-down pathway by hand,
a planted bug where two gradients meet, shapes, dtypes and configuration.

Tolerances from model_helpers.py (eps = 1e-6, tol 1e-5); every parameter is moved
off its initial value first, so no ReLU input sits exactly on the kink.
"""
import numpy as np
import pytest

from minimal_seg.backend import array_module, asarray, to_numpy
from minimal_seg.gradcheck import check_gradients, gradcheck_layer
from minimal_seg.models import FPN, MODELS, build_model
from minimal_seg.models.fpn import FPNBackbone
from model_helpers import EPS, MODEL_TOL, randn, tiny


@pytest.mark.parametrize("batch_norm", [True, False])
def test_whole_model_gradcheck(xp, batch_norm):
    model = tiny("fpn", batch_norm=batch_norm)
    report = gradcheck_layer(model, randn(xp, (2, 2, 16, 16)), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"x"} | {n for n, _ in model.named_parameters()}


def test_whole_model_gradcheck_odd_size(xp):
    """Padded to 16 x 24 and cropped back."""
    report = gradcheck_layer(tiny("fpn"), randn(xp, (2, 2, 11, 21), seed=2), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)


def _pyramid_readout(model, x, levels):
    """(run, analytic) of y = sum over the chosen levels l of (l + 1) * sum_{c,h,w} p_l: one number per image."""
    def run():
        p = model.backbone(x)
        return sum((level + 1) * p[level].sum(axis=(1, 2, 3)) for level in levels)

    def analytic(dout):
        model.zero_grad()
        p = model.backbone(x)
        xp = array_module(dout)
        d_p = [None] * len(p)
        for level in levels:
            d_p[level] = xp.broadcast_to((level + 1) * dout[:, None, None, None], p[level].shape).copy()
        return {"x": model.backbone.backward(d_p), **dict(model.named_grads())}

    return run, analytic


@pytest.mark.parametrize("levels", [(0,), (2,), (3,), (1, 3)])
def test_pyramid_gradcheck_reading_some_levels(xp, levels):
    """A two-stage model reads only some levels: the others get None, and the gradient is still right."""
    model, x = tiny("fpn"), randn(xp, (2, 2, 16, 16))
    run, analytic = _pyramid_readout(model, x, levels)
    tensors = {"x": x, **dict(model.named_parameters())}
    report = check_gradients(run, analytic, tensors, f"pyramid {levels}", EPS, MODEL_TOL, directions=2)
    assert report.passed, str(report)


def test_top_down_is_lateral_plus_nearest_upsampled_deeper_level(xp):
    """m_l = lat_l(f_l) + repeat(m_{l+1}, 2, 2): recompute the pathway by hand from the layers' outputs."""
    model = FPN(in_channels=1, num_classes=2, base_channels=2, depth=2).astype(np.float64)
    x = randn(xp, (1, 1, 8, 8))
    f = model.backbone.encoder(x)
    lat = [to_numpy(model.backbone.lateral[level](f[level])) for level in range(3)]
    m2 = lat[2]
    m1 = lat[1] + m2.repeat(2, axis=2).repeat(2, axis=3)
    m0 = lat[0] + m1.repeat(2, axis=2).repeat(2, axis=3)
    expected = [to_numpy(smooth(asarray(m))) for smooth, m in zip(model.backbone.smooth, (m0, m1, m2))]
    for have, want in zip(model.backbone(x), expected):
        np.testing.assert_allclose(to_numpy(have), want, rtol=1e-12, atol=1e-12)


def test_overwritten_top_down_gradient_is_caught(xp, monkeypatch):
    model, x = tiny("fpn"), randn(xp, (2, 2, 16, 16))
    overwrite = staticmethod(lambda d_smooth, d_up: d_smooth if d_up is None else d_up)
    monkeypatch.setattr(FPNBackbone, "_sum_of_two_readers", overwrite)
    report = gradcheck_layer(model, x, eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.max_rel_error > 1e-2, str(report)


@pytest.mark.parametrize("size", [(16, 16), (13, 21), (9, 7)])
def test_output_has_input_size_in_float32(xp, size):
    model = build_model("fpn", in_channels=1, num_classes=4, base_channels=2)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1) + size).astype(np.float32))
    out = model(x)
    assert out.shape == (2, 4) + size and out.dtype == np.float32
    dx = model.backward(xp.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    for name, g in model.named_grads():
        assert g.dtype == np.float32 and g.shape == dict(model.named_parameters())[name].shape, name


def test_pyramid_levels_have_pyramid_channels_at_halving_sizes(xp):
    model = FPN(in_channels=1, base_channels=2, depth=3, pyramid_channels=5)
    p = model.backbone(xp.zeros((1, 1, 32, 16), dtype=np.float32))
    assert [q.shape for q in p] == [(1, 5, 32 // 2 ** level, 16 // 2 ** level) for level in range(4)]


def test_registered_and_configured():
    assert "fpn" in MODELS
    model = build_model("fpn", in_channels=3, num_classes=5, base_channels=4)
    assert model.config == {"in_channels": 3, "num_classes": 5, "base_channels": 4, "depth": 3,
                            "pyramid_channels": 8, "batch_norm": True, "seed": 0, "model": "fpn"}
    rows = model.summary((1, 3, 20, 20), print_fn=lambda line: None)
    assert sum(r[3] for r in rows) == model.num_parameters()
    with pytest.raises(ValueError, match="depth must be >= 1"):
        FPN(depth=0)
