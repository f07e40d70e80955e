"""Mask R-CNN-lite: whole-model and loss float64 gradient checks, the loss against PyTorch,
a planted bug where the two heads' gradients meet, mask targets through RoIAlign, shapes."""
import numpy as np
import pytest
from helpers import torch_or_skip
from model_helpers import EPS, MODEL_TOL, off_init  # the model tests' tolerances and off-init noise

from minimal_seg.backend import array_module, to_numpy
from minimal_seg.gradcheck import check_gradients, gradcheck
from minimal_seg.models.mask_rcnn_lite import (
    MaskRCNNLite,
    mask_rcnn_loss_backward,
    mask_rcnn_loss_forward,
    mask_targets,
)


def _rois(xp):
    # image index, x1, y1, x2, y2 (pixels); boxes of different sizes, one partly outside the image
    return xp.asarray(np.array([[0, 1.0, 2.0, 9.5, 11.0], [1, 4.0, 0.5, 15.0, 7.0], [1, -2.0, 8.0, 6.0, 17.0]]))


def _model_check(model, x, rois):
    """(run, analytic, tensors): run returns the class and mask logits, flattened into one vector."""
    xp = array_module(x)

    def run():
        c, m = model(x, rois)
        return xp.concatenate([c.ravel(), m.ravel()])

    def analytic(dout):
        model.zero_grad()
        c, m = model(x, rois)
        d_class, d_mask = dout[:c.size].reshape(c.shape), dout[c.size:].reshape(m.shape)
        return {"x": model.backward(d_class, d_mask), **dict(model.named_grads())}

    return run, analytic, {"x": x, **dict(model.named_parameters())}


@pytest.mark.parametrize("level", [0, 1])
def test_whole_model_gradcheck(xp, level):
    model = off_init(MaskRCNNLite(in_channels=2, num_classes=2, base_channels=2, depth=2, level=level,
                                   roi_size=3, seed=1).astype(np.float64))
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 2, 15, 17)))  # padded to 16 x 20
    report = check_gradients(*_model_check(model, x, _rois(xp)), "mask_rcnn_lite", EPS, MODEL_TOL, directions=2)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == {"x"} | {n for n, _ in model.named_parameters()}


def test_overwritten_head_gradient_is_caught(xp, monkeypatch):
    model = off_init(MaskRCNNLite(in_channels=1, num_classes=2, base_channels=2, depth=2, roi_size=3,
                                   seed=1).astype(np.float64))
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1, 16, 16)))
    monkeypatch.setattr(MaskRCNNLite, "_two_heads_sum", staticmethod(lambda d_class, d_mask: d_mask))
    report = check_gradients(*_model_check(model, x, _rois(xp)), "bug", EPS, MODEL_TOL, directions=2)
    assert report.max_rel_error > 1e-2, str(report)


def _loss_inputs(xp, seed=0, labels=(0, 2, 1, 2, 0)):
    rng = np.random.default_rng(seed)
    k, c, m = len(labels), 2, 4
    return {"class_logits": xp.asarray(rng.standard_normal((k, c + 1))),
            "mask_logits": xp.asarray(rng.standard_normal((k, c, m, m))),
            "labels": xp.asarray(np.array(labels)),
            "mask_targets": xp.asarray((rng.random((k, m, m)) < 0.5).astype(np.float64))}


@pytest.mark.parametrize("labels", [(0, 2, 1, 2, 0), (0, 0, 0)])
def test_loss_gradcheck_every_entry(xp, labels):
    inputs = _loss_inputs(xp, labels=labels)
    report = gradcheck(mask_rcnn_loss_forward, mask_rcnn_loss_backward, inputs, wrt=["class_logits", "mask_logits"],
                       eps=1e-6)
    assert report.passed, str(report)


def test_loss_matches_torch_and_only_the_true_class_map_gets_gradient(xp):
    torch = torch_or_skip()
    inputs = _loss_inputs(xp)
    loss, cache = mask_rcnn_loss_forward(**inputs)
    d_class, d_mask = mask_rcnn_loss_backward(1.0, cache)
    t = {k: torch.tensor(to_numpy(v), requires_grad=k.endswith("logits")) for k, v in inputs.items()}
    labels = t["labels"]
    pos = labels > 0
    expected = (torch.nn.functional.cross_entropy(t["class_logits"], labels)
                + torch.nn.functional.binary_cross_entropy_with_logits(
                    t["mask_logits"][pos, labels[pos] - 1], t["mask_targets"][pos]))
    expected.backward()
    np.testing.assert_allclose(float(loss), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(d_class), t["class_logits"].grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(to_numpy(d_mask), t["mask_logits"].grad.numpy(), rtol=1e-10, atol=1e-14)
    assert not to_numpy(d_mask)[0].any() and not to_numpy(d_mask)[2, 1].any()  # background; wrong class


def test_mask_targets_read_each_proposals_own_mask_through_its_box(xp):
    masks = np.zeros((2, 16, 16))
    masks[0, 4:12, 4:8] = 1  # left half of the box (4, 4)-(12, 12) is filled
    masks[1, 0:8, 0:8] = 1
    rois = xp.asarray(np.array([[7, 4.0, 4.0, 12.0, 12.0], [0, 8.0, 8.0, 16.0, 16.0]]))  # batch index ignored
    targets = to_numpy(mask_targets(xp.asarray(masks), rois, 4))
    np.testing.assert_array_equal(targets[0], np.repeat([[1, 1, 0, 0]], 4, axis=0))
    assert not targets[1].any()  # mask 1 lies outside proposal 1


def test_shapes_and_bad_level(xp):
    model = MaskRCNNLite(num_classes=3, base_channels=2, roi_size=5)
    with pytest.raises(RuntimeError, match="MaskRCNNLite.backward called before forward"):
        model.backward(xp.zeros((1, 4), dtype=np.float32), xp.zeros((1, 3, 10, 10), dtype=np.float32))
    c, m = model(xp.zeros((2, 1, 20, 20), dtype=np.float32), xp.asarray(np.array([[1, 0, 0, 8, 8.0]],
                                                                                   dtype=np.float32)))
    assert c.shape == (1, 4) and m.shape == (1, 3, 10, 10) and m.dtype == np.float32
    dx = model.backward(xp.ones_like(c), xp.ones_like(m))
    assert dx.shape == (2, 1, 20, 20) and not to_numpy(dx)[0].any()  # image 0 had no proposal
    with pytest.raises(ValueError, match="level must be"):
        MaskRCNNLite(depth=2, level=3)
    with pytest.raises(ValueError, match="need class_logits"):
        mask_rcnn_loss_forward(c, m, xp.zeros(2, dtype=np.int64), xp.zeros((1, 10, 10), dtype=np.float32))
