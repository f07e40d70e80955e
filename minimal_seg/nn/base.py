"""Layers: a thin object around a functional pair.

A layer holds state and nothing else: its parameters (``params``), their
gradients (``grads``, same keys), buffers that are saved but not trained
(``buffers``, e.g. BatchNorm's running statistics), the cache of its last
forward pass, and a ``training`` flag. Every number is computed by the
functional op it wraps::

    out = layer(x)            # = layer.forward(x): calls op_forward, keeps the cache
    dx = layer.backward(dout) # calls op_backward, ADDS parameter gradients into layer.grads

Parameter gradients accumulate (as in PyTorch), so call ``zero_grad()``
before each backward pass; the optimizer updates ``params`` in place.
A composite layer (``Sequential``, a model) lists its sub-layers in
``children()``; names of nested parameters are dotted: ``"enc1.conv.w"``.
"""
from __future__ import annotations

import contextlib

from ..backend import asarray, to_numpy


class Layer:
    """Base class of every layer and model."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.training = True
        self.cache = None

    # -- the two passes -------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} must define backward(dout)")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _check_forward_done(self):
        """backward needs the cache that forward keeps; a clear error instead of a TypeError on None."""
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")

    def _accumulate(self, name: str, grad):
        """Add ``grad`` into ``self.grads[name]`` (skipped for a missing bias)."""
        if grad is not None:
            self.grads[name] += grad

    def add_param(self, name: str, value):
        """Register a parameter (on the current backend) and a zero gradient of its shape."""
        self.params[name] = asarray(value)
        self.grads[name] = self.params[name] * 0

    # -- structure ------------------------------------------------------------------
    def children(self) -> dict:
        """Sub-layers by name (empty for a leaf layer). Composite layers override this."""
        return {}

    def modules(self, prefix: str = ""):
        """Yield (dotted name, layer) for this layer and every layer below it."""
        yield prefix, self
        for name, child in self.children().items():
            yield from child.modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self):
        """Yield (dotted name, array) for every parameter."""
        for prefix, layer in self.modules():
            for key, value in layer.params.items():
                yield (f"{prefix}.{key}" if prefix else key), value

    def named_grads(self):
        """Yield (dotted name, gradient) in the order of ``named_parameters``."""
        for prefix, layer in self.modules():
            for key, value in layer.grads.items():
                yield (f"{prefix}.{key}" if prefix else key), value

    def parameters(self) -> list:
        """The (params, grads) dict pairs of every layer that has parameters: what optimizers take."""
        return [(layer.params, layer.grads) for _, layer in self.modules() if layer.params]

    def num_parameters(self) -> int:
        return sum(int(v.size) for _, v in self.named_parameters())

    # -- modes and gradients --------------------------------------------------------
    def train(self, mode: bool = True):
        for _, layer in self.modules():
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def eval_mode(self):
        """``with model.eval_mode(): ...`` runs a block in eval mode and restores the previous mode."""
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    def zero_grad(self):
        for _, layer in self.modules():
            for g in layer.grads.values():
                g[...] = 0

    def astype(self, dtype):
        """Convert every parameter, gradient and buffer to ``dtype`` (float64 for gradient checks)."""
        for _, layer in self.modules():
            for d in (layer.params, layer.grads, layer.buffers):
                for key in d:
                    d[key] = d[key].astype(dtype)
        return self

    # -- saving ---------------------------------------------------------------------
    def _named_state(self):
        for prefix, layer in self.modules():
            for d in (layer.params, layer.buffers):
                for key in d:
                    yield (f"{prefix}.{key}" if prefix else key), layer, d, key

    def state_dict(self) -> dict:
        """Every parameter and buffer as a NumPy array on the host, by dotted name."""
        return {name: to_numpy(d[key]).copy() for name, _, d, key in self._named_state()}

    def load_state_dict(self, state: dict):
        """Copy arrays from ``state`` into the parameters and buffers, checking names and shapes.

        Raises ValueError naming every missing or unexpected key, or the first
        parameter whose shape differs (a checkpoint from another model).
        """
        entries = {name: (d, key) for name, _, d, key in self._named_state()}
        missing = sorted(set(entries) - set(state))
        unexpected = sorted(set(state) - set(entries))
        if missing or unexpected:
            raise ValueError(
                f"state does not match {type(self).__name__}: missing {missing or 'none'}, "
                f"unexpected {unexpected or 'none'}"
            )
        for name, (d, key) in entries.items():
            value = state[name]
            if tuple(value.shape) != tuple(d[key].shape):
                raise ValueError(
                    f"parameter {name!r} has shape {tuple(d[key].shape)} in {type(self).__name__}, "
                    f"but the state holds shape {tuple(value.shape)}"
                )
        for name, (d, key) in entries.items():
            d[key][...] = asarray(state[name], dtype=d[key].dtype)
        return self

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""


class Sequential(Layer):
    """Layers applied one after the other; backward runs them in reverse order."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = list(layers)

    def children(self) -> dict:
        return {str(i): layer for i, layer in enumerate(self.layers)}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
