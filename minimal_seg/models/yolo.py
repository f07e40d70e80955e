"""A tiny YOLO v1 (Redmon et al., 2016): one network, one pass, boxes from an S x S grid.

Lecture 004's one-stage detector. The image is cut into S x S cells; each
cell predicts B boxes (x, y, w, h, confidence) and one distribution over
C classes, so the head outputs an S x S x (B*5 + C) tensor::

    x (N, C_in, H, W) ─ Encoder (double_conv + max pool, depth times) ─ (N, F, S, S)
                      ─ conv 3x3 ─ BN ─ ReLU ─ conv 1x1 ─ pred (N, B*5 + C, S, S)

with S = H / 2**depth (H = 64, depth = 3: an 8 x 8 grid of 8-pixel cells).
The v1 paper ends in fully connected layers; a 1x1 convolution is the same
per-cell linear map with the weights shared across cells (lecture 001:
an FC layer as a convolution). The loss is ``functional.yolo_loss``.

Targets and boxes: an object is assigned to the cell that holds its box
centre (``encode_targets``); labels are 1..C as in the data sets (0 is the
background), class channel c - 1. ``decode`` turns pred back into scored
boxes: score = confidence * Pr(class | object), then per-class NMS.
"""
from __future__ import annotations

import numpy

from .. import functional as F
from .. import nn
from ..backend import to_numpy
from ..metrics import nms
from ..nn.init import as_generator
from .base import Model
from .blocks import Encoder, conv_bn_relu, level_widths


class YOLO(Model):
    """YOLO(in_channels=1, num_classes=3, boxes_per_cell=2, depth=3, base_channels=16, batch_norm=True, seed=0).

    ``num_classes`` counts the object classes (C), not the background.
    ``forward(x)`` returns the raw head output (N, B*5 + C, H / 2**depth, W / 2**depth).
    """

    name = "yolo"

    def __init__(self, in_channels=1, num_classes=3, boxes_per_cell=2, depth=3, base_channels=16,
                 batch_norm=True, seed=0):
        super().__init__(in_channels=in_channels, num_classes=num_classes, boxes_per_cell=boxes_per_cell,
                         depth=depth, base_channels=base_channels, batch_norm=batch_norm, seed=seed)
        if num_classes < 1 or boxes_per_cell < 1:
            raise ValueError(f"num_classes and boxes_per_cell must be >= 1, got {num_classes}, {boxes_per_cell}")
        rng = as_generator(seed)
        widths = level_widths(base_channels, depth)
        self.backbone = Encoder(in_channels, widths, rng, batch_norm)
        self.head = nn.Sequential(conv_bn_relu(widths[-1], widths[-1], rng, batch_norm),
                                  nn.Conv2d(widths[-1], 5 * boxes_per_cell + num_classes, 1, rng=rng))
        self.depth = depth

    def children(self):
        return {"backbone": self.backbone, "head": self.head}

    def forward(self, x):
        stride = 2 ** self.depth
        if x.shape[2] % stride or x.shape[3] % stride:
            raise ValueError(f"YOLO with depth={self.depth} needs H and W divisible by {stride}, got {tuple(x.shape)}")
        return self.head(self.backbone(x)[-1])

    def backward(self, dout):
        return self.backbone.backward([None] * self.depth + [self.head.backward(dout)])


def encode_targets(targets, num_classes: int, grid, image_size):
    """YOLO's target tensor: list of per-image dicts (``boxes`` xyxy px, ``labels`` 1..C) -> (N, 5 + C, S, S).

    The object whose box centre (cx, cy) falls in cell (row, col) =
    (floor(cy / cell_h), floor(cx / cell_w)) writes, in that cell::

        obj = 1,  x = cx / cell_w - col,  y = cy / cell_h - row,  w = bw / W,  h = bh / H,
        class channel (label - 1) = 1

    A cell holds one object (v1's limit): when two centres share a cell the
    later object wins. Returns float32 on the host.
    """
    s_rows, s_cols = (grid, grid) if numpy.isscalar(grid) else grid
    h, w = (image_size, image_size) if numpy.isscalar(image_size) else image_size
    out = numpy.zeros((len(targets), 5 + num_classes, s_rows, s_cols), dtype=numpy.float32)
    for i, t in enumerate(targets):
        for (x1, y1, x2, y2), label in zip(numpy.asarray(t["boxes"], numpy.float64), t["labels"]):
            if not 1 <= label <= num_classes:
                raise ValueError(f"targets[{i}] has label {label}; detection labels must lie in 1..{num_classes}")
            cx, cy = (x1 + x2) / 2 * s_cols / w, (y1 + y2) / 2 * s_rows / h  # in cells
            col, row = min(int(cx), s_cols - 1), min(int(cy), s_rows - 1)
            out[i, :, row, col] = 0
            out[i, :5, row, col] = (1, cx - col, cy - row, (x2 - x1) / w, (y2 - y1) / h)
            out[i, 4 + label, row, col] = 1
    return out


def decode(pred, num_boxes: int, image_size, score_threshold=0.05, iou_threshold=0.5, max_detections=100):
    """Raw head outputs (N, B*5 + C, S, S) -> one dict per image: ``boxes`` (M, 4) xyxy px, ``scores``, ``labels``.

    Every box of every cell is a candidate with class argmax_c p_c and score
    c * max_c p_c (confidence times Pr(class | object)); candidates under
    ``score_threshold`` are dropped, NMS runs per class, and the best
    ``max_detections`` are kept. Boxes are clipped to the image. NumPy, on the host.
    """
    pred = to_numpy(pred).astype(numpy.float64)
    n, d, s_rows, s_cols = pred.shape
    h, w = (image_size, image_size) if numpy.isscalar(image_size) else image_size
    last = pred.transpose(0, 2, 3, 1)
    boxes = F.sigmoid_forward(last[..., : 5 * num_boxes].reshape(n, s_rows, s_cols, num_boxes, 5))[0]
    probs = F.softmax_forward(last[..., 5 * num_boxes:], axis=-1)[0]
    col = numpy.arange(s_cols)[None, None, :, None]
    row = numpy.arange(s_rows)[None, :, None, None]
    cx, cy = (col + boxes[..., 0]) * w / s_cols, (row + boxes[..., 1]) * h / s_rows
    bw, bh = boxes[..., 2] * w, boxes[..., 3] * h
    xyxy = numpy.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1).clip(0, [w, h, w, h])
    labels = numpy.broadcast_to(probs.argmax(-1)[..., None], boxes.shape[:-1]) + 1
    scores = boxes[..., 4] * probs.max(-1)[..., None]
    return [_keep_best(xyxy[i].reshape(-1, 4), scores[i].ravel(), labels[i].ravel(), score_threshold,
                       iou_threshold, max_detections) for i in range(n)]


def _keep_best(boxes, scores, labels, score_threshold, iou_threshold, max_detections):
    """Threshold, per-class NMS, the best ``max_detections`` by score."""
    keep = scores >= score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    kept = numpy.concatenate([numpy.flatnonzero(labels == c)[nms(boxes[labels == c], scores[labels == c],
                                                                 iou_threshold)]
                              for c in numpy.unique(labels)] + [numpy.zeros(0, numpy.int64)])
    kept = kept[numpy.argsort(-scores[kept], kind="stable")][:max_detections]
    return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept].astype(numpy.int64)}
