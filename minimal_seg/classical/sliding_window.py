"""From a sliding-window classifier to a fully convolutional network (lectures 001 and 004).

**The slow way.** Train a classifier on small crops (window x window), then
slide it over the image: every window position gives K class scores, and
together they form a class *heatmap* (K, OH, OW). Its argmax, spread back to
the pixels, is a class mask. Neighbouring windows overlap, so the same
convolutions are computed again and again.

**The fast way.** A fully connected layer needs a fixed input size, but it is
a convolution in disguise. The first Linear after Flatten sees a feature map
(C, h, w) flattened row-major, so its weight reshapes exactly into an h x w
convolution; every later Linear sees a 1 x 1 "map" and becomes a 1 x 1
convolution::

    Linear w (D_out, C*h*w)   ->   Conv2d w.reshape(D_out, C, h, w)      (kernel = the feature map)
    Linear w (D_out, D_in)    ->   Conv2d w.reshape(D_out, D_in, 1, 1)   (1 x 1)

The converted network takes an image of any size and returns the whole
heatmap in one pass, sharing the convolutions of overlapping windows. Cell
(i, j) of it is the classifier's output on the crop whose top-left corner is
(i * stride, j * stride), where stride is the product of the network's pool
strides (4 here), as long as

* the convolutions are unpadded ("valid"): padding would put zeros at a crop's
  border where the full image has real neighbours, and
* every pooling window of a crop is also a pooling window of the image: with
  2 x 2 pools that means the window size and the crop offsets are multiples
  of 4, so ``FCClassifier`` asks for ``window % 4 == 0``.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import functional as F
from ..backend import array_module, asarray, get_xp, to_numpy
from ..nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..nn.init import as_generator
from ..optim import Adam


class FCClassifier(Sequential):
    """A window classifier ending in fully connected layers: x (N, C, window, window) -> scores (N, K).

    ::

        conv 5x5 (C -> c1) -> ReLU -> max pool 2       window -> window - 4 -> (window - 4) / 2
        conv 3x3 (c1 -> c2) -> ReLU -> max pool 2      -> (window - 8) / 4 = f
        Flatten (c2 * f * f) -> Linear(hidden) -> ReLU -> Linear(K)

    Convolutions are unpadded, so the scores of a window depend on that window
    only. ``stride`` (4) is the step between the windows that ``fc_to_conv``
    of this classifier evaluates in one pass.
    """

    stride = 4

    def __init__(self, in_channels=1, num_classes=2, window=16, widths=(8, 16), hidden=32, seed=0):
        if window % 4 or window < 12:
            raise ValueError(f"window must be a multiple of 4 and at least 12 (so that the 2x2 pools tile "
                             f"every crop exactly), got {window}")
        rng = as_generator(seed)
        c1, c2 = widths
        f = (window - 8) // 4
        super().__init__(
            Conv2d(in_channels, c1, 5, rng=rng), ReLU(), MaxPool2d(2),
            Conv2d(c1, c2, 3, rng=rng), ReLU(), MaxPool2d(2),
            Flatten(), Linear(c2 * f * f, hidden, rng=rng), ReLU(), Linear(hidden, num_classes, rng=rng),
        )
        self.in_channels, self.num_classes, self.window = in_channels, num_classes, window


# ----------------------------------------------------------------------------- FC -> conv

def linear_to_conv(linear: Linear, in_shape) -> Conv2d:
    """The convolution that computes what ``linear`` computes on a flattened (C, h, w) feature map.

    in_shape = (C, h, w) with C*h*w = in_features. The result has kernel (h, w),
    weight ``w.reshape(out_features, C, h, w)`` and the same bias; on an input
    of exactly (N, C, h, w) it returns (N, out_features, 1, 1) = the Linear's output.
    Parameters are copied (onto the current backend).
    """
    w = linear.params["w"]
    out_features, in_features = w.shape
    c, h, wd = in_shape
    if c * h * wd != in_features:
        raise ValueError(f"in_shape {tuple(in_shape)} has {c * h * wd} values but the Linear layer "
                         f"expects in_features={in_features}")
    conv = Conv2d(c, out_features, (h, wd), bias="b" in linear.params, dtype=w.dtype)
    conv.add_param("w", w.reshape(out_features, c, h, wd).copy())
    if "b" in linear.params:
        conv.add_param("b", linear.params["b"].copy())
    return conv


def fc_to_conv(classifier: Sequential, window=None) -> Sequential:
    """Turn a Sequential classifier (conv part, Flatten, Linear/ReLU head) into a fully convolutional net.

    Layers before Flatten are copied as they are; Flatten is dropped; the first
    Linear becomes an h x w convolution over the (C, h, w) map Flatten saw
    (found by pushing one zero window of size ``window``, default
    ``classifier.window``, through the conv part); every later Linear becomes a
    1 x 1 convolution; other layers (ReLU) are copied. The result maps
    (N, C, H, W) to a heatmap (N, K, OH, OW) with OH = (H - window) // stride + 1.
    """
    window = window or classifier.window
    first = next(layer for layer in classifier.layers if "w" in layer.params)
    xp = array_module(first.params["w"])
    x = xp.zeros((1, first.params["w"].shape[1], window, window), dtype=first.params["w"].dtype)
    layers, feature_shape = [], None
    for layer in classifier.layers:
        if isinstance(layer, Flatten):
            feature_shape = tuple(x.shape[1:])
        elif isinstance(layer, Linear):
            if feature_shape is None:
                raise ValueError("fc_to_conv needs a Flatten layer before the first Linear layer")
            layers.append(linear_to_conv(layer, feature_shape))
            feature_shape = (layer.params["w"].shape[0], 1, 1)
        else:
            layers.append(copy.deepcopy(layer))
            if feature_shape is None:
                x = layers[-1].forward(x)
    return Sequential(*layers).eval()


# ----------------------------------------------------------------------------- heatmaps

def window_positions(size: int, window: int, stride: int) -> list:
    """Top-left coordinates 0, stride, 2*stride, ... of the windows that fit in ``size`` pixels."""
    if window > size:
        raise ValueError(f"window {window} is larger than the image ({size} pixels)")
    return list(range(0, size - window + 1, stride))


def sliding_window_heatmap(classifier, image, window=None, stride=4, batch_size=256):
    """The slow way: cut every window of ``image`` and classify it. Returns scores (K, OH, OW).

    image (C, H, W); windows window x window (default ``classifier.window``) at
    top-left corners (i * stride, j * stride). OH = (H - window) // stride + 1,
    likewise OW. The crops are cut in a loop over window positions, then
    classified ``batch_size`` at a time; cell (i, j) holds the classifier's
    scores (logits) for window (i, j).
    """
    window = window or classifier.window
    _, h, w = image.shape
    ys, xs = window_positions(h, window, stride), window_positions(w, window, stride)
    crops = [image[:, y:y + window, x:x + window] for y in ys for x in xs]
    xp = array_module(image)
    scores = [classifier.forward(xp.stack(crops[i:i + batch_size])) for i in range(0, len(crops), batch_size)]
    scores = xp.concatenate(scores)  # (OH*OW, K)
    return scores.T.reshape(scores.shape[1], len(ys), len(xs))


def heatmap_to_mask(heatmap, image_size, window, stride):
    """Class mask (H, W) from a heatmap (K, OH, OW): each pixel takes the argmax of the nearest window centre.

    Window (i, j) is centred on pixel (i*stride + window//2, j*stride + window//2);
    pixel y takes row i = floor((y - window//2) / stride + 1/2), clipped to [0, OH)
    (halfway between two centres, the later window wins).
    """
    xp = array_module(heatmap)
    labels = heatmap.argmax(axis=0)
    h, w = image_size

    def nearest(size, cells):
        rows = xp.floor((xp.arange(size) - window // 2) / stride + 0.5).astype(xp.int64)
        return xp.clip(rows, 0, cells - 1)

    return labels[nearest(h, labels.shape[0])[:, None], nearest(w, labels.shape[1])[None, :]]


# ----------------------------------------------------------------------------- training on crops

def window_crops(images, masks, window, count, seed=0):
    """Random crops for the window classifier: (crops (count, C, window, window), labels (count,)).

    images (N, C, H, W), masks (N, H, W) on the host. A crop's label is the
    class of its centre pixel (window//2, window//2). Gathered with one
    fancy-indexing expression (no loop over crops).
    """
    images, masks = to_numpy(images), to_numpy(masks)
    n, _, h, w = images.shape
    rng = as_generator(seed)
    idx = rng.integers(0, n, count)
    top, left = rng.integers(0, h - window + 1, count), rng.integers(0, w - window + 1, count)
    rows = top[:, None] + np.arange(window)  # (count, window)
    cols = left[:, None] + np.arange(window)
    crops = images[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (count, window, window, C)
    labels = masks[idx, top + window // 2, left + window // 2]
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2)), labels.astype(np.int64)


def train_classifier(classifier, crops, labels, epochs=5, batch_size=64, lr=3e-3, seed=0, log=None):
    """Train a window classifier with Adam and the softmax cross-entropy; returns the mean loss per epoch.

    The segmentation loss is reused as a classification loss: scores (B, K) are
    viewed as (B, K, 1, 1) logits of a 1 x 1 "image" and labels (B,) as (B, 1, 1).
    crops (M, C, window, window) and labels (M,) live on the host; batches go
    to the current backend.
    """
    opt = Adam(classifier.parameters(), lr=lr)
    rng = as_generator(seed)
    history = []
    classifier.train()
    for epoch in range(epochs):
        order = rng.permutation(len(crops))
        losses = []
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            x, y = asarray(crops[batch]), asarray(labels[batch])
            scores = classifier.forward(x)
            loss, cache = F.softmax_cross_entropy_forward(scores[:, :, None, None], y[:, None, None])
            classifier.zero_grad()
            classifier.backward(F.softmax_cross_entropy_backward(1.0, cache)[:, :, 0, 0])
            opt.step()
            losses.append(loss)
        history.append(float(to_numpy(get_xp().stack(losses)).mean()))
        if log:
            log(f"epoch {epoch + 1}/{epochs}  loss {history[-1]:.4f}")
    return history


def accuracy(classifier, crops, labels, batch_size=256) -> float:
    """Fraction of crops whose argmax score is their label."""
    classifier.eval()
    hits = 0
    for start in range(0, len(crops), batch_size):
        scores = classifier.forward(asarray(crops[start:start + batch_size]))
        hits += int((to_numpy(scores.argmax(axis=1)) == to_numpy(labels[start:start + batch_size])).sum())
    return hits / len(crops)
