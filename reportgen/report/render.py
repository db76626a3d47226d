"""Turn view-models into HTML strings with jinja2 (autoescape on, StrictUndefined).

Rendering never touches the disk beyond reading templates: :mod:`site` writes.
Links in templates go through ``url(href)``, a function chosen per output:
the multi-page site prefixes the page's ``root``; the single-file bundle maps
hrefs to in-page anchors (and returns ``""`` for pages it does not hold, so
the template prints plain text instead of a dead link).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import jinja2
from markupsafe import Markup, escape

from reportgen import __version__
from reportgen.report.format import ellipsis, script_json, show_controls
from reportgen.report.glossary import TERMS, TERMS_BY_SLUG, glossary_slug
from reportgen.resources import templates_dir

#: Template per page kind.
TEMPLATES = {
    "index": "index.html",
    "town": "town.html",
    "entity": "entity.html",
    "violation": "violation.html",
    "resolved": "resolved.html",
    "finding": "finding.html",
    "finding-stub": "finding_stub.html",
    "bundle": "bundle.html",
    "permalink": "permalink.html",
    "permalinks": "permalinks.html",
    "glossary": "glossary.html",
}

#: Text between a pair of backticks on one line: Markdown's inline code.
_TICKED = re.compile(r"`([^`\n]+)`")

Url = Callable[[str], str]


@dataclass(frozen=True)
class AssetRefs:
    """Where the shared assets are (site), or their text (single file, ``inline``)."""

    css: str = ""
    js: str = ""
    vega: str = ""
    #: The timeline viewer (town pages and the bundle).
    timeline: str = ""
    #: Inline text (already safe ``Markup`` when set by :meth:`Assets.inline_refs`).
    css_text: str = ""
    js_text: str = ""
    vega_text: str = ""
    timeline_text: str = ""
    inline: bool = False


class Page(Protocol):
    """What :func:`render` needs of a view-model: its kind (the template), title and root."""

    @property
    def kind(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def root(self) -> str: ...


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output, before escaping: bidi controls shown, not obeyed.

    Applied by the environment to every expression, so no template can forget
    it. ``Markup`` is covered too (``'inv ' ~ x`` is ``Markup`` under
    autoescape): the replacement holds no character HTML treats specially.
    """
    if not isinstance(value, str) or value.isascii():
        return value  # nearly every output: kept cheap, it runs for each one
    shown = show_controls(value)
    if shown is value or not isinstance(value, Markup):
        return shown
    return Markup(shown)


def inline_code(value: str) -> Markup:
    """Text that marks code Markdown's way (`` `x` ``) shown with ``<code>x</code>``.

    The text is escaped first and only then are the pairs of backticks
    replaced, so nothing in it can become markup; a backtick without its
    pair stays as it is.
    """
    return Markup(_TICKED.sub(r"<code>\1</code>", str(escape(value))))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The jinja2 environment (cached: building it parses no template, but loading does)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["ellipsis"] = ellipsis
    env.filters["script_json"] = lambda value: Markup(script_json(value))
    env.filters["inline_code"] = inline_code
    env.filters["glossary_slug"] = glossary_slug
    env.globals.update(terms=TERMS_BY_SLUG, glossary=TERMS)
    return env


def site_url(page: str) -> Url:
    """``url()`` for the site page at ``page`` (site-relative): the shortest relative link.

    Hrefs in view-models are site-relative; a page links them from where it
    is, so a town's pages link each other as ``../index.html#tick-…`` rather
    than through the site root (links are a large share of a page's bytes).
    """
    here = posixpath.dirname(page) or "."
    root = "../" * page.count("/")

    def url(href: str) -> str:
        if not href:
            return ""
        path, sep, fragment = href.partition("#")
        if not path or path.endswith("/"):
            return f"{root}{href}"
        return posixpath.relpath(path, here) + sep + fragment

    return url


def render(page: Page, *, assets: AssetRefs, url: Url, json_href: str = "") -> str:
    """Render one view-model with the template of its ``kind``.

    The context is the page and how to link and load assets; everything the
    template shows is a field or property of the page (no template computes
    a value: StrictUndefined then catches every name that does not exist).
    """
    template = environment().get_template(TEMPLATES[page.kind])
    html = template.render(
        page=page,
        url=url,
        assets=assets,
        inline=assets.inline,
        json_href=json_href,
        version=__version__,
        charts_needed=bool(getattr(page, "charts", None)),
    )
    return html if html.endswith("\n") else html + "\n"
