"""The NumPy/CuPy switch. (That functional code never imports numpy is checked in test_architecture.py.)"""

import numpy as np
import pytest

from minimal_seg import backend


def test_default_is_numpy():
    assert backend.get_backend() in backend.BACKENDS
    with backend.use_backend("numpy") as xp:
        assert xp is np
        assert backend.get_xp() is np


def test_use_backend_restores(xp):
    name = backend.get_backend()
    with backend.use_backend("numpy"):
        assert backend.get_backend() == "numpy"
    assert backend.get_backend() == name


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        backend.set_backend("jax")


def test_array_module_follows_the_array(xp):
    a = xp.zeros(3)
    assert backend.array_module(a) is xp
    assert backend.array_module(np.zeros(3)) is np
    assert isinstance(backend.to_numpy(a), np.ndarray)
    assert backend.array_module(backend.asarray(np.zeros(3))) is xp


def test_cupy_missing_gives_one_clear_error():
    if backend.cupy_available():
        pytest.skip("CuPy works here")
    with pytest.raises(backend.BackendUnavailableError, match="pip install cupy-cuda12x"):
        backend.set_backend("cupy")
    assert backend.get_backend() == "numpy"


def test_env_variable_selects_backend(tmp_path):
    import subprocess
    import sys

    code = "import minimal_seg.backend as b; print(b.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], env={"MINIMAL_SEG_BACKEND": "numpy", "PATH": ""},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
    bad = subprocess.run([sys.executable, "-c", code], env={"MINIMAL_SEG_BACKEND": "tpu", "PATH": ""},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "MINIMAL_SEG_BACKEND must be one of" in bad.stderr
