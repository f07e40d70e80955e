"""SegNet, LinkNet, DeepLab and PSPNet: whole-model and head gradient checks, the PyTorch
oracle for the ASPP and pyramid-pooling heads, SegNet's use of the pooling indices,
planted bugs at the branch sums, shapes, dtypes, summary and configuration.

Tolerances as in test_models.py: eps = 1e-6 keeps central differences off
the kinks of ReLU and max pooling, and 1e-5 absorbs what training-mode
BatchNorm on tiny maps does to rounding noise; a wrong backward is off by 1e-2
or more. Before a check every parameter is moved off its initial value
(``_off_init``): biases start at exactly zero, so a pixel whose inputs are
all exactly zero (a dead ReLU, the zeros of max unpooling) would sit exactly
on the next ReLU's kink, where a central difference means nothing.
"""
import numpy as np
import pytest
from helpers import assert_close, to_torch, torch_or_skip

from minimal_seg import nn
from minimal_seg.backend import asarray, to_numpy
from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models import DeepLab, LinkNet, PSPNet, SegNet, build_model
from minimal_seg.models.blocks import Encoder, PoolingBranch, SpatialPyramid
from minimal_seg.models.deeplab import ASPP
from minimal_seg.models.pspnet import PyramidPooling

EPS, MODEL_TOL = 1e-6, 1e-5
NAMES = ["segnet", "linknet", "deeplab", "pspnet"]
# LinkNet's decoder block narrows to C/4 channels; at C = 4 that is one channel, whose BatchNorm
# gamma the next BatchNorm cancels exactly (a zero gradient, so a relative error of pure noise).
BASE = {"linknet": 4}


def _off_init(layer, seed=7):
    """Add N(0, 0.1^2) noise to every parameter, in place (see the module docstring)."""
    rng = np.random.default_rng(seed)
    for params, _ in layer.parameters():
        for key, value in params.items():
            params[key] = value + asarray(0.1 * rng.standard_normal(value.shape), dtype=value.dtype)
    return layer


def _tiny(name, **kw):
    kw = {"base_channels": BASE.get(name, 2), **kw}
    return _off_init(build_model(name, in_channels=2, num_classes=3, seed=1, **kw).astype(np.float64))


def _x(xp, shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


# ----------------------------------------------------------------------------------------------
# 1. float64 gradient checks: whole models (random directions) and heads (every entry)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_whole_model_gradcheck(xp, name, batch_norm):
    """16 x 16 inputs: the deepest maps (1/8) are 2 x 2, so BatchNorm sees 2*2*2 = 8 values per channel."""
    model = _tiny(name, batch_norm=batch_norm)
    report = gradcheck_layer(model, _x(xp, (2, 2, 16, 16)), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"x"} | {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("name", NAMES)
def test_whole_model_gradcheck_odd_size(xp, name):
    """An input that the model pads to 16 x 24 and crops back. (At 13 x 19 one of SegNet's 20 000
    pre-activations lies within 1e-6 of a ReLU kink, a straddle, not a bug: at eps = 1e-7 it agrees.)"""
    model = _tiny(name)
    report = gradcheck_layer(model, _x(xp, (2, 2, 11, 21), seed=2), eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.passed, str(report)


def _aspp(batch_norm=True):
    return _off_init(ASPP(2, 2, (1, 2), np.random.default_rng(0), batch_norm).astype(np.float64))


def _pyramid(batch_norm=True):
    return _off_init(PyramidPooling(4, 2, (1, 2, 3), np.random.default_rng(0), batch_norm).astype(np.float64))


@pytest.mark.parametrize("make", [_aspp, _pyramid], ids=["aspp", "pyramid_pooling"])
def test_head_entrywise_gradcheck(xp, make):
    """Every entry of the input and of every parameter of the head on a 2 x 4 x 5 map."""
    head = make()
    c_in = 2 if isinstance(head, ASPP) else 4
    report = gradcheck_layer(head, _x(xp, (2, c_in, 4, 5)), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def test_pooling_branch_entrywise_gradcheck(xp):
    branch = _off_init(PoolingBranch(3, 2, (2, 3), np.random.default_rng(0)).astype(np.float64))
    report = gradcheck_layer(branch, _x(xp, (2, 3, 5, 7)), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


# ----------------------------------------------------------------------------------------------
# 2. the PyTorch oracle for the heads (float64, forward and every gradient)
# ----------------------------------------------------------------------------------------------

def _torch_forward(layer, t, weights):
    """Run one of our layers in PyTorch with the same weights (``weights``: (id(layer), key) -> tensor)."""
    import torch
    import torch.nn.functional as TF

    p = lambda key: weights.get((id(layer), key))  # noqa: E731
    if isinstance(layer, SpatialPyramid):
        return _torch_forward(layer.project, _torch_forward(layer.branches, t, weights), weights)
    if isinstance(layer, nn.Parallel):
        return torch.cat([_torch_forward(b, t, weights) for b in layer.branches.values()], dim=1)
    if isinstance(layer, nn.Sequential):
        for sub in layer.layers:
            t = _torch_forward(sub, t, weights)
        return t
    if isinstance(layer, PoolingBranch):
        y = TF.adaptive_avg_pool2d(t, layer.pool.output_size)
        y = _torch_forward(layer.conv, y, weights)
        return TF.interpolate(y, size=tuple(t.shape[2:]), mode="bilinear", align_corners=False)
    if isinstance(layer, nn.Conv2d):
        return TF.conv2d(t, p("w"), p("b"), **layer.options)
    if isinstance(layer, nn.BatchNorm2d):
        return TF.batch_norm(t, None, None, p("gamma"), p("beta"), training=True, eps=layer.eps)
    if isinstance(layer, nn.ReLU):
        return TF.relu(t)
    if isinstance(layer, nn.Identity):
        return t
    raise TypeError(f"no torch counterpart for {type(layer).__name__}")


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("make", [_aspp, _pyramid], ids=["aspp", "pyramid_pooling"])
def test_head_matches_torch(xp, rng, make, batch_norm):
    """ASPP's dilated convs (F.conv2d with dilation), its image pooling, PSP's adaptive pooling
    and bilinear upsampling, the concatenation and the summed branch gradients, all at once."""
    torch_or_skip()
    head = make(batch_norm)
    c_in = 2 if isinstance(head, ASPP) else 4
    x = rng.standard_normal((2, c_in, 5, 6))
    weights = {}
    for _, layer in head.modules():
        for key, value in layer.params.items():
            weights[(id(layer), key)] = to_torch(value, requires_grad=True)
    tx = to_torch(x, requires_grad=True)
    tout = _torch_forward(head, tx, weights)
    out = head(xp.asarray(x))
    assert_close(out, tout)
    dout = rng.standard_normal(out.shape)
    tout.backward(to_torch(dout))
    head.zero_grad()
    assert_close(head.backward(xp.asarray(dout)), tx.grad)
    for _, layer in head.modules():
        for key, grad in layer.grads.items():
            assert_close(grad, weights[(id(layer), key)].grad)


def test_aspp_branches_are_dilated_same_size_convs():
    aspp = DeepLab(1, 2, base_channels=2, rates=(2, 4, 6)).aspp
    assert list(aspp.branches.branches) == ["conv1x1", "rate2", "rate4", "rate6", "image_pool"]
    for rate in (2, 4, 6):
        conv = aspp.branches.branches[f"rate{rate}"][0]
        assert conv.options == {"stride": 1, "padding": rate, "dilation": rate}
        assert conv.params["w"].shape[2:] == (3, 3)


def test_image_pooling_is_a_broadcast_of_the_global_mean(xp, rng):
    """Bilinear upsampling of a 1 x 1 map is a broadcast: the branch is constant over the image."""
    branch = PoolingBranch(3, 2, 1, np.random.default_rng(0))
    out = to_numpy(branch(xp.asarray(rng.standard_normal((2, 3, 5, 7)).astype(np.float32))))
    assert out.shape == (2, 2, 5, 7)
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :, :1, :1], out.shape))


# ----------------------------------------------------------------------------------------------
# 3. SegNet unpools with the encoder's own pooling indices
# ----------------------------------------------------------------------------------------------

def _record(layer, store):
    """Wrap layer.forward to keep its last input and output in ``store`` (undone by ``del layer.forward``)."""
    forward = layer.forward

    def recording(x, *args, **kwargs):
        store["in"], store["out"] = x, forward(x, *args, **kwargs)
        return store["out"]

    layer.forward = recording


def test_segnet_unpools_at_the_encoder_argmax_positions(xp, rng):
    model = SegNet(1, 3, base_channels=4, depth=2)
    seen = [{} for _ in range(2)]
    encoded = {}
    _record(model.enc[1], encoded)
    for level in range(2):
        _record(model.unpools[level], seen[level])
    model(xp.asarray(rng.standard_normal((2, 1, 8, 8)).astype(np.float32)))

    # the deepest unpool sees the pooled encoder output: it keeps each 2x2 window's maximum, in place
    f = to_numpy(encoded["out"])  # (2, 8, 4, 4)
    windows = f.reshape(2, 8, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 8, 2, 2, 4)
    first_max = windows.argmax(axis=-1)
    mask = np.zeros_like(windows, dtype=bool)
    np.put_along_axis(mask, first_max[..., None], True, axis=-1)
    mask = mask.reshape(2, 8, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(f.shape)
    np.testing.assert_array_equal(to_numpy(seen[1]["out"]), np.where(mask, f, 0))

    # every level: nonzero exactly at the saved indices (where the unpooled value is nonzero)
    for level in range(2):
        out, x = to_numpy(seen[level]["out"]), to_numpy(seen[level]["in"])
        indices = to_numpy(model.pools[level].indices)
        at_indices = np.take_along_axis(out.reshape(*out.shape[:2], -1), indices.reshape(*x.shape[:2], -1), axis=2)
        np.testing.assert_array_equal(at_indices.reshape(x.shape), x)
        assert np.count_nonzero(out) == np.count_nonzero(x) <= out.size // 4
    for layer in (model.enc[1], *model.unpools):
        del layer.forward


# ----------------------------------------------------------------------------------------------
# 4. planted bugs: overwrite instead of sum where gradients meet
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, method, overwrite", [
    ("pspnet", nn.Parallel, "_branch_sum", lambda dx, d_branch: d_branch),
    ("deeplab", nn.Parallel, "_branch_sum", lambda dx, d_branch: d_branch),
    ("linknet", Encoder, "_level_sum", lambda d_below, d_model: d_below if d_model is None else d_model),
])
def test_overwritten_branch_gradient_is_caught(xp, monkeypatch, name, cls, method, overwrite):
    model, x = _tiny(name), _x(xp, (2, 2, 16, 16))
    monkeypatch.setattr(cls, method, staticmethod(overwrite))
    report = gradcheck_layer(model, x, eps=EPS, tol=MODEL_TOL, directions=2)
    assert report.max_rel_error > 1e-2, str(report)
    monkeypatch.undo()
    assert gradcheck_layer(model, x, eps=EPS, tol=MODEL_TOL, directions=2).passed


# ----------------------------------------------------------------------------------------------
# 5. shapes, dtypes, summary, configuration
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(16, 16), (13, 21), (9, 7)])
def test_output_has_input_size_in_float32(xp, name, size):
    model = build_model(name, in_channels=1, num_classes=4, base_channels=2)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1) + size).astype(np.float32))
    out = model(x)
    assert out.shape == (2, 4) + size and out.dtype == np.float32
    dx = model.backward(xp.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    for pname, g in model.named_grads():
        assert g.dtype == np.float32 and g.shape == dict(model.named_parameters())[pname].shape, pname


@pytest.mark.parametrize("name", NAMES)
def test_summary_runs_and_counts_every_parameter(name):
    lines = []
    model = build_model(name, in_channels=1, num_classes=3, base_channels=2)
    rows = model.summary((1, 1, 20, 20), print_fn=lines.append)
    assert lines[0].startswith(type(model).__name__) and lines[-1].startswith("total parameters:")
    assert sum(r[3] for r in rows) == model.num_parameters()
    assert rows[-1][2] == (1, 3, 24, 24)  # the last layer runs on the input padded to a multiple of 8


def test_parameter_names_follow_the_diagrams():
    names = {
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
    a = build_model("linknet", base_channels=2, seed=3).state_dict()
    b = build_model("linknet", base_channels=2, seed=3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("make, match", [
    (lambda: SegNet(depth=0), "depth must be >= 1"),
    (lambda: LinkNet(depth=0), "depth must be >= 1"),
    (lambda: DeepLab(rates=()), "rates"),
    (lambda: DeepLab(rates=(0, 2)), "rates"),
    (lambda: PSPNet(bins=(0,)), "bins"),
])
def test_bad_options_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_encoder_backward_needs_one_gradient_per_level():
    encoder = Encoder(1, [2, 4], np.random.default_rng(0))
    encoder(np.zeros((2, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="a list of 2 gradients"):
        encoder.backward([np.zeros((2, 2, 4, 4), dtype=np.float32), None])


def test_parallel_needs_a_branch_and_a_forward():
    with pytest.raises(ValueError, match="at least one branch"):
        nn.Parallel()
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Parallel(a=nn.Identity()).backward(np.zeros((1, 1, 2, 2)))
