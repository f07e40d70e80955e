"""The autograder's harness: one way to run, judge and print the checks of every assignment.

An assignment's checks live in ``checks/<assignment>.py`` as plain functions,
registered in the order they run::

    CHECKS = Checklist(ImportRules(task="conv2d and its backward"))

    @CHECKS.add("gradient check: conv2d, stride 2", expect="rel. error < 1e-7 (expect ~1e-9)")
    def gradients(s, ctx):
        ctx.expect_gradients(s.conv2d_forward, s.conv2d_backward, {"x": x, "w": w, "b": b},
                             reference=F.conv2d_forward,
                             hints={"dx": {"border": "dx is wrong only near the border: ..."}})

``s`` is the student's file (``s.conv2d_forward`` is their function) and
``ctx`` (a ``CheckContext``) holds the few ways a check can judge it:

    expect_shape            an array's shape (and dtype)
    expect_close            an array against the reference or a lecture's hand example
    expect_same_pair        a forward/backward pair against the reference pair, same inputs and dout
    expect_equal            exact values (integer indices, receptive fields)
    expect_gradients        a float64 gradient check of a pair (minimal_seg.gradcheck), which
                            counts only once the forward values match the reference's
    expect_layer_gradients  the same for a whole model
    fail                    anything else

Each of them raises ``CheckFailed`` with the four things a student needs:
*what* failed, *where* (the worst index), *how big* (the error against its
tolerance) and a *hint*. The hint is picked by ``diagnose``, which looks at
how the wrong array differs from the right one (zero, half, scaled, transposed,
only near the border, ...) and takes the check's own text for that pattern
(``diagnosis.py``).

No credit without work: a check passes only if it compared some value of
the student's with a right one (a check that looks at shapes alone fails
with "compared no values", so zeros of the right shape earn nothing), and a
gradient check counts only once the forward pass gives the right numbers
(the gradient of a function that returns zeros is zero, and matches).

``run_checks`` turns the checklist into a ``Result`` (``results.py``): a
table with PASS / FAIL / TODO per check. Before the student's file runs, its
imports are held against the assignment's allow list (``imports.py``); a
file that breaks it, or does not parse, runs no check and scores 0. A
stub's ``NotImplementedError`` becomes "not implemented yet: <function>",
any other exception one line naming the line of the student's file that
raised it, never a traceback.
"""
from __future__ import annotations

import ast
import importlib.util
import traceback
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy

from ..backend import to_numpy
from ..gradcheck import DEFAULT_TOL, GradcheckReport, check_gradients, gradcheck
from .diagnosis import DEFAULT_HINTS, diagnose, hint_for, index_text
from .imports import ImportRules, find_violations
from .results import CheckResult, Result

REF_TOL = 1e-10  # float64 against the reference: a correct solution gives ~1e-15


class CheckFailed(Exception):
    """Raised by a check: what failed, where, how big, and a hint."""

    def __init__(self, what: str, where: str = "", size: str = "", hint: str = "", map_name: str = ""):
        super().__init__(what)
        self.what, self.where, self.size, self.hint = what, where, size, hint
        self.map_name = map_name  # the error map (CheckContext.maps) that shows the failure, if any


@dataclass
class Check:
    """A registered check: its title, the size of error to expect, the function."""

    title: str
    expect: str
    run: Callable


class Checklist:
    """The ordered checks of one assignment; ``@CHECKS.add(title, expect=...)`` registers one.

    ``imports`` is the assignment's allow list (None: a held-out checklist,
    which is judged under the public one's rules).
    """

    def __init__(self, imports: ImportRules | None = None):
        self.checks: list[Check] = []
        self.imports = imports

    def __add__(self, held_out: "Checklist") -> "Checklist":
        """These checks, then ``held_out``'s (titled "held-out: ..."), under these import rules."""
        both = Checklist(self.imports)
        both.checks = self.checks + [Check(f"held-out: {c.title}", c.expect, c.run) for c in held_out.checks]
        return both

    def add(self, title: str, expect: str = "-"):
        def register(fn):
            self.checks.append(Check(title, expect, fn))
            return fn

        return register


# ----------------------------------------------------------------------------- the context

class CheckContext:
    """What a check uses to judge the student's arrays; keeps error maps for ``Result.show``."""

    def __init__(self):
        self.worst = None  # the largest error measured, for the table's "measured" column
        self.measured = ""  # or a text the check sets itself
        self.maps: dict = {}  # name -> error map (an array), for show()
        self.compared = 0  # values compared with right ones; a check that compared none gives no credit

    def measure(self, err: float, values: int = 0):
        """Remember an error measured by hand, for the "measured" column (the largest one is shown);
        ``values``: how many of the student's values it compared (a check must compare some)."""
        self.worst = err if self.worst is None else max(self.worst, err)
        self.compared += values

    def fail(self, what: str, where: str = "", size: str = "", hint: str = "", map_name: str = ""):
        raise CheckFailed(what, where, size, hint, map_name)

    def expect_shape(self, name: str, array, shape, dtype=None, hint: str = ""):
        """Fail unless ``array`` is an array of ``shape`` (and ``dtype``, when given)."""
        if not hasattr(array, "shape"):
            self.fail(f"{name} should be an array of shape {tuple(shape)}, got {type(array).__name__}",
                      hint=hint or DEFAULT_HINTS["shape"])
        got, shape = tuple(array.shape), tuple(shape)
        if got != shape:
            if len(got) == len(shape):
                axes = [k for k, (g, e) in enumerate(zip(got, shape)) if g != e]
                where = f"axis {axes[0]}" if len(axes) == 1 else f"axes {', '.join(map(str, axes))}"
            else:
                where = f"the number of axes ({len(got)} instead of {len(shape)})"
            self.fail(f"{name} has shape {got}, expected {shape}", where=where, hint=hint or DEFAULT_HINTS["shape"])
        if dtype is not None and array.dtype != numpy.dtype(dtype):
            self.fail(f"{name} has dtype {array.dtype}, expected {numpy.dtype(dtype)}",
                      hint=f"create new arrays with dtype=x.dtype: a {numpy.dtype(dtype)} input "
                           f"gives a {numpy.dtype(dtype)} output")

    def expect_close(self, name: str, actual, expected, *, tol: float = REF_TOL, border: int = 0,
                     hints: dict | None = None, case: str = "", against: str = "the reference"):
        """Fail unless max |actual - expected| <= tol * max(1, max |expected|); returns that ratio.

        ``case`` names the inputs (e.g. "stride 2, padding 1"); ``hints`` maps a
        pattern of ``diagnose`` to a text for this check; ``border`` as in diagnose.
        """
        expected = numpy.asarray(to_numpy(expected), dtype=numpy.float64)
        self.expect_shape(name, actual, expected.shape, hint=(hints or {}).get("shape", ""))
        actual = numpy.asarray(to_numpy(actual), dtype=numpy.float64)
        scale = max(1.0, float(numpy.abs(expected).max(initial=0.0)))
        with numpy.errstate(invalid="ignore"):
            err_map = numpy.abs(actual - expected) / scale
        err = float(numpy.nan_to_num(err_map, nan=numpy.inf).max(initial=0.0))
        map_name = f"{name} ({case})" if case else name
        self.compared += expected.size
        if err_map.ndim:  # an error map of a single number shows nothing
            self.maps[map_name] = err_map
        self.measure(err)
        if err > tol:
            pattern, where = diagnose(actual, expected, border)
            worst = numpy.unravel_index(int(numpy.argmax(numpy.nan_to_num(err_map, nan=numpy.inf))), err_map.shape)
            at = f" at {name}{index_text(worst)}" if worst else ""
            self.fail(
                f"{name} differs from {against}" + (f" ({case})" if case else ""),
                where=where,
                size=f"max abs error {err * scale:.2e}{at} (got {actual[worst]:.6g}, expected "
                     f"{expected[worst]:.6g}; tolerance {tol:.0e} x {scale:.3g})",
                hint=hint_for(name, pattern, hints),
                map_name=map_name if err_map.ndim else "",
            )
        return err

    def expect_same_pair(self, pair, reference, args, *, names, case: str = "", hints: dict | None = None,
                         border: int = 0, dout=None, seed: int = 0):
        """Run the student's (forward, backward) and the reference pair on the same inputs and the same
        upstream gradient; compare the output and every gradient with ``expect_close``.

        names   the output's name, then the gradients' (e.g. "out", "dx", "dw", "db")
        hints   name -> that array's pattern hints;  dout: None draws a random one (seeded)
        """
        out, cache = pair[0](*args)
        ref, ref_cache = reference[0](*args)
        self.expect_close(names[0], out, ref, case=case, border=border, hints=(hints or {}).get(names[0]))
        if dout is None:
            dout = numpy.random.default_rng(seed).standard_normal(numpy.shape(ref))
        grads, ref_grads = pair[1](dout, cache), reference[1](dout, ref_cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        ref_grads = ref_grads if isinstance(ref_grads, tuple) else (ref_grads,)
        if len(grads) != len(ref_grads):
            self.fail(f"the backward pass returned {len(grads)} gradient(s), expected {len(ref_grads)}: "
                      + ", ".join(names[1:]), hint="return the gradients in the order the docstring gives")
        for name, grad, ref_grad in zip(names[1:], grads, ref_grads):
            self.expect_close(name, grad, ref_grad, case=case, border=border, hints=(hints or {}).get(name))

    def expect_equal(self, name: str, actual, expected, hint: str = "", case: str = ""):
        """Fail unless ``actual`` equals ``expected`` exactly (integers: indices, sizes)."""
        expected = numpy.asarray(to_numpy(expected))
        if expected.ndim:
            self.expect_shape(name, actual, expected.shape)
        actual = numpy.asarray(to_numpy(actual))
        self.compared += expected.size
        wrong = actual != expected
        if wrong.any():
            first = tuple(numpy.argwhere(wrong)[0]) if wrong.ndim else ()
            where = f"{int(wrong.sum())} of {wrong.size} entries wrong, the first at {name}{index_text(first)}"
            self.fail(f"{name} is wrong" + (f" ({case})" if case else ""), where=where if first else "",
                      size=f"got {actual[first]}, expected {expected[first]}", hint=hint)
        self.measure(0.0)

    def expect_gradients(self, forward, backward, inputs: dict, kwargs: dict | None = None, *, label: str,
                         reference, out_name: str = "out", hints: dict | None = None, border: int = 0, wrt=None,
                         eps: float = 1e-5, tol: float = DEFAULT_TOL):
        """Float64 gradient check of a forward/backward pair (minimal_seg.gradcheck).

        It counts only once ``forward`` gives the numbers of ``reference`` (the
        library's forward, same arguments): the gradient of a forward that returns
        zeros is zero, and a backward that returns zeros would match it.
        ``out_name`` names the forward's output in the messages; ``hints`` maps a gradient's
        name to its pattern -> text dict, e.g. {"dx": {"border": "..."}}. The shapes of the
        gradients are checked next, for a clearer message than the check's.
        """
        out, cache = forward(*inputs.values(), **(kwargs or {}))
        ref, _ = reference(*inputs.values(), **(kwargs or {}))
        first = f"the forward pass gives wrong numbers, so its gradient check does not count: make {out_name} " \
                "right first"
        own = (hints or {}).get(out_name, {})
        self.expect_close(out_name, out, ref, case=label, border=border,
                          hints={"default": first, "all zero": f"{first} (it is all zeros)",
                                 **{pattern: f"{first} ({text})" for pattern, text in own.items()}})
        grads = backward(numpy.ones_like(out), cache)
        for (name, value), grad in zip(inputs.items(), grads if isinstance(grads, tuple) else (grads,)):
            if grad is not None and hasattr(value, "dtype") and value.dtype.kind == "f":
                hint = (hints or {}).get(f"d{name}", {}).get("shape") or f"d{name} has the shape of {name}"
                self.expect_shape(f"d{name}", grad, value.shape, hint=hint)
        self.judge_gradients(gradcheck(forward, backward, inputs, kwargs, wrt=wrt, label=label, eps=eps, tol=tol),
                             hints, border)

    def expect_layer_gradients(self, run, analytic, tensors: dict, *, label: str, hints: dict | None = None,
                               eps: float = 1e-6, tol: float = DEFAULT_TOL, directions=None, seed: int = 0):
        """Gradient check of a whole model: ``run()`` recomputes the output, ``analytic(dout)``
        returns the gradients by name (see minimal_seg.gradcheck.check_gradients)."""
        report = check_gradients(run, analytic, tensors, label, eps=eps, tol=tol, directions=directions, seed=seed)
        self.judge_gradients(report, hints)

    def judge_gradients(self, report: GradcheckReport, hints: dict | None = None, border: int = 0):
        """Keep the report's error maps; fail on the first tensor above the tolerance."""
        for c in report.checks:
            if not c.directional:
                self.maps[f"d{c.name} ({report.label})"] = c.error_map
            self.measure(c.max_rel_error)
            self.compared += c.analytic.size
        for c in report.checks:
            if c.max_rel_error > report.tol:
                if c.directional:
                    pattern, _ = diagnose(c.analytic, c.numeric)
                    where = f"along {c.analytic.size} random directions (too many entries to check one by one)"
                else:
                    pattern, where = diagnose(c.analytic, c.numeric, border)
                    where = f"{where}; the worst is d{c.name}{index_text(c.worst_index)}: yours " \
                            f"{c.analytic[c.worst_index]:.6g}, numerical {c.numeric[c.worst_index]:.6g}"
                self.fail(f"d{c.name} does not match the numerical gradient ({report.label})",
                          where=where,
                          size=f"max rel. error {c.max_rel_error:.2e} (tolerance {report.tol:.0e})",
                          hint=hint_for(f"d{c.name}", pattern, (hints or {}).get(f"d{c.name}")),
                          map_name="" if c.directional else f"d{c.name} ({report.label})")
        return report


# ----------------------------------------------------------------------------- the student's file

class StudentFile:
    """The student's module; a missing function is a failed check, not an AttributeError."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        try:
            return getattr(self._module, name)
        except AttributeError:
            raise CheckFailed(f"your file has no function {name}",
                              hint="keep the names and arguments of the functions in the assignment file") from None


def load_impl(path, source: str | None = None) -> types.ModuleType:
    """Import the file at ``path`` as a fresh module: no sys.path changes, no bytecode cache.

    importlib makes the module from the file's location; its source is then
    compiled here rather than by the loader, which would reuse a cached .pyc
    for a file edited twice within one second (a notebook's edit-and-check loop).
    ``source``: the text to run, when the caller has read (and judged) it already;
    default: the file's text.
    """
    path = Path(path).resolve()
    spec = importlib.util.spec_from_file_location(f"minimal_seg_student_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    text = path.read_text(encoding="utf-8") if source is None else source
    exec(compile(text, str(path), "exec"), module.__dict__)
    return module


def find_stubs(source: str) -> list[str]:
    """The message of every ``raise NotImplementedError(...)`` still standing in a function of ``source``."""
    stubs = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for stmt in node.body:
            raised = stmt.exc if isinstance(stmt, ast.Raise) else None
            call = raised if isinstance(raised, ast.Call) else None
            name = call.func if call else raised
            if isinstance(name, ast.Name) and name.id == "NotImplementedError":
                message = call.args[0] if call and call.args else None
                stubs.append(message.value if isinstance(message, ast.Constant) else f"{node.name}: to do")
    return stubs


def _frame_in(err: BaseException, path: str):
    """The last traceback frame of ``err`` that lies in the file ``path`` (or None)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == Path(path)]
    return frames[-1] if frames else None


def _rejected(assignment: str, title: str, checklist: Checklist, impl_path: str, why: str, where: str,
              hint: str) -> Result:
    """A file that was not graded: every check fails, the reason said once."""
    rows = [CheckResult(number, check.title, check.expect, "FAIL", what="not graded: " + why)
            for number, check in enumerate(checklist.checks, 1)]
    return Result(assignment, title, impl_path, rows, rejected=why, rejected_where=where, rejected_hint=hint)


def run_checks(assignment: str, title: str, checklist: Checklist, impl_path) -> Result:
    """Check the student's imports, load the file and run every check of ``checklist`` on it, in order."""
    impl_path = str(Path(impl_path).resolve())
    name = Path(impl_path).name
    source = Path(impl_path).read_text(encoding="utf-8")
    try:
        violations = find_violations(source, checklist.imports, assignment) if checklist.imports else []
        if violations:
            return _rejected(assignment, title, checklist, impl_path,
                             f"{name} uses what assignment {assignment} does not allow: {violations[0].why}",
                             where="; ".join(f"{name} {v.line}: {v.code}" for v in violations),
                             hint="write the code yourself with NumPy (xp = array_module(x)); "
                                  "the docstrings list what you may use")
        module = load_impl(impl_path, source)  # the very text whose imports were judged
    except Exception as err:  # a syntax error, a failing import
        line = getattr(err, "lineno", None) or getattr(_frame_in(err, impl_path), "lineno", "?")
        return _rejected(assignment, title, checklist, impl_path, f"{type(err).__name__}: {err}",
                         where=f"{name} line {line}",
                         hint="fix this first: none of the checks can run before the file imports")
    student = StudentFile(module)
    stubs = find_stubs(source)
    results = []
    for number, check in enumerate(checklist.checks, 1):
        ctx = CheckContext()
        row = CheckResult(number, check.title, check.expect, "PASS")
        try:
            with numpy.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check.run(student, ctx)
            if not ctx.compared:
                ctx.fail("this check compared no values, so it cannot give credit",
                         hint="a defect of the check, not of your file: tell your teacher")
        except CheckFailed as failed:
            row.status, row.what, row.where, row.size = "FAIL", failed.what, failed.where, failed.size
            row.hint, row.map_name = failed.hint, failed.map_name
        except NotImplementedError as err:
            frame = _frame_in(err, impl_path)
            function = frame.name if frame else str(err).split(":")[0]
            row.status, row.what = "TODO", f"not implemented yet: {function}"
            row.hint = f"{err}" if str(err) else "replace the `raise NotImplementedError` with your code"
        except Exception as err:
            frame = _frame_in(err, impl_path)
            row.status = "FAIL"
            row.what = f"{type(err).__name__}: {err}"
            if frame is not None:
                row.what = f"{frame.name} raised {row.what}"
                row.where = f"{Path(impl_path).name} line {frame.lineno}: {frame.line}"
            row.hint = "run the function on the shapes in its docstring and print the shapes of what you build"
        row.maps = ctx.maps
        if ctx.measured:
            row.measured = ctx.measured
        elif ctx.worst is not None and row.status != "TODO":
            row.measured = f"{ctx.worst:.1e}"
        results.append(row)
    return Result(assignment, title, impl_path, results, stubs)
