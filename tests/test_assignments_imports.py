"""The allow list of an assignment file, read from its syntax tree (minimal_seg.assignments.imports)."""
import pytest

from minimal_seg.assignments import ASSIGNMENTS, get_assignment
from minimal_seg.assignments.imports import ImportRules, find_violations

A6 = ImportRules(task="U-Net's backward pass", allowed=("minimal_seg.functional.crop_backward",))
A4 = ImportRules(task="the dilated conv", within={"measure": ("minimal_seg.nn.Conv2d",)})


def why(source, rules=A6):
    return " | ".join(str(v) for v in find_violations(source, rules, "aX"))


@pytest.mark.parametrize("source", [
    "import numpy\nimport numpy as np\nfrom numpy import zeros\nimport math\n",
    "from __future__ import annotations\nfrom minimal_seg.backend import array_module\n",
    "import minimal_seg.backend\nxp = minimal_seg.backend.array_module(1)\n",
    "from minimal_seg import functional as F\ndef f(d):\n    return F.crop_backward(d, (2, 2))\n",
    "from minimal_seg.functional import crop_backward\n",
    "def f(model, d):\n    return model.head.backward(d) + d.sum()\n",
    "import numpy\ndef f(x):\n    return numpy.random.default_rng(0).standard_normal(x.shape)\n",
])
def test_what_a_student_may_write_passes(source):
    assert find_violations(source, A6) == []


@pytest.mark.parametrize("source,reason", [
    ("import minimal_seg.functional\nminimal_seg.functional.relu_forward(1)\n",
     "minimal_seg.functional.relu_forward is not allowed (the library's own version"),
    ("from minimal_seg.functional import conv2d_forward\n", "minimal_seg.functional.conv2d_forward is not allowed"),
    ("from minimal_seg import nn\n", "minimal_seg.nn is not allowed"),
    ("import minimal_seg.models as m\n", "minimal_seg.models is not allowed"),
    ("import torch\n", "torch is the oracle"),
    ("from torch.nn import functional\n", "torch is the oracle"),
    ("from lectures.assignments.solutions.a1_conv_im2col import *\n", "reference solutions live"),
    ("from a1_conv_im2col import im2col\n", "reference solutions live"),
    ("from minimal_seg.assignments import check\n", "reference solutions live"),
    ("import importlib\n", "it can load any module"),
    ("import sys\n", "it can load any module"),
    ("from . import x\n", "a relative import"),
    ("from numpy import *\nfrom minimal_seg.functional import *\n", "minimal_seg.functional is not allowed"),
    # reaching further than allowed through a module that is allowed in part
    ("from minimal_seg import functional as F\ny = F.conv2d_forward\n", "F.conv2d_forward"),
    ("from minimal_seg import functional as F\nG = F\n", "F (minimal_seg.functional) may only be used as F.crop_backward"),
    ("import minimal_seg.backend\nminimal_seg.functional.conv2d_forward(1, 2)\n", "minimal_seg.functional"),
    # strings, builtins and back doors
    ("m = __import__('minimal_seg.functional')\n", "imports 'minimal_seg.functional' by a string"),
    ("exec('import minimal_seg.functional')\n", "exec is not allowed"),
    ("f = eval\n", "eval is not allowed"),
    ("import numpy\nF = getattr(numpy, 'linalg')\n", "getattr is not allowed"),
    ("b = __builtins__\n", "__builtins__ is not allowed"),
    ("from minimal_seg.backend import array_module\ng = array_module.__globals__\n", "double-underscore"),
    ("def f(model, d):\n    return type(model).backward(model, d)\n", "type is not allowed"),
    ("def f(model, d):\n    return super(type(model), model).backward(d)\n", "super is not allowed"),
    ("src = open('lectures/assignments/solutions/a6_unet_skips.py').read()\n", "open is not allowed"),
    # NumPy's own modules hold sys and importlib: followed on the real modules, or refused by name
    ("import numpy\nm = numpy.testing._private.utils.sys\n", "opens a door"),
    ("import numpy\nm = numpy.testing._private.utils.platform\n", "is the module platform"),
    ("from minimal_seg.backend import array_module\ndef f(x):\n    return array_module(x).lib.x.importlib\n",
     ".importlib opens a door"),
    ("def f(xp):\n    return xp.testing.sys.modules['minimal_seg.functional']\n", "opens a door"),
    ("import numpy\nw = numpy.fromfile('w.npy', allow_pickle=True)\n", "unpickling"),
])
def test_what_a_student_may_not_write_is_named_with_its_line(source, reason):
    text = why(source)
    assert reason in text, text
    assert text.startswith("line ")


def test_an_entry_limited_to_one_function_is_refused_elsewhere():
    source = ("from minimal_seg import nn\n"
              "def measure():\n    return nn.Conv2d(1, 1, 3)\n"
              "def forward(x):\n    return nn.Conv2d(1, 1, 3).forward(x)\n")
    violations = find_violations(source, A4, "a4")
    assert [v.line for v in violations] == [5]
    assert "may be used only in measure" in violations[0].why


def test_every_assignment_has_rules_and_its_own_solution_keeps_them():
    for a in ASSIGNMENTS.values():
        rules = a.checklist().imports
        assert isinstance(rules, ImportRules) and rules.task
        assert find_violations(a.solution_file().read_text(), rules, a.name) == [], a.name


def test_a_syntax_error_is_left_to_the_caller():
    with pytest.raises(SyntaxError):
        find_violations("def f(:\n", get_assignment("a1").checklist().imports)
