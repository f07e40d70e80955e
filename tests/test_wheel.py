"""The built wheel carries the autograder and never the answers (issue 12: "no answer reachable by an import").

Builds the wheel as a user would (``pip wheel . --no-deps``; without build isolation, so it needs no
network and takes a few seconds) from a clean copy of the sources (a stale ``build/`` folder of an
older checkout would otherwise slip old files into it), and reads every file in it.
"""
import io
import re
import shutil
import subprocess
import sys
import tokenize
import zipfile
from pathlib import Path

import pytest

from minimal_seg.assignments import ASSIGNMENTS, SOLUTIONS
from minimal_seg.assignments.make_student import END, START

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools")
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "_build", ".ipynb_checkpoints")
    for name in ("minimal_seg", "lectures"):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "--no-cache-dir", "-q", "-w", str(out)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    (path,) = out.glob("minimal_seg-*.whl")
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _solution_lines() -> set[str]:
    """The code lines of every solution block that are long enough to be distinctive (>= 30 characters)."""
    lines = set()
    for a in ASSIGNMENTS.values():
        inside = False
        for line in (SOLUTIONS / a.filename).read_text().splitlines():
            if START.match(line) or END.match(line):
                inside = bool(START.match(line))
            elif inside and len(line.strip()) >= 30 and not line.strip().startswith("#"):
                lines.add(line.strip())
    return lines


def test_the_wheel_has_the_autograder_and_no_solution_files(wheel):
    names = list(wheel)
    assert "minimal_seg/assignments/grader.py" in names and "minimal_seg/assignments/checks/a1_conv_im2col.py" in names
    assert not [n for n in names if n.startswith(("lectures/", "tests/", "docs/")) or "solutions" in n]
    for a in ASSIGNMENTS.values():  # the old place of the solutions is empty
        assert f"minimal_seg/assignments/{a.filename}" not in names


def test_no_file_in_the_wheel_holds_a_solution_block_or_a_line_of_one(wheel):
    lines = _solution_lines()
    assert len(lines) > 40  # the test has something to look for
    for name, data in wheel.items():
        if not name.endswith(".py"):
            continue
        text = data.decode("utf-8")
        comments = [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
                    if t.type == tokenize.COMMENT]
        assert not [c for c in comments if re.match(r"# ===== (START|END) SOLUTION", c)], name
        found = [line for line in lines if line in text]
        assert not found, f"{name} holds solution code: {found[:3]}"


def test_installed_from_the_wheel_the_autograder_works_and_asks_for_the_solutions(wheel, tmp_path):
    """Unpacked as pip would install it: make-student needs --solutions (and says so); check grades a file."""
    site = tmp_path / "site"
    for name, data in wheel.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    env = {**__import__("os").environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "minimal_seg", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path)

    where = subprocess.run([sys.executable, "-c", "import minimal_seg; print(minimal_seg.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path).stdout
    assert where.startswith(str(site)), f"the unpacked wheel is not the minimal_seg imported: {where}"
    missing = run("make-student", "hw")
    assert missing.returncode == 1 and "--solutions FOLDER" in missing.stderr, missing.stderr
    assert "not found" in missing.stderr and not (tmp_path / "hw").exists()
    assert run("make-student", "hw", "--solutions", str(SOLUTIONS)).returncode == 0
    graded = run("check", "a5", "--impl", "hw")
    assert graded.returncode == 1 and "not implemented yet" in graded.stdout, graded.stdout + graded.stderr
    ok = run("check", "a5", "--impl", str(SOLUTIONS / "a5_losses.py"))
    assert ok.returncode == 0 and "5 of 5 checks passed" in ok.stdout, ok.stdout + ok.stderr
