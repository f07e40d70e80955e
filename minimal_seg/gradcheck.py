"""Numerical gradient checks: is a hand-written backward pass right?

For an op ``out = f(x, w, ...)`` and a *random* upstream gradient ``dout``
(an all-ones ``dout`` would let a wrong softmax backward pass), the scalar

    L = sum(f(x, w, ...) * dout)

has the gradient that ``backward(dout, cache)`` returns. We compare it with
central differences, one input entry at a time, in float64::

    dL/dx_i  ~  sum((f(x + eps e_i) - f(x - eps e_i)) * dout) / (2 eps)

(the two outputs are subtracted entry by entry *before* summing, so entries
of ``out`` that do not depend on ``x_i`` cancel exactly). The error of each
entry is measured against the largest gradient entry of its tensor::

    rel_i = |analytic_i - numeric_i| / max(max_j |analytic_j|, max_j |numeric_j|, atol)

Rounding noise of the difference quotient is about the same absolute size
for every entry, so dividing by each entry's own size (CS231n's rel_error)
would fail correct code wherever a gradient entry is tiny but not zero,
while a wrong backward pass is off by an amount comparable to the largest
entry. In float64 a correct backward gives about 1e-9 or less; 1e-7 is the bar.
For tensors too large to perturb one entry at a time, ``directions=k`` checks
k random directions v instead: <grad, v> against (L(x + eps v) - L(x - eps v)) / 2eps.

Use it on a functional pair::

    report = gradcheck(conv2d_forward, conv2d_backward,
                       {"x": x, "w": w, "b": b}, kwargs={"stride": 2})
    print(report)            # one row per tensor: max rel. error, worst index
    assert report.passed
    report.show("x")         # the error map of x as an image

or on a layer (``gradcheck_layer``: input and every parameter).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from .backend import array_module, to_numpy

DEFAULT_TOL = 1e-7


@dataclass
class TensorCheck:
    """The result for one tensor: worst relative error and where it happened."""

    name: str
    max_rel_error: float
    worst_index: tuple
    analytic: numpy.ndarray = field(repr=False)
    numeric: numpy.ndarray = field(repr=False)
    error_map: numpy.ndarray = field(repr=False)
    directional: bool = False


@dataclass
class GradcheckReport:
    """All tensors of one check. ``passed`` compares every error with ``tol``."""

    label: str
    checks: list
    tol: float = DEFAULT_TOL

    @property
    def passed(self) -> bool:
        return all(c.max_rel_error <= self.tol for c in self.checks)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def __getitem__(self, name: str) -> TensorCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no tensor named {name!r}; checked: {[c.name for c in self.checks]}")

    def rows(self):
        """(op, tensor, max rel. error, worst index, pass/fail) for each tensor."""
        return [
            (self.label, c.name, c.max_rel_error, c.worst_index, "pass" if c.max_rel_error <= self.tol else "FAIL")
            for c in self.checks
        ]

    def __str__(self) -> str:
        lines = [f"gradcheck {self.label} (tol {self.tol:.0e})"]
        for _, name, err, idx, verdict in self.rows():
            lines.append(f"  {name:<14} max rel. error {err:.2e} at {idx}  {verdict}")
        return "\n".join(lines)

    def show(self, name: str, ax=None):
        """Plot the error map of tensor ``name`` (its last two axes; max over the others)."""
        import matplotlib.pyplot as plt

        check = self[name]
        err = check.error_map
        while err.ndim > 2:
            err = err.max(axis=0)
        if err.ndim == 1:
            err = err[None, :]
        if ax is None:
            _, ax = plt.subplots(figsize=(4, 3.2))
        im = ax.imshow(numpy.log10(err + 1e-20), cmap="magma", vmin=-16, vmax=0)
        ax.set_title(f"{self.label}: log10 rel. error of d{name}")
        ax.figure.colorbar(im, ax=ax)
        return ax


def relative_error(analytic, numeric, atol: float = 1e-8):
    """Entrywise |a - n| / max(max |a|, max |n|, atol): the error relative to the tensor's scale."""
    scale = max(float(numpy.abs(analytic).max(initial=0.0)), float(numpy.abs(numeric).max(initial=0.0)), atol)
    return numpy.abs(analytic - numeric) / scale


def _dot(a, b) -> float:
    return float(to_numpy((a * b).sum()))


def _numeric_entrywise(run, tensor, dout, eps):
    """Central differences of L = sum(run() * dout) for every entry of ``tensor`` (in place, restored)."""
    flat = tensor.reshape(-1)
    grad = numpy.zeros(flat.shape, dtype=numpy.float64)
    for i in range(flat.size):
        old = flat[i].copy()
        flat[i] = old + eps
        plus = run()
        flat[i] = old - eps
        minus = run()
        flat[i] = old
        grad[i] = _dot(plus - minus, dout) / (2 * eps)
    return grad.reshape(tensor.shape)


def _numeric_directional(run, tensor, dout, eps, direction):
    original = tensor.copy()
    tensor[...] = original + eps * direction
    plus = run()
    tensor[...] = original - eps * direction
    minus = run()
    tensor[...] = original
    return _dot(plus - minus, dout) / (2 * eps)


def check_gradients(run, analytic_grads, tensors, label, eps=1e-5, tol=DEFAULT_TOL,
                    atol=1e-8, directions=None, seed=0) -> GradcheckReport:
    """Core of every check.

    run()            recomputes the output from the current values of ``tensors``
    analytic_grads   dict name -> gradient of sum(out * dout) for the dout below
                     (a callable dout -> dict)
    tensors          dict name -> float64 array, perturbed in place and restored
    """
    # A stream of its own: default_rng(seed) would replay the draws that made the
    # inputs, and dout == x makes batch norm's true dx exactly zero.
    rng = numpy.random.default_rng((seed, 0x6D5E6))
    computed = run

    def run():  # a copy: an op may return its input (or a view of it), which the next perturbation changes
        return computed().copy()

    out = run()
    xp = array_module(out)
    dout = xp.asarray(rng.standard_normal(out.shape))
    grads = analytic_grads(dout)
    checks = []
    for name, tensor in tensors.items():
        if grads.get(name) is None:
            continue
        if tensor.dtype != numpy.float64:
            raise TypeError(f"gradcheck needs float64 inputs; {name} is {tensor.dtype}")
        analytic = to_numpy(grads[name]).astype(numpy.float64)
        if analytic.shape != tuple(tensor.shape):
            raise ValueError(f"gradient of {name} has shape {analytic.shape}, expected {tuple(tensor.shape)}")
        if directions is None:
            numeric = _numeric_entrywise(run, tensor, dout, eps)
            err = relative_error(analytic, numeric, atol)
            worst = numpy.unravel_index(int(numpy.argmax(err)), err.shape) if err.size else ()
            checks.append(TensorCheck(name, float(err.max(initial=0.0)), tuple(int(i) for i in worst),
                                      analytic, numeric, err))
        else:
            a_dir, n_dir = [], []
            for _ in range(directions):
                v = rng.standard_normal(tensor.shape)
                v /= numpy.linalg.norm(v) or 1.0
                a_dir.append(float((analytic * v).sum()))
                n_dir.append(_numeric_directional(run, tensor, dout, eps, xp.asarray(v)))
            a_dir, n_dir = numpy.array(a_dir), numpy.array(n_dir)
            err = relative_error(a_dir, n_dir, atol)
            checks.append(TensorCheck(name, float(err.max()), (int(numpy.argmax(err)),),
                                      a_dir, n_dir, err, directional=True))
    return GradcheckReport(label, checks, tol)


def gradcheck(forward, backward, inputs: dict, kwargs: dict | None = None, wrt=None, label=None,
              eps=1e-5, tol=DEFAULT_TOL, atol=1e-8, directions=None, seed=0) -> GradcheckReport:
    """Check a functional pair ``forward(*inputs.values(), **kwargs) -> (out, cache)``,
    ``backward(dout, cache) -> grads``.

    ``backward`` returns the gradients of the first inputs, in order (a single
    array or a tuple; ``None`` entries, e.g. ``db`` without bias, are skipped).
    Only float inputs are perturbed; ``wrt`` restricts the check to some names.
    """
    kwargs = kwargs or {}
    names = list(inputs)
    values = list(inputs.values())

    def run():
        out, _ = forward(*values, **kwargs)
        return out

    def analytic(dout):
        _, cache = forward(*values, **kwargs)
        grads = backward(dout, cache)
        if not isinstance(grads, tuple):
            grads = (grads,)
        return dict(zip(names, grads))

    floats = {
        n: v for n, v in inputs.items()
        if hasattr(v, "dtype") and v.dtype.kind == "f" and (wrt is None or n in wrt)
    }
    return check_gradients(run, analytic, floats, label or getattr(forward, "__name__", "op"),
                           eps, tol, atol, directions, seed)


def gradcheck_layer(layer, x, label=None, eps=1e-5, tol=DEFAULT_TOL, atol=1e-8, directions=None,
                    seed=0) -> GradcheckReport:
    """Check a layer or a whole model: the input ``x`` and every parameter.

    The layer must hold float64 parameters (``layer.astype(numpy.float64)``)
    and ``x`` must be float64. ``directions=k`` checks k random directions per
    tensor instead of every entry (use it for models).
    """
    tensors = {"x": x, **dict(layer.named_parameters())}

    def run():
        return layer.forward(x)

    def analytic(dout):
        layer.zero_grad()
        layer.forward(x)
        dx = layer.backward(dout)
        return {"x": dx, **dict(layer.named_grads())}

    return check_gradients(run, analytic, tensors, label or type(layer).__name__, eps, tol, atol, directions, seed)
