"""The NumPy/CuPy switch. (That functional code never imports numpy is checked in test_architecture.py.)"""

import numpy as np
import pytest

from minimal_seg import backend
from minimal_seg.functional.common import check_same_module


def test_default_is_numpy():
    assert backend.get_backend() in (*backend.BACKENDS, "strict")  # strict: pytest --backend strict
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
    before = backend.get_backend()
    with pytest.raises(backend.BackendUnavailableError, match="pip install cupy-cuda12x"):
        backend.set_backend("cupy")
    assert backend.get_backend() == before


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


# ------------------------------------------------------------------ the "strict" test backend (tests/strict.py)

def test_strict_arrays_are_a_backend_of_their_own():
    xp = backend._module_for("strict")
    host = np.arange(6.0).reshape(2, 3)
    a = xp.asarray(host)
    assert not isinstance(a, np.ndarray) and backend.array_module(a) is xp and backend.is_device_array(a)
    host[0, 0] = 99.0  # asarray is a copy, as host -> device is
    back = backend.to_numpy(a)
    assert type(back) is np.ndarray and back.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with backend.use_backend("strict"):
        assert backend.array_module(backend.asarray(host)) is xp
    with backend.use_backend("numpy"):
        assert backend.array_module(backend.asarray(a)) is np  # back to the host, explicitly


def _refused_mixes(xp, a, n):
    """What CuPy refuses with a TypeError: implicit host conversions and host/device mixing."""
    def assign():
        a[0] = n[0]

    return {
        "np.asarray": lambda: np.asarray(a),
        "np.testing": lambda: np.testing.assert_array_equal(a, n),
        "device + host": lambda: a + n,
        "host * device": lambda: n * a,
        "numpy ufunc": lambda: np.maximum(n, a),
        "xp function": lambda: xp.concatenate([a, n]),
        "xp.where": lambda: xp.where(n > 0, a, 0.0),
        "setitem": assign,
        "check_same_module": lambda: check_same_module("x", a, "w", n),
    }


@pytest.mark.parametrize("case", list(_refused_mixes(np, None, None)))
def test_strict_refuses_what_cupy_refuses(case):
    xp = backend._module_for("strict")
    host = np.ones((2, 3))
    with pytest.raises(TypeError, match="strict"):
        _refused_mixes(xp, xp.asarray(host), host)[case]()
    _refused_mixes(np, host.copy(), host)[case]()  # the same code with NumPy arrays raises nothing


def test_strict_allows_what_cupy_allows():
    xp = backend._module_for("strict")
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    total = a.sum()
    assert backend.array_module(total) is xp and total.shape == ()  # 0-d, not a NumPy scalar
    assert float(total) == 15.0 and int(a[1, 2]) == 5 and a.max().item() == 5.0 and f"{total:.1f}" == "15.0"
    b = (a * np.float32(2.0) + 1) ** 2
    b[np.array([0])] = a[1]  # NumPy arrays as indices are fine
    b += a
    assert b.tolist() == [[3.0, 5.0, 7.0], [52.0, 85.0, 126.0]]
    assert np.mean(a).item() == 2.5  # NumPy functions dispatch to the strict module


def test_strict_arange_casts_start_and_step_like_cupy():
    xp = backend._module_for("strict")
    with pytest.raises(OverflowError):
        xp.arange(4, 0, -1, dtype=xp.uint8)  # the bug CuPy found in pool._first_max
    assert xp.arange(4, 0, -1, dtype=xp.int32).astype(xp.uint8).tolist() == [4, 3, 2, 1]
    assert np.arange(4, 0, -1, dtype=np.uint8).tolist() == [4, 3, 2, 1]  # NumPy lets it through


def test_register_backend_keeps_the_built_in_names():
    with pytest.raises(ValueError, match="built-in"):
        backend.register_backend("cupy", np)
    with pytest.raises(ValueError, match="strict"):
        backend.set_backend("tpu")


# ------------------------------------------------------------------ TF32 (a fake CuPy: tests/fake_cupy.py)

import sys  # noqa: E402

from fake_cupy import install as install_fake_cupy  # noqa: E402

F32 = np.dtype(np.float32)


@pytest.fixture
def tf32_state(monkeypatch):
    """A clean TF32 setting, no CuPy loaded; whatever a test changes is undone."""
    monkeypatch.setattr(backend, "_tf32", None)
    monkeypatch.setattr(backend, "_tf32_applied", None)
    for name in ("cupy", "cupy._core", "cupy._core._routines_linalg"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    return monkeypatch


def test_set_tf32_sets_cupys_matmul_compute_type_and_use_tf32_restores_it(tf32_state):
    linalg = install_fake_cupy(tf32_state)
    assert backend.matmul_precision("cupy") == "FP32" and linalg.calls == []  # CuPy's own default, untouched
    assert backend.set_tf32(True) is None
    assert linalg.calls == [(F32, linalg.COMPUTE_TYPE_TF32)] and backend.matmul_precision("cupy") == "TF32"
    backend.set_tf32(True)
    assert len(linalg.calls) == 1  # handed to CuPy once per change
    with backend.use_tf32(False):
        assert linalg.calls[-1] == (F32, linalg.COMPUTE_TYPE_DEFAULT) and backend.matmul_precision("cupy") == "FP32"
    assert linalg.calls[-1] == (F32, linalg.COMPUTE_TYPE_TF32) and backend.tf32_setting() is True
    backend.set_tf32(None)  # back to CuPy's choice: TBD, and CuPy reads CUPY_TF32 lazily
    assert linalg.calls[-1] == (F32, linalg.COMPUTE_TYPE_TBD)
    tf32_state.setenv("CUPY_TF32", "1")
    assert backend.matmul_precision("cupy") == "TF32"  # reported as it runs, whoever asked for it
    assert backend.matmul_precision("numpy") == "FP32"


def test_tf32_reaches_cupy_when_it_is_first_used(tf32_state):
    backend.set_tf32(True)  # CuPy not loaded: nothing to hand it to yet
    linalg = install_fake_cupy(tf32_state)
    assert linalg.calls == []
    with backend.use_backend("cupy"):
        assert linalg.calls == [(F32, linalg.COMPUTE_TYPE_TF32)]
    tf32_state.setattr(backend, "_tf32_applied", None)  # as in a process that never called set_backend
    linalg.calls.clear()
    device_array = type("ndarray", (), {"__module__": "cupy"})()
    assert backend.array_module(device_array) is sys.modules["cupy"]
    assert linalg.calls == [(F32, linalg.COMPUTE_TYPE_TF32)]  # before the first op on a CuPy array


def test_an_older_gpu_keeps_fp32_and_the_report_says_so(tf32_state):
    install_fake_cupy(tf32_state, capability=75)
    with pytest.warns(UserWarning, match="compute capability 8.0"):
        backend.set_tf32(True)
    assert backend.matmul_precision("cupy") == "FP32"


def test_tf32_has_no_effect_on_numpy(tf32_state):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 300), dtype=np.float32), rng.standard_normal((300, 32), dtype=np.float32)
    plain = a @ b
    with backend.use_tf32(True):
        assert backend.tf32_setting() is True and backend.matmul_precision("numpy") == "FP32"
        np.testing.assert_array_equal(a @ b, plain)
        assert "cupy" not in sys.modules  # the switch does not load CuPy
    assert backend.tf32_setting() is None
    with pytest.raises(TypeError, match="True, False or None"):
        backend.set_tf32("yes")


def test_tf32_env_variable():
    import subprocess

    code = "import minimal_seg.backend as b; print(b.tf32_setting(), b.matmul_precision('numpy'))"
    for value, expected in (("1", "True FP32"), ("0", "False FP32"), ("", "None FP32")):
        out = subprocess.run([sys.executable, "-c", code], env={"MINIMAL_SEG_TF32": value, "PATH": ""},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
    bad = subprocess.run([sys.executable, "-c", code], env={"MINIMAL_SEG_TF32": "yes", "PATH": ""},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "MINIMAL_SEG_TF32 must be 1 (TF32), 0 (FP32) or unset" in bad.stderr
