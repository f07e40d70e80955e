"""Output-size formulas: PyTorch's, one place for all of them."""
import pytest
from helpers import torch_or_skip

from minimal_seg.functional import shapes as F_shapes
from minimal_seg.functional.shapes import (
    conv2d_output_shape,
    conv_transpose2d_output_shape,
    pair,
    pool2d_output_shape,
    receptive_field,
)


@pytest.mark.parametrize("h", [1, 4, 5, 8, 11])
@pytest.mark.parametrize("k,s,p,d", [(1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (3, 3, 2, 2), (2, 2, 0, 1),
                                     (5, 2, 2, 3), (4, 3, 1, 1)])
def test_conv_sizes_match_torch(h, k, s, p, d):
    torch = torch_or_skip()
    x = torch.zeros(1, 1, h, h + 1)
    try:
        ref = torch.nn.functional.conv2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d).shape[2:]
    except RuntimeError:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv2d_output_shape((h, h + 1), k, s, p, d)
        return
    assert conv2d_output_shape((h, h + 1), k, s, p, d) == tuple(ref)


@pytest.mark.parametrize("h", [1, 2, 3, 5])
@pytest.mark.parametrize("k,s,p,op,d", [(3, 1, 0, 0, 1), (3, 2, 1, 1, 1), (2, 2, 0, 0, 1), (4, 3, 1, 2, 1),
                                        (3, 1, 1, 1, 2), (3, 2, 2, 1, 3)])
def test_transpose_sizes_match_torch(h, k, s, p, op, d):
    torch = torch_or_skip()
    x = torch.zeros(1, 1, h, h)
    try:
        ref = torch.nn.functional.conv_transpose2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p,
                                                   output_padding=op, dilation=d).shape[2:]
    except RuntimeError:
        with pytest.raises(ValueError):
            conv_transpose2d_output_shape(h, k, s, p, op, d)
        return
    assert conv_transpose2d_output_shape(h, k, s, p, op, d) == tuple(ref)


@pytest.mark.parametrize("h", [2, 3, 4, 7, 8])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1), (3, 3, 1)])
def test_pool_sizes_match_torch(h, k, s, p):
    torch = torch_or_skip()
    x = torch.zeros(1, 1, h, h)
    try:
        ref = torch.nn.functional.max_pool2d(x, k, s, p).shape[2:]
    except RuntimeError:
        with pytest.raises(ValueError):
            pool2d_output_shape(h, k, s, p)
        return
    assert pool2d_output_shape(h, k, s, p) == tuple(ref)


def test_pair():
    assert pair(3, "k") == (3, 3)
    assert pair((2, 5), "k") == (2, 5)
    for bad in [1.5, (1, 2, 3), "3", True, None]:
        with pytest.raises(TypeError, match="kernel_size"):
            pair(bad, "kernel_size")


def test_receptive_field_of_the_lecture():
    # 3x3 weights with dilation 2 see a 5x5 field; two stacked 3x3 convs see 5x5 too.
    assert receptive_field([3], dilations=[2]) == 5
    assert receptive_field([3, 3]) == 5
    assert receptive_field([3, 3, 3], dilations=[1, 2, 3]) == 13
    assert receptive_field([3, 2, 3], strides=[1, 2, 1]) == 3 + 1 + 2 * 2


@pytest.mark.parametrize("call, error, message", [
    (lambda: F_shapes.conv_output_size(0, 3), ValueError, "size must be an integer >= 1, got 0"),
    (lambda: F_shapes.conv_output_size(8, 2.5), TypeError, "kernel must be an integer >= 1, got 2.5"),
    (lambda: F_shapes.conv_output_size(8, 3, stride=0), ValueError, "stride must be an integer >= 1"),
    (lambda: F_shapes.conv_output_size(8, 3, padding=-1), ValueError, "padding must be an integer >= 0"),
    (lambda: F_shapes.conv_output_size(4, 3, dilation=3), ValueError, "spans 7 pixels, more than the padded input 4"),
    (lambda: F_shapes.conv_output_size(float("nan"), 3), TypeError, "size must be an integer"),
    (lambda: F_shapes.pool_output_size(8, 2, stride=True), TypeError, "stride must be an integer"),
    (lambda: F_shapes.conv_transpose_output_size(1, 1, padding=1), ValueError, "padding 1 is too large"),
    (lambda: F_shapes.conv_transpose_output_size(4, 3, output_padding=-1), ValueError, "output_padding must be"),
    (lambda: F_shapes.upsample_output_size(4, 0), ValueError, "scale must be a finite number > 0, got 0"),
    (lambda: F_shapes.upsample_output_size(4, float("inf")), ValueError, "scale must be a finite number"),
    (lambda: F_shapes.receptive_field(3), TypeError, "kernels must be a list of ints, got 3"),
    (lambda: F_shapes.receptive_field([3, 0]), ValueError, r"kernels\[1\] must be an integer >= 1"),
    (lambda: F_shapes.receptive_field([3, 3], strides=[2]), ValueError, "one entry per kernel"),
])
def test_scalar_formulas_name_the_bad_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_scalar_formulas_on_good_input():
    assert F_shapes.conv_output_size(6, 3, stride=2) == 2
    assert F_shapes.conv_output_size(3, 3) == 1  # the kernel exactly fits
    assert F_shapes.conv_transpose_output_size(4, 3, stride=2, padding=1, output_padding=1) == 8
    assert F_shapes.upsample_output_size(5, 1.5) == 7
    assert F_shapes.receptive_field([3, 3, 3], strides=[1, 2, 1]) == 9
