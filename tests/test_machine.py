"""The machine record every timing carries: what it holds, and that it sits at the bottom of the layers."""
import ast
import inspect

import pytest

from minimal_seg import machine


def test_machine_info_names_what_changes_the_numbers(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    info = machine.machine_info("numpy")
    for key in ("python", "platform", "cpu", "cpu_count", "numpy", "backend", "env", "blas"):
        assert key in info
    assert set(info["env"]) == set(machine.ENV_VARS) and info["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert "OPENBLAS_NUM_THREADS=1" in machine.env_text(info) and "OMP_NUM_THREADS" not in machine.env_text(info)
    assert machine.env_text({"env": {"OMP_NUM_THREADS": None}}) == "none set"
    assert isinstance(machine.cpu_model(), str) and machine.cpu_model()


def test_machine_imports_nothing_from_the_library():
    tree = ast.parse(inspect.getsource(machine))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert imported and not any(name.startswith("minimal_seg") for name in imported)
    assert all(n.level == 0 for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))


@pytest.mark.parametrize("coretype, avx512, warns", [
    ("Haswell", True, True),      # AVX-512 there, AVX2 kernels forced: the course machine's setting
    ("Zen", True, True),
    ("SkylakeX", True, False),    # an AVX-512 kernel set
    ("skylakex", True, False),
    ("Haswell", False, False),    # no AVX-512 to miss
    ("Haswell", None, False),     # unknown CPU flags: no claim
    (None, True, False),          # OpenBLAS picks by itself
])
def test_blas_kernel_warning_only_when_avx512_is_forced_off(coretype, avx512, warns):
    info = {"env": {"OPENBLAS_CORETYPE": coretype}, "cpu_avx512": avx512}
    warning = machine.blas_kernel_warning(info)
    assert (warning is not None) == warns
    if warns:
        assert f"OPENBLAS_CORETYPE={coretype}" in warning and "unset it" in warning


def test_machine_info_records_the_cpu_flags():
    assert machine.machine_info()["cpu_avx512"] in (True, False, None)


@pytest.mark.parametrize("raw", [b"NVIDIA H200", "NVIDIA H200"])
def test_gpu_name_decodes_what_cuda_reports(raw):
    from types import SimpleNamespace

    runtime = SimpleNamespace(getDeviceProperties=lambda device: {"name": raw} if device == 1 else {})
    fake_cupy = SimpleNamespace(cuda=SimpleNamespace(runtime=runtime))
    assert machine.gpu_name(fake_cupy, 1) == "NVIDIA H200"
