"""Assignments: students extend the library, and an autograder tells them where they stand.

Seven assignments, each one self-contained file that a student completes::

    a1  a1_conv_im2col.py       conv2d forward and backward by im2col / col2im
    a2  a2_transposed_conv.py   the convolution matrix C; transposed conv as C^T x
    a3  a3_max_pool_unpool.py   max pooling with indices, its backward; max unpooling
    a4  a4_dilated_conv.py      dilated conv by im2col; the receptive field, computed and measured
    a5  a5_losses.py            softmax cross-entropy and Dice: forward and backward
    a6  a6_unet_skips.py        U-Net's backward pass, summing the gradients at every skip
    a7  a7_roi_align.py         RoIAlign forward and backward (lecture 004, two-stage detectors)

**The reference solutions are not in this package.** They live in the
repository, for the teacher, in ``lectures/assignments/solutions/``, between
two marker lines (the text after the colon says what the student is to write)::

    def im2col(x, kernel_size, stride=1, padding=0):
        \"\"\"Docstring: shapes, the formula, what the cache must hold.\"\"\"
        # ===== START SOLUTION: im2col, one strided slice per kernel offset =====
        ...the reference implementation...
        # ===== END SOLUTION =====

``python -m minimal_seg make-student OUT_DIR`` (``make_student.py``), run in a
checkout (or given ``--solutions FOLDER``), writes the student version: every
block replaced by ``raise NotImplementedError("im2col: implement ...")``,
docstrings kept.

**The autograder** stays in the package (``grader.py`` runs the checks in ``checks/``)::

    python -m minimal_seg check a1 --impl path/to/a1_conv_im2col.py     # exit code 1 if a check fails
    python -m minimal_seg check all --impl OUT_DIR                     # every assignment in a folder
    python -m minimal_seg check all --submissions FOLDER --gradebook grades.csv   # a class (gradebook.py)

or in a notebook::

    from minimal_seg.assignments import check
    result = check("a1", impl="a1_conv_im2col.py")   # prints the table
    result.show()                                     # the error map of the first failing check

Before anything runs, the file's imports are held against the assignment's
allow list (``imports.py``): the library's own version of the op, torch and
the solutions are out of reach. Then every assignment is checked four ways:
shapes, dtypes and values in float32, the lecture's hand examples, a float64
gradient check (which counts only once the forward values are right), and a
comparison with ``minimal_seg.functional`` on random inputs. A teacher adds
held-out checks from a folder of their own (``held_out=``, ``--held-out``).
Without ``impl`` the reference solution (from the checkout) is checked.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Where a checkout keeps the reference solutions (an installed package has no such folder).
SOLUTIONS = HERE.parents[1] / "lectures" / "assignments" / "solutions"


class SolutionsNotFoundError(FileNotFoundError):
    """The reference solutions are not where they were looked for."""


def solutions_folder(solutions=None) -> Path:
    """The folder of reference solutions: ``solutions``, or the checkout's ``lectures/assignments/solutions``.

    Raises SolutionsNotFoundError, saying where to get them, when there is no such folder
    (an installed wheel ships the autograder, never the answers).
    """
    folder = Path(solutions) if solutions is not None else SOLUTIONS
    if not folder.is_dir():
        given = f"no folder {folder}" if solutions is not None else \
            f"this copy of minimal_seg has no {folder} (an installed package ships the autograder, not the answers)"
        raise SolutionsNotFoundError(
            f"the reference solutions were not found: {given}. They live in a checkout of the repository, in "
            f"lectures/assignments/solutions/; run from a checkout (pip install -e .) or pass "
            f"--solutions FOLDER (solutions= in Python)")
    return folder


@dataclass(frozen=True)
class Assignment:
    """One assignment: its short name (a1), the file's stem and a title."""

    name: str
    stem: str
    title: str

    def solution_file(self, solutions=None) -> Path:
        """The reference solution, between the markers: ``<solutions folder>/<stem>.py``."""
        path = solutions_folder(solutions) / self.filename
        if not path.is_file():
            raise SolutionsNotFoundError(f"the solutions folder has no {self.filename}: {path}")
        return path

    @property
    def filename(self) -> str:
        return f"{self.stem}.py"

    def checklist(self, held_out=None):
        """The checks, in order; with ``held_out`` (a folder), then the ones of ``held_out/<stem>.py``."""
        checks = importlib.import_module(f".checks.{self.stem}", __name__).CHECKS
        if held_out is not None:
            from .grader import load_impl

            folder = Path(held_out)
            if not folder.is_dir():
                raise FileNotFoundError(f"--held-out: no such folder: {folder}")
            if (folder / self.filename).is_file():
                checks = checks + load_impl(folder / self.filename).CHECKS
        return checks


ASSIGNMENTS = {a.name: a for a in [
    Assignment("a1", "a1_conv_im2col", "conv forward/backward by im2col"),
    Assignment("a2", "a2_transposed_conv", "transposed convolution as C^T"),
    Assignment("a3", "a3_max_pool_unpool", "max pooling with indices, max unpooling, and their backward"),
    Assignment("a4", "a4_dilated_conv", "dilated convolution and the receptive field"),
    Assignment("a5", "a5_losses", "softmax cross-entropy and Dice: forward and backward"),
    Assignment("a6", "a6_unet_skips", "U-Net backward through the skip connections"),
    Assignment("a7", "a7_roi_align", "RoIAlign forward and backward"),
]}


def get_assignment(name: str) -> Assignment:
    """Look an assignment up by short name ("a1"), number ("1") or file stem ("a1_conv_im2col")."""
    key = str(name).strip().lower().removesuffix(".py")
    for a in ASSIGNMENTS.values():
        if key in (a.name, a.name[1:], a.stem):
            return a
    raise ValueError(f"unknown assignment {name!r}; choose one of: "
                     + ", ".join(f"{a.name} ({a.stem})" for a in ASSIGNMENTS.values()))


def _impl_path(assignment: Assignment, impl, solutions=None) -> Path:
    """The student's file: ``impl`` itself, ``impl/<stem>.py`` for a folder, or the reference solution."""
    if impl is None:
        return assignment.solution_file(solutions)
    path = Path(impl)
    if path.is_dir():
        path = path / assignment.filename
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def check(assignment: str, impl=None, verbose: bool = True, solutions=None, held_out=None):
    """Run the autograder on one assignment; print the table (``verbose``) and return the Result.

    assignment  "a1" ... "a7" (or the file stem)
    impl        path to the student's file, or to a folder holding it under its
                usual name; None checks the reference solution
    solutions   the folder of reference solutions (for impl=None; default: the checkout's)
    held_out    a teacher's folder of held-out checks, ``<stem>.py`` each holding a
                ``CHECKS = Checklist()``; they run after the public ones
    """
    from .grader import run_checks

    a = get_assignment(assignment)
    result = run_checks(a.name, a.title, a.checklist(held_out), _impl_path(a, impl, solutions))
    if verbose:
        print(result)
    return result


__all__ = ["ASSIGNMENTS", "Assignment", "SolutionsNotFoundError", "check", "get_assignment", "solutions_folder"]
