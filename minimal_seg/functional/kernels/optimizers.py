"""CUDA kernels for the optimisers' updates: one launch per parameter instead of one per arithmetic step.

The reference is ``minimal_seg/optim.py``: SGD's update is four to six array
expressions per parameter, Adam's about ten, each its own launch on a GPU
(and its own temporary). Here each is one kernel, one thread per entry of the
parameter, computing the same formula in the same order with the same
rounding (every Python float of the array code becomes a scalar of the
parameter's dtype, as NumPy and CuPy make it), so the results are the
array code's, bit for bit (on a GPU up to fused multiply-adds):

- ``sgd_update``: g' = g + wd*p (if wd != 0); b = b*mu + g' and
  g' = g' + mu*b (Nesterov) or b (if mu != 0); p = p - lr*g'.
- ``adam_update``: g' = g + wd*p (if wd != 0); m = m*beta1 + (1-beta1)*g';
  v = v*beta2 + (1-beta2)*(g'*g'); p = p - step*(m / (sqrt(v)/c2 + eps)),
  step = lr/(1-beta1^t), c2 = sqrt(1-beta2^t).

Parameter, gradient and state arrays must be C-contiguous and of one dtype
(``fusable``); the optimiser falls back to its array code otherwise.
"""
from __future__ import annotations

from ...backend import array_module
from . import for_float_types, launch, typed_name

__all__ = ["fusable", "sgd_update", "adam_update", "SOURCE"]

# sqrt for each float type: an unsuffixed sqrt(float) would compute in double with a CPU compiler
_HELPERS = r"""
__device__ inline float sqrt_of(float v) { return sqrtf(v); }
__device__ inline double sqrt_of(double v) { return sqrt(v); }
"""
_TEMPLATE = r"""
extern "C" __global__ void sgd_update_scalar_t(
        scalar_t* p, const scalar_t* g, scalar_t* b, scalar_t lr, scalar_t mu, scalar_t wd,
        int has_wd, int has_momentum, int nesterov, int n) {
    // b is p itself when has_momentum is 0 (then never read): no __restrict__ on p and b
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    scalar_t grad = has_wd ? g[i] + wd * p[i] : g[i];
    if (has_momentum) {
        scalar_t buf = b[i] * mu;
        buf = buf + grad;
        b[i] = buf;
        grad = nesterov ? grad + mu * buf : buf;
    }
    p[i] = p[i] - lr * grad;
}

extern "C" __global__ void adam_update_scalar_t(
        scalar_t* __restrict__ p, const scalar_t* __restrict__ g, scalar_t* __restrict__ m,
        scalar_t* __restrict__ v, scalar_t beta1, scalar_t one_minus_beta1, scalar_t beta2,
        scalar_t one_minus_beta2, scalar_t c2, scalar_t eps, scalar_t step, scalar_t wd, int has_wd, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    scalar_t grad = has_wd ? g[i] + wd * p[i] : g[i];
    scalar_t mi = m[i] * beta1;
    mi = mi + one_minus_beta1 * grad;
    scalar_t vi = v[i] * beta2;
    vi = vi + one_minus_beta2 * (grad * grad);
    m[i] = mi;
    v[i] = vi;
    scalar_t denom = sqrt_of(vi) / c2 + eps;
    p[i] = p[i] - step * (mi / denom);
}
"""
SOURCE = _HELPERS + for_float_types(_TEMPLATE)


def fusable(p, *others) -> bool:
    """True when p and the arrays ``others`` (gradient, state) are C-contiguous float32/float64 of p's dtype."""
    return p.dtype.name in ("float32", "float64") and all(
        a.dtype == p.dtype and a.flags.c_contiguous for a in (p, *others))


def sgd_update(p, g, b, lr, momentum, weight_decay, nesterov):
    """SGD's update of p (and of the momentum buffer b, or None without momentum), in place, in one launch."""
    xp, real = array_module(p), p.dtype.type
    launch(SOURCE, typed_name("sgd_update", p.dtype), p.size,
           (p, g, p if b is None else b, real(lr), real(momentum), real(weight_decay), xp.int32(weight_decay != 0),
            xp.int32(b is not None), xp.int32(bool(nesterov)), xp.int32(p.size)), like=p)


def adam_update(p, g, m, v, betas, step, c2, eps, weight_decay):
    """Adam's update of p, m and v, in place, in one launch (``step`` = lr/(1-beta1^t), c2 = sqrt(1-beta2^t))."""
    xp, real = array_module(p), p.dtype.type
    (beta1, beta2) = betas
    launch(SOURCE, typed_name("adam_update", p.dtype), p.size,
           (p, g, m, v, real(beta1), real(1 - beta1), real(beta2), real(1 - beta2), real(c2), real(eps), real(step),
            real(weight_decay), xp.int32(weight_decay != 0), xp.int32(p.size)), like=p)
