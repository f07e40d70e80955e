"""Tests for minimal_seg/functional/loss.py: cross-entropy, BCE with logits, Dice, Jaccard."""
import math
import re

import numpy as np
import pytest
from helpers import assert_close, rand, to_torch, torch_or_skip

from minimal_seg.functional.loss import (
    bce_with_logits_backward,
    bce_with_logits_forward,
    dice_loss_backward,
    dice_loss_forward,
    jaccard_loss_backward,
    jaccard_loss_forward,
    one_hot,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from minimal_seg.gradcheck import gradcheck

SHAPE = (2, 3, 4, 5)  # N, K, H, W
IGNORE = 255

OVERLAP = {  # the two overlap losses share every test
    "dice": (dice_loss_forward, dice_loss_backward),
    "jaccard": (jaccard_loss_forward, jaccard_loss_backward),
}
MULTICLASS = {"cross_entropy": (softmax_cross_entropy_forward, softmax_cross_entropy_backward), **OVERLAP}


def make_labels(rng, shape=SHAPE, ignore_index=None, frac=0.3):
    """Random (N, H, W) int64 labels in [0, K); a fraction set to ``ignore_index``."""
    n, k, h, w = shape
    labels = rng.integers(0, k, (n, h, w))
    if ignore_index is not None:
        labels[rng.random((n, h, w)) < frac] = ignore_index
    return labels


def test_one_hot(xp):
    g = one_hot(xp.asarray([[[2, 0, 7]]]), 3, xp.float32, ignore_index=7)  # 7 ignored -> zero column
    assert g.shape == (1, 3, 1, 3) and g.dtype == np.float32
    assert g[0, :, 0, :].T.tolist() == [[0, 0, 1], [1, 0, 0], [0, 0, 0]]


@pytest.mark.parametrize("labels, num_classes, error, message", [
    ([[[2, 0, 7]]], 3, ValueError, r"labels must lie in \[0, num_classes\) = \[0, 3\).*found label 7"),
    ([[[-1, 0, 1]]], 3, ValueError, "found label -1"),
    ([[2, 0, 1]], 3, ValueError, r"labels must be 3-D \(N, H, W\)"),
    ([[[0.0, 1.0]]], 3, TypeError, "labels must be an integer array"),
    ([[[0, 1]]], 0, ValueError, "num_classes must be an integer >= 1, got 0"),
    ([[[0, 1]]], 2.5, TypeError, "num_classes must be an integer"),
])
def test_one_hot_refuses_bad_input(xp, labels, num_classes, error, message):
    with pytest.raises(error, match=message):
        one_hot(xp.asarray(labels), num_classes, xp.float64)


def test_losses_of_an_empty_batch_agree(xp):
    """N = 0: every loss is 0 with a zero (empty) gradient; BCE used to give nan."""
    logits, labels = xp.zeros((0, 3, 4, 4)), xp.zeros((0, 4, 4), dtype=xp.int64)
    for forward, backward, target in (
        (softmax_cross_entropy_forward, softmax_cross_entropy_backward, labels),
        (dice_loss_forward, dice_loss_backward, labels),
        (bce_with_logits_forward, bce_with_logits_backward, xp.zeros((0, 3, 4, 4))),
    ):
        loss, cache = forward(logits, target)
        assert float(loss) == 0.0, forward.__name__
        assert backward(1.0, cache).shape == logits.shape


@pytest.mark.parametrize("call, error, message", [
    (lambda x, y: softmax_cross_entropy_forward(x.astype("float16"), y), TypeError, "logits must be a floating"),
    (lambda x, y: bce_with_logits_forward(x.astype("float16"), x), TypeError, r"float32 or float64\), got dtype float16"),
    (lambda x, y: softmax_cross_entropy_forward(x, y, ignore_index=2.5), TypeError, "ignore_index must be an int"),
    (lambda x, y: softmax_cross_entropy_forward(x, y, weight=x[0, :, 0, 0].astype("int64")), TypeError, "weight"),
    (lambda x, y: dice_loss_forward(x, y, smooth=-1), ValueError, "smooth must be a finite number >= 0, got -1"),
    (lambda x, y: jaccard_loss_forward(x, y, smooth=float("nan")), ValueError, "smooth must be a finite number"),
    (lambda x, y: dice_loss_forward(x, y, smooth="1"), TypeError, "smooth must be a real number"),
])
def test_loss_options_are_checked(xp, call, error, message):
    logits, labels = xp.zeros((1, 3, 2, 2)), xp.zeros((1, 2, 2), dtype=xp.int64)
    with pytest.raises(error, match=message):
        call(logits, labels)


# ------------------------------------------------------------------ hand examples

@pytest.mark.parametrize("label, expected_loss, expected_grad", [
    (1, math.log(4 / 3), [0.25, -0.25]),  # p = (1/4, 3/4): -log(3/4); p - g
    (0, math.log(4.0), [-0.75, 0.75]),     # -log(1/4)
])
def test_cross_entropy_hand_one_pixel(xp, label, expected_loss, expected_grad):
    logits = xp.asarray([0.0, math.log(3.0)]).reshape(1, 2, 1, 1)
    loss, cache = softmax_cross_entropy_forward(logits, xp.asarray([[[label]]]))
    assert float(loss) == pytest.approx(expected_loss, abs=1e-15)
    dlogits = softmax_cross_entropy_backward(1.0, cache)
    assert dlogits.reshape(-1).tolist() == pytest.approx(expected_grad, abs=1e-15)


def test_cross_entropy_hand_weight_and_ignore(xp):
    """Three pixels, all with p = (1/4, 3/4): labels 1, 0 and ignored; weight (1, 3)."""
    logits = xp.asarray([[0.0] * 3, [math.log(3.0)] * 3]).reshape(1, 2, 1, 3)
    labels = xp.asarray([[[1, 0, -100]]])
    loss, _ = softmax_cross_entropy_forward(logits, labels, weight=xp.asarray([1.0, 3.0]))
    assert float(loss) == pytest.approx((3 * math.log(4 / 3) + 1 * math.log(4.0)) / (3 + 1), abs=1e-15)


def test_bce_hand(xp):
    """z = 0 gives s = 1/2: each element costs log 2, times pos_weight if t = 1."""
    logits = xp.zeros((1, 2, 1, 1))
    targets = xp.asarray([1.0, 0.0]).reshape(1, 2, 1, 1)
    loss, cache = bce_with_logits_forward(logits, targets)
    assert float(loss) == pytest.approx(math.log(2.0), abs=1e-15)
    assert bce_with_logits_backward(1.0, cache).reshape(-1).tolist() == [-0.25, 0.25]  # (s - t) / n
    loss, _ = bce_with_logits_forward(logits, targets, pos_weight=xp.asarray([3.0]))
    assert float(loss) == pytest.approx((3 + 1) * math.log(2.0) / 2, abs=1e-15)


@pytest.mark.parametrize("name, expected", [("dice", 0.5), ("jaccard", 2 / 3)])
def test_overlap_hand(xp, name, expected):
    """Two pixels labelled 0 and 1, p = 1/2 everywhere, smooth 0: I = 1/2, P = G = 1 per class.

    dice = 2 * 1/2 / (1 + 1) = 1/2;  J = 1/2 / (1 + 1 - 1/2) = 1/3.
    """
    forward, _ = OVERLAP[name]
    loss, _ = forward(xp.zeros((1, 2, 1, 2)), xp.asarray([[[0, 1]]]), smooth=0.0)
    assert float(loss) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("name", list(OVERLAP))
def test_overlap_perfect_prediction_is_zero(xp, rng, name):
    forward, backward = OVERLAP[name]
    labels = xp.asarray(make_labels(rng))
    logits = 100 * one_hot(labels, SHAPE[1], xp.float64)  # softmax is exactly one-hot
    loss, cache = forward(logits, labels)
    assert float(loss) == 0.0
    assert float(xp.abs(backward(1.0, cache)).max()) < 1e-30


# ------------------------------------------------------------------ gradient checks (float64)

@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, IGNORE])
def test_gradcheck_cross_entropy(xp, rng, use_weight, ignore_index):
    logits = xp.asarray(rand(rng, SHAPE))
    labels = xp.asarray(make_labels(rng, ignore_index=ignore_index))
    weight = xp.asarray(rng.uniform(0.5, 2.0, SHAPE[1])) if use_weight else None
    report = gradcheck(softmax_cross_entropy_forward, softmax_cross_entropy_backward,
                       {"logits": logits, "labels": labels, "weight": weight},
                       kwargs={"ignore_index": ignore_index})
    assert [c.name for c in report.checks] == ["logits"]
    assert report.passed, str(report)


@pytest.mark.parametrize("pos_weight_shape", [None, (3, 1, 1), (5,), (1,)])
def test_gradcheck_bce(xp, rng, pos_weight_shape):
    logits = xp.asarray(2 * rand(rng, SHAPE))
    targets = xp.asarray(rng.random(SHAPE))  # soft targets in [0, 1]
    pos_weight = None if pos_weight_shape is None else xp.asarray(rng.uniform(0.5, 3.0, pos_weight_shape))
    report = gradcheck(bce_with_logits_forward, bce_with_logits_backward,
                       {"logits": logits, "targets": targets, "pos_weight": pos_weight})
    assert [c.name for c in report.checks] == ["logits"]
    assert report.passed, str(report)


@pytest.mark.parametrize("name", list(OVERLAP))
@pytest.mark.parametrize("ignore_index, smooth", [(None, 1.0), (IGNORE, 1.0), (IGNORE, 0.5), (-1, 1e-3)])
def test_gradcheck_overlap(xp, rng, name, ignore_index, smooth):
    forward, backward = OVERLAP[name]
    logits = xp.asarray(rand(rng, SHAPE))
    labels = xp.asarray(make_labels(rng, ignore_index=ignore_index))
    report = gradcheck(forward, backward, {"logits": logits, "labels": labels},
                       kwargs={"smooth": smooth, "ignore_index": ignore_index})
    assert report.passed, str(report)


# ------------------------------------------------------------------ PyTorch oracle

def torch_overlap(name, logits_t, labels, smooth, ignore_index):
    """The Dice / Jaccard formulas written in torch; autograd differentiates them."""
    torch = torch_or_skip()
    k = logits_t.shape[1]
    labels_t = torch.from_numpy(labels)
    valid = torch.ones_like(labels_t, dtype=torch.bool) if ignore_index is None else labels_t != ignore_index
    m = valid[:, None].to(logits_t.dtype)
    g = torch.nn.functional.one_hot(torch.where(valid, labels_t, 0), k).permute(0, 3, 1, 2).to(logits_t.dtype) * m
    p = torch.softmax(logits_t, dim=1)
    inter, p_sum, g_sum = ((p * g).sum((0, 2, 3)), (p * m).sum((0, 2, 3)), g.sum((0, 2, 3)))
    if name == "dice":
        score = (2 * inter + smooth) / (p_sum + g_sum + smooth)
    else:
        score = (inter + smooth) / (p_sum + g_sum - inter + smooth)
    return 1 - score.mean()


def compare_scalar_loss(xp, rng, dtype, ours, theirs, logits_np):
    """Run our forward/backward and torch's with the same random upstream gradient."""
    dout = float(rng.standard_normal())
    loss, cache = ours(xp.asarray(logits_np))
    dlogits = ours.backward(dout, cache)
    logits_t = to_torch(logits_np, requires_grad=True)
    loss_t = theirs(logits_t)
    loss_t.backward(loss_t.new_tensor(dout))
    assert loss.shape == () and loss.dtype == dtype and dlogits.dtype == dtype
    assert_close(loss, loss_t, dtype)
    assert_close(dlogits, logits_t.grad, dtype)


class Bound:
    """A forward with fixed extra arguments, carrying its backward (keeps the tests short)."""

    def __init__(self, forward, backward, *args, **kwargs):
        self.forward, self.backward, self.args, self.kwargs = forward, backward, args, kwargs

    def __call__(self, logits):
        return self.forward(logits, *self.args, **self.kwargs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, IGNORE])
def test_cross_entropy_against_torch(xp, rng, dtype, use_weight, ignore_index):
    torch = torch_or_skip()
    logits_np = (3 * rand(rng, (3, 4, 6, 7))).astype(dtype)
    labels = make_labels(rng, logits_np.shape, ignore_index=ignore_index)
    weight = rng.uniform(0.5, 2.0, 4).astype(dtype) if use_weight else None
    ours = Bound(softmax_cross_entropy_forward, softmax_cross_entropy_backward, xp.asarray(labels),
                 weight=None if weight is None else xp.asarray(weight), ignore_index=ignore_index)

    def theirs(logits_t):
        return torch.nn.functional.cross_entropy(
            logits_t, torch.from_numpy(labels), weight=None if weight is None else torch.from_numpy(weight),
            ignore_index=ignore_index)

    compare_scalar_loss(xp, rng, dtype, ours, theirs, logits_np)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pos_weight_shape", [None, (4, 1, 1), (7,)])
def test_bce_against_torch(xp, rng, dtype, pos_weight_shape):
    torch = torch_or_skip()
    logits_np = (3 * rand(rng, (3, 4, 6, 7))).astype(dtype)
    targets = (rng.random(logits_np.shape) < 0.4).astype(dtype)
    targets[0, 0] = rng.random((6, 7))  # some soft targets too
    pos_weight = None if pos_weight_shape is None else rng.uniform(0.5, 3.0, pos_weight_shape).astype(dtype)
    ours = Bound(bce_with_logits_forward, bce_with_logits_backward, xp.asarray(targets),
                 pos_weight=None if pos_weight is None else xp.asarray(pos_weight))

    def theirs(logits_t):
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits_t, torch.from_numpy(targets),
            pos_weight=None if pos_weight is None else torch.from_numpy(pos_weight))

    compare_scalar_loss(xp, rng, dtype, ours, theirs, logits_np)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(OVERLAP))
@pytest.mark.parametrize("ignore_index, smooth", [(None, 1.0), (IGNORE, 0.1)])
def test_overlap_against_torch(xp, rng, dtype, name, ignore_index, smooth):
    logits_np = (3 * rand(rng, (3, 4, 6, 7))).astype(dtype)
    labels = make_labels(rng, logits_np.shape, ignore_index=ignore_index)
    ours = Bound(*OVERLAP[name], xp.asarray(labels), smooth=smooth, ignore_index=ignore_index)

    def theirs(logits_t):
        return torch_overlap(name, logits_t, labels, smooth, ignore_index)

    compare_scalar_loss(xp, rng, dtype, ours, theirs, logits_np)


# ------------------------------------------------------------------ edge cases, dtypes, stability

def test_cross_entropy_all_ignored_is_zero(xp, rng):
    """PyTorch returns nan here (0 / 0); we return loss 0 and a zero gradient."""
    logits = xp.asarray(rand(rng, SHAPE))
    labels = xp.full(SHAPE[:1] + SHAPE[2:], -100)
    loss, cache = softmax_cross_entropy_forward(logits, labels, weight=xp.ones(SHAPE[1]))
    dlogits = softmax_cross_entropy_backward(1.0, cache)
    assert float(loss) == 0.0
    assert dlogits.shape == SHAPE and float(xp.abs(dlogits).max()) == 0.0


@pytest.mark.parametrize("name", list(OVERLAP))
def test_overlap_all_ignored_is_zero(xp, rng, name):
    """Nothing left to compare: every class scores smooth / smooth = 1, loss 0, no gradient."""
    forward, backward = OVERLAP[name]
    labels = xp.full(SHAPE[:1] + SHAPE[2:], IGNORE)
    loss, cache = forward(xp.asarray(rand(rng, SHAPE)), labels, ignore_index=IGNORE)
    assert float(loss) == 0.0
    assert float(xp.abs(backward(1.0, cache)).max()) == 0.0


def all_losses(xp, rng, dtype, scale=1.0):
    """(name, forward, backward, args) for every loss, on logits of the given dtype and scale."""
    logits = xp.asarray((scale * rand(rng, SHAPE)).astype(dtype))
    labels = xp.asarray(make_labels(rng, ignore_index=IGNORE))
    targets = xp.asarray(rng.random(SHAPE).astype(dtype))
    yield "cross_entropy", softmax_cross_entropy_forward, softmax_cross_entropy_backward, (
        logits, labels, xp.asarray(np.arange(1, 4, dtype=dtype)), IGNORE)
    yield "bce", bce_with_logits_forward, bce_with_logits_backward, (
        logits, targets, xp.asarray(np.full((3, 1, 1), 2.0, dtype=dtype)))
    for name, (forward, backward) in OVERLAP.items():
        yield name, forward, backward, (logits, labels, 1.0, IGNORE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dout_kind", ["python", "numpy0d"])
def test_dtype_and_device_preserved(xp, rng, dtype, dout_kind):
    """float32 in -> float32 loss and grads, even for a float64 0-d dout; loss is a 0-d xp array."""
    dout = 0.5 if dout_kind == "python" else np.asarray(0.5)  # a float64 0-d array
    for name, forward, backward, args in all_losses(xp, rng, dtype):
        loss, cache = forward(*args)
        dlogits = backward(dout, cache)
        assert isinstance(loss, xp.ndarray) and loss.shape == () and loss.dtype == dtype, name
        assert isinstance(dlogits, xp.ndarray) and dlogits.dtype == dtype and dlogits.shape == SHAPE, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite(xp, rng, dtype):
    with np.errstate(over="raise", invalid="raise"):
        for name, forward, backward, args in all_losses(xp, rng, dtype, scale=1000.0):
            loss, cache = forward(*args)
            dlogits = backward(1.0, cache)
            assert bool(xp.isfinite(loss)) and bool(xp.isfinite(dlogits).all()), name


def test_huge_logits_match_torch(xp):
    torch = torch_or_skip()
    logits_np = np.array([1000.0, -1000.0, 0.0, 500.0]).reshape(1, 4, 1, 1)
    loss, _ = softmax_cross_entropy_forward(xp.asarray(logits_np), xp.asarray([[[1]]]))
    assert_close(loss, torch.nn.functional.cross_entropy(to_torch(logits_np), torch.tensor([[[1]]])))
    targets = np.array([1.0, 0.0, 1.0, 0.0]).reshape(logits_np.shape)
    loss, _ = bce_with_logits_forward(xp.asarray(logits_np), xp.asarray(targets))
    assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(to_torch(logits_np), to_torch(targets)))


@pytest.mark.parametrize("name", list(MULTICLASS))
def test_uint8_labels_with_ignore_255(xp, rng, name):
    forward, _ = MULTICLASS[name]
    logits = xp.asarray(rand(rng, SHAPE))
    labels = make_labels(rng, ignore_index=IGNORE)
    loss64, _ = forward(logits, xp.asarray(labels), ignore_index=IGNORE)
    loss8, _ = forward(logits, xp.asarray(labels.astype(np.uint8)), ignore_index=IGNORE)
    assert float(loss8) == float(loss64)


def test_uint8_labels_with_default_ignore_index(xp, rng):
    """-100 does not fit in uint8: nothing is ignored, and no overflow error is raised."""
    logits = xp.asarray(rand(rng, SHAPE))
    labels = make_labels(rng)
    loss64, _ = softmax_cross_entropy_forward(logits, xp.asarray(labels))
    loss8, _ = softmax_cross_entropy_forward(logits, xp.asarray(labels.astype(np.uint8)))
    assert float(loss8) == float(loss64)


def test_backward_does_not_modify_cache(xp, rng):
    for name, forward, backward, args in all_losses(xp, rng, np.float64):
        loss, cache = forward(*args)
        first = backward(1.0, cache)
        second = backward(1.0, cache)
        assert float(xp.abs(first - second).max()) == 0.0, name


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("name", list(MULTICLASS))
def test_label_errors(xp, rng, name):
    forward, _ = MULTICLASS[name]
    logits = xp.asarray(rand(rng, SHAPE))
    labels = make_labels(rng)
    with pytest.raises(TypeError, match="labels"):
        forward(logits, xp.asarray(labels.astype(np.float64)))
    with pytest.raises(ValueError, match=re.escape(str((2, 4, 5))) + ".*" + re.escape(str((2, 4, 4)))):
        forward(logits, xp.asarray(labels[:, :, :4]))
    with pytest.raises(ValueError, match="4-D"):
        forward(logits[0], xp.asarray(labels[0]))
    for bad in (3, -1, 7):
        wrong = labels.copy()
        wrong[1, 2, 3] = bad
        with pytest.raises(ValueError, match=rf"labels.*found label {bad} with K = 3"):
            forward(logits, xp.asarray(wrong), ignore_index=IGNORE)


def test_cross_entropy_weight_shape_error(xp, rng):
    logits = xp.asarray(rand(rng, SHAPE))
    labels = xp.asarray(make_labels(rng))
    with pytest.raises(ValueError, match=r"weight must have shape \(K,\) = \(3,\)"):
        softmax_cross_entropy_forward(logits, labels, weight=xp.ones((3, 1)))


def test_bce_errors(xp, rng):
    logits = xp.asarray(rand(rng, SHAPE))
    with pytest.raises(ValueError, match="targets"):
        bce_with_logits_forward(logits, logits[:, :2])
    with pytest.raises(ValueError, match=r"pos_weight.*\(C, 1, 1\)"):
        bce_with_logits_forward(logits, logits, pos_weight=xp.ones(3))  # broadcasts against W = 5
    with pytest.raises(TypeError, match="logits"):
        bce_with_logits_forward(xp.zeros(SHAPE, dtype=xp.int64), logits)
