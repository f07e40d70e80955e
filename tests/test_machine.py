"""The machine record every timing carries: what it holds, and that it sits at the bottom of the layers."""
import ast
import inspect

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
