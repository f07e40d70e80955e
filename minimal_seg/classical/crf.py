"""Dense CRF post-processing (Krähenbühl & Koltun, 2011) with mean-field inference.

The lecture's energy of a labelling x (one label x_i per pixel i) of an image y::

    E(x, y) = sum_i Phi(x_i, y_i) + sum_{i<j} Psi(x_i, x_j)

**Unary** Phi: minus the log of the network's softmax, ``Phi(l) = -log p_i(l)``.
**Pairwise** Psi: every pair of pixels (a *dense* CRF), a Potts penalty mu
weighted by two Gaussian kernels of the features f_i = (position p_i, colour I_i)::

    Psi(x_i, x_j) = mu(x_i, x_j) k(f_i, f_j),        mu(l, l') = [l != l']   (Potts)

    k(f_i, f_j) = w_gauss     / Z_gamma * exp(-|p_i - p_j|^2 / 2 theta_gamma^2)                 smoothness
                + w_bilateral / Z_alpha * exp(-|p_i - p_j|^2 / 2 theta_alpha^2
                                               - |I_i - I_j|^2 / 2 theta_beta^2)                appearance

Z_theta = sum over all integer offsets d != 0 of exp(-|d|^2 / 2 theta^2) is the
mass of a spatial Gaussian (about 2 pi theta^2 - 1). Dividing by it makes w the
cost of disagreeing with a *whole* neighbourhood, whatever its radius; the paper
keeps this constant inside w (w_paper = w / Z). Positions are in pixels,
intensities in the units of ``image``: minimal_seg's datasets are standardised
(mean 0, std 1), for which theta_beta = 0.5 means "half a standard deviation".

**Mean field.** Finding argmin_x E is intractable, so we look for the closest
factorised distribution Q(x) = prod_i Q_i(x_i). Its fixed-point update is::

    message_i(l)  = sum_{j != i} k(f_i, f_j) Q_j(l)                 (filtering: the expensive step)
    pairwise_i(l) = sum_{l'} mu(l, l') message_i(l') = sum_{l'} message_i(l') - message_i(l)
    Q_i(l)        = softmax_l( -Phi_i(l) - pairwise_i(l) )

starting from Q = softmax(-Phi) = p, all pixels updated at once. The refined
segmentation is argmax_l Q_i(l).

**Energy printed per iteration.** ``dense_crf(..., verbose=True)`` prints, and
``return_energies=True`` returns, the lecture's labelling energy E(x) of the
current argmax labelling x_i = argmax_l Q_i(l) (not the mean-field free
energy), before the first iteration and after each one. Its pairwise part is one
more filtering pass, of the one-hot labelling g::

    sum_{i<j} [x_i != x_j] k_ij = 1/2 sum_i pairwise_i(x_i)   with message computed from Q = g

With ``method="fast"`` that filtering is the fast approximation too.

**Two ways to filter.**

* ``method="exact"`` builds the (H*W) x (H*W) kernel matrix A_ij = k(f_i, f_j)
  (A_ii = 0) and computes every message as one product, message = Q @ A. Only
  for small images: at most ``MAX_EXACT_PIXELS`` = 64 * 64 pixels.
* ``method="fast"`` never builds A. The Gaussian kernel is separable,
  exp(-(dy^2 + dx^2)/2t^2) = exp(-dy^2/2t^2) exp(-dx^2/2t^2), so it is two 1-D
  convolutions with zero padding (a loop over the 2r+1 taps, r = ceil(truncate
  * theta), never over pixels): exact up to the dropped tails beyond r, and
  exact to rounding when r reaches across the whole image. The bilateral kernel
  is not separable; we approximate it as Durand & Dorsey (2002) do, on a
  "bilateral grid" of intensity levels c_b (per channel, spacing
  Delta <= ``range_step``, default theta_beta / 2)::

        J_b(i)       = sum_j G_alpha(p_i - p_j) exp(-|I_j - c_b|^2 / 2 theta_beta^2) Q_j    (spatial filter)
        message_i   ~= sum_b lambda_b(I_i) J_b(i) - Q_i                                      (interpolate, drop j = i)

  lambda_b are the (multi)linear interpolation weights of I_i between the
  levels around it. The result is exact where every I_i is a level; elsewhere the
  interpolation error shrinks like (Delta / theta_beta)^2. Cost: one spatial
  filter per level that some pixel uses, i.e. up to B^C for C channels.

Everything runs on the backend of ``probs`` (NumPy or CuPy).
"""
from __future__ import annotations

import itertools
import math

from ..backend import array_module, asarray
from ..functional.activation import softmax_forward
from ..functional.common import check_array, check_float, check_same_module
from ..metrics import ConfusionMatrix

MAX_EXACT_PIXELS = 64 * 64
METHODS = ("exact", "fast")
# Default kernels, chosen on the Shapes validation split with FCN-32s predictions (64 x 64
# standardised images): a weak smoothness term and a strong appearance term.
W_GAUSS, THETA_GAMMA, W_BILATERAL, THETA_ALPHA, THETA_BETA = 1.0, 3.0, 20.0, 8.0, 0.5


# ----------------------------------------------------------------------------- kernels

def spatial_mass(theta: float) -> float:
    """Z_theta = sum_{d in Z^2, d != 0} exp(-|d|^2 / 2 theta^2) = (sum_t exp(-t^2 / 2 theta^2))^2 - 1."""
    radius = int(math.ceil(10 * theta))
    line = sum(math.exp(-t * t / (2 * theta * theta)) for t in range(-radius, radius + 1))
    return line * line - 1.0


def unary_from_probs(probs, eps: float = 1e-8):
    """Phi = -log p, with p clipped to [eps, 1] so that a zero probability costs -log eps, not inf."""
    xp = array_module(probs)
    return -xp.log(xp.clip(probs, eps, 1.0))


def _pixel_features(image, theta_pos, theta_int=None):
    """(D, H*W) features: y / theta_pos, x / theta_pos and, if theta_int is given, I_c / theta_int."""
    xp = array_module(image)
    c, h, w = image.shape
    yy, xx = xp.meshgrid(xp.arange(h, dtype=image.dtype), xp.arange(w, dtype=image.dtype), indexing="ij")
    rows = [yy.ravel() / theta_pos, xx.ravel() / theta_pos]
    if theta_int is not None:
        rows += [image[ch].ravel() / theta_int for ch in range(c)]
    return xp.stack(rows)


def _gaussian_gram(features):
    """(P, P) matrix exp(-|f_i - f_j|^2 / 2) of the feature columns, summed one feature row at a time."""
    xp = array_module(features)
    d2 = xp.zeros((features.shape[1],) * 2, dtype=features.dtype)
    for row in features:
        d2 += (row[:, None] - row[None, :]) ** 2
    return xp.exp(-0.5 * d2)


def kernel_matrix(image, w_gauss=W_GAUSS, theta_gamma=THETA_GAMMA, w_bilateral=W_BILATERAL,
                  theta_alpha=THETA_ALPHA, theta_beta=THETA_BETA):
    """The dense CRF's (H*W, H*W) kernel matrix A_ij = k(f_i, f_j), with A_ii = 0.

    image (C, H, W) float. Pixels are numbered row-major, i = y*W + x.
    Raises ValueError above ``MAX_EXACT_PIXELS`` pixels.
    """
    c, h, w = image.shape
    if h * w > MAX_EXACT_PIXELS:
        raise ValueError(
            f"method='exact' builds an (H*W) x (H*W) kernel matrix, so it is limited to "
            f"MAX_EXACT_PIXELS = {MAX_EXACT_PIXELS} pixels (64 x 64); got {h} x {w} = {h * w}. "
            "Use method='fast' for larger images")
    xp = array_module(image)
    a = xp.zeros((h * w, h * w), dtype=image.dtype)
    if w_gauss:
        a += (w_gauss / spatial_mass(theta_gamma)) * _gaussian_gram(_pixel_features(image, theta_gamma))
    if w_bilateral:
        a += (w_bilateral / spatial_mass(theta_alpha)) * _gaussian_gram(
            _pixel_features(image, theta_alpha, theta_beta))
    xp.fill_diagonal(a, 0)
    return a


# ----------------------------------------------------------------------------- fast filtering

def gaussian_taps(theta: float, truncate: float = 4.0, size: int | None = None):
    """1-D Gaussian taps g[t] = exp(-t^2 / 2 theta^2) for t = -r..r, r = ceil(truncate * theta).

    Taps with |t| >= ``size`` never meet a pixel, so r is capped at size - 1.
    Returns a list of Python floats (they multiply whole arrays, on any backend).
    """
    r = int(math.ceil(truncate * theta))
    if size is not None:
        r = min(r, size - 1)
    return [math.exp(-t * t / (2 * theta * theta)) for t in range(-r, r + 1)]


def _filter_last_axis(x, taps):
    """Zero-padded 1-D correlation along the last axis: out[.., i] = sum_t g[t] x[.., i + t]."""
    xp = array_module(x)
    n, r = x.shape[-1], len(taps) // 2
    out = xp.zeros_like(x)
    for k, g in enumerate(taps):
        d = k - r
        if d >= 0:
            out[..., : n - d] += g * x[..., d:]
        else:
            out[..., -d:] += g * x[..., : n + d]
    return out


def gaussian_filter(x, theta: float, truncate: float = 4.0):
    """sum_j exp(-|p_i - p_j|^2 / 2 theta^2) x_j over the last two axes (H, W) of x, including j = i.

    Separable: a 1-D filter along W, then along H (zero padding: pixels
    outside the image do not exist).
    """
    h, w = x.shape[-2:]
    x = _filter_last_axis(x, gaussian_taps(theta, truncate, w))
    x = _filter_last_axis(x.swapaxes(-1, -2), gaussian_taps(theta, truncate, h))
    return x.swapaxes(-1, -2)


def _hat_weights(values, levels, step):
    """Linear interpolation weights lambda_b = max(0, 1 - |v - c_b| / step) of each level c_b, (B, H, W)."""
    xp = array_module(values)
    if len(levels) == 1:
        return xp.ones((1,) + values.shape, dtype=values.dtype)
    centres = xp.asarray(levels, dtype=values.dtype)[:, None, None]
    return xp.maximum(0, 1 - xp.abs(values[None] - centres) / step)


def _channel_levels(channel, range_step):
    """Evenly spaced intensity levels from min to max, spacing <= range_step: (levels, spacing)."""
    lo, hi = float(channel.min()), float(channel.max())
    count = int(math.ceil((hi - lo) / range_step)) + 1 if hi > lo else 1
    step = (hi - lo) / (count - 1) if count > 1 else 1.0
    return [lo + b * step for b in range(count)], step


def bilateral_grid(image, theta_beta, range_step=None):
    """The levels of the fast bilateral filter: a list of (lambda_b, range_b), each (H, W).

    lambda_b(i) = prod_c hat_c(I_c(i)) is the interpolation weight of level b at
    pixel i; range_b(j) = exp(-|I_j - c_b|^2 / 2 theta_beta^2) its range weight.
    Levels that no pixel interpolates from (lambda_b = 0 everywhere) are dropped.
    """
    xp = array_module(image)
    range_step = theta_beta / 2 if range_step is None else range_step
    per_channel = []
    for channel in image:
        levels, step = _channel_levels(channel, range_step)
        hats = _hat_weights(channel, levels, step)
        ranges = [xp.exp(-((channel - c) ** 2) / (2 * theta_beta ** 2)) for c in levels]
        per_channel.append(list(zip(hats, ranges)))
    grid = []
    for combo in itertools.product(*per_channel):  # one level per combination of channel levels
        lam, rw = combo[0]
        for hat, r in combo[1:]:
            lam, rw = lam * hat, rw * r
        grid.append((lam, rw))
    used = xp.stack([lam.any() for lam, _ in grid]).tolist()  # one device->host copy
    return [level for level, keep in zip(grid, used) if keep]


def bilateral_filter_approx(x, grid, theta_alpha, truncate=4.0):
    """Approximate sum_j G_alpha(p_i - p_j) exp(-|I_i - I_j|^2 / 2 theta_beta^2) x_j (j = i included).

    x (K, H, W); ``grid`` from ``bilateral_grid``. One spatial Gaussian filter per level::

        out(i) = sum_b lambda_b(i) * gaussian_filter(range_b * x, theta_alpha)(i)
    """
    xp = array_module(x)
    out = xp.zeros_like(x)
    for lam, rw in grid:
        out += lam * gaussian_filter(rw * x, theta_alpha, truncate)
    return out


# ----------------------------------------------------------------------------- message passing

class ExactMessages:
    """message(Q) = Q @ A with the full kernel matrix (``kernel_matrix``): Q (K, H, W) -> (K, H, W)."""

    def __init__(self, image, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta):
        self.a = kernel_matrix(image, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta)

    def __call__(self, q):
        k, h, w = q.shape
        return (q.reshape(k, h * w) @ self.a).reshape(k, h, w)


class FastMessages:
    """message(Q) by separable Gaussian filtering and the bilateral-grid approximation (see module doc)."""

    def __init__(self, image, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta,
                 truncate=4.0, range_step=None):
        self.w_gauss = w_gauss / spatial_mass(theta_gamma) if w_gauss else 0.0
        self.w_bilateral = w_bilateral / spatial_mass(theta_alpha) if w_bilateral else 0.0
        self.theta_gamma, self.theta_alpha, self.truncate = theta_gamma, theta_alpha, truncate
        self.grid = bilateral_grid(image, theta_beta, range_step) if w_bilateral else []

    def __call__(self, q):
        xp = array_module(q)
        m = xp.zeros_like(q)
        if self.w_gauss:  # the filter includes j = i with weight 1: subtract it
            m += self.w_gauss * (gaussian_filter(q, self.theta_gamma, self.truncate) - q)
        if self.w_bilateral:
            m += self.w_bilateral * (bilateral_filter_approx(q, self.grid, self.theta_alpha, self.truncate) - q)
        return m


def potts_pairwise(message):
    """pairwise(l) = sum_{l'} mu(l, l') message(l') with Potts mu = [l != l']: sum over l' minus message(l)."""
    return message.sum(axis=0, keepdims=True) - message


def mean_field_step(unary, q, messages):
    """One parallel mean-field update: Q = softmax(-Phi - pairwise(message(Q))) over the class axis 0."""
    out, _ = softmax_forward(-unary - potts_pairwise(messages(q)), axis=0)
    return out


def labelling_energy(unary, labels, messages):
    """E(x) = sum_i Phi_i(x_i) + sum_{i<j} [x_i != x_j] k_ij for labels x (H, W): (total, unary, pairwise).

    The pairwise sum is 1/2 sum_i pairwise_i(x_i) with messages of the one-hot g(x).
    Returns three Python floats (one device->host copy each).
    """
    xp = array_module(unary)
    k = unary.shape[0]
    onehot = (labels[None] == xp.arange(k).reshape(k, 1, 1)).astype(unary.dtype)
    e_unary = float((unary * onehot).sum())
    e_pair = 0.5 * float((potts_pairwise(messages(onehot)) * onehot).sum())
    return e_unary + e_pair, e_unary, e_pair


# ----------------------------------------------------------------------------- the CRF

def _check_inputs(probs, image):
    """probs (K, H, W) and image (C, H, W) or (H, W): same backend, same H, W. Returns image as (C, H, W)."""
    check_float(probs, "probs")
    check_array(image, "image")
    check_same_module("probs", probs, "image", image)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, H, W) or (N, K, H, W), got shape {tuple(probs.shape)}")
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[1:] != probs.shape[1:]:
        raise ValueError(f"image must be (C, H, W) or (H, W) with H, W = {tuple(probs.shape[1:])} as probs, "
                         f"got shape {tuple(image.shape)}")
    return image.astype(probs.dtype, copy=False)


def _make_messages(image, method, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta,
                   truncate, range_step):
    if method == "exact":
        return ExactMessages(image, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta)
    if method == "fast":
        return FastMessages(image, w_gauss, theta_gamma, w_bilateral, theta_alpha, theta_beta, truncate, range_step)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _crf_one(probs, image, iterations, options, want_energy, verbose):
    """Mean field on one image: probs (K, H, W) -> (Q (K, H, W), [E per iteration])."""
    image = _check_inputs(probs, image)
    messages = _make_messages(image, **options)
    unary = unary_from_probs(probs)
    q, _ = softmax_forward(-unary, axis=0)
    energies = []
    for it in range(iterations + 1):
        if it > 0:
            q = mean_field_step(unary, q, messages)
        if want_energy:
            total, e_unary, e_pair = labelling_energy(unary, q.argmax(axis=0), messages)
            energies.append(total)
            if verbose:
                print(f"mean field iteration {it}: E(x) = {total:.4f} "
                      f"(unary {e_unary:.4f} + pairwise {e_pair:.4f})")
    return q, energies


def dense_crf(probs, image, iterations=5, w_gauss=W_GAUSS, theta_gamma=THETA_GAMMA, w_bilateral=W_BILATERAL,
              theta_alpha=THETA_ALPHA, theta_beta=THETA_BETA, method="exact", return_energies=False,
              verbose=False, truncate=4.0, range_step=None):
    """Refine the softmax ``probs`` of a network with a dense CRF (mean-field inference).

    probs   (K, H, W) or (N, K, H, W) float: per-pixel class probabilities (softmax output)
    image   (C, H, W) or (H, W), or (N, C, H, W) with batched probs: the intensities the
            bilateral kernel compares, on the same backend as probs
    iterations         number of mean-field updates
    w_gauss, theta_gamma                   smoothness kernel: weight, spatial width (pixels)
    w_bilateral, theta_alpha, theta_beta   appearance kernel: weight, spatial width (pixels),
                                           intensity width (image units)
    method             "exact" (kernel matrix, at most MAX_EXACT_PIXELS pixels) or "fast"
    truncate           fast: Gaussian taps out to ceil(truncate * theta) pixels
    range_step         fast: largest spacing of the bilateral grid's levels (theta_beta / 2)
    verbose            print the labelling energy E(x) of argmax Q before and after each iteration

    Returns Q, the refined probabilities, with the shape and dtype of ``probs``
    (and, with ``return_energies=True``, the energies: a list of iterations + 1
    floats, or one such list per image for batched input).
    """
    options = dict(method=method, w_gauss=w_gauss, theta_gamma=theta_gamma, w_bilateral=w_bilateral,
                   theta_alpha=theta_alpha, theta_beta=theta_beta, truncate=truncate, range_step=range_step)
    want_energy = return_energies or verbose
    check_array(probs, "probs")
    if probs.ndim == 4:
        if image.ndim != 4 or image.shape[0] != probs.shape[0]:
            raise ValueError(f"batched probs {tuple(probs.shape)} need images (N, C, H, W) with the same N, "
                             f"got shape {tuple(image.shape)}")
        results = [_crf_one(p, im, iterations, options, want_energy, verbose) for p, im in zip(probs, image)]
        q = array_module(probs).stack([r[0] for r in results])
        energies = [r[1] for r in results]
    else:
        q, energies = _crf_one(probs, image, iterations, options, want_energy, verbose)
    return (q, energies) if return_energies else q


# ----------------------------------------------------------------------------- evaluation

def crf_refine_eval(model, images, masks, num_classes, batch_size=8, ignore_index=None, **crf_options):
    """mIoU of a model's predictions before and after the dense CRF, on held-out data.

    model    anything with ``forward(x (N, C, H, W)) -> logits (N, K, H, W)`` (put in eval mode here)
    images   (N, C, H, W) float, masks (N, H, W) int: host or device arrays, moved to the
             current backend batch by batch
    crf_options   passed to ``dense_crf`` (method, weights, thetas, iterations)

    Recipe: logits -> softmax -> argmax (before) and -> dense_crf -> argmax
    (after), both counted with ``ConfusionMatrix``. Returns a dict of floats:
    ``miou_before``, ``miou_after``, ``pixel_accuracy_before``, ``pixel_accuracy_after``.
    """
    model.eval()
    before = ConfusionMatrix(num_classes, ignore_index)
    after = ConfusionMatrix(num_classes, ignore_index)
    for start in range(0, len(images), batch_size):
        x = asarray(images[start:start + batch_size])
        y = asarray(masks[start:start + batch_size])
        probs, _ = softmax_forward(model.forward(x), axis=1)
        refined = dense_crf(probs, x.astype(probs.dtype), **crf_options)
        before.update(probs.argmax(axis=1), y)
        after.update(refined.argmax(axis=1), y)
    return {"miou_before": before.miou(), "miou_after": after.miou(),
            "pixel_accuracy_before": before.pixel_accuracy(), "pixel_accuracy_after": after.pixel_accuracy()}
