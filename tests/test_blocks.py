"""The models' building blocks (models/blocks.py): Encoder, PoolingBranch, SpatialPyramid, widths, options.

SpatialPyramid is checked through its two heads, DeepLab's ASPP and PSPNet's
PyramidPooling: every entry of the gradient, and PyTorch running the same
layers with the same weights (the oracle, float64, forward and every
gradient). The encoder's level sum is also caught through LinkNet
(test_models.py::test_overwritten_gradient_sum_is_caught).
"""
import numpy as np
import pytest
from helpers import assert_close, to_torch, torch_or_skip
from model_helpers import EPS, MODEL_TOL, off_init, randn

from minimal_seg import nn
from minimal_seg.backend import array_module, to_numpy
from minimal_seg.gradcheck import gradcheck_layer
from minimal_seg.models.blocks import (Encoder, PoolingBranch, SpatialPyramid, conv_bn_relu, level_widths,
                                        positive_ints)
from minimal_seg.models.deeplab import ASPP
from minimal_seg.models.pspnet import PyramidPooling


def test_pooling_branch_entrywise_gradcheck(xp):
    branch = off_init(PoolingBranch(3, 2, (2, 3), np.random.default_rng(0)).astype(np.float64))
    report = gradcheck_layer(branch, randn(xp, (2, 3, 5, 7)), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def test_image_pooling_is_a_broadcast_of_the_global_mean(xp, rng):
    """Bilinear upsampling of a 1 x 1 map is a broadcast: the branch is constant over the image."""
    branch = PoolingBranch(3, 2, 1, np.random.default_rng(0))
    out = to_numpy(branch(xp.asarray(rng.standard_normal((2, 3, 5, 7)).astype(np.float32))))
    assert out.shape == (2, 2, 5, 7)
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :, :1, :1], out.shape))


class EveryLevel(nn.Layer):
    """The encoder seen as one layer: its levels flattened into one vector (every level is an output)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def children(self):
        return {"encoder": self.encoder}

    def forward(self, x):
        features = self.encoder(x)
        self.shapes = [f.shape for f in features]
        return array_module(x).concatenate([f.reshape(-1) for f in features])

    def backward(self, dout):
        bounds = np.cumsum([int(np.prod(shape)) for shape in self.shapes])[:-1].tolist()
        pieces = array_module(dout).split(dout, bounds)
        return self.encoder.backward([d.reshape(shape) for d, shape in zip(pieces, self.shapes)])


def test_encoder_gives_every_level_and_checks_entrywise(xp):
    """f0 feeds the pool and the output: its gradient is the sum of both (Encoder._level_sum)."""
    encoder = off_init(Encoder(1, [2, 3], np.random.default_rng(0)).astype(np.float64))
    x = randn(xp, (2, 1, 6, 4))
    assert [f.shape for f in encoder(x)] == [(2, 2, 6, 4), (2, 3, 3, 2)]
    report = gradcheck_layer(EveryLevel(encoder), x, eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def test_encoder_backward_needs_one_gradient_per_level(xp):
    """The deepest level must have a gradient; the list has one entry per level."""
    encoder = Encoder(1, [2, 4], np.random.default_rng(0))
    encoder(xp.zeros((2, 1, 4, 4), dtype=xp.float32))
    with pytest.raises(ValueError, match="a list of 2 gradients"):
        encoder.backward([xp.zeros((2, 2, 4, 4), dtype=xp.float32), None])
    with pytest.raises(ValueError, match="a list of 2 gradients"):
        encoder.backward([None])


def test_conv_bn_relu_keeps_the_size_and_drops_the_bias_before_batch_norm():
    block = conv_bn_relu(2, 3, np.random.default_rng(0), kernel_size=3, dilation=2)
    assert block[0].options == {"stride": 1, "padding": 2, "dilation": 2} and "b" not in block[0].params
    assert "b" in conv_bn_relu(2, 3, np.random.default_rng(0), batch_norm=False)[0].params


def test_widths_and_option_lists():
    assert level_widths(4, 3) == [4, 8, 16, 32]
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        level_widths(4, 0)
    assert positive_ints([2, 4], "rates") == (2, 4)
    with pytest.raises(ValueError, match="bins must be a non-empty sequence of ints >= 1"):
        positive_ints([], "bins")

# ----------------------------------------------------------------------------------------------
# SpatialPyramid: its two heads, entry by entry and against PyTorch
# ----------------------------------------------------------------------------------------------

def _aspp(batch_norm=True):
    return off_init(ASPP(2, 2, (1, 2), np.random.default_rng(0), batch_norm).astype(np.float64))


def _pyramid(batch_norm=True):
    return off_init(PyramidPooling(4, 2, (1, 2, 3), np.random.default_rng(0), batch_norm).astype(np.float64))


@pytest.mark.parametrize("make", [_aspp, _pyramid], ids=["aspp", "pyramid_pooling"])
def test_head_entrywise_gradcheck(xp, make):
    """Every entry of the input and of every parameter of the head on a 2 x C x 4 x 5 map."""
    head = make()
    c_in = 2 if isinstance(head, ASPP) else 4
    report = gradcheck_layer(head, randn(xp, (2, c_in, 4, 5)), eps=EPS, tol=MODEL_TOL)
    assert report.passed, str(report)


def _torch_forward(layer, t, weights):
    """Run one of our layers (a head or anything inside one) in PyTorch with the same weights.

    ``weights``: (id(layer), key) -> torch tensor. BatchNorm in training mode.
    """
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
    """ASPP's dilated convs, its image pooling, PSP's adaptive pooling and bilinear upsampling,
    the concatenation and the summed branch gradients, all at once."""
    torch_or_skip()
    head = make(batch_norm)
    c_in = 2 if isinstance(head, ASPP) else 4
    x, dout = rng.standard_normal((2, c_in, 5, 6)), rng.standard_normal((2, 2, 5, 6))
    weights = {}
    for _, layer in head.modules():
        for key, value in layer.params.items():
            weights[(id(layer), key)] = to_torch(value, requires_grad=True)
    tx = to_torch(x, requires_grad=True)
    tout = _torch_forward(head, tx, weights)
    assert_close(head(xp.asarray(x)), tout)
    tout.backward(to_torch(dout))
    head.zero_grad()
    assert_close(head.backward(xp.asarray(dout)), tx.grad)
    for _, layer in head.modules():
        for key, grad in layer.grads.items():
            assert_close(grad, weights[(id(layer), key)].grad)
