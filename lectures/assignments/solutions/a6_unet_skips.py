"""Assignment 6: U-Net's backward pass, through the skip connections.

U-Net (minimal_seg.models.UNet) keeps the output of every encoder level and
hands it across to the decoder level of the same size, where it is
concatenated with the upsampled features. So every encoder output is used
twice: once going down (into the max pool) and once going across (the skip).
A value used twice receives two gradients, and its gradient is their SUM
(micrograd's lesson): overwrite one with the other and the network silently
learns from half of its signal.

Implement ``unet_backward(model, dout)``: the whole backward pass of a
U-Net, in the reverse order of its forward pass, built from the backward
passes of its blocks. Every block (a layer or an nn.Sequential) has
``block.backward(d) -> d_input`` and adds its own parameter gradients into
its ``grads``. The only new thing you write is the order, and the sum.

This is what ``model.forward(x)`` did (models/base.py and models/unet.py), for depth levels::

    x, pad = F.pad_to_multiple_forward(x, 2**depth)           # zero-pad H, W to multiples
    for level in 0, 1, ..., depth-1:                          # encoder, top down
        features[level] = model.enc[level](x)
        x = model.pools[level](features[level])               # path 1: down
    x = model.bottleneck(x)
    for level in depth-1, ..., 1, 0:                          # decoder, bottom up
        x = model.ups[level](x)
        x, model._concat[level] = F.concat_forward([features[level], x])   # path 2: across
        x = model.dec[level](x)
    logits, crop = F.crop_forward(model.head(x), (H, W))      # back to the input's size
    model.cache = Cache(pad=pad, crop=crop)

(with ``model.skips == False`` the concat is left out.) You may use these
helpers from ``minimal_seg.functional`` (imported as F below), the backward
passes of the three that only move numbers around:

    F.crop_backward(dout, cache)       crop's backward: dout placed in zeros of the padded size
    F.concat_backward(d, cache)        -> [d_features, d_up], the split of the channels
    F.pad_to_multiple_backward(d, cache)   the pad's backward: a crop

Never modify ``dout`` in place (the caller may still need it). Nothing else
from ``minimal_seg``, and not ``model.backward``: that is the answer (the
autograder refuses both).
Check your work with ``python -m minimal_seg check a6 --impl a6_unet_skips.py``.
"""
from __future__ import annotations

from minimal_seg import functional as F


def unet_backward(model, dout):
    """Backward pass of a minimal_seg.models.UNet, right after ``model.forward(x)``.

    model  a UNet; its forward pass left its caches (model.cache.pad, model.cache.crop,
           model._concat) and every block's cache behind
    dout   (N, num_classes, H, W), the gradient of the logits
    returns dx (N, in_channels, H, W); every parameter gradient has been ADDED
           into its layer's ``grads`` by the blocks' own backward passes

    In reverse order: the crop's backward, head, then for
    level = 0, 1, ..., depth-1: dec[level], split the concat into (d_skip, d_up),
    ups[level]; then the bottleneck; then for level = depth-1, ..., 0:
    pools[level], and at the encoder output

        d_features[level] = d_pool + d_skip[level]        (a SUM: the output fed two paths)

    then enc[level]; finally the pad's backward.
    """
    # ===== START SOLUTION: the reverse pass, summing at every skip =====
    d = model.head.backward(F.crop_backward(dout, model.cache.crop))
    d_skip = {}
    for level in range(model.depth):  # the decoder ran bottom up, so undo it top down
        d = model.dec[level].backward(d)
        if model.skips:
            d_skip[level], d = F.concat_backward(d, model._concat[level])
        d = model.ups[level].backward(d)
    d = model.bottleneck.backward(d)
    for level in reversed(range(model.depth)):  # the encoder ran top down, so undo it bottom up
        d_pool = model.pools[level].backward(d)
        d = d_pool + d_skip[level] if model.skips else d_pool
        d = model.enc[level].backward(d)
    return F.pad_to_multiple_backward(d, model.cache.pad)
    # ===== END SOLUTION =====
