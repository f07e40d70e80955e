"""Assignments and their autograder: the checks can pass, and they can fail.

Every reference solution passes; every generated stub fails with "not
implemented yet"; a planted bug in each assignment (a mutated copy of its
solution file) is caught, and the failure carries the hint written for it.
"""
import ast
import subprocess
import sys

import numpy as np
import pytest

from minimal_seg.assignments import ASSIGNMENTS, check, get_assignment
from minimal_seg.assignments.grader import diagnose
from minimal_seg.assignments.make_student import strip_solutions, write_student_versions
from minimal_seg.cli import main


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    """The student version of every assignment, written by the real generator."""
    out = tmp_path_factory.mktemp("student")
    write_student_versions(out)
    return out


def _mutated(tmp_path, name, old, new):
    """A copy of assignment ``name``'s solution file with ``old`` (found exactly once) replaced by ``new``."""
    a = get_assignment(name)
    source = a.solution_file().read_text()
    assert source.count(old) == 1, f"the planted bug's anchor {old!r} must occur once in {a.filename}"
    path = tmp_path / a.filename
    path.write_text(source.replace(old, new))
    return path


# ----------------------------------------------------------------------------- solutions and stubs

@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_reference_solution_passes(name):
    result = check(name, verbose=False)
    assert result.passed, str(result)
    assert len(result.results) >= 4 and not result.stubs


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_stub_fails_with_not_implemented(name, student_dir):
    result = check(name, impl=student_dir, verbose=False)
    assert not result.passed
    assert all(r.status == "TODO" and r.what.startswith("not implemented yet: ") for r in result.results), str(result)
    text = str(result)
    assert "Traceback" not in text and "Still to write:" in text
    # every function with a solution block is listed, with the stub's own message
    source = get_assignment(name).solution_file().read_text()
    written = {n.name for n in ast.walk(ast.parse(source))
               if isinstance(n, ast.FunctionDef) and "START SOLUTION" in ast.get_source_segment(source, n)}
    assert {s.split(":")[0] for s in result.stubs} == written
    assert all(s.endswith("(see the docstring)") for s in result.stubs)


def test_student_version_keeps_docstrings_and_drops_solutions(student_dir):
    for a in ASSIGNMENTS.values():
        solution, student = a.solution_file().read_text(), (student_dir / a.filename).read_text()
        assert "SOLUTION" not in student
        ours = {n.name: n for n in ast.walk(ast.parse(solution)) if isinstance(n, ast.FunctionDef)}
        theirs = {n.name: n for n in ast.walk(ast.parse(student)) if isinstance(n, ast.FunctionDef)}
        assert ours.keys() == theirs.keys()
        for fname, node in theirs.items():
            assert ast.get_docstring(node) == ast.get_docstring(ours[fname]), (a.filename, fname)
            if "SOLUTION" in ast.get_source_segment(solution, ours[fname]):
                body = node.body[1:]  # after the docstring: just the stub
                assert len(body) == 1 and isinstance(body[0], ast.Raise), (a.filename, fname)
                assert ast.get_docstring(node).count("\n") >= 3  # shapes and formula, not a one-liner


def test_strip_solutions_rejects_bad_markers():
    ok = ("def f(x):\n    '''Doc.'''\n"
          "    # ===== START SOLUTION: f's body =====\n    return x\n    # ===== END SOLUTION =====\n")
    assert "raise NotImplementedError(\"f: implement f's body (see the docstring)\")" in strip_solutions(ok)
    with pytest.raises(ValueError, match="without an END"):
        strip_solutions(ok.replace("    # ===== END SOLUTION =====\n", ""))
    with pytest.raises(ValueError, match="without a START"):
        strip_solutions(ok.replace("    # ===== START SOLUTION: f's body =====\n", ""))
    with pytest.raises(ValueError, match="inside a function"):
        strip_solutions("# ===== START SOLUTION =====\nX = 1\n# ===== END SOLUTION =====\n")


# ----------------------------------------------------------------------------- planted bugs

# (assignment, the solution's line, the bug, what the bug is, a phrase its hint must contain)
BUGS = [
    ("a1", "xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))",
     "xpad = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), mode='edge')",
     "edge padding instead of zeros", "wrong only near the border"),
    ("a1", "+= cols[:, :, i, j]", "= cols[:, :, i, j]", "col2im assigns instead of adding", "ADDED (+=)"),
    ("a1", "return dxpad[:, :, padding:padding + h, padding:padding + w]",
     "return dxpad[:, :, padding:-padding, padding:-padding]", "crop P:-P, empty for P = 0", "P:-P is empty"),
    ("a2", "h, v = p * stride - padding + i, q * stride - padding + j",
     "h, v = p * stride - padding + j, q * stride - padding + i", "kernel indices transposed", "transposed"),
    ("a2", "h, v = p * stride - padding + i, q * stride - padding + j",
     "h, v = p * stride + padding + i, q * stride + padding + j", "padding with the wrong sign", "h = p*S - P + i"),
    ("a2", "                        C[:, p, q, :, h, v] = w[:, :, i, j]",
     "                        C[:, p, q, :, h, v] = w[:, :, kh - 1 - i, kw - 1 - j]",
     "kernel flipped (the convolution of mathematics)", "flipped (rotated by 180 degrees)"),
    ("a2", "oh = (h - 1) * stride - 2 * padding + kh + output_padding", "oh = (h - 1) * stride - 2 * padding + kh",
     "output_padding ignored along h", "OH = (H - 1)*S - 2P + KH + OP"),
    ("a3", "indices = (rows * w + cols)", "indices = (cols * h + rows)", "h and w swapped in the indices",
     "h and w are swapped"),
    ("a3", "dx = xp.bincount((plane + indices).ravel(), weights=dout.ravel(), minlength=n * c * h * w)",
     "dx = xp.zeros(n * c * h * w)\n    dx[(plane + indices).ravel()] = dout.ravel()",
     "overlapping windows overwrite instead of summing", "SUM of their dout"),
    ("a4", "xpad[:, :, i * d:i * d + oh, j * d:j * d + ow]", "xpad[:, :, i:i + oh, j:j + ow]",
     "missing dilation in im2col", "D = 2 pixels apart"),
    ("a4", "jump *= stride", "jump *= 1", "receptive field ignores the strides", "ignores the strides"),
    ("a5", "return dout * (p - g) / labels.size", "return dout * (p - g)", "sum instead of mean", "MEAN over the M"),
    ("a5", "dz = p * (dp - (dp * p).sum(axis=1, keepdims=True))", "dz = dp", "Dice skips the softmax backward",
     "back through the softmax"),
    ("a5", "e = xp.exp(logits - logits.max(axis=1, keepdims=True))", "e = xp.exp(logits)",
     "softmax without subtracting the max", "subtract the largest logit"),
    ("a6", "d = d_pool + d_skip[level] if model.skips else d_pool", "d = d_skip[level] if model.skips else d_pool",
     "skip gradient overwrites the pool path's", "was overwritten"),
    ("a6", "d = d_pool + d_skip[level] if model.skips else d_pool", "d = d_pool", "skip gradient missing",
     "add the skip gradient"),
    ("a7", "offset = 0.5 if aligned else 0.0", "offset = 0.0", "aligned=True without the half-cell shift",
     "aligned subtracts 0.5"),
    ("a7", "count = max(grid_h * grid_w, 1)", "count = max(grid_h, 1)", "the bin mean divides by GH only",
     "MEAN of the bin's GH x GW samples"),
    ("a7", "dx[b, :, row, col] += weight * dout[k, :, i, j]", "dx[b, :, row, col] = weight * dout[k, :, i, j]",
     "backward overwrites instead of adding", "ADD (+=)"),
    ("a7", "reads.append((k, i, j, int(b), row, col, weight / count))",
     "reads.append((k, i, j, int(b), row, col, weight))", "backward forgets the 1 / count",
     "the bilinear weight / the bin's sample count"),
    ("a7", "roi_h, roi_w = max(roi_h, 1.0), max(roi_w, 1.0)", "pass", "boxes not forced to 1 x 1 when not aligned",
     "at least 1 x 1"),
    ("a7", "if y < -1.0 or y > height or x < -1.0 or x > width:", "if y < 0 or y > height or x < 0 or x > width:",
     "points in [-1, 0) read nothing", "outside [-1, H] x [-1, W]"),
    ("a7", "(iy + 0.5) * bin_h / grid_h", "iy * bin_h / grid_h", "samples at the bin's corner, not its centres",
     "(iy + 0.5) * bin_h / GH"),
]


@pytest.mark.parametrize("name,old,new,bug,hint", BUGS, ids=[f"{b[0]}: {b[3]}" for b in BUGS])
def test_planted_bug_is_caught_with_its_hint(tmp_path, name, old, new, bug, hint):
    result = check(name, impl=_mutated(tmp_path, name, old, new), verbose=False)
    failed = [r for r in result.results if r.status == "FAIL"]
    assert failed, f"{bug} was not caught:\n{result}"
    assert any(hint in r.hint for r in failed), f"no failure of {bug} carries the hint {hint!r}:\n{result}"
    for r in failed:  # what, how big (or where), and a hint, for every failure
        assert r.what and r.hint and (r.size or r.where), r.details()
    assert "Traceback" not in str(result)


def test_every_assignment_has_a_planted_bug():
    assert {b[0] for b in BUGS} == set(ASSIGNMENTS)


def test_an_exception_in_the_students_code_names_the_line(tmp_path):
    path = _mutated(tmp_path, "a1", "return out.reshape(n, oc, oh, ow), cache",
                    "return out.reshape(n, oc, ow, oh + 1), cache")
    result = check("a1", impl=path, verbose=False)
    first = result.results[0]
    assert first.status == "FAIL" and first.what.startswith("conv2d_forward raised ValueError"), str(result)
    assert first.where.startswith("a1_conv_im2col.py line") and "out.reshape(n, oc, ow, oh + 1)" in first.where


def test_a_file_that_does_not_import_fails_every_check_with_one_reason(tmp_path):
    path = _mutated(tmp_path, "a2", "def conv_matrix(w, input_size, stride=1, padding=0):",
                    "def conv_matrix(w, input_size, stride=1, padding=0)")
    result = check("a2", impl=path, verbose=False)
    assert result.score == 0 and len(result.results) == len(get_assignment("a2").checklist().checks)
    assert all(r.status == "FAIL" for r in result.results)
    assert "SyntaxError" in result.rejected and "line" in result.rejected_where
    assert str(result).count("SyntaxError") == 1  # said once, not once per check


def test_a_missing_function_is_named(tmp_path):
    path = _mutated(tmp_path, "a3", "def max_unpool2d_backward(dout, cache):", "def unpool_backward(dout, cache):")
    result = check("a3", impl=path, verbose=False)
    assert any("no function max_unpool2d_backward" in r.what for r in result.results), str(result)


# ----------------------------------------------------------------------------- the harness

def test_diagnose_names_the_usual_mistakes():
    e = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    assert diagnose(0.5 * e, e)[0] == "half"
    assert diagnose(2 * e, e)[0] == "double"
    assert diagnose(-e, e)[0] == "sign"
    assert diagnose(3 * e, e)[0] == "scaled"
    assert diagnose(np.swapaxes(e, -1, -2), e)[0] == "transposed"
    partial = e.copy()
    partial[:, :, 2] = 0
    assert diagnose(partial, e)[0] == "zero"
    border = e.copy()
    border[:, :, 0, 1:4] += 1
    assert diagnose(border, e, border=1)[0] == "border"
    assert diagnose(border, e)[0] == "partial"
    assert diagnose(e + np.nan, e)[0] == "nan"
    assert diagnose(0 * e, e)[0] == "all zero"


def test_show_draws_the_failing_error_map(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    result = check("a1", impl=_mutated(tmp_path, "a1", BUGS[0][1], BUGS[0][2]), verbose=False)
    ax = result.show()
    assert "dx" in ax.get_title() or "out" in ax.get_title()
    assert check("a3", verbose=False).show(4) is not None  # a passing check's map: rounding noise


# ----------------------------------------------------------------------------- command line

def test_cli_exit_codes(tmp_path, student_dir, capsys):
    assert main(["check", "a3"]) == 0
    assert "5 of 5 checks passed" in capsys.readouterr().out
    assert main(["check", "a3", "--impl", str(student_dir / "a3_max_pool_unpool.py")]) == 1
    assert "not implemented yet: max_pool2d_forward" in capsys.readouterr().out
    assert main(["check", "a4", "--impl", str(_mutated(tmp_path, "a4", "jump *= stride", "jump *= 1"))]) == 1
    assert main(["check", "a9"]) == 2
    assert main(["check", "a1", "--impl", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_make_student(tmp_path, capsys):
    out = tmp_path / "hw"
    assert main(["make-student", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(a.filename for a in ASSIGNMENTS.values())
    assert main(["make-student", str(out)]) == 1  # never overwrites a student's work by accident
    assert "--force" in capsys.readouterr().err
    assert main(["make-student", str(out), "--force"]) == 0


def test_python_dash_m_returns_the_exit_code(student_dir):
    ok = subprocess.run([sys.executable, "-m", "minimal_seg", "check", "a5"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([sys.executable, "-m", "minimal_seg", "check", "all", "--impl", str(student_dir)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "summary: a1 FAIL" in bad.stdout


def test_a_gradient_check_counts_only_once_the_forward_values_are_right(tmp_path):
    """A forward pass that returns zeros has zero numerical gradients: a zero backward would match them."""
    anchor = '    cache = {"x": x, "w": w, "C": C, "stride": stride, "padding": padding, "has_bias": b is not None}\n'
    result = check("a2", impl=_mutated(tmp_path, "a2", anchor, "    out = out * 0\n" + anchor), verbose=False)
    row = next(r for r in result.results if r.title.startswith("gradient check"))
    assert row.status == "FAIL" and "does not count" in row.hint, row.details()
    assert result.score == 1  # the hand-made matrix C is still right; nothing that uses the forward passes
