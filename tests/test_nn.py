"""Layers: thin wrappers that hold state, call their functional pair, and pass gradient checks."""
import numpy as np
import pytest
from helpers import rand, torch_or_skip

from minimal_seg import nn
from minimal_seg import functional as F
from minimal_seg.backend import to_numpy
from minimal_seg.gradcheck import gradcheck_layer


def _f64(layer):
    return layer.astype(np.float64)


LAYERS = {
    "conv": lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0),
    "conv_dilated": lambda: nn.Conv2d(3, 2, (3, 2), padding=(2, 1), dilation=2, rng=1),
    "conv_transpose": lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=2),
    "conv_transpose_bilinear": lambda: nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, init="bilinear"),
    "batchnorm": lambda: nn.BatchNorm2d(3),
    "relu": lambda: nn.ReLU(),
    "sigmoid": lambda: nn.Sigmoid(),
    "maxpool": lambda: nn.MaxPool2d(2),
    "unpool_nearest": lambda: nn.UnpoolNearest(2),
    "unpool_bed_of_nails": lambda: nn.UnpoolBedOfNails(2),
    "bilinear": lambda: nn.UpsampleBilinear(scale=2),
    "sequential": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False, rng=3), nn.BatchNorm2d(4),
                                        nn.ReLU(),
                                        nn.MaxPool2d(2), nn.ConvTranspose2d(4, 2, 2, stride=2, rng=4)),
}


def _input(rng, xp):
    # tie-free values, away from ReLU's kink, so max and relu are differentiable
    x = rng.permutation(np.arange(2 * 3 * 6 * 6) * 0.05 - 5.425).reshape(2, 3, 6, 6)
    return xp.asarray(x)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradcheck(xp, rng, name):
    layer = _f64(LAYERS[name]())
    report = gradcheck_layer(layer, _input(rng, xp))
    assert report.passed, str(report)
    checked = {c.name for c in report.checks}
    assert checked == {"x"} | {n for n, _ in layer.named_parameters()}


def test_batchnorm_eval_gradcheck(xp, rng):
    layer = _f64(nn.BatchNorm2d(3))
    layer.buffers["running_var"][...] = xp.asarray([0.5, 2.0, 1.5])
    layer.eval()
    assert gradcheck_layer(layer, _input(rng, xp)).passed


def test_bias_before_batchnorm_gets_zero_gradient(xp, rng):
    """BatchNorm subtracts the channel mean, so a conv bias in front of it cannot matter."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, rng=0), nn.BatchNorm2d(4)).astype(np.float64)
    out = net(_input(rng, xp))
    net.backward(xp.asarray(rand(rng, out.shape)))
    assert float(abs(net[0].grads["b"]).max()) < 1e-12
    assert float(abs(net[0].grads["w"]).max()) > 1e-3


def test_gradients_accumulate_and_zero_grad(xp, rng):
    layer = nn.Conv2d(3, 2, 3, rng=0).astype(np.float64)
    x = _input(rng, xp)
    dout = xp.asarray(rand(rng, (2, 2, 4, 4)))
    layer.forward(x)
    layer.backward(dout)
    once = to_numpy(layer.grads["w"]).copy()
    layer.forward(x)
    layer.backward(dout)
    np.testing.assert_allclose(to_numpy(layer.grads["w"]), 2 * once)
    layer.zero_grad()
    assert float(abs(layer.grads["w"]).max()) == 0.0


def test_layer_matches_functional(xp, rng):
    layer = nn.Conv2d(3, 4, 3, padding=1, rng=0)
    x = xp.asarray(rand(rng, (2, 3, 5, 5), np.float32))
    out = layer(x)
    ref, _ = F.conv2d_forward(x, layer.params["w"], layer.params["b"], padding=1)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))
    assert out.dtype == xp.float32


def test_kaiming_init_statistics():
    w = nn.Conv2d(64, 128, 3, rng=0).params["w"]
    std = float(to_numpy(w).std())
    assert std == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.02)
    assert w.dtype == np.float32


def test_init_is_reproducible_from_the_generator():
    a = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(7)).params["w"]
    b = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(7)).params["w"]
    c = nn.Conv2d(3, 4, 3, rng=np.random.default_rng(8)).params["w"]
    assert np.array_equal(to_numpy(a), to_numpy(b)) and not np.array_equal(to_numpy(a), to_numpy(c))


def test_bilinear_transposed_conv_upsamples_bilinearly(xp):
    torch = torch_or_skip()
    layer = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, init="bilinear", bias=False, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    out = to_numpy(layer(xp.asarray(x)))
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2, mode="bilinear",
                                          align_corners=False).numpy()
    # equal away from the one-pixel border, where interpolate clamps and the conv sees zero padding
    np.testing.assert_allclose(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-12)
    # channels are not mixed
    assert float(np.abs(to_numpy(layer.params["w"])[0, 1]).max()) == 0.0


def test_maxpool_indices_feed_unpool(xp, rng):
    pool = nn.MaxPool2d(2)
    unpool = nn.MaxUnpool2d(2, pool=pool)
    x = _input(rng, xp)
    y = unpool(pool(x))
    # every kept value sits where it came from; everything else is zero
    kept = to_numpy(y) != 0
    np.testing.assert_array_equal(to_numpy(y)[kept], to_numpy(x)[kept])
    assert kept.sum() == x.size // 4


def test_unpool_without_indices_is_an_error(xp):
    with pytest.raises(ValueError, match="indices"):
        nn.MaxUnpool2d(2)(xp.zeros((1, 1, 2, 2)))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        nn.ReLU().backward(np.zeros(3))


def test_state_dict_round_trip_and_mismatch(xp):
    net = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.BatchNorm2d(4))
    state = net.state_dict()
    assert set(state) == {"0.w", "0.b", "1.gamma", "1.beta", "1.running_mean", "1.running_var"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = nn.Sequential(nn.Conv2d(1, 4, 3, rng=1), nn.BatchNorm2d(4))
    other.load_state_dict(state)
    np.testing.assert_array_equal(to_numpy(other[0].params["w"]), state["0.w"])
    wrong = nn.Sequential(nn.Conv2d(1, 8, 3, rng=0), nn.BatchNorm2d(8))
    with pytest.raises(ValueError, match=r"'0.w' has shape \(8, 1, 3, 3\).*\(4, 1, 3, 3\)"):
        wrong.load_state_dict(state)
    with pytest.raises(ValueError, match="missing.*unexpected"):
        nn.Sequential(nn.Conv2d(1, 4, 3)).load_state_dict(state)


def test_train_eval_propagates():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.BatchNorm2d(2)))
    net.eval()
    assert all(not layer.training for _, layer in net.modules())
    net.train()
    assert all(layer.training for _, layer in net.modules())


def test_eval_mode_restores_the_previous_mode():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with net.eval_mode():
        assert not any(layer.training for _, layer in net.modules())
    assert all(layer.training for _, layer in net.modules())
    net.eval()
    with pytest.raises(RuntimeError), net.eval_mode():
        raise RuntimeError("inside")
    assert not any(layer.training for _, layer in net.modules())


def test_parameters_pairs_share_arrays():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))
    pairs = net.parameters()
    assert len(pairs) == 2 and pairs[0][0] is net[0].params and pairs[0][1] is net[0].grads
    assert net.num_parameters() == 2 * 9 + 2 + 2 + 2


def test_bad_init_name():
    with pytest.raises(ValueError, match="init"):
        nn.ConvTranspose2d(2, 2, 2, init="xavier")
