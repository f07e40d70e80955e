"""Batch normalisation for NCHW feature maps (``BatchNorm2d``).

Each channel c is normalised over the N*H*W numbers it holds in the batch,
then scaled and shifted by learned per-channel parameters::

    xhat = (x - mu_c) / sqrt(var_c + eps)          out = gamma_c * xhat + beta_c

Training mode uses the statistics of the batch (mu = mean, var = the *biased*
variance, divide by n = N*H*W) and updates the running statistics in place,
exactly as PyTorch does (note the *unbiased* variance, n / (n - 1))::

    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * n / (n - 1)

Eval mode uses ``running_mean`` and ``running_var`` instead and leaves them
alone: the layer is then a fixed per-channel affine map.

Shapes: x, out, dout, dx are (N, C, H, W); gamma, beta, running_mean,
running_var, dgamma, dbeta are (C,).

On a GPU the elementwise chains (normalise + affine forward, training
backward's dx from the per-channel sums) each run as one CUDA kernel
(``kernels/elementwise.py``); the statistics stay array-module reductions.
"""
from __future__ import annotations

from ..backend import array_module
from . import kernels
from .common import Cache, check_bool, check_dout, check_float, check_nchw, check_number
from .kernels import elementwise

_AXES = (0, 2, 3)  # the axes a channel's statistics run over: N, H, W


def _per_channel(v):
    """(C,) -> (1, C, 1, 1), so it broadcasts against an NCHW array."""
    return v.reshape(1, -1, 1, 1)


def _check_channel_vector(v, name: str, channels: int):
    check_float(v, name)
    if tuple(v.shape) != (channels,):
        raise ValueError(f"{name} must have shape (C,) = ({channels},), got {tuple(v.shape)}")


def batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training: bool,
                         momentum: float = 0.1, eps: float = 1e-5):
    """Batch norm over (N, H, W) for each channel; see the module docstring.

    x             (N, C, H, W) float
    gamma, beta   (C,) scale and shift
    running_mean, running_var   (C,); updated IN PLACE when ``training``
                  (they may be None in training mode: then nothing is tracked)
    training      True: batch statistics; False: running statistics
    out           (N, C, H, W), the dtype of x
    cache         ``xhat`` (N, C, H, W), ``gamma``, ``inv_std`` = 1/sqrt(var + eps)
                  (C,), ``training``
    """
    check_nchw(x, "x")
    training = check_bool(training, "training")
    momentum = check_number(momentum, "momentum", 0, 1)
    eps = check_number(eps, "eps", 0)
    xp = array_module(x)
    channels = x.shape[1]
    for name, v in (("gamma", gamma), ("beta", beta)):
        _check_channel_vector(v, name, channels)
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is not None or not training:
            _check_channel_vector(v, name, channels)

    if training:
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n < 2:
            raise ValueError(f"batch norm in training mode needs more than 1 value per channel, "
                             f"got x of shape {tuple(x.shape)}")
        mean = x.mean(axis=_AXES)
        var = x.var(axis=_AXES)  # biased: divides by n
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * var * (n / (n - 1))
    else:
        mean, var = running_mean, running_var

    dtype = x.dtype
    inv_std = (1 / xp.sqrt(var + eps)).astype(dtype, copy=False)
    mean, gamma, beta = (v.astype(dtype, copy=False) for v in (mean, gamma, beta))
    if kernels.kernels_enabled(x):  # the CUDA kernel: xhat and out in one launch (kernels/elementwise.py)
        xhat, out = elementwise.batch_norm_forward(x, mean, inv_std, gamma, beta)
    else:
        xhat = (x - _per_channel(mean)) * _per_channel(inv_std)
        out = _per_channel(gamma) * xhat + _per_channel(beta)
    return out, Cache(xhat=xhat, gamma=gamma, inv_std=inv_std, training=training)


def batch_norm2d_backward(dout, cache):
    """Gradients (dx, dgamma, dbeta) of batch norm.

    dbeta  = sum_{N,H,W} dout          dgamma = sum_{N,H,W} dout * xhat

    Eval mode: mu and var are constants, so out is affine in x and
    dx = gamma * inv_std * dout.

    Training mode: mu and var depend on every x of the channel. Writing
    dxhat = gamma * dout and summing over the n = N*H*W positions of a channel,
    the chain rule through mu and var collapses to the compact formula::

        dx = inv_std / n * (n * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
           = gamma * inv_std / n * (n * dout - dbeta - xhat * dgamma)

    (the second line reuses dbeta and dgamma, the two sums we needed anyway).
    """
    xhat, gamma, inv_std = cache.xhat, cache.gamma, cache.inv_std
    check_dout(dout, xhat.shape)
    dbeta = dout.sum(axis=_AXES)
    dgamma = (dout * xhat).sum(axis=_AXES)
    if not cache.training:
        return dout * _per_channel(gamma * inv_std), dgamma, dbeta
    n = xhat.shape[0] * xhat.shape[2] * xhat.shape[3]
    if kernels.kernels_enabled(dout) and dout.dtype == xhat.dtype:  # the CUDA kernel (kernels/elementwise.py)
        return elementwise.batch_norm_backward(dout, xhat, gamma * inv_std / n, dbeta, dgamma, n), dgamma, dbeta
    dx = _per_channel(gamma * inv_std / n) * (n * dout - _per_channel(dbeta) - xhat * _per_channel(dgamma))
    return dx, dgamma, dbeta
