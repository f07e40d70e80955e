"""Small helpers every functional op shares: the cache and argument checks."""
from __future__ import annotations

from types import SimpleNamespace


class Cache(SimpleNamespace):
    """What a forward pass keeps for its backward pass, read as attributes.

    ``out, cache = max_pool2d_forward(x, 2)`` then ``cache.indices``.
    """


def check_array(x, name: str):
    """Raise TypeError unless ``x`` is a NumPy or CuPy array."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "ndim")):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(x).__name__}")


def check_ndim(x, ndim: int, name: str, layout: str = ""):
    """Raise ValueError unless ``x`` has ``ndim`` dimensions (layout names them)."""
    check_array(x, name)
    if x.ndim != ndim:
        what = f" ({layout})" if layout else ""
        raise ValueError(f"{name} must be {ndim}-D{what}, got shape {tuple(x.shape)}")


def check_float(x, name: str):
    """Raise TypeError unless ``x`` holds floating-point numbers."""
    check_array(x, name)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array (float32 or float64), got dtype {x.dtype}")


def check_int(x, name: str):
    """Raise TypeError unless ``x`` holds integers (labels, indices)."""
    check_array(x, name)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {x.dtype}")


def check_same_module(name_a: str, a, name_b: str, b):
    """Raise TypeError when one array is on the GPU and the other is not (no silent copies)."""
    from ..backend import array_module

    if array_module(a) is not array_module(b):
        raise TypeError(
            f"{name_a} and {name_b} live on different backends "
            f"({type(a).__module__.split('.')[0]} vs {type(b).__module__.split('.')[0]}); "
            "move them explicitly with minimal_seg.backend.asarray or to_numpy"
        )


def check_nchw(x, name: str = "x"):
    """Raise unless ``x`` is a 4-D floating-point (N, C, H, W) array."""
    check_ndim(x, 4, name, "N, C, H, W")
    check_float(x, name)


def check_dout(dout, shape):
    """Raise unless the upstream gradient has the shape of the forward output."""
    check_array(dout, "dout")
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(shape)}, got {tuple(dout.shape)}")


def window(start: int, step: int, count: int) -> slice:
    """Slice that picks ``count`` pixels start, start+step, ... (one kernel offset, all windows)."""
    return slice(start, start + step * (count - 1) + 1, step)
