"""Checks of assignment 5 (a5_losses.py): softmax, cross-entropy and Dice, forward and backward."""
from __future__ import annotations

import numpy

from ... import functional as F
from ...backend import to_numpy
from ..grader import Checklist
from ..imports import ImportRules
from . import F32_TOL, randn, rng

ONE_HOT = ("minimal_seg.functional.loss.one_hot", "minimal_seg.functional.one_hot")
CHECKS = Checklist(ImportRules(task="softmax, cross-entropy and Dice, forward and backward", allowed=ONE_HOT))

SHAPE = (2, 3, 3, 4)  # N, K, H, W

CE_HINTS = {
    "scaled": "{name} is off by a constant factor: the loss is the MEAN over the M = N*H*W pixels, "
              "so dz = dout * (p - g) / M",
    "default": "dz = dout * (p - g) / M with g = one_hot(y): p minus 1 at the true class of every pixel",
}
DICE_HINTS = {
    "scaled": "{name} is off by a constant factor: check the 1/K of the mean over classes and the factor dout",
    "default": "dL/dp_k = -(2 g_k - dice_k) / (K (P_k + G_k + s)), then dz = p * (dL/dp - sum_k dL/dp_k p_k)",
}
NO_SOFTMAX_HINT = ("your dz equals dL/dp: the gradient must still go back through the softmax, "
                   "dz_j = p_j (dL/dp_j - sum_k dL/dp_k p_k)")
STABLE_HINT = ("exp overflowed: subtract the largest logit of each pixel before exp (softmax), and compute "
               "log p as (z - m) - log sum exp(z - m), never log(softmax(z))")


def _labels(seed: int, shape=SHAPE):
    n, k, h, w = shape
    return rng(seed).integers(0, k, size=(n, h, w))


def _dice_masks():
    """The hand example: truth and prediction of class 1 on a 4x4 image, 6 and 4 pixels, 3 shared."""
    truth = numpy.zeros((4, 4), dtype=numpy.int64)
    truth[0:2, 0:3] = 1
    pred = numpy.zeros((4, 4), dtype=numpy.int64)
    pred[[0, 0, 1, 2], [1, 2, 2, 2]] = 1
    return truth, pred


@CHECKS.add("shapes, dtypes and values in float32", expect="< 1e-5 (~1e-7)")
def shapes(s, ctx):
    z, y = randn(0, *SHAPE).astype(numpy.float32), _labels(1)
    p = s.softmax(z)
    ctx.expect_shape("softmax(z)", p, SHAPE, numpy.float32)
    ctx.expect_close("softmax(z)", p, F.softmax_forward(z)[0], tol=F32_TOL, case="float32")
    losses = (("cross-entropy", s.softmax_cross_entropy_forward, s.softmax_cross_entropy_backward,
               F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward, CE_HINTS),
              ("dice", s.dice_loss_forward, s.dice_loss_backward, F.dice_loss_forward, F.dice_loss_backward,
               DICE_HINTS))
    for name, forward, backward, ref_forward, ref_backward, hints in losses:
        loss, cache = forward(z, y)
        ref, ref_cache = ref_forward(z, y)
        ctx.expect_shape(f"{name} loss", to_numpy(loss), (),
                         hint="the loss is one number: average (mean) over every pixel / class")
        ctx.expect_close(f"{name} loss", loss, ref, tol=F32_TOL, case="float32")
        dz = backward(1.0, cache)
        ctx.expect_shape(f"{name} dz", dz, SHAPE, numpy.float32, hint="dz has the shape (and dtype) of the logits")
        ctx.expect_close(f"{name} dz", dz, ref_backward(1.0, ref_cache), tol=F32_TOL, case="float32", hints=hints)


@CHECKS.add("hand example: zero logits give log K; Dice of two masks = 2|A n B| / (|A| + |B|)",
            expect="< 1e-12 (~1e-16)")
def hand_examples(s, ctx):
    n, k, h, w = SHAPE
    z, y = numpy.zeros(SHAPE), _labels(2)
    ctx.expect_close("softmax(0)", s.softmax(z), numpy.full(SHAPE, 1 / k), tol=1e-12, against="1/K everywhere")
    loss, cache = s.softmax_cross_entropy_forward(z, y)
    ctx.expect_close("cross-entropy loss", loss, numpy.log(k), tol=1e-12, against="log K",
                     hints={"default": "at p = 1/K every pixel costs -log(1/K) = log K, and so does their mean"})
    g = F.one_hot(y, k, numpy.float64)
    ctx.expect_close("cross-entropy dz", s.softmax_cross_entropy_backward(1.0, cache), (1 / k - g) / (n * h * w),
                     tol=1e-12, against="(1/K - g) / M", hints=CE_HINTS)
    truth, pred = _dice_masks()
    logits = 40.0 * numpy.stack([1 - pred, pred])[None]  # p is the predicted mask to ~1e-17
    dice = numpy.array([(2 * 9 + 1) / (12 + 10 + 1), (2 * 3 + 1) / (4 + 6 + 1)])  # class 0, class 1
    loss, _ = s.dice_loss_forward(logits, truth[None], 1.0)
    ctx.expect_close("dice loss", loss, 1 - dice.mean(), tol=1e-12, against="1 - (19/23 + 7/11) / 2",
                     hints={"default": "dice_k = (2 I_k + s) / (P_k + G_k + s) with sums over every pixel of the "
                                       "batch; loss = 1 - the mean over the K classes"})


@CHECKS.add("large logits: no overflow, the same loss as for small ones", expect="< 1e-10 (~1e-14)")
def stability(s, ctx):
    z, y = randn(3, *SHAPE), _labels(4)
    hints = {"nan": STABLE_HINT, "default": STABLE_HINT}
    ctx.expect_close("softmax(z + 1000)", s.softmax(z + 1000), F.softmax_forward(z)[0], against="softmax(z)",
                     hints=hints)
    loss, _ = s.softmax_cross_entropy_forward(200 * z, y)
    ctx.expect_close("cross-entropy of 200 z", loss, F.softmax_cross_entropy_forward(200 * z, y)[0],
                     tol=1e-10, hints=hints)
    loss, cache = s.dice_loss_forward(z + 1000, y)
    ctx.expect_close("dice loss of z + 1000", loss, F.dice_loss_forward(z, y)[0], hints=hints)


@CHECKS.add("gradient check: cross-entropy and Dice", expect="< 1e-7 (~1e-10)")
def gradients(s, ctx):
    z, y = randn(5, *SHAPE), _labels(6)
    ctx.expect_gradients(s.softmax_cross_entropy_forward, s.softmax_cross_entropy_backward,
                         {"logits": z, "labels": y}, label="softmax cross-entropy", out_name="loss",
                         reference=F.softmax_cross_entropy_forward, hints={"dlogits": CE_HINTS})
    ctx.expect_gradients(s.dice_loss_forward, s.dice_loss_backward, {"logits": z, "labels": y},
                         {"smooth": 1.0}, label="dice", out_name="loss", reference=F.dice_loss_forward,
                         hints={"dlogits": DICE_HINTS})


@CHECKS.add("same numbers as minimal_seg.functional (softmax, cross-entropy, Dice)", expect="< 1e-10 (~1e-16)")
def reference(s, ctx):
    for k, (shape, smooth, dout) in enumerate([(SHAPE, 1.0, 0.7), ((1, 4, 5, 3), 0.5, -1.3)]):
        z, y = randn(10 + k, *shape), _labels(20 + k, shape)
        case = f"logits {shape}, smooth {smooth}, dout {dout}"
        ctx.expect_close("softmax", s.softmax(z), F.softmax_forward(z)[0], case=case)
        ctx.expect_same_pair((s.softmax_cross_entropy_forward, s.softmax_cross_entropy_backward),
                             (F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward), (z, y),
                             names=("cross-entropy loss", "cross-entropy dz"), case=case, dout=dout,
                             hints={"cross-entropy dz": CE_HINTS})
        loss, cache = s.dice_loss_forward(z, y, smooth)
        ref, ref_cache = F.dice_loss_forward(z, y, smooth)
        ctx.expect_close("dice loss", loss, ref, case=case)
        dz = s.dice_loss_backward(dout, cache)
        per_class = (1, -1, 1, 1)
        dp = -(2 * ref_cache.g - ref_cache.score.reshape(per_class)) / (shape[1] * ref_cache.denom.reshape(per_class))
        skipped_softmax = numpy.shape(dz) == dp.shape and numpy.allclose(dz, dout * dp)
        hints = {"default": NO_SOFTMAX_HINT} if skipped_softmax else DICE_HINTS
        ctx.expect_close("dice dz", dz, F.dice_loss_backward(dout, ref_cache), case=case, hints=hints)
