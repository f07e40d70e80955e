"""Assignment 7 (RoIAlign forward and backward): the reference passes, planted bugs are caught with their hints.

Skipped until a7 is registered in ``minimal_seg.assignments.ASSIGNMENTS``.
"""
import pytest

from minimal_seg.assignments import ASSIGNMENTS, check, get_assignment

pytestmark = pytest.mark.skipif("a7" not in ASSIGNMENTS, reason="assignment a7 is not registered")

# (the solution's line, the bug, what the bug is, a phrase its hint must contain)
BUGS = [
    ("offset = 0.5 if aligned else 0.0", "offset = 0.0", "aligned=True without the half-cell shift",
     "aligned subtracts 0.5"),
    ("count = max(grid_h * grid_w, 1)", "count = max(grid_h, 1)", "the bin mean divides by GH only",
     "MEAN of the bin's GH x GW samples"),
    ("dx[b, :, row, col] += weight * dout[k, :, i, j]", "dx[b, :, row, col] = weight * dout[k, :, i, j]",
     "backward overwrites instead of adding", "ADD (+=)"),
    ("reads.append((k, i, j, int(b), row, col, weight / count))", "reads.append((k, i, j, int(b), row, col, weight))",
     "backward forgets the 1 / count",
     "the bilinear weight / the bin's sample count"),
    ("roi_h, roi_w = max(roi_h, 1.0), max(roi_w, 1.0)", "pass", "boxes not forced to 1 x 1 when not aligned",
     "at least 1 x 1"),
    ("if y < -1.0 or y > height or x < -1.0 or x > width:", "if y < 0 or y > height or x < 0 or x > width:",
     "points in [-1, 0) read nothing", "outside [-1, H] x [-1, W]"),
    ("(iy + 0.5) * bin_h / grid_h", "iy * bin_h / grid_h", "samples at the bin's corner, not its centres",
     "(iy + 0.5) * bin_h / GH"),
]


def _mutated(tmp_path, old, new):
    a = get_assignment("a7")
    source = a.solution_file().read_text()
    assert source.count(old) == 1, f"the planted bug's anchor {old!r} must occur once in {a.filename}"
    path = tmp_path / a.filename
    path.write_text(source.replace(old, new))
    return path


def test_reference_solution_passes():
    assert check("a7", verbose=False).passed


@pytest.mark.parametrize("old,new,bug,hint", BUGS, ids=[b[2] for b in BUGS])
def test_planted_bug_is_caught_with_its_hint(tmp_path, old, new, bug, hint):
    result = check("a7", impl=_mutated(tmp_path, old, new), verbose=False)
    failed = [r for r in result.results if r.status == "FAIL"]
    assert failed, f"{bug} was not caught:\n{result}"
    assert any(hint in r.hint for r in failed), f"no failure of {bug} carries the hint {hint!r}:\n{result}"
    assert "Traceback" not in str(result)
