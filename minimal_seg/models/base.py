"""What every model shares: its config record and ``summary``.

A model is a ``Layer`` whose ``forward`` reads like the architecture diagram
and whose ``backward`` is written by hand, in the reverse order of forward.
Where a tensor was used twice (a skip connection), the gradients that come
back along both paths are summed, never overwritten.
"""
from __future__ import annotations

from ..backend import get_xp
from ..nn import Layer


class Model(Layer):
    """Base of the models: keeps the constructor arguments in ``config`` (saved in checkpoints)."""

    name = "model"

    def __init__(self, **config):
        super().__init__()
        self.config = dict(config)

    def summary(self, input_shape, print_fn=print):
        """Print each leaf layer's output shape and parameter count for an input of ``input_shape``.

        Runs one forward pass on zeros in eval mode; returns the rows
        (name, layer type, output shape, parameters).
        """
        rows = []
        leaves = [(name, layer) for name, layer in self.modules() if not layer.children()]
        for name, layer in leaves:
            def recording(*args, _name=name, _layer=layer, _forward=layer.forward, **kwargs):
                out = _forward(*args, **kwargs)
                rows.append((_name, type(_layer).__name__, tuple(out.shape),
                             sum(int(v.size) for v in _layer.params.values())))
                return out

            layer.forward = recording
        try:
            with self.eval_mode():
                self.forward(get_xp().zeros(input_shape, dtype=get_xp().float32))
        finally:
            for name, layer in leaves:
                del layer.forward  # back to the class's method
        width = max(len(r[0]) for r in rows) + 2
        print_fn(f"{type(self).__name__} {self.config}")
        print_fn(f"{'layer':<{width}}{'type':<18}{'output shape':<22}{'params':>10}")
        for name, kind, shape, count in rows:
            print_fn(f"{name:<{width}}{kind:<18}{str(shape):<22}{count:>10,}")
        print_fn(f"total parameters: {self.num_parameters():,}")
        return rows
