"""Output-size formulas: PyTorch's, one place for all of them."""
import pytest
from helpers import torch_or_skip

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
