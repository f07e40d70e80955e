"""What the tests of the CUDA kernels share: count launches, run an op with kernels off, compare on the host.

``count_launches(xp)`` wraps the kernel factory of ``xp``'s arrays (the CPU
emulator for numpy and strict, cupy.RawKernel on a GPU), so a test can show
that an op really took its kernel: a test that passes with the kernel
bypassed would prove nothing about it.
"""
import collections
import contextlib
import shutil

import numpy as np
import pytest

from minimal_seg.backend import to_numpy
from minimal_seg.functional import kernels

# float64 to 1e-12, float32 to a few ulp: exp / log round differently in each library (and on a GPU)
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-6}


@contextlib.contextmanager
def count_launches(xp):
    """Yield a Counter {kernel name: launches} of ``xp``'s arrays while the block runs."""
    counts = collections.Counter()
    base = kernels._factory(xp)
    assert base is not None, f"no kernel factory for {xp.__name__}: use the kernel_emulator fixture"

    def counting_factory(source, name):
        kernel = base(source, name)

        def run(grid, block, args):
            counts[name] += 1
            kernel(grid, block, args)

        return run

    kernels.register_kernel_factory(xp.__name__, counting_factory)
    try:
        yield counts
    finally:
        kernels.register_kernel_factory(xp.__name__, None if xp.__name__ == "cupy" else base)  # cupy: built in


def reference(op, *args, **kwargs):
    """``op`` run with the kernels off: the array-module code a student reads."""
    with kernels.use_kernels(False):
        return op(*args, **kwargs)


def assert_same(ours, theirs, zero_signs=True):
    """Equal values (NaN equal to NaN), shape and dtype, and (``zero_signs``) the same sign on every zero."""
    ours, theirs = to_numpy(ours), to_numpy(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (ours.dtype, ours.shape, theirs.dtype,
                                                                      theirs.shape)
    np.testing.assert_array_equal(ours, theirs)
    if zero_signs and ours.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(ours[ours == 0]), np.signbit(theirs[ours == 0]))


def assert_close(ours, theirs, scale=None):
    """|ours - theirs| <= RTOL * scale everywhere (scale: max(1, max |theirs|) unless given), same dtype."""
    ours, theirs = to_numpy(ours), to_numpy(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    scale = max(1.0, float(np.abs(theirs).max(initial=0))) if scale is None else scale
    err = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max(initial=0))
    assert err <= RTOL[ours.dtype] * scale, f"max abs error {err:.3e} > {RTOL[ours.dtype]:.0e} * {scale:.3g}"


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is not installed")


def assert_nvcc_compiles(source):
    """nvcc compiles ``source`` for a GPU (as NVRTC would on CuPy; see cuda_emulator.nvcc_ptx)."""
    import cuda_emulator

    ok, log = cuda_emulator.nvcc_ptx(source)
    assert ok, log
