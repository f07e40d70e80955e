"""Optimisers (SGD with momentum, Adam) and learning-rate schedules.

What an optimiser is given: ``params``, a list of ``(params_dict, grads_dict)``
pairs, one per layer (``(layer.params, layer.grads)``); the two dicts have
the same keys. ``step()`` reads ``grads_dict[k]`` afresh each time (a layer
may store a new gradient array on every backward) and updates
``params_dict[k]`` IN PLACE, so every array keeps its identity (a layer, a
model and the optimiser all hold the same object) and its dtype: float32
stays float32. Gradients are never modified by ``step()``.

Notation: p parameter, g gradient, lr learning rate, wd weight decay,
t = 1, 2, ... the step number. The update rules are those of
``torch.optim.SGD`` and ``torch.optim.Adam`` (the tests compare them)::

    SGD        g <- g + wd p                      (L2 weight decay)
               b <- momentum b + g                (b = 0 before step 1, so b_1 = g_1)
               g <- g + momentum b   (nesterov)   or   g <- b
               p <- p - lr g

    Adam       g <- g + wd p
               m <- beta1 m + (1 - beta1) g       (first moment, m_0 = 0)
               v <- beta2 v + (1 - beta2) g^2     (second moment, v_0 = 0)
               p <- p - lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)

On CuPy each parameter's update runs as one CUDA kernel
(``functional/kernels/optimizers.py``) with the same formula, order and
rounding, instead of one launch per array expression.

``lr`` is a plain attribute: a schedule (below) or you may change it
between steps. Hyper-parameters are kept as Python floats, which NumPy 2
treats as "weak" scalars that adopt the array's dtype (a NumPy float64
scalar would turn a float32 update into float64).

Checkpoints: ``state_dict()`` is a flat ``{str: numpy array}`` dict (buffers
copied to the host, the step count and lr as 0-d arrays), ready for
``numpy.savez``; ``load_state_dict`` puts it back on the parameters'
backend, and training then continues exactly as if never interrupted.
"""
from __future__ import annotations

import math

import numpy

from .backend import array_module, to_numpy
from .functional import kernels
from .functional.common import check_array, check_same_module
from .functional.kernels import optimizers as fused


class Optimizer:
    """Shared machinery: the parameter list, ``zero_grad``, state dicts.

    A subclass lists its per-parameter buffers in ``SLOTS`` (created as zeros
    shaped like each parameter) and implements ``_update(p, g, state)``.
    """

    SLOTS: tuple = ()

    def __init__(self, params, lr: float):
        self.pairs = [self._check_pair(i, pair) for i, pair in enumerate(params)]
        if not self.pairs:
            raise ValueError("the optimizer got an empty parameter list")
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = float(lr)
        self.step_count = 0  # t: how many steps have been taken
        self.state = {  # per parameter name: its buffers, zeros shaped like it, on its backend
            name: {slot: array_module(p).zeros_like(p) for slot in self._slots()} for name, p, _ in self._named()
        }

    @staticmethod
    def _check_pair(i, pair):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(d, dict) for d in pair)):
            raise TypeError(f"params[{i}] must be a (params_dict, grads_dict) pair, e.g. (layer.params, layer.grads)")
        for key, p in pair[0].items():
            check_array(p, f"params[{i}][{key!r}]")
        return tuple(pair)

    def _slots(self) -> tuple:
        """Names of the buffers kept per parameter (a subclass may need none)."""
        return self.SLOTS

    def _named(self):
        """Yield (name, param, (grads_dict, key)) per parameter; name = "{pair index}.{key}"."""
        for i, (params, grads) in enumerate(self.pairs):
            for key, p in params.items():
                yield f"{i}.{key}", p, (grads, key)

    def _grad(self, name, p, where):
        """The current gradient of ``p``, checked against it (shape, dtype, backend)."""
        grads, key = where
        if key not in grads:
            raise KeyError(f"no gradient for parameter {name!r}: grads dict has keys {sorted(grads)}")
        g = grads[key]
        check_array(g, f"gradient of {name}")
        check_same_module(f"parameter {name}", p, "its gradient", g)
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(
                f"gradient of {name} has shape {tuple(g.shape)} dtype {g.dtype}, but the parameter "
                f"has shape {tuple(p.shape)} dtype {p.dtype}"
            )
        return g

    def step(self) -> None:
        """Update every parameter in place from its current gradient."""
        work = [(name, p, self._grad(name, p, where)) for name, p, where in self._named()]  # all checked first
        self.step_count += 1
        for name, p, g in work:
            self._update(p, g, self.state[name])

    def _update(self, p, g, state) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Fill every gradient array with 0, in place."""
        for params, grads in self.pairs:
            for key in params:
                if grads.get(key) is not None:
                    grads[key].fill(0)

    # -- checkpoints -------------------------------------------------------

    def state_dict(self) -> dict:
        """A snapshot ``{str: numpy array}``: "step", "lr", and "{pair}.{key}.{slot}" buffers.

        Arrays are host copies: later steps do not change a saved state.
        """
        out = {"step": numpy.asarray(self.step_count, dtype=numpy.int64), "lr": numpy.asarray(self.lr)}
        for name, slots in self.state.items():
            for slot, buf in slots.items():
                out[f"{name}.{slot}"] = numpy.array(to_numpy(buf), copy=True)
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` (e.g. from ``numpy.load``) onto the parameters' backend.

        The keys must match exactly (same model, same optimiser type), otherwise
        KeyError; a buffer of the wrong shape raises ValueError.
        """
        expected = {"step", "lr"} | {f"{n}.{s}" for n, slots in self.state.items() for s in slots}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(f"{type(self).__name__} state does not match: missing {missing}, unexpected {unexpected}")
        for name, p, _ in self._named():  # check everything before changing anything
            for slot in self.state[name]:
                shape = tuple(state[f"{name}.{slot}"].shape)
                if shape != tuple(p.shape):
                    raise ValueError(f"{name}.{slot} has shape {shape}, but the parameter has {tuple(p.shape)}")
        for name, p, _ in self._named():
            xp = array_module(p)
            for slot in self.state[name]:
                self.state[name][slot] = xp.array(to_numpy(state[f"{name}.{slot}"]), dtype=p.dtype)
        self.step_count = int(state["step"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay.

    ::

        g <- g + weight_decay * p
        b <- momentum * b + g                    (b starts at 0, so b_1 = g_1)
        p <- p - lr * (g + momentum * b)         if nesterov
        p <- p - lr * b                          otherwise (plain SGD when momentum = 0)

    This is ``torch.optim.SGD`` with ``dampening=0``. Torch sets b = g on the
    first step; starting from b = 0 gives exactly the same numbers.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        super().__init__(params, lr)

    def _slots(self) -> tuple:
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _update(self, p, g, state) -> None:
        lr, mu = float(self.lr), self.momentum
        b = state.get("momentum_buffer")
        if kernels.kernels_enabled(p) and fused.fusable(p, g, *state.values()):  # one CUDA launch
            fused.sgd_update(p, g, b, lr, mu, self.weight_decay, self.nesterov)
            return
        if self.weight_decay != 0:
            g = g + self.weight_decay * p  # a new array: the layer's gradient is left alone
        if mu != 0:
            b *= mu
            b += g
            g = g + mu * b if self.nesterov else b
        p -= lr * g

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, "
            f"nesterov={self.nesterov})"
        )


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay (``torch.optim.Adam``, amsgrad=False).

    ::

        g <- g + weight_decay * p
        m <- beta1 * m + (1 - beta1) * g             m: running mean of g
        v <- beta2 * v + (1 - beta2) * g * g         v: running mean of g^2
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)   (undo the bias of m_0 = v_0 = 0)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    (computed as torch does: lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)).
    Weight decay here is L2 added to the gradient, not AdamW's decoupled decay.
    """

    SLOTS = ("exp_avg", "exp_avg_sq")

    def __init__(
        self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
    ):
        beta1, beta2 = (float(b) for b in betas)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        self.betas = (beta1, beta2)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        super().__init__(params, lr)

    def _update(self, p, g, state) -> None:
        xp = array_module(p)
        (beta1, beta2), t = self.betas, self.step_count
        m, v = state["exp_avg"], state["exp_avg_sq"]
        step_size, c2 = float(self.lr) / (1 - beta1**t), math.sqrt(1 - beta2**t)
        if kernels.kernels_enabled(p) and fused.fusable(p, g, m, v):  # one CUDA launch
            fused.adam_update(p, g, m, v, self.betas, step_size, c2, self.eps, self.weight_decay)
            return
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        denom = xp.sqrt(v) / c2 + self.eps
        p -= step_size * (m / denom)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"


# ---------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------


class Schedule:
    """Sets ``optimizer.lr`` from a formula ``lr_at(t)`` of the step counter t.

    Creating a schedule remembers ``base_lr = optimizer.lr`` and sets the lr
    for t = 0; each ``step()`` (call it once after each ``optimizer.step()``,
    or once per epoch) advances t and sets the next lr. The values equal
    those of the matching ``torch.optim.lr_scheduler`` class.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_step = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance t by one; set and return the new lr."""
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)
        return self.optimizer.lr

    def state_dict(self) -> dict:
        """{"last_step", "base_lr"} as 0-d NumPy arrays (for ``numpy.savez``)."""
        return {"last_step": numpy.asarray(self.last_step, dtype=numpy.int64), "base_lr": numpy.asarray(self.base_lr)}

    def load_state_dict(self, state: dict) -> None:
        """Restore t and base_lr, and set the optimizer's lr to lr_at(t)."""
        self.last_step = int(state["last_step"])
        self.base_lr = float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.last_step)


class StepSchedule(Schedule):
    """lr_t = base_lr * gamma ** floor(t / step_size)  (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        self.step_size = step_size
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineSchedule(Schedule):
    """Linear warm-up, then half a cosine from base_lr down to min_lr.

    With W = warmup_steps and T = total_steps::

        t <  W:       lr_t = base_lr * (t + 1) / (W + 1)
        W <= t <= T:  lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2
        t >  T:       lr_t = min_lr

    With W = 0 this is ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T,
    eta_min=min_lr)`` for t <= T (torch's keeps following the cosine back up
    after T; here the lr stays at min_lr). The warm-up is torch's
    ``LinearLR(start_factor=1/(W+1), total_iters=W)``: it never uses lr = 0.
    """

    def __init__(self, optimizer, total_steps: int, min_lr: float = 0.0, warmup_steps: int = 0):
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        if not isinstance(total_steps, int) or total_steps <= warmup_steps:
            raise ValueError(f"total_steps must be an int > warmup_steps={warmup_steps}, got {total_steps!r}")
        self.total_steps = total_steps
        self.min_lr = float(min_lr)
        self.warmup_steps = warmup_steps
        super().__init__(optimizer)

    def lr_at(self, t: int) -> float:
        W, T = self.warmup_steps, self.total_steps
        if t < W:
            return self.base_lr * (t + 1) / (W + 1)
        if t >= T:
            return self.min_lr
        cosine = (1 + math.cos(math.pi * (t - W) / (T - W))) / 2
        return self.min_lr + (self.base_lr - self.min_lr) * cosine
