"""What the autograder found: one ``CheckResult`` per check, a ``Result`` per assignment.

``print(result)`` gives the table (PASS / FAIL / TODO per check) and, below
it, what failed, where, how big and a hint for every failing check;
``result.show(n)`` draws the error map of check n. A file that cannot be
graded at all (it does not import, or it imports what the assignment
forbids) is a Result with every check failed and the reason said once
(``Result.rejected``): it scores 0 of N.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

PYTHON_SHOW = "result.show({number}) draws the error map of {map_name}"


@dataclass
class CheckResult:
    """One row of the table, and the details printed below it when it did not pass."""

    number: int
    title: str
    expect: str
    status: str  # "PASS", "FAIL" or "TODO" (a stub that still raises NotImplementedError)
    measured: str = "-"
    what: str = ""
    where: str = ""
    size: str = ""
    hint: str = ""
    map_name: str = ""  # the error map that shows the failure
    maps: dict = field(default_factory=dict, repr=False)

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def details(self, show: str = PYTHON_SHOW) -> str:
        """The lines printed for a check that did not pass; ``show`` says how to draw its error map."""
        if self.status == "TODO":
            return f"TODO {self.number}. {self.title}: {self.what}"
        lines = [f"{self.status} {self.number}. {self.title}", f"    what:    {self.what}"]
        for label, text in (("where", self.where), ("how big", self.size), ("hint", self.hint)):
            if text:
                lines.append(f"    {label + ':':<8} {text}")
        if self.map_name:
            lines.append("    see:     " + show.format(number=self.number, map_name=self.map_name))
        return "\n".join(lines)


@dataclass
class Result:
    """Everything ``check`` found: ``print(result)`` for the table, ``result.show()`` for an error map."""

    assignment: str
    title: str
    impl: str
    results: list
    stubs: list = field(default_factory=list)  # the messages of the stubs still in the file
    rejected: str = ""  # why the file was not graded at all (every check then fails)
    rejected_where: str = ""
    rejected_hint: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def score(self) -> int:
        """The number of checks passed."""
        return sum(r.passed for r in self.results)

    def __getitem__(self, number: int) -> CheckResult:
        return self.results[number - 1]

    def table(self) -> str:
        header = ("#", "check", "result", "measured", "expect")
        rows = [header] + [(str(r.number), r.title, r.status, r.measured, r.expect) for r in self.results]
        widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
        return "\n".join("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)

    def report(self, show: str = PYTHON_SHOW) -> str:
        """The printed report; ``show`` is the text that says how to draw check {number}'s error map."""
        ok, todo = self.score, sum(r.status == "TODO" for r in self.results)
        parts = [f"Assignment {self.assignment}: {self.title}", f"impl: {self.impl}", "", self.table(), ""]
        if self.rejected:
            parts += ["NOT GRADED: " + self.rejected]
            parts += [f"    {label + ':':<8} {text}" for label, text in
                      (("where", self.rejected_where), ("hint", self.rejected_hint)) if text]
            parts += [""]
        else:
            parts += [r.details(show) + "\n" for r in self.results if r.status == "FAIL"]
            parts += [r.details(show) for r in self.results if r.status == "TODO"]
        if self.stubs and not self.rejected:
            parts += ["", "Still to write:", *(f"    {text}" for text in self.stubs), ""]
        summary = f"{ok} of {len(self.results)} checks passed"
        if todo:
            summary += f", {todo} waiting for code that is not written yet"
        parts.append(summary + (": well done." if self.passed else "."))
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        return f"<Result {self.assignment}: {self.score}/{len(self.results)} checks passed>"

    def show(self, number: int | None = None, name: str | None = None, ax=None):
        """Draw an error map (log10, max over the leading axes) of check ``number``.

        Default: the first failing check that has maps, else the first check that
        has any; ``name`` picks one of its maps (default: the first).
        """
        import matplotlib.pyplot as plt

        if number is not None:
            chosen = self[number]
        else:
            failing = [r for r in self.results if r.map_name]
            chosen = (failing or [r for r in self.results if r.maps] or [None])[0]
        if chosen is None or not chosen.maps:
            raise ValueError("no check of this result has an error map (did the checks run?)")
        name = name or chosen.map_name or next(iter(chosen.maps))
        err = numpy.asarray(chosen.maps[name], dtype=numpy.float64)
        while err.ndim > 2:
            err = err.max(axis=0)
        if err.ndim < 2:
            err = err.reshape(1, -1)
        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3.5))
        image = ax.imshow(numpy.log10(numpy.nan_to_num(err, nan=1.0) + 1e-20), cmap="magma", vmin=-16, vmax=0)
        ax.set_title(f"{chosen.number}. {name}, log10", fontsize=9)
        ax.figure.colorbar(image, ax=ax)
        return ax
