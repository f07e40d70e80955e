"""Assignment 5: softmax cross-entropy and Dice loss, forward and backward.

A segmentation network scores every pixel for every class; the softmax over
the class axis turns the scores into probabilities p, and a loss compares p
with the true labels y. Cross-entropy looks at each pixel alone; Dice
(Sorensen) compares the predicted and the true region of each class as a
whole, 2|A n B| / (|A| + |B|), which is why it copes with small objects.

Implement, top to bottom:

    softmax                          p, without overflow for any logits
    softmax_cross_entropy_forward    mean of -log p[y] over the pixels
    softmax_cross_entropy_backward   dz = (p - g) / M
    dice_loss_forward                1 - mean over classes of the soft Dice score
    dice_loss_backward               the quotient rule, then through the softmax

Notation::

    z  logits (N, K, H, W) float        y  labels (N, H, W) int in [0, K)
    p  softmax(z) over axis 1           g  one_hot(y, K), (N, K, H, W): g[n, k, h, w] = [y[n, h, w] == k]
    M  = N*H*W, the number of pixels

Every loss returns (loss, cache) with loss a 0-d array (or NumPy scalar),
and its backward takes ``dout`` (dL_total/dloss, a number; 1.0 at the end of
the graph) and returns dz of the logits' shape.

You may use ``one_hot`` (imported below) and NumPy through
``xp = array_module(z)``; nothing else from ``minimal_seg.functional``
(the autograder refuses a file that imports more, or torch).
Check your work with ``python -m minimal_seg check a5 --impl a5_losses.py``.
"""
from __future__ import annotations

from minimal_seg.backend import array_module
from minimal_seg.functional.loss import one_hot  # one_hot(y, K, dtype) -> g (N, K, H, W)


def softmax(logits):
    """Softmax over the class axis: p[n, k, h, w] = exp(z_k) / sum_j exp(z_j).

    logits (N, K, H, W) -> p (N, K, H, W), entries in [0, 1] summing to 1 over k.
    exp(1000) is inf, so subtract the largest logit of each pixel first:
    exp(z_k - m) / sum_j exp(z_j - m) with m = max_j z_j is the same number,
    and now every exp is <= 1 and the largest is exactly 1.
    """
    # ===== START SOLUTION: a softmax that never overflows =====
    xp = array_module(logits)
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
    # ===== END SOLUTION =====


def softmax_cross_entropy_forward(logits, labels):
    """Per-pixel softmax cross-entropy, averaged over every pixel (PyTorch's F.cross_entropy).

        loss = -(1/M) * sum_{n,h,w} log p[n, y[n, h, w], h, w]

    Compute log p with the log-sum-exp trick, never as log(softmax): with
    m = max_j z_j, log p_k = (z_k - m) - log sum_j exp(z_j - m), which stays
    finite even where p_k itself rounds to 0.

    logits (N, K, H, W) float, labels (N, H, W) int -> (loss, cache)
    cache = {"probs": p (N, K, H, W), "labels": labels}
    """
    # ===== START SOLUTION: the mean of -log p[y], by log-sum-exp =====
    xp = array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    picked = xp.take_along_axis(log_p, labels[:, None], axis=1)  # log p[y] per pixel, (N, 1, H, W)
    return -picked.mean(), {"probs": xp.exp(log_p), "labels": labels}
    # ===== END SOLUTION =====


def softmax_cross_entropy_backward(dout, cache):
    """dz = dout * (p - g) / M: the famous "p minus the one-hot".

    Per pixel, d(-log p_y)/dz_k = p_k - [k == y]; the mean divides by M = N*H*W.
    Returns dz (N, K, H, W).
    """
    # ===== START SOLUTION: dz = dout * (p - g) / M =====
    p, labels = cache["probs"], cache["labels"]
    g = one_hot(labels, p.shape[1], p.dtype)
    return dout * (p - g) / labels.size
    # ===== END SOLUTION =====


def dice_loss_forward(logits, labels, smooth=1.0):
    """Soft multi-class Dice loss on the softmax probabilities.

    With p = softmax(z) and g = one_hot(y), per class k (sums over n, h, w):

        I_k = sum p_k g_k      P_k = sum p_k      G_k = sum g_k
        dice_k = (2 I_k + smooth) / (P_k + G_k + smooth)
        loss = 1 - (1/K) sum_k dice_k

    ``smooth`` keeps a class that is absent from both prediction and truth at
    dice_k = 1 (no division by zero).
    Returns (loss, cache), cache = {"probs": p, "onehot": g, "score": dice (K,),
    "denom": P + G + smooth (K,)}.
    """
    # ===== START SOLUTION: the soft Dice score of every class =====
    p = softmax(logits)
    g = one_hot(labels, logits.shape[1], logits.dtype)
    inter = (p * g).sum(axis=(0, 2, 3))
    denom = p.sum(axis=(0, 2, 3)) + g.sum(axis=(0, 2, 3)) + smooth
    score = (2 * inter + smooth) / denom
    return 1 - score.mean(), {"probs": p, "onehot": g, "score": score, "denom": denom}
    # ===== END SOLUTION =====


def dice_loss_backward(dout, cache):
    """dz of the Dice loss: the quotient rule for dL/dp, then back through the softmax.

    dI_k/dp_k = g_k and dP_k/dp_k = 1 at every pixel, so

        d dice_k / d p_k = (2 g_k (P+G+s) - (2I+s)) / (P+G+s)^2 = (2 g_k - dice_k) / (P_k + G_k + s)
        dL/dp_k = -(1/K) (2 g_k - dice_k) / (P_k + G_k + s)          (N, K, H, W)

    and through the softmax (its Jacobian is dp_k/dz_j = p_k (delta_kj - p_j)):

        dz_j = p_j (dL/dp_j - sum_k dL/dp_k p_k)          (the sum over the class axis, per pixel)

    Multiply by dout. Returns dz (N, K, H, W).
    """
    # ===== START SOLUTION: the quotient rule, then the softmax backward =====
    p, g = cache["probs"], cache["onehot"]
    k = p.shape[1]
    score, denom = cache["score"].reshape(1, k, 1, 1), cache["denom"].reshape(1, k, 1, 1)
    dp = -(2 * g - score) / (k * denom)
    dz = p * (dp - (dp * p).sum(axis=1, keepdims=True))
    return dout * dz
    # ===== END SOLUTION =====
