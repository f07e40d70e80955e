"""Segmentation metrics: confusion matrix, pixel accuracy, IoU, mIoU, Dice; IoU of masks.

Notation::

    K        number of classes          N, H, W   batch, height, width
    A, B     two sets of pixels (binary masks) or two boxes
    M        confusion matrix, M[i, j] = number of pixels of true class i
             predicted as class j (rows: truth, columns: prediction)

For one class c, read from M::

    TP_c = M[c, c]                        (true c, predicted c)
    FP_c = sum_i M[i, c] - M[c, c]        (predicted c, truth is another class)
    FN_c = sum_j M[c, j] - M[c, c]        (true c, predicted as another class)

    IoU_c  = |A n B| / |A u B|         = TP / (TP + FP + FN)       (Jaccard)
    Dice_c = 2 |A n B| / (|A| + |B|)   = 2 TP / (2 TP + FP + FN)   (Sorensen)

    pixel accuracy = trace(M) / sum(M),     mIoU = mean_c IoU_c

Dice and IoU measure the same overlap on different scales:
``Dice = 2 IoU / (1 + IoU)`` and ``IoU = Dice / (2 - Dice)``.
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module, to_numpy
from ..functional.common import check_array, check_int, check_same_module


# ---------------------------------------------------------------------------
# Confusion matrix
# ---------------------------------------------------------------------------


class ConfusionMatrix:
    """A streaming K x K confusion matrix and the metrics read from it.

    ``update(pred, target)`` adds one batch; metrics are read at any time::

        cm = ConfusionMatrix(num_classes=3, ignore_index=255)
        for images, labels in batches:
            cm.update(model.forward(images), labels)    # logits are argmax-ed
        print(cm.summary())                             # python floats

    ``update`` accepts
      * ``pred`` and ``target`` integer label arrays of the same shape
        (any shape, e.g. (N, H, W)), or
      * ``pred`` logits / scores (N, K, H, W) (floating point) and ``target``
        (N, H, W): the prediction is ``argmax`` over axis 1, the class axis.

    Pixels are counted with one ``bincount``: the pair (true i, predicted j)
    is the bin ``K*i + j`` of a K*K histogram, reshaped to M[i, j].

    Where the numbers live: the matrix ``self.matrix`` (int64, (K, K)) is
    created on the backend of the first batch and stays there; ``update`` never
    copies labels or the matrix to the host. (It does read back one integer,
    the number of invalid labels, to be able to raise; ``cupy.bincount`` itself
    also reads the largest bin index to size its output.) Reading a metric
    copies the small K x K matrix to the host once and returns NumPy arrays /
    Python floats; ``summary()`` reads everything with a single copy.

    Policy for absent classes: a class that appears neither in the truth nor
    in the prediction (TP + FP + FN = 0) has IoU = Dice = 0/0 = NaN, and the
    means (``miou``, ``mean_dice``) skip NaN (a nanmean over the classes that
    occur), as is common practice (the Cityscapes script, mmsegmentation). A
    class that is predicted but absent from the truth gets IoU = 0, which
    does count. With no pixels at all every metric is NaN.

    Pixels whose target equals ``ignore_index`` are skipped entirely (their
    prediction is neither checked nor counted). Every other target and every
    counted prediction must lie in [0, K), otherwise ``update`` raises
    ValueError.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None):
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = None  # (K, K) int64 on the first batch's backend, or None before it

    def reset(self) -> None:
        """Forget every counted pixel (start a new evaluation)."""
        self.matrix = None

    # -- counting ----------------------------------------------------------

    def update(self, pred, target) -> None:
        """Add one batch: ``pred`` labels (or (N, K, H, W) logits) against ``target`` labels."""
        pred = self._labels_from(pred, target)
        K = self.num_classes
        xp = array_module(target)
        if target.size == 0:
            return
        valid = self._counted(target)
        bad = valid & ((target < 0) | (target >= K) | (pred < 0) | (pred >= K))
        n_bad = int(xp.count_nonzero(bad))  # the one scalar read back to the host
        if n_bad:
            raise ValueError(self._range_message(n_bad))
        # Bin K*i + j for a counted pixel (true i, predicted j); ignored pixels go to
        # the extra bin K*K, which is dropped. No boolean indexing: shapes stay static.
        bins = xp.where(valid, K * target.astype(xp.int64) + pred, K * K).ravel()
        counts = xp.bincount(bins, minlength=K * K + 1)[: K * K].reshape(K, K)
        if self.matrix is None:
            self.matrix = counts.astype(xp.int64)
        else:
            check_same_module("the confusion matrix", self.matrix, "this batch", target)
            self.matrix += counts

    def _labels_from(self, pred, target):
        """Check the inputs; turn (N, K, H, W) logits into (N, H, W) labels by argmax."""
        check_array(pred, "pred")
        check_int(target, "target")
        check_same_module("pred", pred, "target", target)
        if pred.dtype.kind == "f" and pred.ndim == target.ndim + 1:
            if pred.shape[1] != self.num_classes:
                raise ValueError(
                    f"logits pred of shape {tuple(pred.shape)} must have num_classes="
                    f"{self.num_classes} channels on axis 1, got {pred.shape[1]}"
                )
            labels = pred.argmax(axis=1)
            if labels.shape != target.shape:
                raise ValueError(
                    f"logits pred of shape {tuple(pred.shape)} give labels of shape "
                    f"{tuple(labels.shape)}, which differs from target shape {tuple(target.shape)}"
                )
            return labels
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target must have the same shape, got pred {tuple(pred.shape)} "
                f"and target {tuple(target.shape)} (logits must be (N, K, H, W) for a (N, H, W) target)"
            )
        check_int(pred, "pred")
        return pred

    def _counted(self, target):
        """Boolean mask of the pixels that count (target != ignore_index)."""
        xp = array_module(target)
        if self.ignore_index is None:
            return xp.ones(target.shape, dtype=bool)
        return target != self.ignore_index

    def _range_message(self, n_bad: int) -> str:
        ignore = "" if self.ignore_index is None else f" (other than ignore_index={self.ignore_index} in target)"
        return (
            f"{n_bad} pixel(s) have a label outside [0, {self.num_classes}){ignore}; "
            f"pred and target must hold class indices 0..{self.num_classes - 1}"
        )

    # -- reading -----------------------------------------------------------

    def to_numpy(self) -> numpy.ndarray:
        """The (K, K) matrix on the host (int64); zeros before the first update."""
        if self.matrix is None:
            return numpy.zeros((self.num_classes, self.num_classes), dtype=numpy.int64)
        return to_numpy(self.matrix).astype(numpy.int64)

    def pixel_accuracy(self) -> float:
        """trace(M) / sum(M): the fraction of counted pixels predicted right."""
        return _pixel_accuracy(self.to_numpy())

    def iou(self) -> numpy.ndarray:
        """(K,) IoU per class, TP / (TP + FP + FN); NaN for a class absent from both."""
        return _iou(self.to_numpy())

    def miou(self) -> float:
        """Mean IoU over the classes that occur (nanmean of ``iou()``)."""
        return _nanmean(self.iou())

    def dice(self) -> numpy.ndarray:
        """(K,) Dice per class, 2 TP / (2 TP + FP + FN); NaN for a class absent from both."""
        return _dice(self.to_numpy())

    def mean_dice(self) -> float:
        """Mean Dice over the classes that occur (nanmean of ``dice()``)."""
        return _nanmean(self.dice())

    def summary(self) -> dict:
        """Every metric as Python floats, from one device->host copy of the matrix.

        Keys: ``pixel_accuracy``, ``miou``, ``mean_dice``, and per class c
        ``iou_c`` and ``dice_c`` (NaN for a class absent from both).
        """
        m = self.to_numpy()
        iou, dice = _iou(m), _dice(m)
        out = {"pixel_accuracy": _pixel_accuracy(m), "miou": _nanmean(iou), "mean_dice": _nanmean(dice)}
        out.update({f"iou_{c}": float(v) for c, v in enumerate(iou)})
        out.update({f"dice_{c}": float(v) for c, v in enumerate(dice)})
        return out

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index})"


def _tp_fp_fn(m: numpy.ndarray):
    """True positives, false positives, false negatives per class, as float64 (K,) arrays."""
    m = m.astype(numpy.float64)
    tp = numpy.diag(m)
    return tp, m.sum(axis=0) - tp, m.sum(axis=1) - tp


def _divide_or_nan(num: numpy.ndarray, den: numpy.ndarray) -> numpy.ndarray:
    """num / den, with NaN where den == 0 (and no warning)."""
    out = numpy.full(num.shape, numpy.nan)
    numpy.divide(num, den, out=out, where=den > 0)
    return out


def _pixel_accuracy(m: numpy.ndarray) -> float:
    total = float(m.sum())
    return float(numpy.trace(m)) / total if total > 0 else math.nan


def _iou(m: numpy.ndarray) -> numpy.ndarray:
    tp, fp, fn = _tp_fp_fn(m)
    return _divide_or_nan(tp, tp + fp + fn)


def _dice(m: numpy.ndarray) -> numpy.ndarray:
    tp, fp, fn = _tp_fp_fn(m)
    return _divide_or_nan(2 * tp, 2 * tp + fp + fn)


def _nanmean(values: numpy.ndarray) -> float:
    """Mean of the non-NaN entries; NaN (without a warning) when there are none."""
    present = values[~numpy.isnan(values)]
    return float(present.mean()) if present.size else math.nan


# ---------------------------------------------------------------------------
# Binary masks
# ---------------------------------------------------------------------------


def _binary_pair(pred_mask, true_mask):
    """Check two masks of equal shape; return them as booleans (nonzero = foreground)."""
    check_array(pred_mask, "pred_mask")
    check_array(true_mask, "true_mask")
    check_same_module("pred_mask", pred_mask, "true_mask", true_mask)
    if pred_mask.shape != true_mask.shape:
        raise ValueError(
            f"pred_mask and true_mask must have the same shape, got {tuple(pred_mask.shape)} "
            f"and {tuple(true_mask.shape)}"
        )
    return pred_mask != 0, true_mask != 0


def iou(pred_mask, true_mask) -> float:
    """IoU (Jaccard) of two binary masks of any equal shape: |A n B| / |A u B|.

    Nonzero entries are the foreground. Convention: two empty masks agree
    perfectly, IoU = 1.0 (nothing to find, nothing found).
    """
    a, b = _binary_pair(pred_mask, true_mask)
    xp = array_module(a)
    inter = int(xp.count_nonzero(a & b))
    union = int(xp.count_nonzero(a | b))
    return inter / union if union > 0 else 1.0


def dice(pred_mask, true_mask) -> float:
    """Dice (Sorensen) of two binary masks of any equal shape: 2 |A n B| / (|A| + |B|).

    Nonzero entries are the foreground. Convention: two empty masks give 1.0.
    """
    a, b = _binary_pair(pred_mask, true_mask)
    xp = array_module(a)
    inter = int(xp.count_nonzero(a & b))
    total = int(xp.count_nonzero(a)) + int(xp.count_nonzero(b))
    return 2 * inter / total if total > 0 else 1.0


def dice_from_iou(iou_value):
    """Dice = 2 IoU / (1 + IoU): since |A| + |B| = |A u B| + |A n B|."""
    return 2 * iou_value / (1 + iou_value)


def iou_from_dice(dice_value):
    """IoU = Dice / (2 - Dice), the inverse of ``dice_from_iou``."""
    return dice_value / (2 - dice_value)


def mask_iou(masks_a, masks_b):
    """Pairwise IoU of two sets of binary masks: (M, H, W) x (K, H, W) -> (M, K).

    Flatten each mask to a 0/1 row vector of length H*W; then every
    intersection is one dot product, all of them one matrix product::

        inter = A @ B.T           (M, K),  A: (M, H*W),  B: (K, H*W)
        union = |A_m| + |B_k| - inter

    Two empty masks have IoU 1.0 (the convention of ``iou``). Counts are
    computed in float64, exact for any realistic image size. Returns float64.
    """
    check_array(masks_a, "masks_a")
    check_array(masks_b, "masks_b")
    check_same_module("masks_a", masks_a, "masks_b", masks_b)
    if masks_a.ndim != 3 or masks_b.ndim != 3 or masks_a.shape[1:] != masks_b.shape[1:]:
        raise ValueError(
            f"masks must be (M, H, W) and (K, H, W) with the same H, W, got "
            f"{tuple(masks_a.shape)} and {tuple(masks_b.shape)}"
        )
    xp = array_module(masks_a)
    pixels = masks_a.shape[1] * masks_a.shape[2]  # not -1: an empty set (M = 0) must reshape too
    a = (masks_a != 0).reshape(masks_a.shape[0], pixels).astype(xp.float64)
    b = (masks_b != 0).reshape(masks_b.shape[0], pixels).astype(xp.float64)
    inter = a @ b.T
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - inter
    return xp.where(union > 0, inter / xp.maximum(union, 1), 1.0)
