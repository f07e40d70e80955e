"""Every model, through the registry (models/__init__.py) and the base class (models/base.py).

Whole-model float64 gradient checks (the pad and the crop of ``Model.forward``
included), planted bugs where gradients meet, output sizes and dtypes,
summary, configuration and errors. What one architecture alone has is in its
own file (test_unet.py, test_fcn.py, ...); tolerances in model_helpers.py.
"""
import numpy as np
import pytest
from model_helpers import EPS, MODEL_TOL, randn, tiny

from minimal_seg import nn
from minimal_seg.backend import to_numpy
from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import MODELS, DeepLab, FCN, LinkNet, Model, PSPNet, SegNet, UNet, build_model
from minimal_seg.models.blocks import Encoder

# The input of each whole-model check: with depth 3 the deepest maps of 16 x 16 are 2 x 2, so
# BatchNorm sees 2*2*2 = 8 values per channel; FCN's fc6 BatchNorm needs more than 1 pixel at 1/32.
SIZE = {"fcn32s": 64, "fcn16s": 64, "fcn8s": 64}


# ----------------------------------------------------------------------------------------------
# 1. float64 gradient checks of whole models (random directions)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw", [
    ("unet", {}), ("unet", {"up": "nearest"}), ("unet", {"up": "bilinear"}), ("unet", {"skips": False}),
    ("unet", {"batch_norm": False, "depth": 2}),
    ("fcn32s", {}), ("fcn16s", {}), ("fcn8s", {}),
    *[(name, {"batch_norm": bn}) for name in ("segnet", "linknet", "deeplab", "pspnet") for bn in (True, False)],
])
def test_whole_model_gradcheck(xp, name, kw):
    model = tiny(name, **kw)
    size = SIZE.get(name, 16)
    report = gradcheck_layer(model, randn(xp, (2, 2, size, size)), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)
    # every parameter tensor was checked, and the input
    assert {c.name for c in report.checks} == {"x"} | {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("name", ["segnet", "linknet", "deeplab", "pspnet"])
def test_whole_model_gradcheck_odd_size(xp, name):
    """An input that the model pads to 16 x 24 and crops back. (At 13 x 19 one of SegNet's 20 000
    pre-activations lies within 1e-6 of a ReLU kink, a straddle, not a bug: at eps = 1e-7 it agrees.)"""
    model = tiny(name)
    report = gradcheck_layer(model, randn(xp, (2, 2, 11, 21), seed=2), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)


@pytest.mark.parametrize("name, cls, method, overwrite", [
    ("unet", UNet, "_skip_sum", lambda d_pool, d_skip: d_skip),
    ("pspnet", nn.Parallel, "_branch_sum", lambda dx, d_branch: d_branch),
    ("deeplab", nn.Parallel, "_branch_sum", lambda dx, d_branch: d_branch),
    ("linknet", Encoder, "_level_sum", lambda d_below, d_model: d_below if d_model is None else d_model),
])
def test_overwritten_gradient_sum_is_caught(xp, monkeypatch, name, cls, method, overwrite):
    """Where a tensor fed two paths, a backward that overwrote one gradient with the other must fail."""
    model, x = tiny(name), randn(xp, (2, 2, 16, 16))
    monkeypatch.setattr(cls, method, staticmethod(overwrite))
    report = gradcheck_layer(model, x, eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.max_rel_error > 1e-2, str(report)
    monkeypatch.undo()
    assert gradcheck_layer(model, x, eps=EPS, tol=MODEL_TOL, directions=2).passed


# ----------------------------------------------------------------------------------------------
# 2. the base class: pad to a multiple of output_stride, body, crop back; backward the inverse
# ----------------------------------------------------------------------------------------------

class Doubling(Model):
    """The smallest model: its body doubles every pixel and records the size it saw."""

    output_stride = 4

    def forward_body(self, x):
        self.seen = x.shape
        return 2 * x

    def backward_body(self, dout):
        return 2 * dout


def test_forward_pads_once_and_crops_back(xp):
    model = Doubling()
    x = randn(xp, (2, 3, 5, 8))
    out = model(x)
    assert model.seen == (2, 3, 8, 8)  # 5 -> 8, 8 stays 8: the next multiples of 4
    np.testing.assert_array_equal(to_numpy(out), 2 * to_numpy(x)[:, :, :5, :8])
    assert model.cache.pad.size == (5, 8) and model.cache.crop.size == (8, 8)
    dout = randn(xp, out.shape, seed=1)
    np.testing.assert_array_equal(to_numpy(model.backward(dout)), 2 * to_numpy(dout))
    report = gradcheck_layer(model, x)
    assert report.passed and report.max_rel_error < 1e-9, str(report)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_body_sees_a_multiple_of_its_output_stride(xp, name):
    model = build_model(name, in_channels=1, num_classes=2, base_channels=2)
    seen = []
    body = model.forward_body
    model.forward_body = lambda x: seen.append(x.shape[2:]) or body(x)
    model(xp.zeros((2, 1, 9, 17), dtype=xp.float32))
    stride = 32 if name.startswith("fcn") else 8
    assert model.output_stride == stride
    assert seen == [(-(-9 // stride) * stride, -(-17 // stride) * stride)]


def test_model_errors_name_what_is_missing(xp):
    with pytest.raises(RuntimeError, match="UNet.backward called before forward"):
        UNet(1, 2, base_channels=2).backward(xp.zeros((1, 2, 8, 8), dtype=xp.float32))
    with pytest.raises(NotImplementedError, match="Model must define forward_body"):
        Model()(xp.zeros((1, 1, 4, 4)))
    model = Doubling()
    model(xp.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 1, 5, 5\)"):
        model.backward(xp.zeros((1, 1, 8, 8)))


# ----------------------------------------------------------------------------------------------
# 3. shapes, dtypes, summary, configuration, errors
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [(16, 16), (13, 21), (9, 7)])
def test_output_has_input_size_in_float32(xp, name, size):
    model = build_model(name, in_channels=1, num_classes=4, base_channels=2)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1) + size).astype(np.float32))
    out = model(x)
    assert out.shape == (2, 4) + size and out.dtype == np.float32
    dx = model.backward(xp.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    params = dict(model.named_parameters())
    for pname, g in model.named_grads():
        assert g.dtype == np.float32 and g.shape == params[pname].shape, pname
        assert params[pname].dtype == np.float32, pname


@pytest.mark.parametrize("name", sorted(MODELS))
def test_summary_runs_and_counts_every_parameter(name):
    lines = []
    model = build_model(name, in_channels=1, num_classes=3, base_channels=2)
    rows = model.summary((1, 1, 20, 20), print_fn=lines.append)
    assert lines[0].startswith(type(model).__name__) and lines[-1].startswith("total parameters:")
    assert sum(r[3] for r in rows) == model.num_parameters()
    padded = 32 if name.startswith("fcn") else 24  # the last layer runs on the input padded to a multiple
    assert rows[-1][2] == (1, 3, padded, padded)


def test_parameter_names_follow_the_diagrams():
    names = {
        "unet": "enc0.0.0.w bottleneck.1.1.gamma up2.w dec0.0.0.w head.b",
        "fcn8s": "stage1.0.0.w fc6.0.w fc7.1.beta score.w score_pool4.w up2_b.w up_final.w",
        "segnet": "enc0.0.0.w dec2.1.1.gamma head.w",
        "linknet": "encoder.stage3.1.0.w dec0.1.0.w dec2.2.1.beta final.0.w final.1.gamma head.b",
        "deeplab": ("encoder.stage0.0.0.w aspp.branches.rate4.0.w aspp.branches.image_pool.conv.0.w "
                    "aspp.project.0.w reduce.0.w fuse.1.gamma head.w"),
        "pspnet": "pyramid.branches.bins6.conv.0.w pyramid.project.1.beta head.w",
    }
    for name, expected in names.items():
        have = {n for n, _ in build_model(name, in_channels=1, num_classes=2, base_channels=2).named_parameters()}
        assert set(expected.split()) <= have, (name, sorted(have))


def test_config_is_recorded_and_tuples_survive_json():
    model = build_model("deeplab", in_channels=3, num_classes=5, base_channels=4, rates=[1, 3])
    assert model.config == {"in_channels": 3, "num_classes": 5, "base_channels": 4, "depth": 3, "rates": (1, 3),
                            "batch_norm": True, "seed": 0, "model": "deeplab"}
    assert build_model("pspnet", bins=[1, 2]).config["bins"] == (1, 2)


@pytest.mark.parametrize("name", ["unet", "linknet"])
def test_models_are_reproducible_by_seed(name):
    a = build_model(name, base_channels=2, seed=5).state_dict()
    b = build_model(name, base_channels=2, seed=5).state_dict()
    c = build_model(name, base_channels=2, seed=6).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_unknown_names():
    with pytest.raises(ValueError, match="valid models: deeplab, fcn16s, fcn32s, fcn8s, fpn, linknet, pspnet, segnet, unet"):
        build_model("segformer")


@pytest.mark.parametrize("make, match", [
    (lambda: UNet(up="pixelshuffle"), "up must be one of"),
    (lambda: UNet(depth=0), "depth must be >= 1"),
    (lambda: FCN(variant="4s"), "variant"),
    (lambda: SegNet(depth=0), "depth must be >= 1"),
    (lambda: LinkNet(depth=0), "depth must be >= 1"),
    (lambda: DeepLab(rates=()), "rates"),
    (lambda: DeepLab(rates=(0, 2)), "rates"),
    (lambda: PSPNet(bins=(0,)), "bins"),
])
def test_bad_options_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_channel_count_names_it(xp):
    model = UNet(3, 2, base_channels=4)
    with pytest.raises(ValueError, match="channel mismatch: x has 1 channels"):
        model(xp.zeros((1, 1, 16, 16), dtype=xp.float32))
