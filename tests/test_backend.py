"""The NumPy/CuPy switch, and the rule that functional code never calls numpy directly."""
import ast
import pathlib

import numpy as np
import pytest

import minimal_seg
from minimal_seg import backend

FUNCTIONAL = pathlib.Path(minimal_seg.__file__).parent / "functional"


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


def _numpy_uses(path):
    """Names under which a module imports numpy (functional code must use the array module)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "numpy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numpy":
            found.append(node.module)
    return found


@pytest.mark.parametrize("path", sorted(FUNCTIONAL.glob("*.py")), ids=lambda p: p.name)
def test_functional_never_imports_numpy(path):
    assert _numpy_uses(path) == [], f"{path.name} imports numpy; use xp = array_module(x)"


def test_the_numpy_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy as np\nfrom numpy.lib import stride_tricks\n")
    assert _numpy_uses(bad) == ["numpy", "numpy.lib"]
