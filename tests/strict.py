"""A test-only backend that refuses host/device mixing the way CuPy does, on a CPU.

Most CuPy bugs in a NumPy library are not numerical: a NumPy array meets a
GPU array in one operation, or ``np.asarray`` is called on a GPU array. CuPy
refuses both with a TypeError; NumPy cannot notice them, because everything
is a NumPy array. The "strict" backend makes them visible without a GPU. Its
arrays (``strict.ndarray``) keep a NumPy array inside but are not NumPy
arrays, and they follow CuPy's rules:

refused (TypeError, as on CuPy)
    ``np.asarray(a)`` and everything built on it (``np.testing``,
    matplotlib); a NumPy array next to a strict one in an operator, a
    NumPy function or a ``strict.*`` function (``a + n``, ``np.add(n, a)``,
    ``xp.concatenate([a, n])``, ``xp.where(n, a, 0)``, ``a[...] = n``,
    ``a.fill(n)`` with a non-scalar n).
allowed (as on CuPy)
    Python and NumPy scalars anywhere; ``float(a)``, ``int(a)``, ``bool(a)``,
    ``a.item()``, ``a.tolist()``, printing; NumPy arrays as *indices*;
    ``xp.asarray(n)`` / ``xp.array(n)`` (the explicit host -> device copy)
    and ``a.get()`` (device -> host).
like CuPy, unlike NumPy
    reductions and integer indexing give 0-d strict arrays, not NumPy
    scalars; ``arange`` casts ``start`` and ``step`` into ``dtype``
    (``arange(5, 0, -1, dtype=uint8)`` raises OverflowError); ``argsort``
    and ``sort`` are always stable.

Everything else is NumPy's: the numbers, dtype rules and error messages of
the ops themselves. ``register()`` makes this module the backend "strict" of
``minimal_seg.backend``; ``conftest.py`` calls it, so the ``xp`` fixture runs
every backend test on it, and ``pytest --backend strict`` makes it the
default of the whole run. See docs/gpu.md for what it cannot catch.
"""
from __future__ import annotations

import types

import numpy as np

from minimal_seg import backend

_TRANSFER_HINT = "move it explicitly with minimal_seg.backend.asarray (host -> device) or to_numpy (device -> host)"


def _unwrap(x, where):
    """A strict array -> its NumPy array; a NumPy array -> TypeError (no implicit host -> device copy)."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"{where}: a NumPy (host) array met a strict (device) array; {_TRANSFER_HINT}")
    if type(x) in (list, tuple):
        return type(x)(_unwrap(v, where) for v in x)
    return x


def _unwrap_index(key):
    """Indices may be NumPy arrays (CuPy copies them to the device); strict arrays are unwrapped."""
    if type(key) is ndarray:
        return key._a
    if type(key) is tuple:
        return tuple(_unwrap_index(k) for k in key)
    return key


def _wrap(result):
    """NumPy arrays and NumPy scalars -> strict arrays (0-d for scalars, as CuPy returns)."""
    if isinstance(result, (np.ndarray, np.generic)):
        return ndarray(np.asarray(result))
    if type(result) in (list, tuple):
        return type(result)(_wrap(r) for r in result)
    return result


def _call(func, args, kwargs, where):
    return _wrap(func(*_unwrap(args, where), **{k: _unwrap(v, where) for k, v in kwargs.items()}))


class ndarray:  # noqa: N801 (named like numpy.ndarray and cupy.ndarray)
    """An array on the pretend device: a NumPy array inside, reachable only through ``get()``."""

    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    def get(self):
        """The explicit device -> host copy (as ``cupy.ndarray.get``)."""
        return self._a.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion of a strict (device) array to a NumPy array is not allowed "
                        f"(CuPy refuses it too); {_TRANSFER_HINT}")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        result = _call(getattr(ufunc, method), inputs, kwargs, f"numpy.{ufunc.__name__}")
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.argsort, np.sort):  # CuPy dispatches to its own, stable ones
            kwargs = {**kwargs, "kind": "stable"}
        return _call(func, args, kwargs, f"numpy.{func.__name__}")

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_a", "ctypes", "data", "base", "flat"):
            raise AttributeError(f"strict arrays have no {name!r} (no host access)")
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)
        return lambda *args, **kwargs: _call(attr, args, kwargs, f"ndarray.{name}")

    def fill(self, value):
        if isinstance(value, np.ndarray) and value.ndim:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill (as on CuPy)")
        self._a.fill(value._a if type(value) is ndarray else value)

    def argsort(self, axis=-1, kind=None):
        return argsort(self, axis)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap_index(key)] = _unwrap(value, "ndarray.__setitem__")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __repr__(self):
        return f"strict.{self._a!r}"

    def __str__(self):
        return str(self._a)

    def __copy__(self):
        return ndarray(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())

    __hash__ = None


def _operators():
    """a + b, b + a, a += b, ... all go through the ufunc, hence through ``__array_ufunc__``'s check."""
    binary = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
              "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
              "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
              "lshift": np.left_shift, "rshift": np.right_shift}
    for name, ufunc in binary.items():
        setattr(ndarray, f"__{name}__", lambda self, other, f=ufunc: f(self, other))
        setattr(ndarray, f"__r{name}__", lambda self, other, f=ufunc: f(other, self))
        setattr(ndarray, f"__i{name}__", lambda self, other, f=ufunc: f(self, other, out=(self,)))
    compare = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
               "gt": np.greater, "ge": np.greater_equal}
    for name, ufunc in compare.items():
        setattr(ndarray, f"__{name}__", lambda self, other, f=ufunc: f(self, other))
    unary = {"neg": np.negative, "pos": np.positive, "abs": np.absolute, "invert": np.invert}
    for name, ufunc in unary.items():
        setattr(ndarray, f"__{name}__", lambda self, f=ufunc: f(self))


_operators()


class _Function:
    """A NumPy function or ufunc seen through the strict module: checked arguments, strict results."""

    __slots__ = ("_f",)

    def __init__(self, f):
        self._f = f

    def __call__(self, *args, **kwargs):
        return _call(self._f, args, kwargs, f"strict.{getattr(self._f, '__name__', '?')}")

    def __getattr__(self, name):  # ufunc methods (add.at, maximum.reduce) and attributes (nin)
        attr = getattr(self._f, name)
        return _Function(attr) if callable(attr) else attr


def asarray(x, dtype=None):
    """The explicit host -> device copy (a strict array of the right dtype is returned as it is)."""
    if type(x) is ndarray:
        return x if dtype is None or np.dtype(dtype) == x.dtype else x.astype(dtype)
    return ndarray(np.array(_unwrap_index(x), dtype=dtype, copy=True))


def array(x, dtype=None, copy=True):
    """Like ``asarray``, but always a new array."""
    return asarray(x, dtype).copy()


def arange(start, stop=None, step=1, dtype=None):
    """NumPy's arange, after CuPy's cast of ``start`` and ``step`` into ``dtype`` (which may overflow)."""
    if dtype is not None:
        cast = np.dtype(dtype).type
        cast(0 if stop is None else start)
        cast(step)
    return ndarray(np.arange(start, stop, step, dtype=dtype))


def argsort(a, axis=-1, kind=None):
    """Always stable, as CuPy's argsort is (NumPy's default quicksort is not)."""
    return ndarray(np.argsort(_unwrap(a, "strict.argsort"), axis=axis, kind="stable"))


def sort(a, axis=-1, kind=None):
    """Always stable, as CuPy's sort is."""
    return ndarray(np.sort(_unwrap(a, "strict.sort"), axis=axis, kind="stable"))


class _Module(types.ModuleType):
    """numpy's namespace, every function wrapped by ``_Function``; types, dtypes and constants as they are."""

    def __init__(self, name, numpy_module):
        super().__init__(name)
        self._numpy = numpy_module

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._numpy, name)
        if isinstance(attr, types.ModuleType):
            attr = _Module(f"{self.__name__}.{name}", attr)
        elif callable(attr) and not isinstance(attr, type):
            attr = _Function(attr)
        setattr(self, name, attr)  # once per name
        return attr


class _StrictNamespace(_Module):
    ndarray = ndarray
    asarray = staticmethod(asarray)
    array = staticmethod(array)
    arange = staticmethod(arange)
    argsort = staticmethod(argsort)
    sort = staticmethod(sort)


module = _StrictNamespace("strict", np)


def register():
    """Make ``module`` the backend "strict" of minimal_seg.backend (idempotent)."""
    backend.register_backend("strict", module)
    return module

