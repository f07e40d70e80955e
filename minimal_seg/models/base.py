"""What every model shares: pad and crop around the body, its config record and ``summary``.

A model's body halves the size of its input several times (``output_stride``
= 2**depth, or 32 for FCN), so it needs H and W divisible by that. Every
model runs the same three steps, written once here::

    forward:   x (N, C, H, W) ─ pad to multiples of output_stride ─ forward_body ─ crop to (H, W) ─ logits
    backward:  dout ─ crop's backward (zeros back) ─ backward_body ─ pad's backward (crop) ─ dx (N, C, H, W)

The zeros go at the bottom/right (``functional.pad_to_multiple_forward``),
so the top-left H x W of the logits belong to the input's pixels.

A model's ``forward_body`` reads like the architecture diagram and its
``backward_body`` is written by hand, in the reverse order of forward_body.
Where a tensor was used twice (a skip connection), the gradients that come
back along both paths are summed, never overwritten.
"""
from __future__ import annotations

from .. import functional as F
from ..backend import get_xp
from ..functional.common import Cache
from ..nn import Layer


class Model(Layer):
    """Base of the models: pads and crops around the body; keeps the constructor arguments in ``config``.

    A subclass sets ``output_stride`` (input sizes are padded up to multiples
    of it) and defines ``forward_body(x) -> logits`` and
    ``backward_body(dout) -> dx`` on the padded size. After a forward pass,
    ``cache.pad`` and ``cache.crop`` are the caches of the pad and the crop.
    """

    name = "model"
    output_stride = 1  # a body that keeps every size needs no padding

    def __init__(self, **config):
        super().__init__()
        self.config = dict(config, model=self.name)  # build_model renames it by its table key (e.g. "fcn8s")

    def forward(self, x):
        """x (N, C, H, W) -> logits (N, K, H, W): pad, ``forward_body``, crop back to (H, W)."""
        padded, pad = F.pad_to_multiple_forward(x, self.output_stride)
        logits, crop = F.crop_forward(self.forward_body(padded), x.shape[2:])
        self.cache = Cache(pad=pad, crop=crop)
        return logits

    def backward(self, dout):
        """dout (N, K, H, W) -> dx (N, C, H, W): the three steps of ``forward`` undone in reverse."""
        self._check_forward_done()
        d = self.backward_body(F.crop_backward(dout, self.cache.crop))
        return F.pad_to_multiple_backward(d, self.cache.pad)

    def forward_body(self, x):
        """The architecture: x (N, C, H', W') padded -> logits (N, K, H', W'). Each model defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward_body(x)")

    def backward_body(self, dout):
        """dout (N, K, H', W') -> dx (N, C, H', W'), by hand, in the reverse order of ``forward_body``."""
        raise NotImplementedError(f"{type(self).__name__} must define backward_body(dout)")

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
