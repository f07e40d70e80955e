"""CUDA kernels for the elementwise chains of ReLU, softmax cross-entropy and batch norm.

On the array-module path each arithmetic step of such a chain is its own
launch and its own temporary array (``(p - g) * (dout * scale)`` is three);
here each chain is one kernel, one thread per output element (or per pixel),
computing the same formula in the same order. The references are
``activation.py``, ``loss.py`` and ``norm.py``; the reductions (the loss's
sum, batch norm's per-channel sums) stay array-module reductions.

- ``relu_forward``: out = max(x, 0) and mask = x > 0 in one pass;
  ``relu_backward``: dx = dout * mask.
- ``softmax_cross_entropy_forward``: one thread per pixel of (N, K, H, W)
  logits runs over its K classes: m = max_k z_k, log p_k = (z_k - m) -
  log sum_j exp(z_j - m), and writes p, -log p[y], the pixel weight
  m_i w[y_i] and the safe label (0 where ignored).
  ``softmax_cross_entropy_backward``: dz = (p - g) * (dout * scale), one
  thread per element.
- ``batch_norm_forward``: xhat = (x - mean_c) * inv_std_c and out =
  gamma_c * xhat + beta_c; ``batch_norm_backward``: training mode's
  dx = coef_c * (n * dout - dbeta_c - xhat * dgamma_c), coef = gamma * inv_std / n.

Results equal the reference up to the last bits of ``exp`` / ``log`` (each
library rounds them its own way) and, on a GPU, fused multiply-adds.
"""
from __future__ import annotations

from ...backend import array_module
from . import for_float_types, launch, typed_name

# exp and log for each float type (an unsuffixed exp(float) would compute in double on a CPU compiler)
_HELPERS = r"""
__device__ inline float exp_of(float v) { return expf(v); }
__device__ inline double exp_of(double v) { return exp(v); }
__device__ inline float log_of(float v) { return logf(v); }
__device__ inline double log_of(double v) { return log(v); }
"""

_TEMPLATE = r"""
extern "C" __global__ void relu_forward_scalar_t(
        const scalar_t* __restrict__ x, scalar_t* __restrict__ out, bool* __restrict__ mask, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    scalar_t v = x[i];
    mask[i] = v > 0;
    out[i] = (v > 0 || v != v) ? v : (scalar_t)0;  // max(x, 0); a NaN stays NaN
}

extern "C" __global__ void relu_backward_scalar_t(
        const scalar_t* __restrict__ dout, const bool* __restrict__ mask, scalar_t* __restrict__ dx, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    dx[i] = dout[i] * (scalar_t)mask[i];
}

extern "C" __global__ void softmax_cross_entropy_forward_scalar_t(
        const scalar_t* __restrict__ logits, const long long* __restrict__ labels, const bool* __restrict__ valid,
        const scalar_t* __restrict__ weight, int has_weight,
        scalar_t* __restrict__ probs, long long* __restrict__ safe_labels, scalar_t* __restrict__ pixel_weight,
        scalar_t* __restrict__ nll, int K, int HW, int n) {
    // thread i = n*HW + (h*W + w): one pixel; its class k sits at z[base + k*HW]
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const long long base = (long long)(i / HW) * K * HW + i % HW;
    const scalar_t* z = logits + base;
    scalar_t m = z[0];
    for (int k = 1; k < K; ++k)
        if (z[k * HW] > m) m = z[k * HW];  // (a NaN logit makes the sum below NaN, as in the reference)
    scalar_t sum = 0;
    for (int k = 0; k < K; ++k) sum += exp_of(z[k * HW] - m);
    const scalar_t log_sum = log_of(sum);
    for (int k = 0; k < K; ++k) probs[base + k * HW] = exp_of((z[k * HW] - m) - log_sum);
    const long long y = valid[i] ? labels[i] : 0;
    safe_labels[i] = y;
    nll[i] = -((z[y * HW] - m) - log_sum);
    pixel_weight[i] = valid[i] ? (has_weight ? weight[y] : (scalar_t)1) : (scalar_t)0;
}

extern "C" __global__ void softmax_cross_entropy_backward_scalar_t(
        const scalar_t* __restrict__ probs, const long long* __restrict__ labels, const scalar_t* __restrict__ scale,
        const scalar_t* __restrict__ dout, scalar_t* __restrict__ dz, int K, int HW, int n) {
    // thread i = (n*K + k)*HW + (h*W + w); its pixel is n*HW + (h*W + w)
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const long long pixel = (long long)(i / (K * HW)) * HW + i % HW;
    const scalar_t g = labels[pixel] == (i / HW) % K ? (scalar_t)1 : (scalar_t)0;
    dz[i] = (probs[i] - g) * (dout[0] * scale[pixel]);
}

extern "C" __global__ void batch_norm_forward_scalar_t(
        const scalar_t* __restrict__ x, const scalar_t* __restrict__ mean, const scalar_t* __restrict__ inv_std,
        const scalar_t* __restrict__ gamma, const scalar_t* __restrict__ beta,
        scalar_t* __restrict__ xhat, scalar_t* __restrict__ out, int C, int HW, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (i / HW) % C;
    const scalar_t v = (x[i] - mean[c]) * inv_std[c];
    xhat[i] = v;
    out[i] = gamma[c] * v + beta[c];
}

extern "C" __global__ void batch_norm_backward_scalar_t(
        const scalar_t* __restrict__ dout, const scalar_t* __restrict__ xhat, const scalar_t* __restrict__ coef,
        const scalar_t* __restrict__ dbeta, const scalar_t* __restrict__ dgamma, scalar_t count,
        scalar_t* __restrict__ dx, int C, int HW, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (i / HW) % C;
    dx[i] = coef[c] * (count * dout[i] - dbeta[c] - xhat[i] * dgamma[c]);
}
"""

SOURCE = _HELPERS + for_float_types(_TEMPLATE)


def _contiguous(xp, *arrays):
    return tuple(xp.ascontiguousarray(a) for a in arrays)


def relu_forward(x):
    """out = max(x, 0) and mask = x > 0 (bool), both the shape of x, in one launch."""
    xp = array_module(x)
    (x,) = _contiguous(xp, x)
    out = xp.empty(x.shape, dtype=x.dtype)
    mask = xp.empty(x.shape, dtype=bool)
    launch(SOURCE, typed_name("relu_forward", x.dtype), x.size, (x, out, mask, xp.int32(x.size)), like=x)
    return out, mask


def relu_backward(dout, mask):
    """dx = dout * mask (0 where x <= 0), the shape and dtype of dout, in one launch."""
    xp = array_module(dout)
    dout, mask = _contiguous(xp, dout, mask)
    dx = xp.empty(dout.shape, dtype=dout.dtype)
    launch(SOURCE, typed_name("relu_backward", dout.dtype), dx.size, (dout, mask, dx, xp.int32(dx.size)), like=dout)
    return dx


def softmax_cross_entropy_forward(logits, labels, valid, weight=None):
    """The per-pixel part of the softmax cross-entropy in one launch (one thread per pixel).

    logits (N, K, H, W) float; labels (N, H, W) integer, already checked;
    valid (N, H, W) bool (label != ignore_index); weight (K,) of the logits'
    dtype or None (all ones). Returns, with m_i = valid, y_i = label::

        probs         (N, K, H, W)  p = softmax(logits) over K
        safe_labels   (N, H, W)     int64, y where valid, else 0
        pixel_weight  (N, H, W)     m_i * w[y_i]
        nll           (N, H, W)     -log p_i[y_i] (log-sum-exp: finite for finite logits)
    """
    xp = array_module(logits)
    n, k, h, w = logits.shape
    logits, labels, valid = _contiguous(xp, logits, labels.astype(xp.int64, copy=False), valid)
    has_weight = weight is not None
    weight = xp.ascontiguousarray(weight) if has_weight else logits  # without weight the kernel reads none
    probs = xp.empty(logits.shape, dtype=logits.dtype)
    safe_labels = xp.empty((n, h, w), dtype=xp.int64)
    pixel_weight = xp.empty((n, h, w), dtype=logits.dtype)
    nll = xp.empty((n, h, w), dtype=logits.dtype)
    launch(SOURCE, typed_name("softmax_cross_entropy_forward", logits.dtype), n * h * w,
           (logits, labels, valid, weight, xp.int32(has_weight), probs, safe_labels, pixel_weight, nll,
            xp.int32(k), xp.int32(h * w), xp.int32(n * h * w)), like=logits)
    return probs, safe_labels, pixel_weight, nll


def softmax_cross_entropy_backward(probs, labels, scale, dout):
    """dz = (p - one_hot(labels)) * (dout * scale) (N, K, H, W), in one launch.

    probs (N, K, H, W); labels (N, H, W) integer in [0, K); scale (N, H, W);
    dout a 0-d array of the probs' dtype.
    """
    xp = array_module(probs)
    n, k, h, w = probs.shape
    probs, labels, scale, dout = _contiguous(xp, probs, labels.astype(xp.int64, copy=False), scale, dout)
    dz = xp.empty(probs.shape, dtype=probs.dtype)
    launch(SOURCE, typed_name("softmax_cross_entropy_backward", probs.dtype), dz.size,
           (probs, labels, scale, dout, dz, xp.int32(k), xp.int32(h * w), xp.int32(dz.size)), like=probs)
    return dz


def batch_norm_forward(x, mean, inv_std, gamma, beta):
    """xhat = (x - mean_c) * inv_std_c and out = gamma_c * xhat + beta_c (both (N, C, H, W)), in one launch.

    x (N, C, H, W); mean, inv_std, gamma, beta (C,), all of x's dtype.
    """
    xp = array_module(x)
    n, c, h, w = x.shape
    x, mean, inv_std, gamma, beta = _contiguous(xp, x, mean, inv_std, gamma, beta)
    xhat = xp.empty(x.shape, dtype=x.dtype)
    out = xp.empty(x.shape, dtype=x.dtype)
    launch(SOURCE, typed_name("batch_norm_forward", x.dtype), x.size,
           (x, mean, inv_std, gamma, beta, xhat, out, xp.int32(c), xp.int32(h * w), xp.int32(x.size)), like=x)
    return xhat, out


def batch_norm_backward(dout, xhat, coef, dbeta, dgamma, count):
    """Training mode's dx = coef_c * (count * dout - dbeta_c - xhat * dgamma_c) (N, C, H, W), in one launch.

    dout, xhat (N, C, H, W); coef = gamma * inv_std / count, dbeta, dgamma
    (C,), all of dout's dtype; count = N*H*W, the values per channel.
    """
    xp = array_module(dout)
    n, c, h, w = dout.shape
    dout, xhat, coef, dbeta, dgamma = _contiguous(xp, dout, xhat, coef, dbeta, dgamma)
    dx = xp.empty(dout.shape, dtype=dout.dtype)
    launch(SOURCE, typed_name("batch_norm_backward", dout.dtype), dx.size,
           (dout, xhat, coef, dbeta, dgamma, dout.dtype.type(count), dx, xp.int32(c), xp.int32(h * w),
            xp.int32(dx.size)), like=dout)
    return dx
