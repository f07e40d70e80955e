"""Hand-written CUDA kernels for the CuPy backend: one launch where the array-module path takes many.

On a GPU a small op costs a kernel launch (a few microseconds) whatever its
size, so an op written as a loop of array expressions (im2col: one strided
copy per kernel offset) is launch-bound at the course's sizes. Each kernel
here does such an op in **one launch**: one CUDA thread per output element,
which reads what it needs (a gather), so no two threads write one address
and the result does not depend on the order threads run in.

The array-module code in ``functional/`` stays the reference a student
reads; a kernel is the named fast path beside it, tested equal to it
(``tests/test_kernels_*.py``). Where it runs:

- on CuPy arrays, when kernels are on (the default; ``use_kernels(False)``
  or ``MINIMAL_SEG_CUDA_KERNELS=0`` turn them off, e.g. to time both);
- in the tests, also on NumPy arrays: ``tests/cuda_emulator.py`` compiles
  the same CUDA C source with a C++ compiler and runs every thread of the
  grid one after another, and ``nvcc`` (when installed) compiles it for a
  GPU. Neither runs it on a GPU: that needs CuPy and an NVIDIA GPU.

A kernel source is CUDA C with ``extern "C" __global__`` kernels, no
``#include`` (NVRTC, which CuPy compiles with, has no standard headers),
no shared memory and no ``__syncthreads`` (the emulator runs threads one by
one). Scalars are passed as ``xp.int32`` / ``xp.float32``, which are the C
``int`` / ``float`` the kernel declares.
"""
from __future__ import annotations

import contextlib
import os

from ...backend import array_module

__all__ = ["kernels_enabled", "use_kernels", "set_kernels", "launch", "register_kernel_factory",
           "for_float_types", "typed_name", "KERNELS_ENV_VAR", "BLOCK"]

KERNELS_ENV_VAR = "MINIMAL_SEG_CUDA_KERNELS"
BLOCK = 256  # threads per block: a multiple of the warp size (32) that every NVIDIA GPU runs well
_MAX_THREADS = 2**31 - 1  # the kernels index threads and array elements with int



def _enabled_from_env():
    """MINIMAL_SEG_CUDA_KERNELS: 1 (the default) or 0; anything else is one clear error."""
    text = os.environ.get(KERNELS_ENV_VAR, "1").strip().lower() or "1"
    if text not in ("0", "1"):
        raise ValueError(f"{KERNELS_ENV_VAR} must be 1 (CUDA kernels on CuPy) or 0 (the array code only), "
                         f"got {text!r}")
    return text == "1"


_enabled = _enabled_from_env()
_factories = {}  # array module name -> factory(source, name) -> kernel(grid, block, args)
_compiled = {}  # (module name, source, kernel name) -> kernel


_C_FLOAT = {"float32": "float", "float64": "double"}  # the C type of each dtype the ops compute in


def for_float_types(template: str) -> str:
    """The CUDA source ``template`` written out twice: ``scalar_t`` = float, then double.

    An ``extern "C"`` kernel cannot be a C++ template (CuPy finds it by its
    name), so a kernel named ``name_scalar_t`` in the template becomes two,
    ``name_float`` and ``name_double``; ``typed_name(name, dtype)`` picks the
    one for an array's dtype. Helpers that do not mention ``scalar_t`` belong
    in a separate string (written twice they would be defined twice).
    """
    return "".join(template.replace("scalar_t", c_type) for c_type in _C_FLOAT.values())


def typed_name(name: str, dtype) -> str:
    """``name_float`` for float32, ``name_double`` for float64 (the kernels of ``for_float_types``)."""
    return f"{name}_{_C_FLOAT[dtype.name]}"


def _cupy_factory(source, name):
    """cupy.RawKernel: compiled by NVRTC on first launch, cached on disk by CuPy."""
    import cupy

    return cupy.RawKernel(source, name, options=("--std=c++14",))


def register_kernel_factory(module_name, factory):
    """Run kernels on arrays of ``module_name`` with ``factory(source, name)``; None removes it.

    The CuPy factory is built in. The tests register the CPU emulator for
    "numpy" (and "strict") to run the kernels without a GPU.
    """
    if factory is None:
        _factories.pop(module_name, None)
    else:
        _factories[module_name] = factory
    for key in [key for key in _compiled if key[0] == module_name]:
        del _compiled[key]


def _factory(xp):
    name = xp.__name__
    if name in _factories:
        return _factories[name]
    return _cupy_factory if name == "cupy" else None


def kernels_enabled(x) -> bool:
    """True when ops on ``x`` run their CUDA kernel: kernels are on and ``x``'s module has a factory."""
    return _enabled and _factory(array_module(x)) is not None


def set_kernels(enabled: bool) -> bool:
    """Turn the kernels on or off for the whole process; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


@contextlib.contextmanager
def use_kernels(enabled: bool = True):
    """``with use_kernels(False):`` runs the array-module path on CuPy too (to compare or time it)."""
    previous = set_kernels(enabled)
    try:
        yield
    finally:
        set_kernels(previous)


def launch(source, name, n_threads, args, like):
    """Run kernel ``name`` of ``source`` on ``n_threads`` threads, one per output element.

    ``args`` are device arrays (C-contiguous) and ``xp.int32`` / ``xp.float32``
    scalars, in the order of the kernel's parameters; ``like`` is an array
    that says which array module (and so which factory) runs it. Thread i
    of the grid is ``blockIdx.x * blockDim.x + threadIdx.x``; the last block
    may run past ``n_threads``, so every kernel starts with
    ``if (i >= n) return;``.
    """
    if n_threads > _MAX_THREADS:
        raise ValueError(f"{name}: {n_threads} threads do not fit the kernels' int index (at most {_MAX_THREADS})")
    if n_threads == 0:
        return
    xp = array_module(like)
    factory = _factory(xp)
    if factory is None:
        raise RuntimeError(f"no CUDA kernel factory for {xp.__name__} arrays; check kernels_enabled(x) first")
    for a in args:  # checked before anything is compiled
        if hasattr(a, "flags") and getattr(a, "ndim", 0) and not a.flags.c_contiguous:
            raise ValueError(f"{name}: array arguments must be C-contiguous")
        if getattr(a, "ndim", 0) and a.size > _MAX_THREADS:
            raise ValueError(f"{name}: an array of {a.size} elements does not fit the kernels' int index "
                             f"(at most {_MAX_THREADS})")
    key = (xp.__name__, source, name)
    kernel = _compiled.get(key)
    if kernel is None:
        kernel = _compiled[key] = factory(source, name)
    kernel(((n_threads + BLOCK - 1) // BLOCK,), (BLOCK,), tuple(args))
