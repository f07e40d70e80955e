"""Small helpers every functional op shares: the cache and argument checks.

Every check raises ONE error that names the argument, says what was expected
and what came: TypeError for the wrong kind of thing (a list instead of an
array, float16, a float where an int belongs), ValueError for the right kind
with a wrong value (a shape, a size below 1, NaN). The checks look only at
shapes, dtypes and Python numbers: none reads array contents (that would
cost a device->host sync on the GPU), so NaN *inside* an array flows through
to NaN outputs, as in PyTorch.
"""
from __future__ import annotations

import math
import numbers
from types import SimpleNamespace

# The floating-point dtypes the ops compute in: float32 to train, float64 to check gradients.
FLOAT_DTYPES = ("float32", "float64")


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
    """Raise TypeError unless ``x`` holds float32 or float64 numbers (float16 is too coarse for the checks)."""
    check_array(x, name)
    if x.dtype.name not in FLOAT_DTYPES:
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
    """Raise unless the upstream gradient is a float32/float64 array with the shape of the forward output."""
    check_float(dout, "dout")
    if tuple(dout.shape) != tuple(shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(shape)}, got {tuple(dout.shape)}")


def check_int_at_least(value, name: str, low: int) -> int:
    """``value`` as an int if it is an integer >= ``low`` (not a bool, not a float), else raise."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_number(value, name: str, low=None, high=None, strict: bool = False) -> float:
    """``value`` as a float if it is a finite real number in [low, high] ((low, high] with ``strict``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    below = low is not None and (value <= low if strict else value < low)
    if not math.isfinite(value) or below or (high is not None and value > high):
        bounds = [f"{'>' if strict else '>='} {low}" if low is not None else None,
                  f"<= {high}" if high is not None else None]
        expected = " and ".join(b for b in bounds if b)
        raise ValueError(f"{name} must be a finite number{' ' + expected if expected else ''}, got {value!r}")
    return float(value)


def check_bool(value, name: str) -> bool:
    """Raise TypeError unless ``value`` is True or False (a flag, not a number)."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    """``axis`` as an int in [-ndim, ndim), else raise."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} must lie in [-{ndim}, {ndim}) for a {ndim}-D array, got {axis}")
    return int(axis)


def window(start: int, step: int, count: int) -> slice:
    """Slice that picks ``count`` pixels start, start+step, ... (one kernel offset, all windows)."""
    return slice(start, start + step * (count - 1) + 1, step)
