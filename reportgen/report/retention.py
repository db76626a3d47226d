"""Retention of the published tree's dated runs: full, thinned, then gone.

GitHub Pages deploys the whole tree every night and holds at most 1 GB, so
only the newest runs keep their full site. An older run is *thinned* to
what a ticket may link to: its index, its episode pages (``violations/``)
and finding pages (``findings/``), its ``index.json`` (every episode's and
finding's data) and ``history.jsonl``, and the small stylesheet and script.
Town, tick and entity pages, the pages' JSON twins and the chart bundle go; every link of a kept
page to a deleted file is dropped, its text kept (a ``<script>`` or
``<link>`` of a deleted asset is removed), so every link left resolves.
Runs beyond the number kept are deleted.

Only runs reportgen wrote are touched (:func:`reportgen.report.site.owned`);
a thinned run is written beside the old one and swapped in
(:class:`~reportgen.report.site.SiteWriter`), so a run is never half thinned.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import shutil
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reportgen.report.site import SITE_MARKER, SiteWriter, owned

#: What a thinned run keeps at its root, and the folders it keeps whole.
KEPT_FILES = frozenset({"index.html", "index.json", "history.jsonl", SITE_MARKER})
KEPT_FOLDERS = frozenset({"violations", "findings"})
#: Assets a thinned run keeps (the chart bundle is most of a run's fixed size).
KEPT_ASSET_PREFIX = "assets/site-"
#: Links that point out of the page's own tree, or nowhere on disk.
EXTERNAL = ("http:", "https:", "//", "mailto:", "data:", "javascript:", "#")


def kept_in_thinned(relpath: str) -> bool:
    """Whether a thinned run keeps this file (a POSIX path inside the run)."""
    top = relpath.split("/", 1)[0]
    page = top in KEPT_FOLDERS and relpath.endswith(".html")
    return relpath in KEPT_FILES or page or relpath.startswith(KEPT_ASSET_PREFIX)


def run_files(run: Path) -> list[str]:
    """Every file of a run, as sorted POSIX paths inside it."""
    return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())


def thin_run(run: Path) -> bool:
    """Thin one run in place (atomically); ``False`` when it is thin already or not reportgen's."""
    if not owned(run, SITE_MARKER):
        return False
    files = run_files(run)
    kept = [f for f in files if kept_in_thinned(f)]
    if len(kept) == len(files):
        return False
    keep = set(kept)
    with SiteWriter(run) as writer:
        for rel in kept:
            if rel == SITE_MARKER:
                continue
            if rel.endswith(".html"):
                text = (run / rel).read_text(encoding="utf-8")
                writer.write(
                    rel, drop_dead_links(text, functools.partial(_resolves, page=rel, keep=keep))
                )
            else:
                writer.link(rel, run / rel)
        writer.commit()
    return True


def _resolves(ref: str, page: str, keep: set[str]) -> bool:
    """Whether a relative link of ``page`` still resolves in the thinned run."""
    path = unquote(urlsplit(ref).path)
    if not path:
        return True
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    return target in keep or target.startswith("../")


def delete_run(run: Path) -> bool:
    """Delete a run reportgen wrote (renamed aside first, so it never shows half deleted)."""
    if not owned(run, SITE_MARKER):
        return False
    aside = run.parent / f".{run.name}.old-{os.getpid()}"
    os.replace(run, aside)
    shutil.rmtree(aside, ignore_errors=True)
    return True


class _Links(HTMLParser):
    """Finds the span of every tag that links or loads something, by character offset."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.lines = [0]  # where each line starts (the parser counts lines by "\n" only)
        self.lines += [m.end() for m in re.finditer("\n", text)]
        self.text = text
        #: (start, end, tag, link) of each start tag with href/src; (start, end, tag, "") of ends.
        self.tags: list[tuple[int, int, str, str]] = []

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        link = next((v for k, v in attrs if k in ("href", "src") and v is not None), None)
        if link is not None and tag in ("a", "script", "link", "img"):
            start = self._offset()
            raw = self.get_starttag_text() or ""
            self.tags.append((start, start + len(raw), tag, link))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("a", "script"):
            start = self._offset()
            end = self.text.find(">", start) + 1
            self.tags.append((start, end, f"/{tag}", ""))


def drop_dead_links(html: str, resolves: Callable[[str], bool]) -> str:
    """``html`` without its links to what does not resolve: an ``<a>`` keeps its text, a
    ``<script src>`` (with its end tag), ``<link>`` or ``<img>`` goes."""
    parser = _Links(html)
    parser.feed(html)
    parser.close()
    cuts: list[tuple[int, int]] = []
    closing: str | None = None  # the end tag to cut next, after a dropped start tag
    script_start = 0
    for start, end, tag, link in parser.tags:
        if tag.startswith("/"):
            if closing == tag == "/a":
                cuts.append((start, end))
            elif closing == tag == "/script":
                cuts.append((script_start, end))
            closing = None if closing == tag else closing
            continue
        if link.startswith(EXTERNAL) or resolves(link):
            continue
        if tag in ("a", "script"):
            closing, script_start = f"/{tag}", start
            if tag == "a":
                cuts.append((start, end))
        else:
            cuts.append((start, end))
    return _cut(html, cuts)


def _cut(text: str, cuts: list[tuple[int, int]]) -> str:
    """``text`` without the given spans."""
    out, at = [], 0
    for start, end in sorted(cuts):
        out.append(text[at:start])
        at = max(at, end)
    out.append(text[at:])
    return "".join(out)
