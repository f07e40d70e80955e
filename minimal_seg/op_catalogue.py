"""Every functional op with small float64 inputs: what ``python -m minimal_seg gradcheck`` checks.

Each entry is an ``Entry(label, forward, backward, make_inputs(rng) -> dict, kwargs, wrt)``; ``wrt``
names the inputs to check where others are data (RoI boxes, a YOLO target). Max-pool and RoI-pool
inputs are tie-free (a shuffled ramp), so no window has two maxima.
``tests/test_op_catalogue.py`` checks that every ``functional.*_forward`` has an entry.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy

from . import functional as F


class Entry(NamedTuple):
    label: str
    forward: Callable
    backward: Callable
    make_inputs: Callable
    kwargs: dict
    wrt: tuple | None = None  # None: every float input


def _randn(rng, *shape):
    return rng.standard_normal(shape)


def _tie_free(rng, *shape):
    """Distinct values 0.1 apart, shuffled: no ties, and far from any kink for eps=1e-5."""
    return rng.permutation(numpy.arange(numpy.prod(shape)) * 0.1).reshape(shape)


def _labels(rng, n, k, h, w, ignore=None):
    labels = rng.integers(0, k, size=(n, h, w))
    if ignore is not None:
        labels[0, 0, :2] = ignore
    return labels


def catalogue():
    """List of ``Entry`` covering every op of ``minimal_seg.functional``."""
    conv_in = lambda rng: {"x": _randn(rng, 2, 3, 6, 5), "w": _randn(rng, 4, 3, 3, 3), "b": _randn(rng, 4)}
    tconv_in = lambda rng: {"x": _randn(rng, 2, 3, 3, 4), "w": _randn(rng, 3, 2, 3, 3), "b": _randn(rng, 2)}
    entries = [
        ("conv2d", F.conv2d_forward, F.conv2d_backward, conv_in, {}),
        ("conv2d", F.conv2d_forward, F.conv2d_backward, conv_in, {"stride": 2, "padding": 1}),
        ("conv2d", F.conv2d_forward, F.conv2d_backward, conv_in, {"padding": 2, "dilation": 2}),
        ("conv2d", F.conv2d_forward, F.conv2d_backward,
         lambda rng: {"x": _randn(rng, 2, 3, 7, 6), "w": _randn(rng, 2, 3, 2, 3), "b": _randn(rng, 2)},
         {"stride": (2, 1), "padding": (0, 1), "dilation": (1, 2)}),
        ("conv_transpose2d", F.conv_transpose2d_forward, F.conv_transpose2d_backward, tconv_in, {}),
        ("conv_transpose2d", F.conv_transpose2d_forward, F.conv_transpose2d_backward, tconv_in,
         {"stride": 2, "padding": 1, "output_padding": 1}),
        ("conv_transpose2d", F.conv_transpose2d_forward, F.conv_transpose2d_backward, tconv_in,
         {"stride": 2, "dilation": 2, "method": "matrix"}),
    ]
    entries += _extra_entries() + _tensor_entries() + _detection_entries()
    return [Entry(*e) for e in entries]


def _extra_entries():
    """Entries for the ops beyond convolution (pooling, upsampling, activations, norm, losses)."""
    entries = [
        ("max_pool2d", F.max_pool2d_forward, F.max_pool2d_backward,
         lambda rng: {"x": _tie_free(rng, 2, 2, 6, 7)}, {"kernel_size": 2}),
        ("max_pool2d", F.max_pool2d_forward, F.max_pool2d_backward,
         lambda rng: {"x": _tie_free(rng, 2, 2, 7, 7)}, {"kernel_size": 3, "stride": 2, "padding": 1}),
        ("max_unpool2d", F.max_unpool2d_forward, F.max_unpool2d_backward, _unpool_inputs, {"kernel_size": 2}),
        ("unpool_nearest", F.unpool_nearest_forward, F.unpool_nearest_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 3, 4)}, {"scale": 2}),
        ("unpool_bed_of_nails", F.unpool_bed_of_nails_forward, F.unpool_bed_of_nails_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 3, 4)}, {"scale": (2, 3)}),
        ("upsample_bilinear", F.upsample_bilinear_forward, F.upsample_bilinear_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 3, 4)}, {"scale": 2}),
        ("upsample_bilinear", F.upsample_bilinear_forward, F.upsample_bilinear_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 5, 4)}, {"size": (7, 9)}),
        # adaptive pooling: bins that overlap (7 -> 3) and more bins than pixels (5 -> 6)
        ("adaptive_avg_pool2d", F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 7, 5)}, {"output_size": (3, 6)}),
        ("adaptive_avg_pool2d", F.adaptive_avg_pool2d_forward, F.adaptive_avg_pool2d_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 4, 6)}, {"output_size": 1}),
        ("relu", F.relu_forward, F.relu_backward, lambda rng: {"x": _tie_free(rng, 2, 3, 4, 4) - 1.55}, {}),
        ("sigmoid", F.sigmoid_forward, F.sigmoid_backward, lambda rng: {"x": _randn(rng, 2, 3, 4, 4)}, {}),
        ("softmax", F.softmax_forward, F.softmax_backward, lambda rng: {"x": _randn(rng, 2, 4, 3, 3)}, {}),
        ("batch_norm2d (train)", F.batch_norm2d_forward, F.batch_norm2d_backward, _bn_inputs(True), {}),
        ("batch_norm2d (eval)", F.batch_norm2d_forward, F.batch_norm2d_backward, _bn_inputs(False), {}),
        ("softmax_cross_entropy", F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward,
         lambda rng: {"logits": _randn(rng, 2, 4, 3, 3), "labels": _labels(rng, 2, 4, 3, 3, ignore=-100),
                      "weight": rng.uniform(0.5, 2.0, 4)}, {}),
        ("bce_with_logits", F.bce_with_logits_forward, F.bce_with_logits_backward,
         lambda rng: {"logits": _randn(rng, 2, 1, 4, 4), "targets": rng.uniform(0, 1, (2, 1, 4, 4))}, {}),
        ("dice_loss", F.dice_loss_forward, F.dice_loss_backward,
         lambda rng: {"logits": _randn(rng, 2, 3, 4, 4), "labels": _labels(rng, 2, 3, 4, 4)}, {}),
        ("jaccard_loss", F.jaccard_loss_forward, F.jaccard_loss_backward,
         lambda rng: {"logits": _randn(rng, 2, 3, 4, 4), "labels": _labels(rng, 2, 3, 4, 4)}, {}),
        ("linear", F.linear_forward, F.linear_backward,
         lambda rng: {"x": _randn(rng, 3, 5), "w": _randn(rng, 4, 5), "b": _randn(rng, 4)}, {}),
        ("flatten", F.flatten_forward, F.flatten_backward, lambda rng: {"x": _randn(rng, 2, 3, 2, 2)}, {}),
    ]
    return entries


def _concat_forward(a, b):
    """concat_forward of two inputs, so that gradcheck sees each as an input of its own."""
    return F.concat_forward([a, b])


def _concat_backward(dout, cache):
    return tuple(F.concat_backward(dout, cache))


def _tensor_entries():
    """The skip connection's pieces: concatenation, and the pad/crop pair of the models' base."""
    return [
        ("concat", _concat_forward, _concat_backward,
         lambda rng: {"a": _randn(rng, 2, 3, 4, 5), "b": _randn(rng, 2, 2, 4, 5)}, {}),
        ("pad_to_multiple", F.pad_to_multiple_forward, F.pad_to_multiple_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 5, 6)}, {"multiple": 4}),
        ("crop", F.crop_forward, F.crop_backward, lambda rng: {"x": _randn(rng, 2, 2, 6, 7)}, {"size": (4, 5)}),
    ]


def _rois(rng, n, h, w):
    """Boxes (K, 5): batch index, x1, y1, x2, y2 in pixels; one inside, one off the map's corner, random ones."""
    p1 = rng.uniform(-0.3, 1.0, (4, 2)) * (w, h)
    boxes = numpy.concatenate([rng.integers(0, n, (4, 1)), p1, p1 + rng.uniform(0.2, 0.9, (4, 2)) * (w, h)], 1)
    return numpy.concatenate([[[0, 1.0, 1.0, 5.0, 6.0], [1, -3.0, -2.0, 2.5, 3.5]], boxes])


def _yolo_case(rng, n=2, boxes=2, classes=3, cells=3):
    """Raw head outputs and a target with an object in some cells (``yolo_loss_forward``'s layout)."""
    target = numpy.zeros((n, 5 + classes, cells, cells))
    for i, r, c in zip(rng.integers(0, n, 4), rng.integers(0, cells, 4), rng.integers(0, cells, 4)):
        target[i, :, r, c] = 0
        target[i, :5, r, c] = (1, *rng.uniform(0.05, 0.95, 2), *rng.uniform(0.1, 0.6, 2))
        target[i, 5 + rng.integers(classes), r, c] = 1
    return {"pred": _randn(rng, n, 5 * boxes + classes, cells, cells), "target": target}


def _detection_entries():
    """Lecture 004: RoI pooling and RoIAlign (gradients for x; the boxes are data), the YOLO v1 loss.

    The YOLO loss has a kink where two boxes of a cell have the same IoU with the truth (the
    responsible box switches); random inputs land within eps = 1e-5 of one with a vanishing chance.
    """
    return [
        ("roi_pool2d", F.roi_pool2d_forward, F.roi_pool2d_backward,
         lambda rng: {"x": _tie_free(rng, 2, 2, 7, 7), "rois": _rois(rng, 2, 7, 7)}, {"output_size": (2, 3)},
         ("x",)),
        ("roi_align2d", F.roi_align2d_forward, F.roi_align2d_backward,
         lambda rng: {"x": _randn(rng, 2, 2, 7, 6), "rois": _rois(rng, 2, 7, 6)},
         {"output_size": (2, 2), "sampling_ratio": 2, "aligned": True}, ("x",)),
        ("yolo_loss", F.yolo_loss_forward, F.yolo_loss_backward, _yolo_case, {"num_boxes": 2}, ("pred",)),
    ]


def _unpool_inputs(rng):
    x = _tie_free(rng, 2, 2, 6, 6)
    pooled, cache = F.max_pool2d_forward(x, 2)
    return {"x": _randn(rng, *pooled.shape), "indices": cache.indices}


def _bn_inputs(training):
    def make(rng):
        return {"x": _randn(rng, 3, 2, 3, 3), "gamma": rng.uniform(0.5, 1.5, 2), "beta": _randn(rng, 2),
                "running_mean": _randn(rng, 2), "running_var": rng.uniform(0.5, 1.5, 2), "training": training}
    return make
