"""Segmentation losses: softmax cross-entropy, BCE with logits, Dice, Jaccard.

Notation::

    z   logits,  (N, K, H, W) float       K classes, one score per pixel and class
    y   labels,  (N, H, W) integer        y in [0, K), or ``ignore_index``
    p   softmax(z) over the class axis    g   one_hot(y), (N, K, H, W)
    m   1 for a valid pixel, 0 for an ignored one

Every loss is a forward/backward pair::

    loss, cache = dice_loss_forward(z, y)        dz = dice_loss_backward(dout, cache)

``loss`` is a 0-d array of the logits' dtype that stays where the logits live
(no ``float()``: on the GPU that would wait for the device). ``dout`` is the
upstream gradient dL_total/dloss, a Python float or a 0-d array (1.0 when the
loss is the end of the graph); ``dz`` has the shape and dtype of ``z``.

Checking the labels. Labels outside [0, K) would silently index the wrong
class (or crash deep inside a gather), so every multi-class loss checks them.
The check is ONE reduction over the labels (``bad.any()``) and ONE device->host
sync to read its answer; on the GPU that is the only sync in these losses.

On a GPU the softmax cross-entropy's per-pixel work (log-sum-exp, p, -log
p[y], the pixel weights) and its backward each run as one CUDA kernel
(``kernels/elementwise.py``), tested equal to the code here.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from . import kernels
from .activation import log_softmax, sigmoid_forward, softmax_backward, softmax_forward
from .common import (
    Cache,
    check_array,
    check_float,
    check_int,
    check_int_at_least,
    check_nchw,
    check_ndim,
    check_number,
    check_same_module,
)
from .kernels import elementwise


# ----------------------------------------------------------------------------- helpers

def one_hot(labels, num_classes: int, dtype, ignore_index=None):
    """g[n, k, h, w] = 1 if labels[n, h, w] == k else 0: (N, H, W) -> (N, K, H, W).

    A comparison with ``arange(K)`` on the class axis: no scatter, no loop.
    Pixels labelled ``ignore_index`` get an all-zero column; any other label
    outside [0, K) raises ValueError (it would silently be a zero row).
    The range check costs one reduction and one device->host sync.
    """
    check_ndim(labels, 3, "labels", "N, H, W")
    check_int(labels, "labels")
    num_classes = check_int_at_least(num_classes, "num_classes", 1)
    try:
        dtype = array_module(labels).dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype such as float32, got {dtype!r}") from None
    ignore_index = _check_ignore_index(ignore_index)
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if bool(bad.any()):
        raise ValueError(f"labels must lie in [0, num_classes) = [0, {num_classes}) or equal ignore_index="
                         f"{ignore_index}; found label {int(labels[bad].reshape(-1)[0])}")
    return _one_hot(labels, num_classes, dtype)


def _one_hot(labels, num_classes, dtype):
    """``one_hot`` without the checks, for labels that were already checked."""
    classes = array_module(labels).arange(num_classes).reshape(1, -1, 1, 1)
    return (labels[:, None, :, :] == classes).astype(dtype)


def _check_ignore_index(ignore_index):
    """None or an int (a label value to leave out)."""
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        ignore_index = int(ignore_index)
    return ignore_index


def check_labels(logits, labels, ignore_index=None):
    """Validate (N, K, H, W) logits and (N, H, W) labels; return the valid-pixel mask.

    Raises ValueError (logits not 4-D; labels of the wrong shape; a label
    outside [0, K) that is not ``ignore_index``) or TypeError (float logits
    required, integer labels required). The range check costs one reduction
    and one device->host sync (see the module docstring).

    Returns ``valid``, a boolean (N, H, W) array: labels != ignore_index.
    """
    check_nchw(logits, "logits")
    check_int(labels, "labels")
    check_same_module("logits", logits, "labels", labels)
    ignore_index = _check_ignore_index(ignore_index)
    n, k, h, w = logits.shape
    if tuple(labels.shape) != (n, h, w):
        raise ValueError(f"labels must have shape (N, H, W) = {(n, h, w)} to match logits of shape "
                         f"{tuple(logits.shape)} (N, K, H, W), got labels of shape {tuple(labels.shape)}")
    xp = array_module(labels)
    limits = xp.iinfo(labels.dtype)
    if ignore_index is None or not limits.min <= ignore_index <= limits.max:
        # e.g. uint8 masks and the default ignore_index=-100: no label can equal it
        valid = xp.ones(labels.shape, dtype=bool)
    else:
        valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= k))
    if bool(bad.any()):  # the one reduction and the one sync
        value = int(labels[bad].reshape(-1)[0])
        raise ValueError(f"labels must lie in [0, K) = [0, {k}) or equal ignore_index={ignore_index}; "
                         f"found label {value} with K = {k} classes")
    return valid


def _check_weight(weight, num_classes: int, logits):
    """Return ``weight`` (K,) cast to the logits' dtype, or raise."""
    check_float(weight, "weight")
    check_same_module("logits", logits, "weight", weight)
    if tuple(weight.shape) != (num_classes,):
        raise ValueError(f"weight must have shape (K,) = ({num_classes},), got {tuple(weight.shape)}")
    return weight.astype(logits.dtype, copy=False)


def _upstream(dout, like):
    """The scalar upstream gradient as a 0-d array with the module and dtype of ``like``.

    (A NumPy float64 scalar or 0-d array would otherwise promote float32
    gradients to float64: NumPy 2 treats only Python numbers as "weak".)
    """
    if not (isinstance(dout, numbers.Real) and not isinstance(dout, bool)) and getattr(dout, "ndim", None) != 0:
        raise TypeError(f"dout must be a number or a 0-d array (the gradient of a scalar loss), got {dout!r}")
    return array_module(like).asarray(dout, dtype=like.dtype)


# ----------------------------------------------------------------------------- cross-entropy

def softmax_cross_entropy_forward(logits, labels, weight=None, ignore_index=-100):
    """Per-pixel softmax cross-entropy, PyTorch's ``F.cross_entropy`` ('mean').

        loss = sum_i m_i w[y_i] (-log p_i[y_i]) / sum_i m_i w[y_i]

    over all pixels i; ``weight`` w is (K,) (all ones if None). log p comes from
    the log-sum-exp trick, so it is finite however large the logits.

    All pixels ignored (or every valid pixel of a zero-weight class): the
    denominator is 0. We return loss 0 and a zero gradient; PyTorch returns nan.

    logits  (N, K, H, W) float        labels  (N, H, W) integer
    weight  (K,) or None              ignore_index  label value to skip (None: none)
    loss    0-d array, the logits' dtype
    cache   ``probs`` p (N, K, H, W), ``labels`` (ignored pixels set to 0),
            ``scale`` (N, H, W) = m_i w[y_i] / sum_i m_i w[y_i]
    """
    valid = check_labels(logits, labels, ignore_index)
    xp = array_module(logits)
    k = logits.shape[1]
    if weight is not None:
        weight = _check_weight(weight, k, logits)
    if kernels.kernels_enabled(logits):  # the CUDA kernel: every per-pixel step in one launch (kernels/elementwise.py)
        probs, safe, pixel_weight, nll = elementwise.softmax_cross_entropy_forward(logits, labels, valid, weight)
    else:
        safe = xp.where(valid, labels, 0)  # a legal index everywhere; masked out below
        log_p = log_softmax(logits, axis=1)
        nll = -xp.take_along_axis(log_p, safe[:, None, :, :], axis=1)[:, 0]  # -log p_i[y_i], (N, H, W)
        probs = xp.exp(log_p)
        pixel_weight = valid.astype(logits.dtype)
        if weight is not None:
            pixel_weight = pixel_weight * weight[safe]
    total = pixel_weight.sum()
    scale = pixel_weight / xp.where(total > 0, total, 1)  # total 0 -> every scale is 0
    loss = xp.asarray((scale * nll).sum())
    return loss, Cache(probs=probs, labels=safe, scale=scale)


def softmax_cross_entropy_backward(dout, cache):
    """dz = dout * scale_i * (p_i - g_i): the softmax-cross-entropy gradient "p - g".

    scale_i = m_i w[y_i] / sum m w is 0 on ignored pixels, so they get no gradient.
    """
    p = cache.probs
    if kernels.kernels_enabled(p):  # the CUDA kernel: one launch (kernels/elementwise.py)
        return elementwise.softmax_cross_entropy_backward(p, cache.labels, cache.scale, _upstream(dout, p))
    g = _one_hot(cache.labels, p.shape[1], p.dtype)
    return (p - g) * (_upstream(dout, p) * cache.scale)[:, None, :, :]


# ----------------------------------------------------------------------------- binary cross-entropy

def _softplus(u, xp):
    """log(1 + e^u) = max(u, 0) + log(1 + e^-|u|): never overflows."""
    return xp.maximum(u, 0) + xp.log1p(xp.exp(-xp.abs(u)))


def _check_broadcasts_to(a, shape, name: str):
    """Raise ValueError unless ``a`` broadcasts to ``shape`` without growing it."""
    ok = a.ndim <= len(shape) and all(s in (1, t) for s, t in zip(a.shape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"{name} of shape {tuple(a.shape)} does not broadcast to the logits' shape "
                         f"{tuple(shape)}; for NCHW logits pass pos_weight of shape (C, 1, 1)")


def bce_with_logits_forward(logits, targets, pos_weight=None):
    """Binary cross-entropy on logits, PyTorch's ``F.binary_cross_entropy_with_logits``.

    With s = sigmoid(z), target t in [0, 1] and positive-class weight w_pos::

        l = -(w_pos * t * log s + (1 - t) * log(1 - s))
          = (1 - t) * z + (1 + (w_pos - 1) * t) * softplus(-z)

    using -log s = softplus(-z) and -log(1 - s) = z + softplus(-z), where
    softplus(u) = log(1 + e^u) is computed without overflow. loss = mean of l.

    logits      any shape (e.g. (N, C, H, W)), float
    targets     the shape of logits; cast to the logits' dtype (0/1 masks are fine)
    pos_weight  None, or an array that broadcasts against logits like NumPy /
                PyTorch broadcasting (from the LAST axis: for NCHW use (C, 1, 1))
    loss        0-d array, the logits' dtype
    cache       ``sig`` = sigmoid(z), ``targets``, ``log_weight`` = 1 + (w_pos - 1) t
    """
    check_float(logits, "logits")
    check_array(targets, "targets")
    check_same_module("logits", logits, "targets", targets)
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(f"targets must have the shape of logits {tuple(logits.shape)}, "
                         f"got {tuple(targets.shape)}")
    xp = array_module(logits)
    dtype = logits.dtype
    t = targets.astype(dtype, copy=False)
    if pos_weight is None:
        log_weight = xp.ones_like(logits)
    else:
        check_array(pos_weight, "pos_weight")
        check_same_module("logits", logits, "pos_weight", pos_weight)
        _check_broadcasts_to(pos_weight, logits.shape, "pos_weight")
        log_weight = 1 + (pos_weight.astype(dtype, copy=False) - 1) * t
    elementwise = (1 - t) * logits + log_weight * _softplus(-logits, xp)
    sig, _ = sigmoid_forward(logits)
    # the mean over max(n, 1) elements: an empty batch gives loss 0 and no gradient, as CE and Dice do
    return xp.asarray(elementwise.sum() / max(elementwise.size, 1)), Cache(sig=sig, targets=t, log_weight=log_weight)


def bce_with_logits_backward(dout, cache):
    """dz = dout / n * ((1 - t) + (1 + (w_pos - 1) t) * (s - 1)),  n = number of elements.

    From d softplus(-z)/dz = -sigmoid(-z) = s - 1. Without pos_weight this is
    the familiar dout / n * (s - t).
    """
    s, t = cache.sig, cache.targets
    return (_upstream(dout, s) / max(s.size, 1)) * ((1 - t) + cache.log_weight * (s - 1))


# ----------------------------------------------------------------------------- Dice and Jaccard

def _soft_overlap(logits, labels, ignore_index):
    """The per-class sums that Dice and Jaccard are built from (sums over N, H, W)::

        I_k = sum m p_k g_k    (soft intersection)
        P_k = sum m p_k        G_k = sum m g_k     (soft sizes of prediction and truth)

    Returns a Cache with ``softmax`` (the softmax cache), ``g`` = m * g and ``m``
    as (N, K, H, W) / (N, 1, H, W) arrays of the logits' dtype, and ``inter``,
    ``p_sum``, ``g_sum`` (K,).
    """
    valid = check_labels(logits, labels, ignore_index)
    dtype = logits.dtype
    p, softmax_cache = softmax_forward(logits, axis=1)
    m = valid[:, None, :, :].astype(dtype)
    g = _one_hot(labels, logits.shape[1], dtype) * m  # ignored pixels: all-zero one-hot
    axes = (0, 2, 3)
    return Cache(softmax=softmax_cache, g=g, m=m, inter=(p * g).sum(axis=axes),
                 p_sum=(p * m).sum(axis=axes), g_sum=g.sum(axis=axes))


def _through_softmax(dp, dout, cache):
    """dz from dL/dp (N, K, H, W): zero it on ignored pixels, scale by dout, then softmax backward."""
    return softmax_backward(dp * cache.m * _upstream(dout, dp), cache.softmax)


def _per_class(v):
    """(K,) -> (1, K, 1, 1)."""
    return v.reshape(1, -1, 1, 1)


def dice_loss_forward(logits, labels, smooth: float = 1.0, ignore_index=None):
    """Soft multi-class Dice (Sorensen) loss on the softmax probabilities.

        dice_k = (2 I_k + smooth) / (P_k + G_k + smooth),     loss = 1 - mean_k dice_k

    with I, P, G the per-class sums of ``_soft_overlap`` over the valid pixels
    of the whole batch. A class absent from both prediction and truth has
    dice_k = smooth / smooth = 1; ``smooth`` > 0 keeps the ratio defined.

    logits (N, K, H, W) float; labels (N, H, W) integer; ignore_index: a label
    value whose pixels are left out of every sum (None: use every pixel).
    loss   0-d array, the logits' dtype
    cache  the ``_soft_overlap`` cache plus ``score`` (dice_k, (K,)) and
           ``denom`` = P + G + smooth (K,)
    """
    smooth = check_number(smooth, "smooth", 0)  # a Python float keeps the logits' dtype
    c = _soft_overlap(logits, labels, ignore_index)
    c.denom = c.p_sum + c.g_sum + smooth
    c.score = (2 * c.inter + smooth) / c.denom
    return array_module(logits).asarray(1 - c.score.mean()), c


def dice_loss_backward(dout, cache):
    """dz for the Dice loss, through the softmax.

    On a valid pixel, dI_k/dp_k = g_k and dP_k/dp_k = 1, so by the quotient rule

        d dice_k / d p_k = (2 g_k (P+G+s) - (2I+s)) / (P+G+s)^2 = (2 g_k - dice_k) / (P+G+s)
        dL/dp_k = -(1/K) * (2 g_k - dice_k) / (P_k + G_k + smooth)

    then dz = softmax_backward(dL/dp) (activation.py).
    """
    k = cache.score.shape[0]
    dp = -(2 * cache.g - _per_class(cache.score)) / (k * _per_class(cache.denom))
    return _through_softmax(dp, dout, cache)


def jaccard_loss_forward(logits, labels, smooth: float = 1.0, ignore_index=None):
    """Soft multi-class Jaccard (IoU) loss on the softmax probabilities.

        U_k = P_k + G_k - I_k     (soft union = |A| + |B| - |A n B|)
        J_k = (I_k + smooth) / (U_k + smooth),     loss = 1 - mean_k J_k

    Arguments, shapes and the meaning of ``smooth`` as in ``dice_loss_forward``.
    cache  the ``_soft_overlap`` cache plus ``score`` (J_k, (K,)) and
           ``denom`` = U + smooth (K,)
    """
    smooth = check_number(smooth, "smooth", 0)
    c = _soft_overlap(logits, labels, ignore_index)
    c.denom = c.p_sum + c.g_sum - c.inter + smooth
    c.score = (c.inter + smooth) / c.denom
    return array_module(logits).asarray(1 - c.score.mean()), c


def jaccard_loss_backward(dout, cache):
    """dz for the Jaccard loss, through the softmax.

    On a valid pixel dI/dp_k = g_k and dU/dp_k = 1 - g_k, so

        d J_k / d p_k = (g_k (U+s) - (I+s)(1 - g_k)) / (U+s)^2 = (g_k (1 + J_k) - J_k) / (U + s)
        dL/dp_k = -(1/K) * (g_k (1 + J_k) - J_k) / (U_k + smooth)

    then dz = softmax_backward(dL/dp) (activation.py).
    """
    k = cache.score.shape[0]
    score = _per_class(cache.score)
    dp = -(cache.g * (1 + score) - score) / (k * _per_class(cache.denom))
    return _through_softmax(dp, dout, cache)
