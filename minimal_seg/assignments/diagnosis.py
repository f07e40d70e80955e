"""How a wrong array differs from the right one, and what to tell the student then.

``diagnose(actual, expected)`` names the pattern of the error (all zero, half,
twice, the wrong sign, scaled, transposed, only near the border, ...); a
check turns the pattern into a hint with ``hint_for``, in its own words
where it has them (a dict pattern -> text), else in the words of
``DEFAULT_HINTS``.
"""
from __future__ import annotations

import numpy

# What a wrong array most often looks like, and what to tell the student then.
# A check passes its own texts (same keys) to say it in the words of its assignment.
DEFAULT_HINTS = {
    "shape": "the shape is wrong: compare it with the shapes in the docstring",
    "nan": "the result holds nan or inf: an overflow (exp of a large number?) or a division by zero",
    "all zero": "it is all zeros: nothing is computed yet (zeros of the right shape earn no credit); "
                "follow the formula in the docstring",
    "zero": "it is zero where it should not be: a gradient path (or a write) is missing",
    "half": "it is half of what it should be where it is wrong: a gradient that arrives along "
            "two paths must be the sum of both",
    "double": "it is twice too large where it is wrong: a contribution is added twice",
    "sign": "it has the wrong sign",
    "scaled": "it is off by a constant factor: check the normalisation (mean or sum?) and constant factors",
    "transposed": "it is the transpose of the right answer: h and w (or i and j) are swapped",
    "border": "it is wrong only near the border: check the padding",
    "partial": "it is wrong in some places only: compare the worst index with the formula in the docstring",
    "everywhere": "it is wrong almost everywhere: go through the formula in the docstring step by step",
}



def index_text(idx) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _near_border(mask, width: int):
    """True where an entry lies within ``width`` pixels of an edge of the last two axes."""
    h, w = mask.shape[-2:]
    rows = numpy.arange(h)[:, None]
    cols = numpy.arange(w)[None, :]
    ring = (rows < width) | (rows >= h - width) | (cols < width) | (cols >= w - width)
    return numpy.broadcast_to(ring, mask.shape)


def diagnose(actual, expected, border: int = 0, rtol: float = 1e-6):
    """How ``actual`` differs from ``expected`` (same shape): (pattern, description).

    pattern is one of the keys of DEFAULT_HINTS; the description says how many
    entries are wrong (the callers add the worst one). ``border`` > 0 enables
    the "only near the border" pattern (entries within ``border`` pixels of an edge).
    A single number says nothing about a pattern: it is "everywhere" wrong.
    """
    a = numpy.asarray(actual, dtype=numpy.float64)
    e = numpy.asarray(expected, dtype=numpy.float64)
    if not numpy.isfinite(a).all():
        bad = ~numpy.isfinite(a)
        return "nan", f"{int(bad.sum())} of {a.size} entries are nan or inf"
    if a.size == 1:
        return "everywhere", ""
    err = numpy.abs(a - e)
    scale = max(float(numpy.abs(e).max(initial=0.0)), float(numpy.abs(a).max(initial=0.0)), 1e-300)
    bad = err > rtol * scale
    where = f"{int(bad.sum())} of {a.size} entries wrong"
    if not bad.any():
        return "partial", where

    def same(u, v):
        return bool(numpy.all(numpy.abs(u - v) <= rtol * scale))

    if a.ndim >= 2 and a.shape[-1] == a.shape[-2] and same(a, numpy.swapaxes(e, -1, -2)):
        return "transposed", where
    if not a.any():
        return "all zero", where
    ab, eb = a[bad], e[bad]
    if same(ab, 0 * eb):
        return "zero", where
    ratio = float((ab * eb).sum() / max(float((eb * eb).sum()), 1e-300))
    if same(ab, ratio * eb):
        for pattern, value in (("half", 0.5), ("double", 2.0), ("sign", -1.0)):
            if abs(ratio - value) < 1e-3:
                return pattern, where
        return "scaled", f"{where}, each {ratio:.4g} times the right value"
    if border and a.ndim >= 2:
        ring = _near_border(bad, border)
        if (bad <= ring).all() and not ring.all():
            return "border", f"{where}, all of them within {border} pixel(s) of the border"
    return ("everywhere" if bad.mean() > 0.5 else "partial"), where


# Patterns whose generic hint says more than a check's "default" one.
GENERIC_FIRST = {"all zero"}


def hint_for(name: str, pattern: str, hints: dict | None) -> str:
    """The check's hint for this pattern, else its "default" hint, else the generic one.

    "{name}" in a hint becomes the array's name (other braces, as in a formula's sum_{c,i,j}, stay as they are).
    """
    hints = hints or {}
    generic = f"{name}: {DEFAULT_HINTS[pattern]}"
    text = hints.get(pattern) or (generic if pattern in GENERIC_FIRST else hints.get("default")) or generic
    return text.replace("{name}", name)

