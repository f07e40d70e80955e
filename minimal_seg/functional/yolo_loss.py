"""The YOLO v1 loss (Redmon et al., 2016), forward and a hand-written backward.

Notation: the image is cut into an S x S grid; each cell predicts B boxes
and one class distribution over C classes. The head's raw output is
pred (N, B*5 + C, S, S): for box b the channels 5b .. 5b+4 are
(tx, ty, tw, th, tc), then C class scores. They are squashed::

    x, y = sigmoid(tx), sigmoid(ty)    the box centre inside its cell, in (0, 1)
    w, h = sigmoid(tw), sigmoid(th)    the box size as a fraction of the image
    c    = sigmoid(tc)                 confidence: "there is an object here"
    p    = softmax(class scores)       Pr(class | object), per cell

(v1 outputs these unsquashed; the sigmoids keep sqrt(w) defined from the
first step.) target (N, 5 + C, S, S) holds, in the cell that contains an
object's centre: obj = 1, its (x, y, w, h) in the same units, and the
one-hot class; obj = 0 elsewhere.

**Responsible box.** In a cell with an object, of its B boxes the one with
the highest IoU with the true box is *responsible* for it (ties: the first):
1_ij^obj = 1 for that box j of cell i, 1_ij^noobj = 1 - 1_ij^obj for every
other box. The choice is a step function of pred, so the loss is smooth only
away from ties; the backward treats the choice as fixed.

**Loss** (sum-squared error, the paper's equation 3, divided by N)::

    L = lambda_coord sum_ij 1_ij^obj [(x - x^)^2 + (y - y^)^2]
      + lambda_coord sum_ij 1_ij^obj [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
      +              sum_ij 1_ij^obj   (c - 1)^2
      + lambda_noobj sum_ij 1_ij^noobj (c - 0)^2
      +              sum_i  1_i^obj    sum_classes (p - p^)^2

The square roots make an error of a few pixels count more on a small box
than on a big one. The paper's confidence target for the responsible box is
its IoU with the truth (held constant); we use 1, as many re-implementations
do, so the loss is one smooth function of pred that a gradient check can
test. lambda_coord = 5 and lambda_noobj = 0.5 balance the many empty cells.

**Backward**, through the squared errors, the square roots and the squashing::

    dL/dx = 2 lambda_coord 1^obj (x - x^)                 (y likewise)
    dL/dw = lambda_coord 1^obj (sqrt w - sqrt w^) / sqrt w   (h likewise)
    dL/dc = 2 1^obj (c - 1) + 2 lambda_noobj 1^noobj c
    dL/dp = 2 1^obj (p - p^)
    then d tx = dL/dx * x (1 - x)  (sigmoid), d scores = softmax_backward(dL/dp)
"""
from __future__ import annotations

from ..backend import array_module
from .activation import sigmoid_backward, sigmoid_forward, softmax_backward, softmax_forward
from .common import Cache, check_nchw, check_same_module


def _split(pred, num_boxes: int):
    """pred (N, B*5 + C, S, S) -> boxes (N, S, S, B, 5) raw, class scores (N, S, S, C) raw."""
    n, d, s1, s2 = pred.shape
    last = pred.transpose(0, 2, 3, 1)  # (N, S, S, D): one row of numbers per cell
    return last[..., : 5 * num_boxes].reshape(n, s1, s2, num_boxes, 5), last[..., 5 * num_boxes:]


def _merge(d_boxes, d_scores):
    """The inverse of ``_split`` for gradients: -> (N, B*5 + C, S, S)."""
    xp = array_module(d_boxes)
    n, s1, s2, b, _ = d_boxes.shape
    last = xp.concatenate([d_boxes.reshape(n, s1, s2, 5 * b), d_scores], axis=-1)
    return xp.ascontiguousarray(last.transpose(0, 3, 1, 2))


def cell_box_iou(boxes, truth, grid):
    """IoU of each cell's boxes with the cell's true box, in image units (fractions of the image).

    boxes (N, S, S, B, 4) and truth (N, S, S, 4) as (x, y, w, h) with (x, y)
    relative to the cell: the centre is ((col + x) / S, (row + y) / S).
    Returns (N, S, S, B).
    """
    xp = array_module(boxes)
    s_rows, s_cols = grid
    col = xp.arange(s_cols, dtype=boxes.dtype)[None, None, :, None]
    row = xp.arange(s_rows, dtype=boxes.dtype)[None, :, None, None]

    def corners(b):
        cx, cy = (col + b[..., 0]) / s_cols, (row + b[..., 1]) / s_rows
        return cx - b[..., 2] / 2, cy - b[..., 3] / 2, cx + b[..., 2] / 2, cy + b[..., 3] / 2

    ax1, ay1, ax2, ay2 = corners(boxes)
    bx1, by1, bx2, by2 = corners(truth[:, :, :, None, :])
    inter = xp.maximum(xp.minimum(ax2, bx2) - xp.maximum(ax1, bx1), 0) * \
        xp.maximum(xp.minimum(ay2, by2) - xp.maximum(ay1, by1), 0)
    union = boxes[..., 2] * boxes[..., 3] + (truth[..., 2] * truth[..., 3])[..., None] - inter
    return inter / xp.maximum(union, 1e-12)


def responsible_boxes(boxes, truth, obj, grid):
    """(N, S, S, B) 0/1: in each cell with an object, the box of highest IoU (the first on ties)."""
    xp = array_module(boxes)
    best = cell_box_iou(boxes, truth, grid).argmax(axis=-1)
    one_hot = best[..., None] == xp.arange(boxes.shape[3])
    return one_hot * obj[..., None]


def yolo_loss_forward(pred, target, num_boxes: int = 2, lambda_coord: float = 5.0, lambda_noobj: float = 0.5):
    """The YOLO v1 loss of raw head outputs: pred (N, B*5 + C, S, S), target (N, 5 + C, S, S) -> scalar.

    target channels: obj, x, y, w, h (cell-relative centre, image-relative
    size), then the one-hot class (C channels). Returns (loss, cache); the
    loss is a 0-d array of pred's dtype, summed over cells and divided by N.
    The cache also keeps the five terms (``cache.terms``) for logging.
    """
    check_nchw(pred, "pred")
    check_nchw(target, "target")
    check_same_module("pred", pred, "target", target)
    n, d, s1, s2 = pred.shape
    num_classes = d - 5 * num_boxes
    if num_classes < 1 or target.shape != (n, 5 + num_classes, s1, s2):
        raise ValueError(f"pred {tuple(pred.shape)} must have B*5 + C channels (B = num_boxes = {num_boxes}, "
                         f"C >= 1) and target must be (N, 5 + C, S, S) = {(n, 5 + max(num_classes, 0), s1, s2)}, "
                         f"got target {tuple(target.shape)}")
    xp = array_module(pred)
    raw_boxes, raw_scores = _split(pred, num_boxes)
    boxes, box_cache = sigmoid_forward(raw_boxes)  # (N, S, S, B, 5): x, y, w, h, c
    probs, prob_cache = softmax_forward(raw_scores, axis=-1)  # (N, S, S, C)
    t = target.transpose(0, 2, 3, 1)
    obj, truth, classes = t[..., 0], t[..., 1:5], t[..., 5:]
    resp = responsible_boxes(boxes[..., :4], truth, obj, (s1, s2)).astype(pred.dtype)  # 1^obj_ij
    noobj = 1 - resp

    err = boxes[..., :4] - truth[:, :, :, None, :]  # x, y errors used as they are
    root_w = xp.sqrt(xp.maximum(boxes[..., 2:4], 1e-12))  # a sigmoid can underflow to 0 in float32
    root_err = root_w - xp.sqrt(truth[:, :, :, None, 2:4])
    terms = {
        "xy": lambda_coord * (resp[..., None] * err[..., :2] ** 2).sum(),
        "wh": lambda_coord * (resp[..., None] * root_err ** 2).sum(),
        "obj": (resp * (boxes[..., 4] - 1) ** 2).sum(),
        "noobj": lambda_noobj * (noobj * boxes[..., 4] ** 2).sum(),
        "class": (obj[..., None] * (probs - classes) ** 2).sum(),
    }
    loss = sum(terms.values()) / n
    cache = Cache(n=n, boxes=boxes, box_cache=box_cache, probs=probs, prob_cache=prob_cache, resp=resp,
                  obj=obj, err=err, root_w=root_w, root_err=root_err, classes=classes, lambda_coord=lambda_coord,
                  lambda_noobj=lambda_noobj, terms={k: v / n for k, v in terms.items()})
    return xp.asarray(loss, dtype=pred.dtype), cache


def yolo_loss_backward(dout, cache):
    """Gradient of the YOLO loss with respect to the raw head outputs: -> dpred (N, B*5 + C, S, S).

    ``dout`` is the upstream gradient of the scalar loss (1.0 at the top).
    """
    xp = array_module(cache.boxes)
    scale = dout / cache.n
    lc, resp, boxes = cache.lambda_coord, cache.resp[..., None], cache.boxes
    d_boxes = xp.zeros_like(boxes)
    d_boxes[..., 0:2] = 2 * lc * resp * cache.err[..., :2]
    d_boxes[..., 2:4] = lc * resp * cache.root_err / cache.root_w
    d_boxes[..., 4] = 2 * cache.resp * (boxes[..., 4] - 1) + 2 * cache.lambda_noobj * (1 - cache.resp) * boxes[..., 4]
    d_probs = 2 * cache.obj[..., None] * (cache.probs - cache.classes)
    d_raw_boxes = sigmoid_backward(d_boxes * scale, cache.box_cache)
    d_raw_scores = softmax_backward(d_probs * scale, cache.prob_cache)
    return _merge(d_raw_boxes, d_raw_scores)
