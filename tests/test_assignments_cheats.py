"""No credit without work: four ways to game the autograder, planted in every assignment, each scoring 0.

1. import the reference solution (from the checkout, or where it used to be, in the package);
2. wrap the library's own op (``minimal_seg.functional``, or the model's own backward);
3. return zeros of the right shapes (made by running the real solution and zeroing what it returns:
   shapes, dtypes and caches are right, the numbers are not);
4. return the input unchanged (the identity).

Each must score 0 of N, every check FAIL (none passes, none is "not implemented yet"), and the
report must say why. The wrappers are real threats: without the import rules they would score.
"""
import textwrap

import pytest

from minimal_seg.backend import use_backend
from minimal_seg.assignments import ASSIGNMENTS, check, get_assignment, solutions_folder
from minimal_seg.assignments.grader import Checklist, run_checks

# The library's version of every function a student writes (a6's is the model's own backward).
WRAPPERS = {
    "a1": """
        import minimal_seg.functional as F

        def im2col(x, kernel_size, stride=1, padding=0):
            cols = F.im2col(x, kernel_size, stride, padding)
            return cols

        def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
            return F.col2im(cols, x_shape, kernel_size, stride, padding)

        def conv2d_forward(x, w, b, stride=1, padding=0):
            return F.conv2d_forward(x, w, b, stride, padding)

        def conv2d_backward(dout, cache):
            return F.conv2d_backward(dout, cache)
        """,
    "a2": """
        from minimal_seg.functional import conv_matrix, conv_transpose2d_backward
        from minimal_seg.functional import conv_transpose2d_forward as _forward

        def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0):
            return _forward(x, w, b, stride, padding, output_padding)
        """,
    "a3": """
        from minimal_seg import functional

        def max_pool2d_forward(x, kernel_size, stride=None):
            out, cache = functional.max_pool2d_forward(x, kernel_size, stride)
            return out, {"indices": cache.indices, "cache": cache}

        def max_pool2d_backward(dout, cache):
            return functional.max_pool2d_backward(dout, cache["cache"])

        def max_unpool2d_forward(x, indices, output_size):
            return functional.max_unpool2d_forward(x, indices, 1, 1, output_size=output_size)

        def max_unpool2d_backward(dout, cache):
            return functional.max_unpool2d_backward(dout, cache)
        """,
    "a4": """
        import torch  # noqa: F401  (the oracle: never allowed)
        from minimal_seg import nn
        from minimal_seg.backend import array_module
        from minimal_seg.functional import receptive_field as _field

        def dilate_kernel(w, dilation):
            xp = array_module(w)
            big = xp.zeros((*w.shape[:2], dilation * (w.shape[2] - 1) + 1, dilation * (w.shape[3] - 1) + 1),
                           dtype=w.dtype)
            big[:, :, ::dilation, ::dilation] = w
            return big

        def dilated_conv2d_forward(x, w, b=None, padding=0, dilation=1):
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], padding=padding, dilation=dilation,
                             bias=b is not None, dtype=x.dtype)
            conv.params["w"][...] = w
            if b is not None:
                conv.params["b"][...] = b
            return conv.forward(x), None

        def receptive_field(layers):
            return _field(*zip(*layers))
        """,
    "a5": """
        import importlib

        F = importlib.import_module("minimal_seg.functional")

        def softmax(logits):
            return F.softmax_forward(logits)[0]

        def softmax_cross_entropy_forward(logits, labels):
            return F.softmax_cross_entropy_forward(logits, labels)

        def softmax_cross_entropy_backward(dout, cache):
            return F.softmax_cross_entropy_backward(dout, cache)

        def dice_loss_forward(logits, labels, smooth=1.0):
            return F.dice_loss_forward(logits, labels, smooth)

        def dice_loss_backward(dout, cache):
            return F.dice_loss_backward(dout, cache)
        """,
    "a6": """
        def unet_backward(model, dout):
            return model.backward(dout)
        """,
    "a7": """
        from minimal_seg import functional as F

        def bilinear_weights(y, x, height, width):
            return []

        def roi_align2d_forward(x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
            return F.roi_align2d_forward(x, rois, output_size, spatial_scale, sampling_ratio, aligned)

        def roi_align2d_backward(dout, cache):
            return F.roi_align2d_backward(dout, cache)
        """,
}

# Zeros and the identity made from the real solution: every function's results replaced, caches kept.
REPLACE = """

def _replace(value, by):
    if isinstance(value, tuple):
        return tuple(_replace(v, by) for v in value)
    if hasattr(value, "shape") and hasattr(value, "dtype") or isinstance(value, (int, float)):
        return by(value)
    return value  # a cache, or None

"""
WRAP = """
_real_{name} = {name}


def {name}(*args, **kwargs):
    first = next((a for a in args if hasattr(a, "shape")), args[0])
    return _replace(_real_{name}(*args, **kwargs), {by})
"""
BY = {"zeros": "lambda v: v * 0", "identity": "lambda v: first"}
# a6's solution adds the parameter gradients as a side effect, so its cheats are written out.
A6_CHEATS = {
    "zeros": "def unet_backward(model, dout):\n    return dout[:, :1] * 0\n",
    "identity": "def unet_backward(model, dout):\n    return dout\n",
}


def _functions(name):
    """The functions a student writes in assignment ``name`` (those with a solution block)."""
    import ast

    source = get_assignment(name).solution_file().read_text()
    return [n.name for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.FunctionDef) and "START SOLUTION" in ast.get_source_segment(source, n)]


def cheat(name, kind) -> str:
    """The source of cheat ``kind`` for assignment ``name``."""
    a = get_assignment(name)
    if kind == "solution":  # where the answers live in a checkout, and where they used to live
        return (f"from lectures.assignments.solutions.{a.stem} import *  # noqa\n"
                f"from minimal_seg.assignments.{a.stem} import *  # noqa\n")
    if kind == "solution by path":
        return (f"import sys\nsys.path.insert(0, {str(solutions_folder())!r})\n"
                f"from {a.stem} import *  # noqa\n")
    if kind == "library":
        return textwrap.dedent(WRAPPERS[name])
    if name == "a6":
        return A6_CHEATS[kind]
    source = a.solution_file().read_text() + REPLACE
    return source + "".join(WRAP.format(name=f, by=BY[kind]) for f in _functions(name))


KINDS = ["solution", "solution by path", "library", "zeros", "identity"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_every_gaming_strategy_scores_zero(tmp_path, name, kind):
    path = tmp_path / get_assignment(name).filename
    path.write_text(cheat(name, kind))
    result = check(name, impl=path, verbose=False)
    n = len(get_assignment(name).checklist().checks)
    assert (result.score, len(result.results)) == (0, n), str(result)
    assert all(r.status == "FAIL" for r in result.results), str(result)
    report = str(result)
    assert f"0 of {n} checks passed." in report and "Traceback" not in report
    if kind.startswith("solution") or (kind == "library" and name != "a6"):
        assert result.rejected and "NOT GRADED" in report, report
        assert "not allowed" in result.rejected or "does not allow" in result.rejected
    elif kind == "library":  # a6: the model's own backward, refused at run time
        assert all("UNet.backward" in r.what for r in result.results[:1]), report
    else:
        assert not result.rejected  # it ran: every check judged the numbers
        for r in result.results:
            assert r.what and r.hint, r.details()
        if kind == "zeros":  # the first check says so in so many words
            assert "all zeros" in result.results[0].hint or "None" in result.results[0].what, str(result)


@pytest.mark.parametrize("name", [n for n in ASSIGNMENTS if n != "a6"])
def test_the_library_wrappers_would_score_without_the_import_rules(tmp_path, name):
    """The wrappers are real threats: judged with no import rules, each passes some checks."""
    a = get_assignment(name)
    path = tmp_path / a.filename
    path.write_text(cheat(name, "library").replace("import torch  # noqa: F401  (the oracle: never allowed)\n", ""))
    open_rules = Checklist(None)
    open_rules.checks = a.checklist().checks
    with use_backend("numpy"):  # the a4 wrapper builds nn layers on the current backend for host inputs
        assert run_checks(a.name, a.title, open_rules, path).score > 0


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_the_zeros_cheat_keeps_shapes_and_still_runs(tmp_path, name):
    """Zeros of the right shape are what the old shape checks rewarded: they must be judged on values now."""
    path = tmp_path / get_assignment(name).filename
    path.write_text(cheat(name, "zeros"))
    result = check(name, impl=path, verbose=False)
    first = result.results[0]
    assert first.status == "FAIL" and "has shape" not in first.what, first.details()
