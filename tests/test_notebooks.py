"""The lecture notebooks: each one runs top to bottom, and is stored clean.

Each lecture is one source file, ``lectures/NN_*.py`` in jupytext's percent
format, paired with ``lectures/NN_*.ipynb`` (stored without outputs), so an
edit made in Jupyter (which writes both) or in an editor (then ``jupytext
--sync``) survives. Here every notebook is executed with nbclient in a
fresh "python3" kernel (cwd = lectures/, 120 s per cell), so a change in the
library that breaks a notebook, or one of its ``assert`` cells that reproduce
the lectures' hand examples, fails the suite. The wall time of each notebook is
printed and recorded as a junit property; the course promises under 60 s on a
2-core CPU, and a slower run gives a warning (CI machines vary too much for a
hard limit).

The kernel runs with one BLAS thread (unless the caller set the variables):
on a busy CI machine OpenBLAS threads that spin for a core make the small
matrix products of these notebooks ten times slower, on an idle one a single
thread costs little. It always uses the NumPy backend: the notebooks are CPU
material and pass NumPy arrays around.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

LECTURES = Path(__file__).resolve().parents[1] / "lectures"
NOTEBOOKS = sorted(LECTURES.glob("*.ipynb"))
CELL_TIMEOUT = 120  # seconds
PROMISED_SECONDS = 60  # per notebook, on a 2-core CPU


def _files(folder: Path) -> set:
    skip = {".ipynb_checkpoints", "__pycache__"}
    return {p.relative_to(folder) for p in folder.rglob("*") if not skip & set(p.parts)}


def test_every_lecture_has_a_notebook():
    assert len(NOTEBOOKS) >= 6, f"expected at least 6 notebooks in {LECTURES}, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch, record_property):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if var not in os.environ:
            monkeypatch.setenv(var, "1")
    monkeypatch.setenv("MINIMAL_SEG_BACKEND", "numpy")
    before = _files(LECTURES)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(LECTURES)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.get("output_type") == "error"]
    assert not errors
    assert _files(LECTURES) == before, "a notebook wrote files next to itself; write to a tempfile folder"
    if seconds > PROMISED_SECONDS:
        warnings.warn(f"{path.name} took {seconds:.0f} s, more than the {PROMISED_SECONDS} s promised")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}, cell {index}: stored with outputs"
            assert cell.execution_count is None, f"{path.name}, cell {index}: stored with an execution count"


def _cells(nb):
    return [(c.cell_type, c.source) for c in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_paired_with_its_percent_script(path):
    jupytext = pytest.importorskip("jupytext")
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no paired {script.name}: run `jupytext --set-formats ipynb,py:percent {path}`"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{path.name} is not paired: run `jupytext --set-formats ipynb,py:percent {path}`")
    assert _cells(jupytext.read(script)) == _cells(nb), (
        f"{script.name} and {path.name} differ: run `jupytext --sync {path}` (the newer file wins)")


def test_every_percent_script_has_its_notebook():
    scripts = sorted(p.stem for p in LECTURES.glob("[0-9]*.py"))
    assert scripts == [p.stem for p in NOTEBOOKS]
