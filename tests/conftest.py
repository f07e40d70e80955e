"""Fixtures shared by every test file.

``xp`` runs a test once per available backend: NumPy always, CuPy when it is
importable and sees a GPU (skipped cleanly otherwise). Tests build their data
with NumPy and send it over with ``xp.asarray``.
"""
import numpy as np
import pytest

from minimal_seg import backend
from minimal_seg.functional._threads import pick_threads

# One BLAS thread per test process: pytest-xdist already runs a process per core, and on a busy
# machine two BLAS threads were measured slower than one (minimal_seg.functional._threads).
pick_threads(1)


@pytest.fixture(params=list(backend.BACKENDS))
def xp(request):
    name = request.param
    if name == "cupy" and not backend.cupy_available():
        pytest.skip("CuPy backend: CuPy or an NVIDIA GPU is not available here")
    with backend.use_backend(name) as module:
        yield module


@pytest.fixture
def rng():
    return np.random.default_rng(0)
