"""The teacher's workflow: make-student, held-out checks, a class graded into a CSV gradebook; the CLI around it."""
import csv
import shutil

import pytest

from minimal_seg.assignments import SOLUTIONS, SolutionsNotFoundError, check, get_assignment, solutions_folder
from minimal_seg.assignments.make_student import write_student_versions
from minimal_seg.cli import main

HELD_OUT = SOLUTIONS.parent / "held_out"


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    """A class of four: alice hands in the right answers, bob the untouched stubs, carol an import of the
    solution, dave nothing for a2."""
    root = tmp_path_factory.mktemp("submissions")
    stubs = tmp_path_factory.mktemp("stubs")
    write_student_versions(stubs)
    for name in ("a1", "a2"):
        a = get_assignment(name)
        for student in ("alice", "bob", "carol", "dave"):
            (root / student).mkdir(exist_ok=True)
        shutil.copy(a.solution_file(), root / "alice" / a.filename)
        shutil.copy(stubs / a.filename, root / "bob" / a.filename)
        (root / "carol" / a.filename).write_text(f"from minimal_seg.functional import *  # {name}\n")
    shutil.copy(get_assignment("a1").solution_file(), root / "dave" / "a1_conv_im2col.py")
    (root / ".hidden").mkdir()  # not a student
    return root


def _read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_class_is_graded_into_one_row_per_student_and_one_column_per_check(submissions, tmp_path, capsys):
    book = tmp_path / "grades.csv"
    assert main(["check", "a1", "--submissions", str(submissions), "--gradebook", str(book),
                 "--held-out", str(HELD_OUT)]) == 0
    rows = {row["student"]: row for row in _read(book)}
    assert sorted(rows) == ["alice", "bob", "carol", "dave"]
    checks = get_assignment("a1").checklist(HELD_OUT).checks
    columns = [f"a1 {n}. {c.title}" for n, c in enumerate(checks, 1)]
    assert list(rows["alice"]) == ["student", *columns, "a1 score", "a1 note", "total"]
    assert columns[-1].startswith("a1 7. held-out: ")
    assert [rows["alice"][c] for c in columns] == ["1"] * 7 and rows["alice"]["total"] == "7"
    assert [rows["bob"][c] for c in columns] == ["0"] * 7 and "wait for code" in rows["bob"]["a1 note"]
    assert rows["carol"]["a1 score"] == "0" and "not graded" in rows["carol"]["a1 note"]
    assert "minimal_seg.functional" in rows["carol"]["a1 note"]
    out = capsys.readouterr().out
    assert "alice: a1 7/7" in out and "carol: a1 0/7 (not graded" in out and "wrote " in out


def test_a_missing_file_is_a_row_of_zeros_with_a_note(submissions, tmp_path):
    book = tmp_path / "grades.csv"
    assert main(["check", "all", "--submissions", str(submissions), "--gradebook", str(book)]) == 0
    dave = {row["student"]: row for row in _read(book)}["dave"]
    assert dave["a2 note"] == "missing: no a2_transposed_conv.py" and dave["a2 score"] == "0"
    assert int(dave["total"]) == int(dave["a1 score"]) == len(get_assignment("a1").checklist().checks)
    assert dave["a6 note"].startswith("missing")


def test_held_out_checks_run_after_the_public_ones_and_catch_what_they_test(tmp_path):
    result = check("a1", held_out=HELD_OUT, verbose=False)
    assert result.passed and result.results[-1].title.startswith("held-out: ")
    path = tmp_path / "a1_conv_im2col.py"  # right on the public cases, wrong on the held-out ones
    source = get_assignment("a1").solution_file().read_text()
    anchor = "    return out.reshape(n, oc, oh, ow), cache\n"
    assert source.count(anchor) == 1
    path.write_text(source.replace(anchor, "    out = out + (x.shape[2] == 9)\n" + anchor))
    result = check("a1", impl=path, held_out=HELD_OUT, verbose=False)
    assert [r.passed for r in result.results] == [True] * 6 + [False]
    assert check("a2", held_out=HELD_OUT, verbose=False).passed  # no held-out file for a2: the public checks
    with pytest.raises(FileNotFoundError, match="--held-out"):
        check("a1", held_out=tmp_path / "nowhere", verbose=False)


def test_without_the_solutions_folder_the_error_names_the_option(tmp_path, capsys):
    assert solutions_folder() == SOLUTIONS
    with pytest.raises(SolutionsNotFoundError, match="--solutions FOLDER"):
        check("a1", solutions=tmp_path / "none", verbose=False)
    assert main(["make-student", str(tmp_path / "hw"), "--solutions", str(tmp_path / "none")]) == 1
    assert "--solutions FOLDER" in capsys.readouterr().err
    assert main(["check", "a1", "--solutions", str(tmp_path / "none")]) == 2
    copy = tmp_path / "mine"
    shutil.copytree(SOLUTIONS, copy)
    assert main(["make-student", str(tmp_path / "hw"), "--solutions", str(copy)]) == 0
    assert main(["check", "a3", "--solutions", str(copy)]) == 0


def test_the_command_line_says_how_to_see_an_error_map_and_draws_it(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    source = get_assignment("a1").solution_file().read_text()
    path = tmp_path / "a1_conv_im2col.py"
    path.write_text(source.replace("+= cols[:, :, i, j]", "= cols[:, :, i, j]"))
    assert main(["check", "a1", "--impl", str(path)]) == 1
    out = capsys.readouterr().out
    assert "result.show(" not in out  # that exists only in Python
    assert f"python -m minimal_seg check a1 --impl {path} --error-map " in out
    monkeypatch.chdir(tmp_path)
    number = next(n for n in range(1, 7) if f"--error-map {n} saves" in out)
    assert main(["check", "a1", "--impl", str(path), "--error-map", str(number)]) == 1
    assert (tmp_path / f"error_map_a1_{number}.png").stat().st_size > 1000
    assert main(["check", "a1", "--error-map", "99"]) == 2


def test_each_student_is_graded_in_a_process_of_their_own_with_a_time_limit(tmp_path):
    """A file that never finishes costs its own row only; a grading process that dies says why."""
    from minimal_seg.assignments.gradebook import grade_student_isolated, grade_submissions

    a1 = get_assignment("a1")
    checklists = [(a1, a1.checklist())]
    looping = tmp_path / "erin"
    looping.mkdir()
    (looping / a1.filename).write_text("while True:\n    pass\n")
    row = grade_student_isolated(looping, ["a1"], None, checklists, timeout=4)
    assert row["a1 score"] == 0 and row["total"] == 0
    assert "still running after 4 s" in row["a1 note"]
    row = grade_student_isolated(looping, ["a1"], tmp_path / "no such folder", checklists, timeout=60)
    assert "the grading process ended with exit status 1" in row["a1 note"] and row["total"] == 0

    good = tmp_path / "class" / "alice"
    good.mkdir(parents=True)
    shutil.copy(a1.solution_file(), good / a1.filename)
    isolated = grade_submissions(tmp_path / "class", ["a1"])
    assert isolated == grade_submissions(tmp_path / "class", ["a1"], isolate=False)  # the same row either way
    assert isolated[0]["a1 score"] == len(checklists[0][1].checks)


def test_timeout_and_in_process_flags(tmp_path, capsys, monkeypatch):
    from minimal_seg.assignments import gradebook

    seen = {}
    monkeypatch.setattr(gradebook, "grade_submissions", lambda *a, **k: seen.update(k) or [])
    assert main(["check", "a1", "--submissions", str(tmp_path), "--timeout", "30", "--in-process"]) == 0
    assert seen["timeout"] == 30.0 and seen["isolate"] is False
    with pytest.raises(SystemExit):
        main(["check", "a1", "--submissions", str(tmp_path), "--timeout", "0"])
    assert "--timeout" in capsys.readouterr().err


def test_relative_folders_reach_the_grading_process(submissions, tmp_path, monkeypatch):
    """The grading process runs in a folder of its own: relative --submissions and --held-out still work."""
    shutil.copytree(submissions, tmp_path / "class")
    shutil.copytree(HELD_OUT, tmp_path / "held")
    monkeypatch.chdir(tmp_path)
    book = tmp_path / "grades.csv"
    assert main(["check", "a1", "--submissions", "class", "--gradebook", str(book), "--held-out", "held"]) == 0
    assert {row["student"]: row["total"] for row in _read(book)}["alice"] == "7"
