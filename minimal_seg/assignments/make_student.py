"""Write the student version of every assignment: each solution block becomes a stub.

    python -m minimal_seg make-student OUT_DIR [--force] [--solutions FOLDER]
    python -m minimal_seg.assignments.make_student OUT_DIR [--force] [--solutions FOLDER]

The solutions are read from ``lectures/assignments/solutions/`` of the
checkout this package runs from, or from ``--solutions FOLDER``; an installed
package has none (it never ships the answers), and says so.

A solution block is the lines between two markers (inclusive)::

        # ===== START SOLUTION: what the student is to write =====
        ...
        # ===== END SOLUTION =====

and becomes, at the marker's indentation::

        raise NotImplementedError("im2col: implement what the student is to write (see the docstring)")

The function's name comes from the source (``ast``); the text after the colon
is optional ("implement this function" without it). Everything else, the
docstrings with their shapes, formulas and cache contents first of all, is
kept as it is. Blocks must lie inside a function (a stub at module level would
stop the file from importing), and the result is parsed again before it is
written, so a student always receives importable Python.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

START = re.compile(r"^(?P<indent>[ \t]*)# ===== START SOLUTION(?::\s*(?P<what>.*?))?\s*=====\s*$")
END = re.compile(r"^[ \t]*# ===== END SOLUTION =====\s*$")
HEADER = ("# Assignment {assignment} of minimal_seg (student version): replace every `raise NotImplementedError`.\n"
          "# Check your work with: python -m minimal_seg check {assignment} --impl {name}\n")


def _enclosing_function(tree: ast.AST, line: int) -> str | None:
    """Name of the innermost function whose body holds ``line`` (1-based)."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno < line <= node.end_lineno:
            if best is None or node.lineno > best.lineno:
                best = node
    return best.name if best else None


def strip_solutions(source: str, filename: str = "<assignment>") -> str:
    """Return ``source`` with every START/END SOLUTION block replaced by a NotImplementedError stub."""
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    out, block = [], None
    for number, line in enumerate(lines, 1):
        if block is None:
            match = START.match(line)
            if END.match(line):
                raise ValueError(f"{filename}:{number}: END SOLUTION without a START")
            if not match:
                out.append(line)
                continue
            function = _enclosing_function(tree, number)
            if function is None:
                raise ValueError(f"{filename}:{number}: a solution block must lie inside a function")
            what = match.group("what") or "this function"
            message = f"{function}: implement {what} (see the docstring)"
            block = (number, f"{match.group('indent')}raise NotImplementedError({message!r})\n")
        elif START.match(line):
            raise ValueError(f"{filename}:{number}: START SOLUTION inside the block opened at line {block[0]}")
        elif END.match(line):
            out.append(block[1])
            block = None
    if block is not None:
        raise ValueError(f"{filename}:{block[0]}: START SOLUTION without an END")
    student = "".join(out)
    ast.parse(student, filename)  # must still be valid Python
    return student


def write_student_versions(out_dir, force: bool = False, solutions=None) -> list[Path]:
    """Write every assignment's student file into ``out_dir``; returns the paths written.

    ``solutions`` is the folder of reference solutions (default: the checkout's
    lectures/assignments/solutions). Refuses to overwrite an existing file (a
    student's work) unless ``force``.
    """
    from . import ASSIGNMENTS

    sources = {a.name: a.solution_file(solutions).read_text(encoding="utf-8") for a in ASSIGNMENTS.values()}
    out_dir = Path(out_dir)
    targets = [(a, out_dir / a.filename) for a in ASSIGNMENTS.values()]
    existing = [str(p) for _, p in targets if p.exists()]
    if existing and not force:
        raise FileExistsError(f"would overwrite {', '.join(existing)}; pass --force to replace them")
    out_dir.mkdir(parents=True, exist_ok=True)
    for a, path in targets:
        student = strip_solutions(sources[a.name], a.filename)
        path.write_text(HEADER.format(assignment=a.name, name=a.filename) + student, encoding="utf-8")
    return [p for _, p in targets]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimal_seg.assignments.make_student",
                                     description="Write the student version of every assignment.")
    parser.add_argument("out_dir", help="folder to write the assignment files into")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--solutions", default=None, metavar="FOLDER",
                        help="the folder of reference solutions (default: lectures/assignments/solutions "
                             "of the checkout)")
    args = parser.parse_args(argv)
    try:
        paths = write_student_versions(args.out_dir, args.force, args.solutions)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    print(f"check one with: python -m minimal_seg check a1 --impl {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
