"""Fixtures shared by every test file.

``xp`` runs a test once per backend: NumPy; "strict" (tests/strict.py), a
CPU stand-in for CuPy whose arrays refuse implicit host conversions, so that
host/device mixing fails here as it would on a GPU; and CuPy when it is
importable and sees a GPU (skipped cleanly otherwise). Tests build their data
with NumPy and send it over with ``xp.asarray``.

The backend that everything else runs on (arrays made by layers, datasets
sent to the device) is numpy, or what ``MINIMAL_SEG_BACKEND`` says, or
``--backend``: ``python -m pytest --backend strict`` runs the whole suite as
a student with a GPU would, without one.
"""
import numpy as np
import pytest
import strict

from minimal_seg import backend
from minimal_seg.threads import pick_threads

# One BLAS thread per test process: pytest-xdist already runs a process per core, and on a busy
# machine two BLAS threads were measured slower than one (minimal_seg.threads).
pick_threads(1)

strict.register()

XP_BACKENDS = ("numpy", "strict", "cupy")


def pytest_addoption(parser):
    parser.addoption("--backend", choices=XP_BACKENDS, default=None,
                     help="the default backend of the whole run (numpy, strict or cupy; default: "
                          "MINIMAL_SEG_BACKEND or numpy)")


DEFAULT_BACKEND = pytest.StashKey[str]()


def pytest_configure(config):
    name = config.getoption("--backend")
    if name:
        backend.set_backend(name)
    config.stash[DEFAULT_BACKEND] = backend.get_backend()


def pytest_report_header(config):
    return f"minimal_seg default backend: {backend.get_backend()}"


@pytest.fixture(autouse=True)
def _default_backend(request):
    """Every test starts on the run's default backend, and does not leak another one.

    ``train(config)`` switches to ``config.backend`` and ``cli.main([..., "--backend", "numpy"])``
    does too, also from module-scoped fixtures, which run before this one.
    """
    default = request.config.stash[DEFAULT_BACKEND]
    if backend.get_backend() != default:
        backend.set_backend(default)
    yield
    if backend.get_backend() != default:
        backend.set_backend(default)


@pytest.fixture(params=XP_BACKENDS)
def xp(request):
    name = request.param
    if name == "cupy" and not backend.cupy_available():
        pytest.skip("CuPy backend: CuPy or an NVIDIA GPU is not available here")
    with backend.use_backend(name) as module:
        yield module


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def kernel_emulator(request):
    """Run minimal_seg's CUDA kernels on NumPy and strict arrays too, by tests/cuda_emulator.py (needs g++).

    With the ``xp`` fixture on cupy the real kernels run and nothing is emulated, so a GPU machine
    without g++ still runs the cupy cases.
    """
    import cuda_emulator

    from minimal_seg.functional import kernels

    xp = request.getfixturevalue("xp") if "xp" in request.fixturenames else None
    if xp is not None and xp.__name__ == "cupy":
        with kernels.use_kernels(True):
            yield cuda_emulator
        return
    if not cuda_emulator.compiler_available():
        pytest.skip("the CUDA kernel emulator needs g++")
    for name in ("numpy", "strict"):
        kernels.register_kernel_factory(name, cuda_emulator.emulator_factory)
    try:
        with kernels.use_kernels(True):
            yield cuda_emulator
    finally:
        for name in ("numpy", "strict"):
            kernels.register_kernel_factory(name, None)
