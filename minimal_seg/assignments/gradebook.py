"""Grade a class: a folder of submissions in, a CSV gradebook out.

    python -m minimal_seg check all --submissions SUBMISSIONS --gradebook grades.csv [--held-out FOLDER]

SUBMISSIONS holds one folder per student, named after the student, with
their files under the names the assignments give them::

    SUBMISSIONS/
      alice/a1_conv_im2col.py  alice/a2_transposed_conv.py ...
      bob/a1_conv_im2col.py ...

The gradebook has one row per student and, per assignment, one column per
check (1 passed, 0 not), the number passed (``a1 score``) and a note (a
missing file, a file that was not graded and why, stubs still standing);
``total`` sums the scores. Held-out checks (``held_out``, a teacher's folder,
see ``minimal_seg.assignments.check``) get columns of their own, titled
"held-out: ...".

Every file is judged exactly as ``check`` judges it (imports first, then
the checks). Each student is graded in a Python process of their own
(``isolate=True``, the default), with a time limit (``timeout`` seconds,
``--timeout``): a file that loops forever, exits the interpreter or changes
the library under the next student's feet costs only its own row, whose
note says what happened. This is isolation, not a sandbox: the files still
run as Python code with the teacher's rights, so run it on files you are
willing to execute.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from . import get_assignment
from .grader import run_checks


def _columns(assignment, checklist) -> list[str]:
    return [f"{assignment.name} {n}. {c.title}" for n, c in enumerate(checklist.checks, 1)] + \
        [f"{assignment.name} score", f"{assignment.name} note"]


def _note(result) -> str:
    if result.rejected:
        return f"not graded ({result.rejected_where}): {result.rejected}"
    todo = sum(r.status == "TODO" for r in result.results)
    return f"{todo} check(s) wait for code not written yet" if todo else ""


def grade_student(folder: Path, checklists) -> dict:
    """One row of the gradebook: the student's files in ``folder`` graded on every assignment.

    checklists  [(Assignment, its Checklist, held-out checks included), ...], built once for the class
    """
    row = {"student": folder.name}
    total = 0
    for a, checklist in checklists:
        columns = _columns(a, checklist)
        path = folder / a.filename
        if not path.is_file():
            _zero_columns(row, columns, f"missing: no {a.filename}")
            continue
        result = run_checks(a.name, a.title, checklist, path)  # what check() runs
        row.update({c: int(r.passed) for c, r in zip(columns, result.results)})
        row[columns[-2]] = result.score
        row[columns[-1]] = _note(result)
        total += result.score
    row["total"] = total
    return row


def grade_submissions(submissions, assignments=("all",), held_out=None, gradebook=None, isolate=True,
                      timeout=600.0) -> list[dict]:
    """Grade every student folder of ``submissions``; write the CSV ``gradebook`` (when given); return the rows.

    assignments  names ("a1", ...) or ("all",)
    isolate      grade each student in a process of their own, killed after ``timeout`` seconds
    """
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise FileNotFoundError(f"--submissions: no such folder: {submissions}")
    from . import ASSIGNMENTS

    chosen = list(ASSIGNMENTS.values()) if "all" in assignments else [get_assignment(n) for n in assignments]
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not students:
        raise FileNotFoundError(f"--submissions: {submissions} holds no student folders (one folder per student)")
    checklists = [(a, a.checklist(held_out)) for a in chosen]  # a held-out file is loaded once, not per student
    if isolate:
        names = [a.name for a in chosen]
        rows = [grade_student_isolated(folder, names, held_out, checklists, timeout) for folder in students]
    else:
        rows = [grade_student(folder, checklists) for folder in students]
    if gradebook is not None:
        header = ["student"] + [c for a, checklist in checklists for c in _columns(a, checklist)] + ["total"]
        with open(gradebook, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
    return rows


def grade_student_isolated(folder: Path, names, held_out, checklists, timeout) -> dict:
    """``grade_student`` in a new Python process, killed after ``timeout`` seconds.

    The child runs in a temporary folder (paths are made absolute for it) and
    writes its row as JSON into a file there; a child that timed out or died
    without writing it gives a row of zeros whose notes say so.
    """
    with tempfile.TemporaryDirectory(prefix="minimal_seg_grade_") as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, "-c", "from minimal_seg.assignments.gradebook import _child; _child()",
                   str(Path(folder).resolve()), str(out), str(Path(held_out).resolve()) if held_out else "", *names]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return _failed_row(folder, checklists, f"not graded: still running after {timeout:g} s (a time limit "
                                                   "per student, --timeout)")
        if out.is_file():
            return json.loads(out.read_text(encoding="utf-8"))
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return _failed_row(folder, checklists, f"not graded: the grading process ended with exit status "
                                               f"{done.returncode} ({last[:200]})")


def _failed_row(folder: Path, checklists, note: str) -> dict:
    """A row of zeros for every check, ``note`` on every assignment."""
    row = {"student": folder.name}
    for a, checklist in checklists:
        _zero_columns(row, _columns(a, checklist), note)
    row["total"] = 0
    return row


def _zero_columns(row, columns, note):
    """0 in every check and score column of one assignment, ``note`` in its note column (the last)."""
    row.update({c: 0 for c in columns[:-1]})
    row[columns[-1]] = note


def _child():
    """The grading process of ``grade_student_isolated``: argv = folder, row file, held-out folder (or ""), names."""
    from . import get_assignment

    folder, out, held_out, *names = sys.argv[1:]
    chosen = [get_assignment(n) for n in names]
    row = grade_student(Path(folder), [(a, a.checklist(held_out or None)) for a in chosen])
    Path(out).write_text(json.dumps(row), encoding="utf-8")


def summary(rows, assignments) -> str:
    """One line per student: the score of every assignment, and the notes."""
    lines = []
    for row in rows:
        parts = []
        for name in assignments:
            score = row[f"{name} score"]
            of = sum(1 for key in row if key.startswith(f"{name} ") and key.split(" ")[1][:-1].isdigit())
            note = row[f"{name} note"]
            parts.append(f"{name} {score}/{of}" + (f" ({note[:100]}{'...' if len(note) > 100 else ''})"
                                                   if note else ""))
        lines.append(f"{row['student']}: " + ", ".join(parts) + f"; total {row['total']}")
    return "\n".join(lines)
