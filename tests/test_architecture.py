"""DESIGN's layering, enforced over every file of minimal_seg/ (the one place these rules are tested).

The library is read bottom-up, each layer built only on the ones below it::

    backend <- functional <- nn <- models <- train <- cli

``LAYERS`` below is that chain, one row per layer, with every other module
placed where its imports put it: in the lowest row above everything it
imports (a new module is placed by the same rule). The tools that measure the
library (bench, compare) sit above train. The rules, checked on the source
with ``ast`` (absolute and relative imports, at module level and inside
functions):

1. every top-level module or package of minimal_seg/ has a row in LAYERS;
2. a module imports from its own row and the rows below, never from above
   (modules of one row may import each other);
3. nothing in functional/ imports numpy: an op takes its array module from
   its input (``xp = array_module(x)``), so it runs on CuPy too.

Each rule is shown to fail on planted source (a temporary tree or module text).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minimal_seg

PACKAGE = Path(minimal_seg.__file__).parent

# Bottom first. A unit is a top-level module or package of minimal_seg/ ("minimal_seg" is its __init__.py).
LAYERS = [
    ("bottom", ("minimal_seg", "backend", "machine", "threads")),  # the array module; the machine; BLAS threads
    ("functional", ("functional",)),                             # pure forward/backward pairs
    ("beside functional", ("gradcheck", "metrics", "optim", "data", "viz", "conv_arithmetic",
                           "op_catalogue")),                     # on arrays and ops, no layers
    ("nn", ("nn",)),                                             # layers with parameters
    ("models", ("models", "classical")),                         # architectures; classical methods
    ("above models", ("checkpoint", "assignments")),             # saved models; graded exercises
    ("train", ("train", "train_detect", "train_instance")),    # the training loops
    ("tools", ("bench", "compare", "gpu_check")),                # measure or verify the library, call train
    ("cli", ("cli", "__main__")),                                # the command line
]
ROW = {unit: row for row, (_, units) in enumerate(LAYERS) for unit in units}


def module_name(path: Path, root: Path) -> str:
    """minimal_seg/models/unet.py -> "minimal_seg.models.unet"; a package's __init__.py -> the package."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, name: str, is_package: bool):
    """Yield (line, dotted name) for every import in ``source`` of module ``name``, relative ones resolved.

    ``from pkg import a`` yields ``pkg.a`` (a submodule or a name in pkg: either way it comes from pkg).
    """
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                yield node.lineno, module if alias.name == "*" else f"{module}.{alias.name}"


def unit_of(dotted: str, top: str = "minimal_seg") -> str | None:
    """The top-level unit of a module of the package ("minimal_seg.nn.base" -> "nn"), None outside it."""
    parts = dotted.split(".")
    if parts[0] != top:
        return None
    return parts[1] if len(parts) > 1 else top


def violations(root: Path, sources: dict | None = None) -> list:
    """Every broken rule in the package at ``root`` (``sources``: path -> text, in place of the files)."""
    sources = sources or {path: path.read_text() for path in sorted(root.rglob("*.py"))}
    names = {path: module_name(path, root) for path in sources}
    found = []
    for path, source in sources.items():
        name, where = names[path], path.relative_to(root.parent)
        unit = unit_of(name, root.name)
        if unit not in ROW:
            found.append(f"{where}: {unit!r} has no row in LAYERS; place it by what it imports")
            continue
        for line, module in imports(source, name, path.name == "__init__.py"):
            if unit == "functional" and "numpy" in (module.split(".")[0], module.split(".")[-1]):
                found.append(f"{where}:{line}: imports numpy ({module}); functional code uses xp = array_module(x)")
            target = unit_of(module, root.name)
            if target in ROW and ROW[target] > ROW[unit]:
                found.append(f"{where}:{line}: {unit} ({LAYERS[ROW[unit]][0]}) imports {module}, "
                             f"which sits above it ({LAYERS[ROW[target]][0]})")
    return found


# ----------------------------------------------------------------------------------------------
# 1. the library keeps the rules
# ----------------------------------------------------------------------------------------------

def test_every_file_keeps_the_layering():
    assert violations(PACKAGE) == []


def test_the_table_keeps_designs_order():
    """Each unit has one row, and DESIGN's chain runs upward (a violation is not fixed by moving a row)."""
    units = [unit for _, row in LAYERS for unit in row]
    assert len(units) == len(set(units))
    chain = ["backend", "functional", "nn", "models", "train", "bench", "cli"]
    assert [ROW[unit] for unit in chain] == sorted(ROW[unit] for unit in chain)
    assert len({ROW[unit] for unit in chain}) == len(chain)


def test_the_check_reads_every_file_and_its_imports():
    """A check that found nothing to read would pass anything: it must see the known arrows."""
    sources = {path: path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}
    assert len(sources) >= 50
    arrows = set()
    for path, source in sources.items():
        name = module_name(path, PACKAGE)
        for _, module in imports(source, name, path.name == "__init__.py"):
            arrows.add((unit_of(name), unit_of(module)))
    assert {("functional", "backend"), ("nn", "functional"), ("models", "nn"), ("train", "models"),
            ("cli", "train")} <= arrows


# ----------------------------------------------------------------------------------------------
# 2. each rule can fail: planted violations
# ----------------------------------------------------------------------------------------------

def _plant(tmp_path, files: dict) -> list:
    """Write ``files`` (relative path -> text) under tmp_path/minimal_seg and check that tree."""
    root = tmp_path / "minimal_seg"
    for rel, text in {"__init__.py": "", "functional/__init__.py": "", "models/__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return violations(root)


@pytest.mark.parametrize("rel, text, expected", [
    ("functional/conv.py", "from ..models import UNet\n",
     "functional/conv.py:1: functional (functional) imports minimal_seg.models.UNet, which sits above it "
     "(models)"),
    ("nn/layers.py", "import os\n\n\ndef f():\n    from ...minimal_seg import train\n",  # inside a function
     "nn/layers.py:5: nn (nn) imports minimal_seg.train"),
    ("backend.py", "import minimal_seg.cli\n", "backend.py:1: backend (bottom) imports minimal_seg.cli"),
    ("functional/pool.py", "from minimal_seg import models\n",  # absolute, a package by its name
     "functional/pool.py:1: functional (functional) imports minimal_seg.models"),
    ("models/unet.py", "from . import base\nfrom .. import bench\n", "models/unet.py:2: models (models) imports "
                                                                     "minimal_seg.bench"),
    ("train.py", "from .compare import run\n", "train.py:1: train (train) imports minimal_seg.compare"),
])
def test_an_upward_import_is_caught(tmp_path, rel, text, expected):
    found = _plant(tmp_path, {rel: text})
    assert len(found) == 1 and found[0].startswith("minimal_seg/" + expected), found


@pytest.mark.parametrize("text", [
    "import numpy as np\n",
    "from numpy.lib import stride_tricks\n",
    "from ..backend import numpy\n",  # numpy by another way in
    "def f(x):\n    import numpy\n    return numpy.zeros(3)\n",
])
def test_numpy_in_functional_is_caught(tmp_path, text):
    found = _plant(tmp_path, {"functional/norm.py": text})
    assert len(found) == 1 and found[0].startswith("minimal_seg/functional/norm.py:"), found
    assert "imports numpy (" in found[0], found
    assert _plant(tmp_path, {"functional/norm.py": "", "models/fcn.py": text}) == []  # numpy is fine elsewhere


def test_a_module_without_a_row_is_caught(tmp_path):
    found = _plant(tmp_path, {"tracking/__init__.py": "from ..backend import get_xp\n"})
    assert found == ["minimal_seg/tracking/__init__.py: 'tracking' has no row in LAYERS; place it by what "
                     "it imports"]


def test_imports_downward_and_sideways_in_a_row_pass(tmp_path):
    """The rules are not a do-nothing that fails everything: the real arrows of DESIGN pass."""
    assert _plant(tmp_path, {
        "functional/conv.py": "from ..backend import array_module\nfrom .common import Cache\n",
        "nn/layers.py": "import numpy\nfrom .. import functional as F\n",
        "models/unet.py": "from ..nn import Layer\nfrom .base import Model\n",
        "compare.py": "from .bench import machine_info\nfrom .train import train\n",
        "cli.py": "def main():\n    from . import compare, models\n",
    }) == []


def test_relative_imports_resolve_against_the_package():
    source = "from .common import Cache\nfrom .. import nn\nfrom ..nn.base import Layer\n" \
             "from . import *\nimport numpy as np, minimal_seg.train\n"
    found = list(imports(source, "minimal_seg.functional.conv", False))
    assert found == [(1, "minimal_seg.functional.common.Cache"), (2, "minimal_seg.nn"),
                     (3, "minimal_seg.nn.base.Layer"), (4, "minimal_seg.functional"), (5, "numpy"),
                     (5, "minimal_seg.train")]
    assert list(imports("from .base import Layer\n", "minimal_seg.nn", True)) == [(1, "minimal_seg.nn.base.Layer")]
