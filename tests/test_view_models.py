"""The page view-models stay typed, and the templates stay free of rules.

Every value a template shows comes from a frozen dataclass with typed fields
(or a typed property), so a template that names a field the model does not
have fails the build (StrictUndefined) instead of rendering an empty cell, and
mypy checks the code that fills them. A ``dict`` row would let a wrong key
through: a table once rendered ``q.quarantined_at|default('')`` while its rows
carried ``at``, and showed an empty column.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union

import pytest

from reportgen.report.charts import ChartSpec
from reportgen.report.pages import SitePage
from reportgen.report.permalinks import PermalinkPage, PermalinksIndex
from reportgen.report.single_file import BundlePage
from reportgen.report.views_index import RunByTown
from reportgen.resources import templates_dir

#: Every page model a template renders.
PAGES: tuple[type, ...] = (*typing.get_args(SitePage), BundlePage, PermalinkPage, PermalinksIndex)
SCALARS = frozenset({str, int, float, bool, type(None)})
#: The only JSON objects a page model holds as such: a Vega-Lite spec (its shape is
#: Vega-Lite's), and a map whose keys are data (town id → run), which a dataclass cannot be.
JSON_OBJECTS = frozenset({ChartSpec, RunByTown})


def _hints(owner: Any) -> dict[str, Any]:
    return typing.get_type_hints(owner)


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """``(name, type)`` of every field and every property of a dataclass."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        yield f.name, hints[f.name]
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, property) and attr.fget is not None:
                yield name, _hints(attr.fget)["return"]


def untyped(tp: Any, where: str, seen: set[type]) -> Iterator[str]:
    """Where a type reachable from ``tp`` is not a scalar, a typed list or a frozen dataclass."""
    origin = typing.get_origin(tp)
    if tp in SCALARS or tp in JSON_OBJECTS or origin is Literal:
        return
    if origin in (Union, types.UnionType, list, tuple):
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                yield from untyped(arg, where, seen)
        return
    if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        yield f"{where}: {tp!r} is not a scalar, a list or a frozen dataclass"
        return
    if tp in seen:
        return
    seen.add(tp)
    if not tp.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        yield f"{where}: {tp.__name__} is not frozen"
    for name, member in _members(tp):
        yield from untyped(member, f"{tp.__name__}.{name}", seen)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.__name__)
def test_every_page_model_is_typed_all_the_way_down(page: type) -> None:
    assert list(untyped(page, page.__name__, set())) == []


@dataclasses.dataclass(frozen=True)
class _DictRow:
    cells: dict[str, Any]


@dataclasses.dataclass
class _LoosePage:
    rows: list[_DictRow]
    extra: typing.Mapping[str, str]
    anything: Any


def test_the_check_finds_a_dict_row_any_and_a_mutable_model() -> None:
    found = list(untyped(_LoosePage, "_LoosePage", set()))
    assert any("_LoosePage is not frozen" in p for p in found)
    assert any(p.startswith("_DictRow.cells:") for p in found)
    assert any(p.startswith("_LoosePage.extra:") for p in found)
    assert any(p.startswith("_LoosePage.anything:") for p in found)


# ── Templates ────────────────────────────────────────────────────────────

#: Key probing and fallbacks: a model gives every field a value.
FORBIDDEN = ("|default(", "| default(", ".get(", " is defined", " is undefined", ".items()")
_EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}|\{%-?(.*?)-?%\}", re.S)
_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")
_FOR = re.compile(r"^\s*for\s+[\w\s,]+\s+in\s")
#: A membership test or arithmetic: a rule, which belongs in the model.
_RULE = re.compile(r"\bin\b|[-+*/%]")


def _templates() -> list[Path]:
    return sorted(templates_dir().glob("*.html"))


def rules_in(text: str) -> Iterator[str]:
    """The template expressions that compute something instead of reading the model."""
    for match in _EXPRESSION.finditer(text):
        body = match.group(1) if match.group(1) is not None else match.group(2)
        code = _FOR.sub("", _STRING.sub("''", body))
        if any(bad in body for bad in FORBIDDEN) or _RULE.search(code):
            yield body.strip()


def test_the_templates_exist() -> None:
    assert len(_templates()) >= 10


@pytest.mark.parametrize("template", _templates(), ids=lambda p: p.name)
def test_templates_probe_no_keys_and_compute_nothing(template: Path) -> None:
    assert list(rules_in(template.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "{{ q.quarantined_at|default('') }}",
        "{% if row.get('href') %}",
        "{% if r.href is defined %}",
        "{% for k, v in page.towns.items() %}",
        "{% if t.town_id in page.not_rebuilt_towns %}",
        "{% if (p.number - current)|abs <= 3 %}",
        "{{ page.pages[-1].number + 1 }}",
    ],
)
def test_the_template_check_finds_rules(snippet: str) -> None:
    assert list(rules_in(snippet)) != []


def test_the_template_check_passes_loops_and_text() -> None:
    text = "{% for r in page.rows %}{{ m.maybe_link(r.href, 'inv ' ~ r.n, 't') }}{% endfor %}"
    assert list(rules_in(text)) == []
