"""The NumPy / CuPy switch.

Two rules make the same code run on a CPU and on a GPU:

1. An op runs where its input lives. Every functional op starts with
   ``xp = array_module(x)`` and calls ``xp.zeros``, ``xp.matmul``, ... on it,
   so a CuPy array in gives a CuPy array out, with no copy to the host.
2. New arrays (parameters, data batches) are created on the *current*
   backend: ``get_xp()`` returns its module, ``asarray`` moves data onto it.

The current backend is ``numpy`` unless the environment variable
``MINIMAL_SEG_BACKEND`` says ``cupy``, or ``set_backend("cupy")`` /
``with use_backend("cupy"):`` switch it.

Moving data between host and device is always explicit: ``to_numpy(x)``
brings an array to the host, ``asarray(x)`` sends it to the current backend.

``set_tf32(True)`` / ``with use_tf32(True):`` (or ``MINIMAL_SEG_TF32=1``) let
CuPy's float32 matrix products run in TF32 on the GPU's tensor cores: faster,
with a 10-bit mantissa instead of 23 (see docs/gpu.md). It is off unless
asked for, and it has no effect on NumPy, whose BLAS has no TF32.

``register_backend`` adds a backend under a new name; the tests use it for
"strict" (tests/strict.py), a CPU stand-in for CuPy whose arrays are not
NumPy arrays, so that host/device mixing fails in CI as it does on a GPU.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys

import numpy

BACKENDS = ("numpy", "cupy")

_CUPY_HELP = (
    "the CuPy backend needs CuPy and an NVIDIA GPU. Install the CuPy wheel "
    "that matches your CUDA version, e.g. `pip install cupy-cuda12x` for "
    "CUDA 12.x or `pip install cupy-cuda11x` for CUDA 11.x "
    "(or `pip install -e .[gpu]`), and check that `nvidia-smi` sees a GPU"
)


class BackendUnavailableError(RuntimeError):
    """Raised when CuPy is asked for but cannot be used here."""


def _import_cupy():
    """Return the cupy module if it is importable and sees a GPU, else raise."""
    try:
        import cupy
    except Exception as err:  # ImportError, or a broken CUDA install
        raise BackendUnavailableError(f"CuPy is not importable ({err}); {_CUPY_HELP}") from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        raise BackendUnavailableError(f"CuPy found no usable GPU ({err}); {_CUPY_HELP}") from err
    if count < 1:
        raise BackendUnavailableError(f"CuPy found no GPU; {_CUPY_HELP}")
    _apply_tf32(cupy)
    return cupy


def cupy_available() -> bool:
    """True when the CuPy backend can be used on this machine."""
    try:
        _import_cupy()
    except BackendUnavailableError:
        return False
    return True


_registered = {}  # name -> array module, added by register_backend


def register_backend(name: str, module) -> None:
    """Make ``module`` usable as backend ``name``; its arrays are ``module.ndarray`` instances.

    A testing facility: tests/conftest.py registers "strict" (tests/strict.py),
    a numpy-like module whose arrays refuse implicit host conversions as
    CuPy's do. ``array_module`` then returns ``module`` for its arrays, and
    ``set_backend(name)`` / ``use_backend(name)`` select it.
    """
    if name in BACKENDS:
        raise ValueError(f"{name!r} is a built-in backend")
    _registered[name] = module


def backend_names() -> tuple:
    """Every backend name ``set_backend`` knows: the built-in ones and the registered ones."""
    return BACKENDS + tuple(_registered)


def _module_for(name: str):
    if name in _registered:
        return _registered[name]
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {backend_names()}, got {name!r}")
    return numpy if name == "numpy" else _import_cupy()


_current = os.environ.get("MINIMAL_SEG_BACKEND", "numpy").strip().lower() or "numpy"
if _current not in BACKENDS:
    raise ValueError(f"MINIMAL_SEG_BACKEND must be one of {BACKENDS}, got {_current!r}")


def get_backend() -> str:
    """Name of the current backend: ``"numpy"`` or ``"cupy"`` (or a registered one)."""
    return _current


def set_backend(name: str) -> None:
    """Make ``name`` ("numpy", "cupy" or a registered one) the backend new arrays are created on."""
    global _current
    _module_for(name)  # fail here, with the install hint, not later
    _current = name


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("cupy"): ...`` switches the backend for a block."""
    previous = get_backend()
    set_backend(name)
    try:
        yield get_xp()
    finally:
        set_backend(previous)


def get_xp():
    """The array module (numpy or cupy) of the current backend."""
    return _module_for(_current)


def array_module(x):
    """The array module that owns ``x``: cupy for a CuPy array, else numpy.

    Ops call this on their input so they run where the input lives. (An
    array of a registered backend gets that backend's module.)
    """
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy

        _apply_tf32(cupy)
        return cupy
    for module in _registered.values():
        if isinstance(x, module.ndarray):
            return module
    return numpy


def is_device_array(x) -> bool:
    """True for a CuPy (GPU) array (or one of a registered backend)."""
    return array_module(x) is not numpy


def to_numpy(x):
    """Return ``x`` as a NumPy array on the host (an explicit device->host copy)."""
    if is_device_array(x):
        return x.get()
    return numpy.asarray(x)


def asarray(x, dtype=None):
    """Return ``x`` as an array of the current backend (host->device if cupy)."""
    xp = get_xp()
    if xp is numpy and is_device_array(x):
        x = x.get()
    return xp.asarray(x, dtype=dtype)


def synchronize(x=None) -> None:
    """Wait for queued GPU work (no-op on NumPy); used by timers and benchmarks."""
    if (x is not None and is_device_array(x)) or (x is None and _current == "cupy"):
        import cupy

        cupy.cuda.get_current_stream().synchronize()


# ------------------------------------------------------------------ TF32: CuPy's float32 matmuls on tensor cores

TF32_ENV_VAR = "MINIMAL_SEG_TF32"


def _tf32_from_env():
    text = os.environ.get(TF32_ENV_VAR, "").strip().lower()
    if not text:
        return None
    if text not in ("0", "1"):
        raise ValueError(f"{TF32_ENV_VAR} must be 1 (TF32), 0 (FP32) or unset, got {text!r}")
    return text == "1"


_tf32 = _tf32_from_env()  # True, False, or None: not set by us (CuPy decides: FP32 unless CUPY_TF32=1)
_tf32_applied = None  # the setting CuPy has: None until we hand it one (CuPy's own default)


def _cupy_linalg(cupy):
    """``cupy._core._routines_linalg``: where CuPy keeps the compute type of its matmuls (a private module)."""
    try:
        return importlib.import_module(f"{cupy.__name__}._core._routines_linalg")
    except ImportError as err:
        raise RuntimeError(f"CuPy {getattr(cupy, '__version__', '?')} has no cupy._core._routines_linalg: "
                           f"its matmul precision cannot be set or read here ({err})") from err


def _apply_tf32(cupy):
    """Hand the TF32 setting to CuPy: ``set_compute_type(float32, TF32 / DEFAULT / TBD)``, once per change.

    TBD (our setting None) gives the choice back to CuPy, which then reads
    ``CUPY_TF32`` on its next float32 matmul. On a GPU older than Ampere
    (compute capability < 8.0) CuPy warns and keeps FP32.
    """
    global _tf32_applied
    if _tf32_applied == _tf32:
        return
    linalg = _cupy_linalg(cupy)
    compute_type = {True: linalg.COMPUTE_TYPE_TF32, False: linalg.COMPUTE_TYPE_DEFAULT,
                    None: linalg.COMPUTE_TYPE_TBD}[_tf32]
    linalg.set_compute_type(numpy.float32, compute_type)
    _tf32_applied = _tf32


def set_tf32(enabled) -> bool | None:
    """Let CuPy's float32 matmuls (and so every conv: im2col + GEMM) use TF32 (True) or not (False).

    ``None`` leaves the choice to CuPy (FP32 unless ``CUPY_TF32=1``). Returns
    the previous setting. Applied to CuPy at once if CuPy is loaded, else when
    the CuPy backend is first used. NumPy is not affected: its matmuls are
    always FP32 (``matmul_precision("numpy")`` says so), so on a CPU the
    setting is recorded and does nothing.
    """
    global _tf32
    if enabled is not None and not isinstance(enabled, (bool, numpy.bool_)):
        raise TypeError(f"set_tf32: enabled must be True, False or None, got {enabled!r}")
    previous, _tf32 = _tf32, None if enabled is None else bool(enabled)
    if "cupy" in sys.modules:
        try:
            _import_cupy()  # applies it
        except BackendUnavailableError:
            pass  # no GPU: nothing to apply it to
    return previous


def tf32_setting() -> bool | None:
    """The TF32 setting: True, False, or None (CuPy's default: FP32 unless ``CUPY_TF32=1``)."""
    return _tf32


@contextlib.contextmanager
def use_tf32(enabled=True):
    """``with use_tf32(True): ...`` lets CuPy's float32 matmuls use TF32 for a block (no effect on NumPy)."""
    previous = set_tf32(enabled)
    try:
        yield
    finally:
        set_tf32(previous)


def matmul_precision(name=None) -> str:
    """How float32 matmuls run on backend ``name`` (default: the current one): "FP32", "TF32" (or CuPy's name).

    For CuPy this is read back from CuPy (``get_compute_type``), so it is
    what runs, whatever asked for it (``set_tf32``, ``CUPY_TF32``), and FP32
    where the GPU has no TF32. NumPy (and a registered backend) is "FP32".
    """
    name = name or _current
    if name != "cupy":
        return "FP32"
    linalg = _cupy_linalg(_import_cupy())
    compute_type = linalg.get_compute_type(numpy.float32)
    if compute_type == linalg.COMPUTE_TYPE_TF32:
        return "TF32"
    fp32 = (linalg.COMPUTE_TYPE_DEFAULT, linalg.COMPUTE_TYPE_PEDANTIC, linalg.COMPUTE_TYPE_FP32)
    return "FP32" if compute_type in fp32 else str(linalg.compute_type_to_str(compute_type))
