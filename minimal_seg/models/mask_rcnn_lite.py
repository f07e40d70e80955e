"""Mask R-CNN-lite (He et al., 2017): the two-stage instance model, small.

Stage one proposes boxes; stage two looks at each box through RoIAlign and
says what is in it and which of its pixels belong to it::

    image ─ FPN backbone ─ p_level ─┬─ RoIAlign ─ r (K, P, S, S) ─┬─ class head ─ (K, C + 1) class logits
    proposals (K, 5) ───────────────┘                              └─ mask head ─ (K, C, 2S, 2S) mask logits

* **backbone**: ``fpn.FPNBackbone``; the RoIs are read from one pyramid level
  p_level (stride 2**level; ``spatial_scale`` = 1 / 2**level).
* **RoIAlign** (``functional.roi_align2d``, aligned, 2 x 2 samples per bin):
  an S x S feature per box, whatever the box size; bilinear sampling keeps
  the box's real position (RoI pooling would round it to whole cells).
* **class head**: flatten -> linear -> ReLU -> linear: C + 1 logits (0 = background).
* **mask head**: two 3x3 conv -> ReLU, a 2x2 transposed conv (stride 2) ->
  ReLU, a 1x1 conv: one 2S x 2S mask logit map per class. Only the map of
  the box's class is trained and used (masks and classes do not compete).

**The loss** (``mask_rcnn_loss_forward``) is Mask R-CNN's L = L_cls + L_mask:
softmax cross-entropy of the class logits over all K proposals, plus the
binary cross-entropy of the true class's mask logits against the mask target
(the annotated mask seen through the same RoIAlign, thresholded at 0.5), over
the positive proposals only. Its backward puts the BCE gradient into the
true class's map and zeros everywhere else.

**Backward** by hand: both heads read r, so d r = class_head' + mask_head'
(summed); RoIAlign's backward spreads d r onto p_level with the transposed
sampling weights; the backbone does the rest (the other pyramid levels get
None). The proposals get no gradient.
"""
from __future__ import annotations

from .. import functional as F
from .. import nn
from ..backend import array_module
from ..nn.init import as_generator
from .base import Model
from .blocks import level_widths
from .fpn import FPNBackbone


def mask_head(channels, num_classes, rng):
    """(K, P, S, S) -> (K, num_classes, 2S, 2S): 3x3 conv, ReLU, 3x3 conv, ReLU, 2x2 up-conv, ReLU, 1x1 conv."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, rng=rng), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, padding=1, rng=rng), nn.ReLU(),
                         nn.ConvTranspose2d(channels, channels, 2, stride=2, rng=rng), nn.ReLU(),
                         nn.Conv2d(channels, num_classes, 1, rng=rng))


def class_head(channels, roi_size, num_classes, rng, hidden=64):
    """(K, P, S, S) -> (K, num_classes + 1) logits: flatten, linear -> ReLU, linear (Faster R-CNN's box head).

    Flattening keeps *where* in the window each feature is: a circle and a
    square of the same size differ in their corners, which an average over the
    window would blur away.
    """
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * roi_size ** 2, hidden, rng=rng), nn.ReLU(),
                         nn.Linear(hidden, num_classes + 1, rng=rng))


class MaskRCNNLite(Model):
    """MaskRCNNLite(in_channels=1, num_classes=3, base_channels=8, depth=2, pyramid_channels=None, level=1,
    roi_size=7, batch_norm=True, seed=0).

    num_classes counts the object classes (background excluded).
    forward(images (N, C, H, W), rois (K, 5) = (image index, x1, y1, x2, y2) in pixels)
        -> class logits (K, num_classes + 1), mask logits (K, num_classes, 2 roi_size, 2 roi_size).
    backward(d_class, d_mask) -> d_images.
    """

    name = "mask_rcnn_lite"

    def __init__(self, in_channels=1, num_classes=3, base_channels=8, depth=2, pyramid_channels=None, level=1,
                 roi_size=7, batch_norm=True, seed=0):
        pyramid_channels = int(pyramid_channels or 2 * base_channels)
        if not 0 <= level <= depth:
            raise ValueError(f"level must be in [0, depth={depth}], got {level}")
        super().__init__(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                         depth=depth, pyramid_channels=pyramid_channels, level=level, roi_size=roi_size,
                         batch_norm=batch_norm, seed=seed)
        rng = as_generator(seed)
        self.level, self.roi_size, self.output_stride = level, roi_size, 2 ** depth
        self.backbone = FPNBackbone(in_channels, level_widths(base_channels, depth), pyramid_channels, rng,
                                    batch_norm)
        self.class_head = class_head(pyramid_channels, roi_size, num_classes, rng)
        self.mask_head = mask_head(pyramid_channels, num_classes, rng)

    def children(self):
        return {"backbone": self.backbone, "class_head": self.class_head, "mask_head": self.mask_head}

    def roi_features(self, images, rois):
        """r (K, P, S, S): RoIAlign of the proposals on pyramid level ``level`` (images padded at bottom/right)."""
        x, pad = F.pad_to_multiple_forward(images, self.output_stride)
        r, roi = F.roi_align2d_forward(self.backbone(x)[self.level], rois, self.roi_size,
                                       spatial_scale=1.0 / 2 ** self.level, sampling_ratio=2, aligned=True)
        self.cache = (pad, roi)
        return r

    def forward(self, images, rois):
        r = self.roi_features(images, rois)
        return self.class_head(r), self.mask_head(r)

    def backward(self, d_class, d_mask):
        self._check_forward_done()
        pad, roi = self.cache
        d_r = self._two_heads_sum(self.class_head.backward(d_class), self.mask_head.backward(d_mask))
        d_p = [None] * (self.backbone.depth + 1)  # only p_level was read
        d_p[self.level] = F.roi_align2d_backward(d_r, roi)
        return F.pad_to_multiple_backward(self.backbone.backward(d_p), pad)

    @staticmethod
    def _two_heads_sum(d_from_class, d_from_mask):
        """r fed both heads: its gradient is the sum of theirs."""
        return d_from_class + d_from_mask


# ----------------------------------------------------------------------------------------------
# The loss: L = L_cls (all proposals) + L_mask (positive proposals, true class's map)
# ----------------------------------------------------------------------------------------------

def mask_rcnn_loss_forward(class_logits, mask_logits, labels, mask_targets):
    """Mask R-CNN's loss of K proposals.

    class_logits  (K, C + 1)       labels        (K,) int, 0 = background, 1..C the class
    mask_logits   (K, C, M, M)     mask_targets  (K, M, M) 0/1 (read only where labels > 0)

        L = CE(class_logits, labels) + BCE(mask_logits[k, labels[k] - 1], mask_targets[k]  for labels[k] > 0)

    L_mask is the mean over the positives' pixels (0 if there is no positive).
    Returns (loss 0-d array, cache).
    """
    xp = array_module(class_logits)
    k, c = mask_logits.shape[:2]
    if class_logits.shape != (k, c + 1) or labels.shape != (k,) or mask_targets.shape != (k,) + mask_logits.shape[2:]:
        raise ValueError(f"need class_logits (K, C+1), mask_logits (K, C, M, M), labels (K,), mask_targets "
                         f"(K, M, M); got {class_logits.shape}, {mask_logits.shape}, {labels.shape}, "
                         f"{mask_targets.shape}")
    l_cls, cls_cache = F.softmax_cross_entropy_forward(class_logits[:, :, None, None], labels[:, None, None])
    positive = xp.nonzero(labels > 0)[0]
    mask_cache = None
    loss = l_cls
    if positive.size:
        chosen = mask_logits[positive, labels[positive] - 1]  # (P, M, M): the true class's map
        l_mask, bce_cache = F.bce_with_logits_forward(chosen, mask_targets[positive])
        mask_cache = (positive, labels[positive] - 1, bce_cache)
        loss = l_cls + l_mask
    return loss, (cls_cache, mask_cache, mask_logits.shape)


def mask_rcnn_loss_backward(dout, cache):
    """-> (d_class_logits (K, C + 1), d_mask_logits (K, C, M, M)); zero in every map but the true class's."""
    cls_cache, mask_cache, mask_shape = cache
    d_class = F.softmax_cross_entropy_backward(dout, cls_cache)[:, :, 0, 0]
    xp = array_module(d_class)
    d_mask = xp.zeros(mask_shape, dtype=d_class.dtype)
    if mask_cache is not None:
        positive, classes, bce_cache = mask_cache
        d_mask[positive, classes] = F.bce_with_logits_backward(dout, bce_cache)
    return d_class, d_mask


def mask_targets(gt_masks, rois, size):
    """The mask target of each proposal: its annotated mask seen through RoIAlign, >= 0.5.

    gt_masks (K, H, W) 0/1, the mask matched to each proposal; rois (K, 5) (the
    batch index is replaced by k, so proposal k reads mask k); size M.
    Returns (K, M, M) in the masks' float dtype (0/1).
    """
    xp = array_module(rois)
    own = rois.copy()
    own[:, 0] = xp.arange(len(rois))
    sampled, _ = F.roi_align2d_forward(gt_masks[:, None].astype(rois.dtype), own, size, sampling_ratio=2,
                                       aligned=True)
    return (sampled[:, 0] >= 0.5).astype(rois.dtype)
