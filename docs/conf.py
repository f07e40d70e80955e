"""Sphinx configuration of the minimal_seg documentation.

One command builds the site from a fresh checkout (CI runs exactly this,
warnings are errors)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Two steps run when the build starts (``builder-inited``), never on import:

1. the convolution-arithmetic figures are drawn by
   ``minimal_seg.conv_arithmetic.render_all`` into ``docs/_generated/``, from
   the library's own output-size formulas;
2. the lecture notebooks in ``lectures/`` (stored without outputs) are copied
   into ``docs/lectures/``, where myst-nb executes and renders them.

Both folders are generated and git-ignored. ``MINIMAL_SEG_DOCS_EXECUTE``
(``force`` by default; ``cache`` or ``off`` for quick local rebuilds) sets
how the notebooks are executed.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import minimal_seg

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
LECTURES_SOURCE = ROOT / "lectures"
LECTURES_COPY = DOCS / "lectures"  # generated: the notebooks myst-nb renders
FIGURES = DOCS / "_generated" / "conv_arithmetic"  # generated: render_all's figures
# Files of lectures/ that become part of the site: notebooks and what they may read next to them.
LECTURE_FILES = ("*.ipynb", "*.png", "*.jpg", "*.gif", "*.svg", "*.npz", "*.csv", "*.json")
PLACEHOLDER = "00_no_lectures_yet.md"

project = "minimal_seg"
author = "the minimal_seg authors"
copyright = "the minimal_seg authors, MIT license"  # noqa: A001 (Sphinx's name)
release = version = minimal_seg.__version__

extensions = [
    "myst_nb",  # Markdown (MyST) pages and the executed lecture notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",  # "[source]" links: the library is meant to be read
    "sphinx.ext.mathjax",
    # MathJax 3 from the `docs` extra (the sphinx-mathjax-offline package), copied into the site's
    # _static/mathjax/ and loaded from there: formulas are typeset with no network (no CDN).
    "sphinx-mathjax-offline",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# ---- MyST and the notebooks ---------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("MINIMAL_SEG_DOCS_EXECUTE", "force")
nb_execution_timeout = 300  # seconds per cell; a whole lecture is meant to run in < 60 s
nb_execution_raise_on_error = True  # a notebook that fails is a failed build
nb_execution_show_tb = True  # and the log shows why
nb_merge_streams = True

# ---- API reference --------------------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
autodoc_class_signature = "separated"  # the class docstring gives the signature; __init__ shown apart

# ---- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"minimal_seg {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {"navigation_with_keys": True}


# ---- the library's plain-text docstrings, read as reStructuredText --------------------------------
#
# The docstrings are written to be read in the source and in help(): formulas
# in ``::`` blocks, ``code`` in double backquotes, and tables of arguments
# aligned in columns. Read as reStructuredText, three habits of that style go
# wrong: |A n B| is a "substitution", an aligned table collapses into one
# paragraph (or, with an indented continuation line, into an error), and an
# indented diagram without "::" becomes a broken block quote. This hook turns
# exactly those paragraphs into literal blocks and escapes the stray markup,
# without changing a word, so that the API pages show each docstring as its
# author laid it out.

_LIST_ITEM = re.compile(r"^(\s*)([*+-]|\d+[.)]|#\.|\(\w\))\s+")
_COLUMN_GAP = re.compile(r"\S {2,}\S")
_LITERAL_SPLIT = re.compile(r"(``.+?``)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_inline(line: str) -> str:
    """Escape '|' outside ``literals`` and separate a literal from a following letter (``x``s)."""
    parts = _LITERAL_SPLIT.split(line)
    for k in range(0, len(parts), 2):  # the even parts lie outside ``...``
        parts[k] = parts[k].replace("|", r"\|")
    for k in range(1, len(parts), 2):
        if k + 1 < len(parts) and parts[k + 1][:1].isalnum():
            parts[k + 1] = "\\ " + parts[k + 1]
        if parts[k - 1][-1:].isalnum():
            parts[k - 1] += "\\ "
    return "".join(parts)


def _preformatted(paragraph: list[str], base: int) -> list[str]:
    """The paragraph as a plain-text block at indentation ``base``, every line kept as it is laid out."""
    pad = " " * base
    return [pad + ".. code-block:: text", ""] + [pad + "    " + line for line in paragraph] + [""]


def plain_docstring_to_rst(lines: list[str]) -> list[str]:
    """Rewrite the lines of one docstring so that docutils reads them as they look; see above.

    A paragraph (lines between blank lines) becomes a literal block when it is
    a table (two or more lines with columns separated by 2+ spaces), when a
    line after the first is indented deeper (an aligned continuation, a
    diagram), or when it is indented without belonging to a list item or a
    ``::`` block. Other paragraphs get '|' escaped outside ``literals``.
    Literal blocks, directives and doctest blocks pass unchanged.
    """
    out, i, n = [], 0, len(lines)
    allowed = [0]  # indentations at which a normal paragraph may start (0, list item bodies)
    while i < n:
        if not lines[i].strip():
            out.append(lines[i])
            i += 1
            continue
        start = i
        while i < n and lines[i].strip():
            i += 1
        paragraph, indent = lines[start:i], _indent(lines[start])
        allowed = [a for a in allowed if a <= indent] or [0]
        first = paragraph[0].strip()
        opens_block = paragraph[-1].rstrip().endswith("::") or first.startswith(".. ")
        item = _LIST_ITEM.match(paragraph[0])
        if first.startswith(">>>"):
            out.extend(paragraph)
        elif item and all(_indent(line) >= len(item.group(0)) for line in paragraph[1:]) and \
                sum(bool(_COLUMN_GAP.search(line.strip())) for line in paragraph) < 2:
            allowed.append(len(item.group(0)))
            out.extend(_escape_inline(line) if not first.startswith(".. ") else line for line in paragraph)
        elif (indent not in allowed
              or any(_indent(line) > indent for line in paragraph[1:])
              or sum(bool(_COLUMN_GAP.search(line.strip())) for line in paragraph) >= 2) and not opens_block:
            out.extend(_preformatted(paragraph, max(a for a in allowed if a <= indent)))
        else:
            out.extend(paragraph if first.startswith(".. ") else [_escape_inline(line) for line in paragraph])
        if opens_block:  # copy the indented block that follows "::" (or a directive) as it is
            while i < n and (not lines[i].strip() or _indent(lines[i]) > indent):
                out.append(lines[i])
                i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines) -> None:
    lines[:] = plain_docstring_to_rst(lines)


def render_figures(app) -> None:
    """Draw the convolution-arithmetic figures from the library's formulas (docs/_generated/)."""
    import matplotlib

    matplotlib.use("Agg")
    from minimal_seg.conv_arithmetic import render_all

    render_all(FIGURES)


def copy_lectures(app) -> None:
    """Mirror lectures/ into docs/lectures/: copy new or changed files, drop removed ones.

    Unchanged files keep their time stamps, so an incremental build does not
    re-read them. With no notebooks yet, a placeholder page says so (the
    lectures toctree needs at least one page).
    """
    LECTURES_COPY.mkdir(exist_ok=True)
    wanted = {}
    if LECTURES_SOURCE.is_dir():
        for pattern in LECTURE_FILES:
            for path in LECTURES_SOURCE.glob(pattern):
                wanted[path.name] = path
    notebooks = [name for name in wanted if name.endswith(".ipynb")]
    for existing in LECTURES_COPY.iterdir():
        if existing.name not in wanted and not (existing.name == PLACEHOLDER and not notebooks):
            shutil.rmtree(existing) if existing.is_dir() else existing.unlink()
    for name, source in wanted.items():
        target = LECTURES_COPY / name
        if not target.exists() or target.read_bytes() != source.read_bytes():
            shutil.copy2(source, target)
    if not notebooks:
        (LECTURES_COPY / PLACEHOLDER).write_text(
            "# The lecture notebooks are being written\n\n"
            "No notebook was found in `lectures/` when this site was built.\n",
            encoding="utf-8",
        )


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("builder-inited", render_figures)
    app.connect("builder-inited", copy_lectures)
    return {"parallel_read_safe": True}
