"""The documentation's sources, checked cheaply (CI builds the site itself, warnings as errors).

No Sphinx here: these tests read the sources as text and import docs/conf.py,
which imports nothing but the library at module level.
"""
import fnmatch
import importlib.util
import re
from pathlib import Path

import pytest

from minimal_seg.conv_arithmetic import DOC_FIGURES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = ("_build", "_generated", "lectures")  # written by the build, git-ignored
SUFFIXES = (".md", ".rst", ".ipynb")

MYST_TOCTREE = re.compile(r"^```\{toctree\}\n(?P<body>.*?)^```", re.S | re.M)
RST_TOCTREE = re.compile(r"^\.\. toctree::\n(?P<body>(?:[ \t]+.*\n|\n)*)", re.M)
DOC_ROLE = re.compile(r"\{doc\}`(?:[^`<]*<)?(?P<target>[^`>]+)>?`|:doc:`(?:[^`<]*<)?(?P<rst>[^`>]+)>?`")
FIGURE = re.compile(r"/_generated/conv_arithmetic/(?P<name>[\w.]+)")


def load_conf():
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def sources():
    """docname -> path of every hand-written page (generated folders left out)."""
    found = {}
    for path in DOCS.rglob("*"):
        rel = path.relative_to(DOCS)
        if path.suffix in SUFFIXES and rel.parts[0] not in GENERATED:
            found[rel.with_suffix("").as_posix()] = path
    return found


def toctree_entries(path):
    """(entry, glob?) of every toctree in a page, MyST or reST."""
    text = path.read_text(encoding="utf-8")
    entries = []
    for match in list(MYST_TOCTREE.finditer(text)) + list(RST_TOCTREE.finditer(text)):
        body = match.group("body")
        glob = ":glob:" in body
        for line in body.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.append((re.sub(r"^.*<(.+)>$", r"\1", line), glob))
    return entries


def resolve(docname, entry):
    """A toctree entry or {doc} target, relative to the page that names it (or absolute with /)."""
    if entry.startswith("/"):
        return entry.lstrip("/")
    parts = (Path(docname).parent / entry).as_posix().split("/")
    out = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part not in (".", ""):
            out.append(part)
    return "/".join(out)


def lecture_docnames():
    """The lecture notebooks as the build will see them (copied into docs/lectures/)."""
    return {f"lectures/{p.stem}" for p in (ROOT / "lectures").glob("*.ipynb")}


def test_conf_imports_without_side_effects():
    before = sorted(p.name for p in DOCS.iterdir())
    conf = load_conf()
    assert "myst_nb" in conf.extensions and "sphinx.ext.autodoc" in conf.extensions
    assert conf.nb_execution_raise_on_error is True
    assert callable(conf.setup)
    assert sorted(p.name for p in DOCS.iterdir()) == before  # figures and lectures wait for the build


def test_every_toctree_entry_exists_and_every_page_is_listed():
    pages = sources()
    known = set(pages) | lecture_docnames()
    listed = {"index"}
    for docname, path in pages.items():
        for entry, glob in toctree_entries(path):
            target = resolve(docname, entry)
            if glob:
                matches = {d for d in known if fnmatch.fnmatchcase(d, target)}
                listed |= matches
                continue
            assert target in known, f"{path.relative_to(ROOT)}: toctree entry {entry!r} has no page"
            listed.add(target)
    assert set(pages) - listed == set(), "pages no toctree lists (Sphinx would warn)"


def test_every_lecture_notebook_is_in_the_lectures_toctree():
    entries = [resolve("lectures", e) for e, glob in toctree_entries(DOCS / "lectures.md") if glob]
    for docname in lecture_docnames():
        assert any(fnmatch.fnmatchcase(docname, pattern) for pattern in entries), docname


def test_doc_links_point_to_pages():
    known = set(sources()) | lecture_docnames()
    for docname, path in sources().items():
        for match in DOC_ROLE.finditer(path.read_text(encoding="utf-8")):
            target = resolve(docname, (match.group("target") or match.group("rst")).strip())
            assert target in known, f"{path.relative_to(ROOT)}: no page {target!r}"


def test_figures_are_the_ones_render_all_writes():
    named = set()
    for path in sources().values():
        named |= {m.group("name") for m in FIGURE.finditer(path.read_text(encoding="utf-8"))}
    assert named, "the pages show no generated figure"
    assert named <= set(DOC_FIGURES), f"not drawn by render_all: {sorted(named - set(DOC_FIGURES))}"
    assert any(name.endswith(".gif") for name in named), "at least one animation"


def test_getting_started_has_the_readme_commands_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(commands) == 2
    page = (DOCS / "getting_started.md").read_text(encoding="utf-8")
    for command in commands:
        assert f"```bash\n{command}```" in page, f"getting_started.md lost the README command {command!r}"


def test_ci_builds_the_docs_with_the_documented_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "python -m sphinx -W --keep-going -b html docs docs/_build/html"
    assert command in ci and command in (DOCS / "getting_started.md").read_text(encoding="utf-8")
    assert ci.index("test_command") < ci.index(command), "the docs build runs after the tests"


# ---- the docstring hook of conf.py ---------------------------------------------------------------


@pytest.fixture(scope="module")
def to_rst():
    return load_conf().plain_docstring_to_rst


def test_aligned_table_becomes_a_literal_block(to_rst):
    lines = ["Summary line.", "", "x      any shape, float", "out    same shape and dtype",
             "cache  ``mask``: the boolean array"]
    out = to_rst(lines)
    assert out[:4] == ["Summary line.", "", ".. code-block:: text", ""]
    assert out[4:7] == ["    x      any shape, float", "    out    same shape and dtype",
                        "    cache  ``mask``: the boolean array"]


def test_indented_continuation_and_diagram_become_literal(to_rst):
    out = to_rst(["impl   path to the file, or a folder", "       holding it"])
    assert out[:4] == [".. code-block:: text", "", "    impl   path to the file, or a folder", "           holding it"]
    out = to_rst(["A diagram:", "", "    x ─ enc0 ── cat", "          └ pool ┘"])
    assert out[:5] == ["A diagram:", "", ".. code-block:: text", "", "        x ─ enc0 ── cat"]


def test_bars_are_escaped_outside_literals_only(to_rst):
    assert to_rst(["IoU = |A n B| / |A u B| and ``x | y``"]) == [r"IoU = \|A n B\| / \|A u B\| and ``x | y``"]
    assert to_rst(["``bincount``s are fast"]) == [r"``bincount``\ s are fast"]


def test_rst_that_is_already_right_is_left_alone(to_rst):
    lines = ["Formula::", "", "    O = (H + 2P - K) // S + 1", "    |x| stays", "", "* a bullet that", "  continues",
             "", "1. a numbered item", "   that continues::", "", "       code", "", "   more of the item"]
    assert to_rst(lines) == lines
