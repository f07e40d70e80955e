"""Assignments: students extend the library, and an autograder tells them where they stand.

Six assignments, each one self-contained file that a student completes::

    a1  a1_conv_im2col.py       conv2d forward and backward by im2col / col2im
    a2  a2_transposed_conv.py   the convolution matrix C; transposed conv as C^T x
    a3  a3_max_pool_unpool.py   max pooling with indices, its backward; max unpooling
    a4  a4_dilated_conv.py      dilated conv by im2col; the receptive field, computed and measured
    a5  a5_losses.py            softmax cross-entropy and Dice: forward and backward
    a6  a6_unet_skips.py        U-Net's backward pass, summing the gradients at every skip

**Solutions live in these files**, between two marker lines (the one marker
style of the project; the text after the colon is optional and says what
the student is to write)::

    def im2col(x, kernel_size, stride=1, padding=0):
        \"\"\"Docstring: shapes, the formula, what the cache must hold.\"\"\"
        # ===== START SOLUTION: im2col, one strided slice per kernel offset =====
        ...the reference implementation...
        # ===== END SOLUTION =====

``python -m minimal_seg make-student OUT_DIR`` (``make_student.py``) writes the
student version: every block replaced by
``raise NotImplementedError("im2col: implement im2col, one strided slice per kernel offset (see the docstring)")``,
docstrings kept.

**The autograder** (``grader.py`` runs the checks in ``checks/``)::

    python -m minimal_seg check a1 --impl path/to/a1_conv_im2col.py     # exit code 1 if a check fails
    python -m minimal_seg check all --impl OUT_DIR                     # every assignment in a folder

or in a notebook::

    from minimal_seg.assignments import check
    result = check("a1", impl="a1_conv_im2col.py")   # prints the table
    result.show()                                     # the error map of the first failing check

Every assignment is checked four ways, in this order: shapes and dtypes, the
lecture's hand examples, a float64 gradient check, and a comparison with the
reference implementation in ``minimal_seg.functional`` on random inputs.
Without ``impl`` the reference solution in this package is checked.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Assignment:
    """One assignment: its short name (a1), the file's stem and a title."""

    name: str
    stem: str
    title: str

    @property
    def solution_file(self) -> Path:
        """The file in this package, with the reference solution between the markers."""
        return HERE / f"{self.stem}.py"

    @property
    def filename(self) -> str:
        return f"{self.stem}.py"

    def checklist(self):
        return importlib.import_module(f".checks.{self.stem}", __name__).CHECKS


ASSIGNMENTS = {a.name: a for a in [
    Assignment("a1", "a1_conv_im2col", "conv forward/backward by im2col"),
    Assignment("a2", "a2_transposed_conv", "transposed convolution as C^T"),
    Assignment("a3", "a3_max_pool_unpool", "max pooling with indices, max unpooling, and their backward"),
    Assignment("a4", "a4_dilated_conv", "dilated convolution and the receptive field"),
    Assignment("a5", "a5_losses", "softmax cross-entropy and Dice: forward and backward"),
    Assignment("a6", "a6_unet_skips", "U-Net backward through the skip connections"),
]}


def get_assignment(name: str) -> Assignment:
    """Look an assignment up by short name ("a1"), number ("1") or file stem ("a1_conv_im2col")."""
    key = str(name).strip().lower().removesuffix(".py")
    for a in ASSIGNMENTS.values():
        if key in (a.name, a.name[1:], a.stem):
            return a
    raise ValueError(f"unknown assignment {name!r}; choose one of: "
                     + ", ".join(f"{a.name} ({a.stem})" for a in ASSIGNMENTS.values()))


def _impl_path(assignment: Assignment, impl) -> Path:
    """The student's file: ``impl`` itself, ``impl/<stem>.py`` for a folder, or the reference."""
    if impl is None:
        return assignment.solution_file
    path = Path(impl)
    if path.is_dir():
        path = path / assignment.filename
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def check(assignment: str, impl=None, verbose: bool = True):
    """Run the autograder on one assignment; print the table (``verbose``) and return the Result.

    assignment  "a1" ... "a6" (or the file stem)
    impl        path to the student's file, or to a folder holding it under its
                usual name; None checks the reference solution in this package
    """
    from .grader import run_checks

    a = get_assignment(assignment)
    result = run_checks(a.name, a.title, a.checklist(), _impl_path(a, impl))
    if verbose:
        print(result)
    return result


__all__ = ["ASSIGNMENTS", "Assignment", "check", "get_assignment"]
