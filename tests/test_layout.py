"""The package's layering: no import cycles, and dependencies only in the allowed directions.

Every module under ``reportgen/`` is parsed (no import): each ``import`` and
``from … import`` anywhere in it counts, including the lazy ones inside
functions. Imports under ``if TYPE_CHECKING:`` never run, so they cannot form
an import cycle; they still count for the direction rules, since a type
import is knowledge of the other layer all the same.

The rules:

* ``reportgen.town`` (the engine) imports nothing of reportgen outside
  itself except the leaves ``reportgen.errors``, ``reportgen.jsonio`` and
  ``reportgen.gcpause``;
* ``reportgen.report`` imports neither ``reportgen.sim`` nor ``reportgen.replay``;
* ``reportgen.observability`` does not import ``reportgen.report``;
* ``reportgen.diagnose`` imports neither ``reportgen.report`` nor
  ``reportgen.observability``; ``reportgen.replay`` imports neither of those
  nor ``reportgen.diagnose`` (imports point down: cli → report, server,
  observability → diagnose → replay → sim, town);
* nothing outside the ``reportgen.cli`` package imports it, except
  ``reportgen.__main__`` (which runs it) and ``reportgen.docsgen`` (which
  documents its commands).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEAVES = frozenset({"reportgen.errors", "reportgen.jsonio", "reportgen.gcpause"})

#: Today's known breaches, each of which must go. This list must shrink to
#: empty: a breach not listed fails the suite, and so does a listed one that
#: no longer happens (delete its line when you fix it).
KNOWN_CYCLES: frozenset[tuple[str, ...]] = frozenset({})
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset({})


# --------------------------------------------------------------------------- the import graph


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` (both module names); ``typing_only`` under TYPE_CHECKING."""

    importer: str
    imported: str
    typing_only: bool


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a folder under ``root``) by dotted name; packages by their own."""
    names: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement at any depth, and whether it sits under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from _imports(node, typing_only)


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lives in: itself, else its nearest enclosing module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.stmt, importer: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The modules one import statement loads (``from p import m`` loads ``p.m`` if a module)."""
    if isinstance(node, ast.Import):
        found = {_owner(alias.name, modules) for alias in node.names}
    else:
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            package = importer if is_package else importer.rpartition(".")[0]
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        found = set()
        for alias in node.names:
            child = f"{base}.{alias.name}"
            found.add(child if child in modules else _owner(base, modules))
    return {name for name in found if name is not None and name != importer}


def import_edges(root: Path, package: str) -> list[Edge]:
    """Every import between modules of ``package``, lazy and typing-only ones included."""
    modules = module_names(root, package)
    edges: set[Edge] = set()
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, typing_only in _imports(tree):
            for target in _targets(node, name, is_package, modules):
                edges.add(Edge(name, target, typing_only))
    return sorted(edges, key=lambda e: (e.importer, e.imported, e.typing_only))


def import_cycles(edges: list[Edge]) -> set[tuple[str, ...]]:
    """The strongly connected sets of two or more modules, over imports that run."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set())
        graph.setdefault(edge.imported, set())
        if not edge.typing_only:
            graph[edge.importer].add(edge.imported)
    return {tuple(sorted(c)) for c in strongly_connected(graph) if len(c) > 1}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of ``graph``; it is a few hundred modules deep at most."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


# --------------------------------------------------------------------------- the rules


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


#: Modules outside the CLI package that may import it.
CLI_USERS = frozenset({"reportgen.__main__", "reportgen.docsgen"})


def _above(a: str, b: str, lower: str, uppers: tuple[str, ...]) -> bool:
    """``a`` is in ``lower`` and imports one of the packages above it."""
    return _within(a, lower) and any(_within(b, upper) for upper in uppers)


#: (rule, does ``importer → imported`` break it?)
RULES: list[tuple[str, Callable[[str, str], bool]]] = [
    (
        "reportgen.town imports only itself and the leaves",
        lambda a, b: (
            _within(a, "reportgen.town") and not _within(b, "reportgen.town") and b not in LEAVES
        ),
    ),
    (
        "reportgen.report does not import reportgen.sim",
        lambda a, b: _within(a, "reportgen.report") and _within(b, "reportgen.sim"),
    ),
    (
        "reportgen.report does not import reportgen.replay",
        lambda a, b: _within(a, "reportgen.report") and _within(b, "reportgen.replay"),
    ),
    (
        "reportgen.observability does not import reportgen.report",
        lambda a, b: _within(a, "reportgen.observability") and _within(b, "reportgen.report"),
    ),
    (
        "reportgen.diagnose imports neither reportgen.report nor reportgen.observability",
        lambda a, b: _above(
            a, b, "reportgen.diagnose", ("reportgen.report", "reportgen.observability")
        ),
    ),
    (
        "reportgen.replay imports neither reportgen.report, observability nor diagnose",
        lambda a, b: _above(
            a,
            b,
            "reportgen.replay",
            ("reportgen.report", "reportgen.observability", "reportgen.diagnose"),
        ),
    ),
    (
        "nothing outside reportgen.cli imports it (but __main__ and docsgen)",
        lambda a, b: (
            _within(b, "reportgen.cli") and not _within(a, "reportgen.cli") and a not in CLI_USERS
        ),
    ),
]


def violations(edges: list[Edge]) -> dict[tuple[str, str], list[str]]:
    """Each forbidden ``(importer, imported)`` pair and the rules it breaks."""
    found: dict[tuple[str, str], list[str]] = {}
    for edge in edges:
        for rule, breaks in RULES:
            if breaks(edge.importer, edge.imported):
                found.setdefault((edge.importer, edge.imported), []).append(rule)
    return found


# --------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(REPO, "reportgen")


def test_no_new_import_cycles(edges: list[Edge]) -> None:
    cycles = import_cycles(edges)
    new = sorted(cycles - KNOWN_CYCLES)
    assert not new, "import cycles (break them, e.g. by moving the shared part down):\n" + (
        "\n".join(" ⇄ ".join(c) for c in new)
    )


def test_known_cycles_are_still_there(edges: list[Edge]) -> None:
    gone = sorted(KNOWN_CYCLES - import_cycles(edges))
    assert not gone, f"fixed: remove from KNOWN_CYCLES in tests/test_layout.py: {gone}"


def test_no_new_forbidden_imports(edges: list[Edge]) -> None:
    found = violations(edges)
    new = sorted(set(found) - KNOWN_VIOLATIONS)
    assert not new, "forbidden imports:\n" + "\n".join(
        f"{a} imports {b}: {'; '.join(found[(a, b)])}" for a, b in new
    )


def test_known_violations_are_still_there(edges: list[Edge]) -> None:
    gone = sorted(KNOWN_VIOLATIONS - set(violations(edges)))
    assert not gone, f"fixed: remove from KNOWN_VIOLATIONS in tests/test_layout.py: {gone}"


def test_the_engine_side_effects_are_not_a_cycle(edges: list[Edge]) -> None:
    """effects runs pr_effects; the types both need live below them in effect_run."""
    pairs = {(e.importer, e.imported) for e in edges}
    assert ("reportgen.town.effects", "reportgen.town.pr_effects") in pairs
    assert ("reportgen.town.pr_effects", "reportgen.town.effects") not in pairs
    for cycle in KNOWN_CYCLES:
        assert not any(_within(m, "reportgen.town") for m in cycle)


# --------------------------------------------------------------------------- the checker itself


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_lazy_import_inside_a_function_closes_a_cycle(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def f():\n    if True:\n        from . import a\n",
            "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            "pkg/sub/__init__.py": "from ..c import x\n",
        },
    )
    edges = import_edges(tmp_path, "pkg")
    pairs = {(e.importer, e.imported, e.typing_only) for e in edges}
    assert ("pkg.b", "pkg.a", False) in pairs
    assert ("pkg.c", "pkg.a", True) in pairs
    assert ("pkg.sub", "pkg.c", False) in pairs
    assert import_cycles(edges) == {("pkg.a", "pkg.b")}


def test_a_typing_only_import_is_no_cycle_but_still_a_direction(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "reportgen/__init__.py": "",
            "reportgen/town/__init__.py": "",
            "reportgen/town/x.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from reportgen.report import y\n"
            ),
            "reportgen/report/__init__.py": "",
            "reportgen/report/y.py": "import reportgen.town.x\nfrom reportgen import cli\n",
            "reportgen/cli.py": "def main():\n    from reportgen import cli_build\n",
            "reportgen/cli_build.py": "",
        },
    )
    edges = import_edges(tmp_path, "reportgen")
    assert import_cycles(edges) == set()
    assert violations(edges) == {
        ("reportgen.town.x", "reportgen.report.y"): [RULES[0][0]],
        ("reportgen.report.y", "reportgen.cli"): [RULES[-1][0]],
    }
