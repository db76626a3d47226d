"""Size limits for the code under ``reportgen/``: a module of at most 500 lines, a
function of at most 60 (``end_lineno - lineno + 1`` of its ``def``, as parsed).

Past those sizes a reader can no longer hold a module or a function in mind;
split it along its concerns instead. Each module is parsed, not imported.

``ALLOWED_MODULES`` and ``ALLOWED_FUNCTIONS`` are today's known offenders, each of
which must go. These lists must shrink to empty: an offender not listed fails the
suite, and so does a listed one that is now within the limit (delete its line
when you fix it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60

#: Modules over the limit today (path relative to the repository): none; keep it so.
ALLOWED_MODULES: frozenset[str] = frozenset()
#: Functions over the limit today, as (path, qualified name): none; keep it so.
ALLOWED_FUNCTIONS: frozenset[tuple[str, str]] = frozenset()


def module_lines(text: str) -> int:
    """Lines of a module as an editor counts them."""
    return len(text.splitlines())


def function_sizes(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function and method in ``tree``, nested ones too.

    A function's size runs from its ``def`` line to its last line; decorators are not
    counted, a nested function counts towards its parent and for itself.
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            assert node.end_lineno is not None
            yield name, node.end_lineno - node.lineno + 1
            yield from function_sizes(node, f"{name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from function_sizes(node, f"{prefix}{node.name}.")
        else:
            yield from function_sizes(node, prefix)


def sources() -> Iterator[tuple[str, str]]:
    """(path relative to the repository, text) of every module under ``reportgen/``."""
    for path in sorted((REPO / "reportgen").rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def long_modules() -> dict[str, int]:
    found = {rel: module_lines(text) for rel, text in sources()}
    return {rel: n for rel, n in found.items() if n > MAX_MODULE_LINES}


@pytest.fixture(scope="module")
def long_functions() -> dict[tuple[str, str], int]:
    return {
        (rel, name): n
        for rel, text in sources()
        for name, n in function_sizes(ast.parse(text, filename=rel))
        if n > MAX_FUNCTION_LINES
    }


def test_no_new_module_over_the_limit(long_modules: dict[str, int]) -> None:
    new = {rel: n for rel, n in long_modules.items() if rel not in ALLOWED_MODULES}
    assert not new, f"modules over {MAX_MODULE_LINES} lines (split them along their concerns): " + (
        ", ".join(f"{rel} ({n})" for rel, n in sorted(new.items()))
    )


def test_no_new_function_over_the_limit(long_functions: dict[tuple[str, str], int]) -> None:
    new = {key: n for key, n in long_functions.items() if key not in ALLOWED_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(
        f"{rel}::{name} ({n})" for (rel, name), n in sorted(new.items())
    )


def test_allowed_modules_still_exceed(long_modules: dict[str, int]) -> None:
    fixed = sorted(ALLOWED_MODULES - set(long_modules))
    assert not fixed, f"fixed: remove from ALLOWED_MODULES in {Path(__file__).name}: {fixed}"


def test_allowed_functions_still_exceed(long_functions: dict[tuple[str, str], int]) -> None:
    fixed = sorted(ALLOWED_FUNCTIONS - set(long_functions))
    assert not fixed, f"fixed: remove from ALLOWED_FUNCTIONS in {Path(__file__).name}: {fixed}"


def test_function_sizes_are_measured_from_def_to_last_line() -> None:
    """The measure itself: decorators left out, methods and nested functions named."""
    text = '''
@decorator
def top(a):
    """Doc."""

    def inner():
        return 1

    return inner


class Box:
    async def method(self):
        pass
'''
    sizes = dict(function_sizes(ast.parse(text)))
    assert sizes == {"top": 7, "top.<locals>.inner": 2, "Box.method": 2}
    assert module_lines(text) == 14
