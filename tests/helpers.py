"""Helpers for tests: random data, the PyTorch oracle, tolerances."""
import numpy as np
import pytest

from minimal_seg.backend import to_numpy

# float64 agrees with PyTorch to 1e-10, float32 to 1e-4 (relative to the largest entry).
TOL = {np.float64: 1e-10, np.float32: 1e-4}


# The PyTorch oracle is optional for a user (its CUDA build is 3 GB on Linux); CI always installs it.
TORCH_CPU_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
NO_TORCH = f"the PyTorch oracle is not installed; install its CPU build (about 200 MB) with: {TORCH_CPU_INSTALL}"


def torch_or_skip():
    """Import torch (the oracle) or skip the test, saying how to install the CPU build."""
    return pytest.importorskip("torch", reason=NO_TORCH)


def rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def assert_close(ours, theirs, dtype=np.float64, tol=None):
    """Max abs difference <= tol * max(1, max |theirs|), on the host."""
    ours = to_numpy(ours)
    theirs = theirs.detach().cpu().numpy() if hasattr(theirs, "detach") else to_numpy(theirs)
    assert ours.shape == theirs.shape, f"shape {ours.shape} != {theirs.shape}"
    tol = TOL[np.dtype(dtype).type] if tol is None else tol
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    err = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max(initial=0.0))
    assert err <= tol * scale, f"max abs error {err:.3e} > {tol:.0e} * {scale:.3g}"


def to_torch(a, requires_grad=False):
    torch = torch_or_skip()
    t = torch.from_numpy(np.ascontiguousarray(to_numpy(a)))
    return t.requires_grad_(requires_grad)


def dot(a, b):
    """<a, b> as a float, on the host."""
    return float(to_numpy((a * b).sum()))
