"""What a student's file may import: an allow list per assignment, checked on the source (``ast``).

An assignment asks the student to write an op that the library already has,
so "import it" must not pass. Before a student's file runs, ``find_violations``
reads its syntax tree and refuses it (every check fails, with the reason)
when it

- imports anything outside the allow list: the assignment's ``ImportRules``
  on top of ``COMMON`` (NumPy, ``math``, ``minimal_seg.backend.array_module``,
  ...). ``minimal_seg.functional``, ``minimal_seg.nn``, ``minimal_seg.models``,
  torch, the reference solutions (``lectures``, ``solutions``,
  ``minimal_seg.assignments``) and ``importlib`` / ``sys`` are not on any list;
- uses a module it imported to reach further than the list allows: with
  ``minimal_seg.functional.crop_backward`` allowed, ``from minimal_seg import functional
  as F`` is accepted, ``F.crop_backward`` is, ``F.conv2d_forward`` and ``G = F`` are not;
  ``import minimal_seg.backend`` binds ``minimal_seg``, so ``minimal_seg.functional``
  is caught there too;
- names a builtin that reaches modules or code by a string or by the back
  door: ``__import__``, ``exec``, ``eval``, ``compile``, ``getattr``, ``globals``,
  ``vars``, ``type``, ``super``, ``open``, ... (``__import__("minimal_seg.functional")``
  and ``importlib.import_module("...")`` are reported with their string);
- reads a double-underscore attribute (``f.__globals__``, ``x.__class__``), or
  an attribute named like a door to other modules or to code
  (``.sys``, ``.importlib``, ``.builtins``, ``.modules``, ``.import_module``, ``.exec``,
  ``.load``, ...): NumPy's own modules hold ``sys`` and ``importlib``, and
  ``xp = array_module(x)`` is NumPy at run time, which no syntax tree can see;
- follows a path of allowed modules into a module that is not allowed
  (``numpy.testing._private.utils.sys``: every step is resolved on the real modules);
- passes ``allow_pickle`` (unpickling can import anything).

An allow-list entry may be limited to one function (``ImportRules.within``):
assignment 4's measurement builds ``nn.Conv2d`` layers, so ``minimal_seg.nn.Conv2d``
is allowed inside ``measure_receptive_field`` and nowhere else.

What a syntax tree cannot see is left to the checks at run time: assignment 6
gets a model whose own ``backward`` refuses to run inside the student's code.
What neither sees: a module reached at run time through a name not listed
here. The rules stop the ways a student finds by accident or by a search,
not a determined attacker; the grader runs the file as Python (see
docs/teaching.md).
"""
from __future__ import annotations

import ast
import importlib
import types
from dataclasses import dataclass, field

# Modules and names every assignment may use (a dotted entry allows itself and everything below it).
COMMON = ("__future__", "math", "numpy", "cupy", "typing", "dataclasses", "functools", "itertools",
          "collections", "minimal_seg.backend.array_module")

FORBIDDEN_BUILTINS = {
    "__import__": "it imports a module named by a string",
    "__builtins__": "it reaches every builtin, __import__ included",
    "__loader__": "it can load any module",
    "__spec__": "it can load any module",
    "exec": "it runs code from a string",
    "eval": "it runs code from a string",
    "compile": "it makes code from a string",
    "globals": "it reaches names by strings",
    "locals": "it reaches names by strings",
    "vars": "it reaches names by strings",
    "getattr": "it reaches attributes by strings",
    "setattr": "it changes attributes by strings",
    "delattr": "it deletes attributes by strings",
    "type": "it reaches a class and everything it inherits",
    "super": "it reaches the methods a class inherits",
    "open": "an assignment file reads no files",
    "breakpoint": "it starts a debugger",
}
STRING_IMPORTS = {"__import__", "import_module"}
# Attributes that open a door to other modules or to code, whatever object they are read from.
DOOR_MODULES = {"sys", "importlib", "builtins", "pickle", "subprocess", "os", "inspect", "ctypes", "runpy", "pkgutil",
                "types", "ast", "gc", "shutil", "pathlib", "io", "fileinput", "tempfile", "codecs", "marshal",
                "unittest", "concurrent", "threading", "json", "imp", "zipimport"}
DOOR_ATTRIBUTES = DOOR_MODULES | set(FORBIDDEN_BUILTINS) | {
    "modules", "import_module", "reload", "system", "popen", "spawn", "load", "loads", "run_path", "run_module"}


@dataclass(frozen=True)
class ImportRules:
    """One assignment's allow list.

    task     what the student writes, for the message ("conv2d and its backward")
    allowed  dotted names usable anywhere in the file, on top of COMMON
    within   function name -> dotted names usable only inside that function
    """

    task: str
    allowed: tuple = ()
    within: dict = field(default_factory=dict)

    def entries(self, function: str | None) -> tuple:
        return COMMON + tuple(self.allowed) + tuple(self.within.get(function, ()))

    def every_entry(self) -> tuple:
        return COMMON + tuple(self.allowed) + tuple(e for names in self.within.values() for e in names)

    def listing(self) -> str:
        parts = list(COMMON[1:]) + list(self.allowed)
        parts += [f"{e} (in {function} only)" for function, names in self.within.items() for e in names]
        return ", ".join(parts)


@dataclass(frozen=True)
class Violation:
    """One thing the file may not do: the line, the code, why."""

    line: int
    code: str
    why: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.code}: {self.why}"


def _status(path: str, entries) -> str:
    """'allowed' (an entry or below one), 'partial' (above an entry: a module to be used as M.name) or 'forbidden'."""
    if any(path == e or path.startswith(e + ".") for e in entries):
        return "allowed"
    if any(e.startswith(path + ".") for e in entries):
        return "partial"
    return "forbidden"


def _why_forbidden(path: str, rules: ImportRules, assignment: str) -> str:
    root = path.split(".")[0]
    if root == "torch":
        reason = "torch is the oracle the checks compare with"
    elif root in ("lectures", "solutions") or path.startswith("minimal_seg.assignments") or \
            root.startswith(tuple(f"a{k}_" for k in range(1, 8))):
        reason = "that is where the reference solutions live"
    elif root == "minimal_seg":
        reason = "the library's own version is the answer"
    elif root in ("importlib", "sys", "builtins", "runpy", "pkgutil", "imp"):
        reason = "it can load any module, the answers included"
    else:
        reason = "it is not on the allow list"
    return (f"{assignment} asks you to write {rules.task} yourself, so {path} is not allowed ({reason}). "
            f"Allowed: {rules.listing()}")


def _parents(tree: ast.AST) -> dict:
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _function_of(node, parents) -> str | None:
    """The name of the outermost function that holds ``node`` (a nested helper counts as its function)."""
    name = None
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = node.name
    return name


def _bindings(tree: ast.AST, rules: ImportRules, assignment: str, violations: list) -> dict:
    """name -> the dotted path it is bound to by an import; every import statement is judged on the way."""
    names = {}
    entries = rules.every_entry()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _status(alias.name, entries) == "forbidden":
                    violations.append(Violation(node.lineno, f"import {alias.name}",
                                                _why_forbidden(alias.name, rules, assignment)))
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            code = f"from {'.' * node.level}{module} import " + ", ".join(a.name for a in node.names)
            if node.level:
                violations.append(Violation(node.lineno, code, "a relative import reaches the package the file "
                                                               "sits in; import by the full name"))
                continue
            for alias in node.names:
                path = f"{module}.{alias.name}"
                judged = module if alias.name == "*" else path
                if alias.name == "*" and _status(module, entries) != "allowed" or \
                        _status(judged, entries) == "forbidden":
                    violations.append(Violation(node.lineno, code, _why_forbidden(judged, rules, assignment)))
                names[alias.asname or alias.name] = path
    return names


def _leaves_the_allowed(path: str, entries) -> str | None:
    """The first module outside ``entries`` that the dotted ``path`` reaches on the real modules, or None."""
    parts = path.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None  # nothing to follow (the import itself fails when the file runs)
    for k, name in enumerate(parts[1:], 2):
        obj = getattr(obj, name, None)
        if not isinstance(obj, types.ModuleType):
            return None
        if _status(obj.__name__, entries) == "forbidden":
            return f"{'.'.join(parts[:k])} is the module {obj.__name__}"
    return None


def _attribute_path(node, parents):
    """From a Name, climb the attribute chain ``a.b.c``: (the outermost node, the attribute names)."""
    attrs = []
    while isinstance(parents.get(node), ast.Attribute) and parents[node].value is node:
        node = parents[node]
        attrs.append(node.attr)
    return node, attrs


def find_violations(source: str, rules: ImportRules, assignment: str = "this assignment") -> list[Violation]:
    """Every use of a module or builtin that ``rules`` does not allow in ``source`` (empty: the file may run).

    Raises SyntaxError for a file that does not parse.
    """
    tree = ast.parse(source)
    parents = _parents(tree)
    violations: list[Violation] = []
    bound = _bindings(tree, rules, assignment, violations)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("__") and node.attr.endswith("__"):
            violations.append(Violation(node.lineno, ast.unparse(node),
                                        "double-underscore attributes reach a function's module, a class's "
                                        "bases, every global: they are not allowed in an assignment file"))
        elif isinstance(node, ast.Attribute) and node.attr in DOOR_ATTRIBUTES:
            violations.append(Violation(node.lineno, ast.unparse(node),
                                        f".{node.attr} opens a door to other modules or to code: "
                                        f"not allowed in an assignment file"))
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            violations.append(Violation(node.lineno, "allow_pickle=...",
                                        "unpickling can import any module: not allowed in an assignment file"))
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            text = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if name in STRING_IMPORTS and isinstance(text, str):
                violations.append(Violation(node.lineno, ast.unparse(node),
                                            f"imports {text!r} by a string; "
                                            + _why_forbidden(text, rules, assignment)))
        if not isinstance(node, ast.Name):
            continue
        if node.id in FORBIDDEN_BUILTINS and node.id not in bound:
            violations.append(Violation(node.lineno, node.id,
                                        f"{node.id} is not allowed in an assignment file: "
                                        f"{FORBIDDEN_BUILTINS[node.id]}"))
        if node.id not in bound or not isinstance(node.ctx, ast.Load):
            continue
        outer, attrs = _attribute_path(node, parents)
        path = ".".join([bound[node.id], *attrs])
        function = _function_of(node, parents)
        status = _status(path, rules.entries(function))
        door = _leaves_the_allowed(path, rules.entries(function)) if status == "allowed" else None
        if door:
            violations.append(Violation(node.lineno, ast.unparse(outer), f"{door}, which {assignment} does not allow"))
        if status == "allowed":
            continue
        code = ast.unparse(outer)
        if status == "partial":
            usable = [e for e in rules.entries(function) if e.startswith(path + ".")]
            why = (f"{node.id} ({bound[node.id]}) may only be used as "
                   + ", ".join(node.id + e[len(bound[node.id]):] for e in usable) + " here")
        else:
            why = _why_forbidden(path, rules, assignment)
            if _status(path, rules.every_entry()) == "allowed":
                holders = [f for f, names in rules.within.items() if _status(path, names) == "allowed"]
                why = f"{path} may be used only in {', '.join(holders)}"
        violations.append(Violation(node.lineno, code, why))
    first_per_line = {}
    for v in sorted(set(violations), key=lambda v: (v.line, -len(v.code), v.why)):  # the fullest code of a line
        first_per_line.setdefault(v.line, v)
    return list(first_per_line.values())
